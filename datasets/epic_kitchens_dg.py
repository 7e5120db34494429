"""EPIC-Kitchens-55 DG (the benchmark of STDN, Lin et al., NeurIPS 2023): the 8 largest verb classes in three
kitchens, D1 = P08, D2 = P01, D3 = P22, the domains of Munro and Damen's domain adaptation subset (MM-SADA,
CVPR 2020). The clips are action segments of EPIC-Kitchens-55's untrimmed videos, read from the RGB frame
folders as the release ships them (rgb/<train|test>/<Pxx>/<Pxx_yy>/frame_0000000001.jpg ...), each clip a
frame range of its video. tools/prepare_epic_kitchens_dg.py builds the lists from STDN's list files (fetched
by URL, DATASETS docs) and the frames.

STDN's train/val lists split each kitchen clip by clip: every val video also has clips in train. The default
split here is group-aware by video instead; `--split stdn` saves STDN's (with the warning it deserves).
"""
import re

from framework import DATASET_REGISTRY

from .list_dataset import PreparedVideoDGDataset

# EPIC-Kitchens-55's verb classes 0-7 (EPIC_verb_classes.csv), the labels of STDN's and MM-SADA's lists.
CLASSES = ["take", "put", "open", "close", "wash", "cut", "mix", "pour"]
KITCHENS = {"D1": "P08", "D2": "P01", "D3": "P22"}  # domain -> participant (kitchen) id
FRAME_TMPL = "frame_{:010d}.jpg"
_VIDEO = re.compile(r"(P\d{2}_\d{2,3})(?:@\d+-\d+)?$")


def video_of(key: str) -> str:
    """The video of a clip key (rgb/train/P08/P08_01@243-349 -> P08_01): one recording session of the kitchen."""
    match = _VIDEO.search(key.rsplit("/", 1)[-1])
    return match.group(1) if match else key


@DATASET_REGISTRY.register()
class EPICKitchensDG(PreparedVideoDGDataset):
    dataset_dir = "epic_kitchens_dg"
    domains = list(KITCHENS)
    domain_aliases = {participant: domain for domain, participant in KITCHENS.items()}
    default_frame_tmpl = FRAME_TMPL
    grouping = "video (Pxx_yy: one recording session of the kitchen)"
    prepare_hint = ("Get EPIC-Kitchens-55's RGB frames of P01, P08 and P22 and run `python "
                    "tools/prepare_epic_kitchens_dg.py --root <DATASET.ROOT>` (it lists the files it needs; "
                    'docs/datasets.md, "EPIC-Kitchens-55 DG").')

    @staticmethod
    def group_of(domain: str, key: str) -> str:
        return video_of(key)

"""PKU-MMD (Section 5.5 of the paper): trimmed action clips of PKU-MMD phase 1, one domain per camera view.

The release holds untrimmed RGB videos `RGB_VIDEO/XXXX-V.avi` (V = L, M, R: left, middle, right view) and one
annotation file per video, `Train_Label_PKU_final/XXXX-V.txt`, with lines `label,start_frame,end_frame,confidence`
(label 1..51). tools/prepare_pku_mmd.py cuts one clip per annotation line (or lists frame ranges that are cut
on the fly) and writes left.txt, middle.txt and right.txt. The paper calls the middle view "Center".
"""
import re
from typing import Dict, List

from framework import DATASET_REGISTRY

from .list_dataset import PreparedVideoDGDataset

# Action names of phase 1 in label order 1..51 (Actions.xlsx of the release).
ACTIONS = [
    "bow", "brushing hair", "brushing teeth", "check time (from watch)", "cheer up", "clapping",
    "cross hands in front (say stop)", "drink water", "drop", "eat meal/snack", "falling",
    "giving something to other person", "hand waving", "handshaking", "hopping (one foot jumping)",
    "hugging other person", "jump up", "kicking other person", "kicking something",
    "make a phone call/answer phone", "pat on back of other person", "pickup", "playing with phone/tablet",
    "point finger at the other person", "pointing to something with finger", "punching/slapping other person",
    "pushing other person", "put on a hat/cap", "put something inside pocket", "reading", "rub two hands together",
    "salute", "sitting down", "standing up", "take off a hat/cap", "take off glasses", "take off jacket",
    "take out something from pocket", "taking a selfie", "tear up paper", "throw", "touch back (backache)",
    "touch chest (stomachache/heart pain)", "touch head (headache)", "touch neck (neckache)",
    "typing on a keyboard", "use a fan (with hand or paper)/feeling warm", "wear jacket", "wear on glasses",
    "wipe face", "writing",
]
# The 10 two-person interactions among them (PKU-MMD: "41 daily actions and 10 interaction actions"): the eight
# "other person" actions, handshaking included, and the two pocket actions, done on the partner's pocket.
INTERACTIONS = [12, 14, 16, 18, 21, 24, 26, 27, 29, 38]
# Category sets (PKU-MMD label ids, in label order). The paper's 41 categories are most likely the daily ones.
CATEGORY_SETS: Dict[str, List[int]] = {
    "daily": [i for i in range(1, len(ACTIONS) + 1) if i not in INTERACTIONS],
    "all": list(range(1, len(ACTIONS) + 1)),
}
VIEWS = {"L": "left", "M": "middle", "R": "right"}  # file-name suffix -> domain

# Phase 1 as released (PKU-MMD README): 1,076 untrimmed videos (three views of 364 sequences, a few missing),
# one annotation file each, 21,545 annotated action instances over all 51 classes and all views.
EXPECTED_VIDEOS = 1076
EXPECTED_ANNOTATIONS = 21545


def sequence(key: str) -> str:
    """Sequence of a PKU-MMD clip key (clips/left/0002-L_005 or RGB_VIDEO/0002-L@2-10 -> 0002).

    The file names carry no subject id; a sequence is one recording session of the same performers, in which
    they do many actions, so its clips are kept together. Other names are their own group.
    """
    match = re.match(r"(\d{4})-[LMR]", key.rsplit("/", 1)[-1])
    return match.group(1) if match else key


@DATASET_REGISTRY.register()
class PKUMMD(PreparedVideoDGDataset):
    dataset_dir = "pku_mmd"
    domains = list(VIEWS.values())
    domain_aliases = {"center": "middle"}
    grouping = "sequence (XXXX of the file name: one recording of the same performers)"
    prepare_hint = ("Download PKU-MMD phase 1 (RGB videos and labels) and run `python tools/prepare_pku_mmd.py "
                    '--root <DATASET.ROOT>` (docs/datasets.md, "PKU-MMD").')

    @staticmethod
    def group_of(domain: str, key: str) -> str:
        return sequence(key)

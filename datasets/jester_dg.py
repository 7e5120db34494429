"""Jester DG (the benchmark of STDN, Lin et al., NeurIPS 2023): 7 hand-gesture classes of 20BN-Jester v1, each
performed one way in the source domain and another way in the target domain (STDN's lists give the videos and
the 7 labels; tools/prepare_jester_dg.py names each label by the Jester classes of its videos, read from the
release's label files). The frames are read as the release ships them: 20bn-jester-v1/<id>/00001.jpg ...

The source train/val split is STDN's (saved by the preparation script): Jester names no actor, so each video
is its own group, as any split here would have it.
"""
from framework import DATASET_REGISTRY

from .list_dataset import PreparedVideoDGDataset

FRAME_TMPL = "{:05d}.jpg"


@DATASET_REGISTRY.register()
class JesterDG(PreparedVideoDGDataset):
    dataset_dir = "jester_dg"
    domains = ["source", "target"]
    single_sources = ["source"]  # STDN's one task: source -> target
    default_frame_tmpl = FRAME_TMPL
    grouping = "each video is its own group (the release names no actor)"
    prepare_hint = ("Download 20BN-Jester v1 (registration) and run `python tools/prepare_jester_dg.py --root "
                    '<DATASET.ROOT>` (docs/datasets.md, "Jester DG").')

"""Something-Something DG (Section 5.4 of the paper): 20 basic categories of Something-Something v2, each with a
"doing" sub-category (the real action) and a "pretending" one; the domains are the sub-categories.

The paper's category list is in a supplement we do not have. datasets/ssv2_pairs.json holds our
reconstruction from the v2 label templates: each "Pretending ..." template with its real counterpart, and the
number of videos each template has in the v2 release. Prepare it with tools/prepare_ssv2.py (docs/datasets.md).
"""
import json
import os.path as osp
from typing import Dict, List

from framework import DATASET_REGISTRY

from .list_dataset import PreparedVideoDGDataset

PAIRS_FILE = osp.join(osp.dirname(osp.abspath(__file__)), "ssv2_pairs.json")
DOMAINS = ["doing", "pretending"]  # the keys of each category in PAIRS_FILE


def load_pairs(path: str = PAIRS_FILE) -> Dict:
    """The pairing file: `categories` (in label order: name, the template of each domain and its video count)."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def category_names(pairs: Dict) -> List[str]:
    return [category["name"] for category in pairs["categories"]]


@DATASET_REGISTRY.register()
class SSv2DG(PreparedVideoDGDataset):
    dataset_dir = "ssv2_dg"
    domains = list(DOMAINS)
    domain_aliases = {"real": "doing", "pretend": "pretending"}
    grouping = "each video is its own group (the release names no recording or performer)"
    prepare_hint = ("Download Something-Something v2 and run `python tools/prepare_ssv2.py --root <DATASET.ROOT>` "
                    '(docs/datasets.md, "Something-Something").')

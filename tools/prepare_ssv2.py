"""Prepare Something-Something DG from the v2 release: select the 20 paired categories, write doing.txt and
pretending.txt.

    python tools/prepare_ssv2.py --root data [--videos PATH] [--labels PATH] [--splits train validation test]

Expects data/ssv2_dg/20bn-something-something-v2/<id>.webm and data/ssv2_dg/labels/{labels,train,validation}.json
plus test-answers.csv (docs/datasets.md). The pairing is datasets/ssv2_pairs.json. With all three splits the
per-template counts are checked against the release's; in any case every labelled video must be present.
"""
import argparse
import csv
import json
import os
import os.path as osp
import sys
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from anywhere: import the project

from datasets import something_something as ssv2  # noqa: E402
from datasets.release_check import (ReleaseError, check_counts, count_mismatches, head,  # noqa: E402
                                    link_release, require_dir, run_main, with_frame_counts, write_prepared)

SCRIPT = "tools/prepare_ssv2.py"
VIDEO_DIR, LABEL_DIR = "20bn-something-something-v2", "labels"
SPLITS = ("train", "validation", "test")
DOWNLOAD = ("Download Something-Something v2 from https://www.qualcomm.com/developer/software/something-something-"
            "v-2-dataset (20 video parts and the labels zip), then in {dir}:\n"
            "  cat 20bn-something-something-v2-?? | tar -xzf -      # -> 20bn-something-something-v2/<id>.webm\n"
            "  unzip 20bn-something-something-download-package-labels.zip   # -> labels/")


def find_label_file(label_dir: str, name: str) -> Optional[str]:
    """labels/<name>.json, or the older release name something-something-v2-<name>.json."""
    for filename in (f"{name}.json", f"something-something-v2-{name}.json"):
        if osp.isfile(osp.join(label_dir, filename)):
            return osp.join(label_dir, filename)
    return None


def template_of(entry: Dict) -> str:
    """The class of a train/validation entry: its template without the [ ] around placeholders."""
    return entry["template"].replace("[", "").replace("]", "")


def read_split(label_dir: str, split: str) -> List[Tuple[str, str]]:
    """(video id, template) of every labelled video of one split."""
    if split == "test":  # the test labels come as a separate answer file: `id;template`
        path = osp.join(label_dir, "test-answers.csv")
        if not osp.isfile(path):
            raise ReleaseError(f'Test labels not found: "{path}". It is part of the v2 labels download; or pass '
                               "--splits train validation to leave the test videos out (the per-template counts "
                               "are then not checked against the release's).")
        with open(path, encoding="utf-8", newline="") as f:
            return [(row[0], row[1]) for row in csv.reader(f, delimiter=";") if row]
    path = find_label_file(label_dir, split)
    if path is None:
        raise ReleaseError(f'"{osp.join(label_dir, split + ".json")}" not found.\n' + DOWNLOAD.format(
            dir=osp.dirname(label_dir)))
    with open(path, encoding="utf-8") as f:
        return [(entry["id"], template_of(entry)) for entry in json.load(f)]


def check_templates(label_dir: str, pairs: Dict) -> None:
    """Every template of the pairing must be a class of this release (catches a different label version)."""
    path = find_label_file(label_dir, "labels")
    if path is None:
        raise ReleaseError(f'"{osp.join(label_dir, "labels.json")}" not found.\n' + DOWNLOAD.format(
            dir=osp.dirname(label_dir)))
    with open(path, encoding="utf-8") as f:
        known = set(json.load(f))
    unknown = [c[d] for c in pairs["categories"] for d in ssv2.DOMAINS if c[d] not in known]
    if unknown:
        raise ReleaseError(f"{len(unknown)} templates of {ssv2.PAIRS_FILE} are not classes of {path}:\n  " +
                           "\n  ".join(head(unknown)) + "\nThe pairing is written for the v2 labels.")


def select(labelled: List[Tuple[str, str]], pairs: Dict) -> Dict[str, List[Tuple[str, int]]]:
    """domain -> [(video id, category label)] of the videos whose template is one of the pairing."""
    lookup = {c[d]: (d, label) for label, c in enumerate(pairs["categories"]) for d in ssv2.DOMAINS}
    chosen = {d: [] for d in ssv2.DOMAINS}
    for video_id, template in labelled:
        if template in lookup:
            domain, label = lookup[template]
            chosen[domain].append((video_id, label))
    return chosen


def group_name(pairs: Dict, domain: str, label: int) -> str:
    return f"{domain}/{pairs['categories'][label]['name']}"


def check_label_counts(chosen: Dict[str, List[Tuple[str, int]]], pairs: Dict, allow_mismatch: bool) -> None:
    found = Counter(group_name(pairs, d, label) for d, items in chosen.items() for _, label in items)
    expected = {group_name(pairs, d, label): c[f"{d}_videos"]
                for label, c in enumerate(pairs["categories"]) for d in ssv2.DOMAINS}
    check_counts(count_mismatches(found, expected, unit="labelled videos"),
                 "The label files give other per-template counts than the v2 release "
                 f"({sum(found.values())} of {sum(expected.values())} videos in all).",
                 "Fix: use the complete v2 labels (train.json, validation.json and test-answers.csv).",
                 allow_mismatch)


def video_files(video_dir: str) -> Dict[str, str]:
    """video id -> file name, for every file in the video folder."""
    return {osp.splitext(name)[0]: name for name in os.listdir(video_dir)}


def check_present(chosen: Dict[str, List[Tuple[str, int]]], files: Dict[str, str], pairs: Dict,
                  video_dir: str, allow_mismatch: bool) -> None:
    """Every selected labelled video must have its file; report the missing ones per domain and category."""
    wanted = Counter(group_name(pairs, d, label) for d, items in chosen.items() for _, label in items)
    present = Counter(group_name(pairs, d, label) for d, items in chosen.items() for vid, label in items
                      if vid in files)
    n_missing = sum(wanted.values()) - sum(present.values())
    check_counts(count_mismatches(present, wanted), f"{n_missing} of the {sum(wanted.values())} labelled videos "
                 f"are missing from {video_dir}.", "Fix: extract all 20 video parts again:\n" +
                 DOWNLOAD.format(dir=osp.dirname(video_dir)), allow_mismatch)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, help="DATASET.ROOT; files go to ROOT/ssv2_dg/")
    parser.add_argument("--videos", help=f"the extracted {VIDEO_DIR}/ folder, if elsewhere (linked in)")
    parser.add_argument("--labels", help=f"the extracted {LABEL_DIR}/ folder, if elsewhere (linked in)")
    parser.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS),
                        help="labelled splits of the release that make up the benchmark (default: all three)")
    parser.add_argument("--count-frames", action="store_true", help="count every video's frames with decord")
    parser.add_argument("--allow-mismatch", action="store_true", help="prepare even if counts differ")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    dataset_dir = osp.join(osp.abspath(osp.expanduser(args.root)), ssv2.SSv2DG.dataset_dir)
    video_dir = link_release(dataset_dir, VIDEO_DIR, args.videos)
    label_dir = link_release(dataset_dir, LABEL_DIR, args.labels)
    for path, what in ((label_dir, "Something-Something v2 labels"), (video_dir, "Something-Something v2 videos")):
        require_dir(path, what, DOWNLOAD.format(dir=dataset_dir))
    pairs = ssv2.load_pairs()
    check_templates(label_dir, pairs)
    chosen = select([item for split in args.splits for item in read_split(label_dir, split)], pairs)
    if sorted(args.splits) == sorted(SPLITS):
        check_label_counts(chosen, pairs, args.allow_mismatch)
    files = video_files(video_dir)
    check_present(chosen, files, pairs, video_dir, args.allow_mismatch)
    lists = {d: [(f"{VIDEO_DIR}/{files[vid]}", 0, label) for vid, label in items if vid in files]
             for d, items in chosen.items()}
    if args.count_frames:
        lists = with_frame_counts(dataset_dir, lists)
    names = ssv2.category_names(pairs)
    info = {"benchmark": "Something-Something DG (reconstructed pairing)", "pairs_file": ssv2.PAIRS_FILE,
            "splits": args.splits, "paper_totals": pairs["paper_totals"]}
    write_prepared(dataset_dir, SCRIPT, names, lists, info, ssv2.SSv2DG)
    print(f"Videos: doing {len(lists['doing'])}, pretending {len(lists['pretending'])} (the paper reports "
          f"{pairs['paper_totals']['doing']} and {pairs['paper_totals']['pretending']}; our pairing is a "
          "reconstruction, see docs/datasets.md)")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))

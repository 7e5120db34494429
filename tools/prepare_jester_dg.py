"""Prepare Jester DG (STDN's benchmark) from the 20BN-Jester v1 release and STDN's list files.

    python tools/prepare_jester_dg.py --root data [--jester PATH] [--stdn-lists DIR]

Expects data/jester_dg/20bn-jester-v1/<id>/00001.jpg ... (the extracted release) and the release's label files
jester-v1-labels.csv, jester-v1-train.csv and jester-v1-validation.csv (`id;label`) in data/jester_dg/ or in
--jester, a folder holding both (linked in). STDN's lists are fetched from GitHub at a pinned commit and checked
(tools/stdn_lists.py), or copied from a clone (--stdn-lists). Writes source.txt (STDN's source train and val
lists) and target.txt, `20bn-jester-v1/<id> <frames> <label>`, and saves STDN's source train/val split.

STDN's lists give 7 labels without names; each is named here by the Jester classes of its videos, in the source
and in the target domain ("<source class> / <target class>"), as the release's label files say.
"""
import argparse
import csv
import os
import os.path as osp
import sys
from collections import Counter, defaultdict
from typing import Dict, List, Optional, Sequence

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from anywhere: import the project

from datasets import jester_dg  # noqa: E402
from datasets.base import split_file_path, write_split_file  # noqa: E402
from datasets.list_dataset import clip_key  # noqa: E402
from datasets.release_check import (ListRow, ReleaseError, head, link_release, require_dir,  # noqa: E402
                                    require_writable, rows_provenance, run_main, write_prepared)
from tools import stdn_lists  # noqa: E402

SCRIPT = "tools/prepare_jester_dg.py"
VIDEO_DIR = "20bn-jester-v1"
LABEL_FILES = ("jester-v1-train.csv", "jester-v1-validation.csv")
PARTS = {"source_train": "source", "source_val": "source", "target_full": "target"}
DOWNLOAD = ("Jester is given out after registration at https://www.qualcomm.com/developer/software/jester-dataset\n"
            "Download the video parts and the label files into {dir}/, then:\n"
            "  cd {dir} && cat 20bn-jester-v1-?? | tar -xzf -   # -> 20bn-jester-v1/<id>/00001.jpg ...")


def find_label_file(name: str, folders: Sequence[str]) -> Optional[str]:
    return next((osp.join(f, name) for f in folders if f and osp.isfile(osp.join(f, name))), None)


def jester_labels(folders: Sequence[str], dataset_dir: str) -> Dict[str, str]:
    """Video id -> Jester class name, from the release's train and validation label files."""
    labels, absent = {}, []
    for name in LABEL_FILES:
        path = find_label_file(name, folders)
        if path is None:
            absent.append(name)
            continue
        with open(path, encoding="utf-8", newline="") as f:
            for row in csv.reader(f, delimiter=";"):
                if len(row) == 2:
                    labels[row[0].strip()] = row[1].strip()
    if absent:
        raise ReleaseError(f"Jester's label files {absent} were not found in {dataset_dir}/ (or --jester). They come "
                           "with the release and name the classes of STDN's labels; put them there and run again.\n"
                           + DOWNLOAD.format(dir=dataset_dir))
    return labels


def class_names(segments: Dict[str, List[stdn_lists.Segment]], labels: Dict[str, str]) -> List[str]:
    """'<source class> / <target class>' for each STDN label (classes joined by ' + ' if several)."""
    found = defaultdict(Counter)  # (label, domain) -> Jester classes of its videos
    unknown = [s.path for segs in segments.values() for s in segs if s.path not in labels]
    if unknown:
        raise ReleaseError(f"{len(unknown)} videos of STDN's Jester lists are not in Jester's label files (e.g. "
                           f"{unknown[0]}); use the label files of 20BN-Jester v1.")
    for part, segs in segments.items():
        for s in segs:
            found[s.label, PARTS[part]][labels[s.path]] += 1
    n = 1 + max(label for label, _ in found)
    names = []
    for label in range(n):
        sides = [" + ".join(name for name, _ in found[label, domain].most_common()) or "-"
                 for domain in ("source", "target")]
        names.append(" / ".join(sides))
        print(f"  label {label}: {names[-1]}  ({sum(found[label, 'source'].values())} source, "
              f"{sum(found[label, 'target'].values())} target videos)")
    return names


def frame_rows(segments: Sequence[stdn_lists.Segment], video_dir: str) -> List[ListRow]:
    """List rows of STDN's Jester lines (`id 0 N label`: the first N frames); videos with fewer are refused."""
    rows, short = [], []
    for s in segments:
        folder = osp.join(video_dir, s.path)
        have = len([n for n in os.listdir(folder) if n.endswith(".jpg")]) if osp.isdir(folder) else 0
        if s.start != 0 or have < s.end:
            short.append(f"{s.path}: {have} frames, the list reads frames {s.start + 1}..{s.end}")
            continue
        rows.append((f"{VIDEO_DIR}/{s.path}", s.end, s.label))
    if short:
        raise ReleaseError(f"{len(short)} Jester videos are missing or shorter than STDN's lists say:\n  " +
                           "\n  ".join(head(short)) + f"\nExtract the release again into {video_dir}/.")
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, help="DATASET.ROOT; files go to ROOT/jester_dg/")
    parser.add_argument("--jester", help=f"folder with {VIDEO_DIR}/ and the label files, if elsewhere (linked in)")
    parser.add_argument("--stdn-lists", metavar="DIR", help="a clone of github.com/KunyuLin/STDN (or its "
                        "datalists/); default: fetch the lists from GitHub at the pinned commit")
    parser.add_argument("--stdn-url", help="fetch the lists from this prefix (a mirror of STDN's datalists/)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    dataset_dir = osp.join(osp.abspath(osp.expanduser(args.root)), jester_dg.JesterDG.dataset_dir)
    require_writable(dataset_dir)
    source = osp.join(args.jester, VIDEO_DIR) if args.jester else None
    video_dir = link_release(dataset_dir, VIDEO_DIR, source)
    require_dir(video_dir, "Jester frames", DOWNLOAD.format(dir=dataset_dir))
    segments = {part: stdn_lists.read_segments(stdn_lists.stdn_list(
        stdn_lists.JESTER.format(part=part), dataset_dir, args.stdn_lists, args.stdn_url)) for part in PARTS}
    names = class_names(segments, jester_labels([dataset_dir, args.jester], dataset_dir))
    rows = {part: frame_rows(segs, video_dir) for part, segs in segments.items()}
    lists = {"source": rows["source_train"] + rows["source_val"], "target": rows["target_full"]}
    info = {"benchmark": "Jester DG", "lists": stdn_lists.SOURCE, "classes from": list(LABEL_FILES)}
    write_prepared(dataset_dir, SCRIPT, names, lists, info, jester_dg.JesterDG, default_splits=False)
    path = split_file_path(dataset_dir, "source", 0.3, 1)  # STDN's val share: 7,980 of 26,579 videos (0.30)
    val = sorted(clip_key(p) for p, _, _ in rows["source_val"])
    write_split_file(path, "source", 0.3, 1, val, grouping=jester_dg.JesterDG.grouping,
                     made_from=rows_provenance("source", lists["source"]),
                     source=f"{stdn_lists.SOURCE}: {len(val)} of {len(lists['source'])} videos in val")
    print(f"  split {osp.relpath(path, dataset_dir)}: STDN's source train/val split ({len(val)} of "
          f"{len(lists['source'])} videos in val; each video is its own group)")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))

"""Prepare EPIC-Kitchens-55 DG (STDN's benchmark) from EPIC-Kitchens-55's RGB frames and STDN's list files.

    python tools/prepare_epic_kitchens_dg.py --root data [--frames PATH] [--stdn-lists DIR] [--split grouped|stdn]

Expects the RGB frames of the 64 videos of P01, P08 and P22 that STDN's lists use, as EPIC-Kitchens-55 ships
them: data/epic_kitchens_dg/rgb/<train|test>/<Pxx>/<Pxx_yy>.tar (one tar per video; this script extracts each
into <Pxx_yy>/frame_0000000001.jpg ...) or the extracted folders. --frames links a frames_rgb_flow/rgb/ folder
kept elsewhere. STDN's lists are fetched from GitHub at a pinned commit and checked (tools/stdn_lists.py), or
copied from a clone (--stdn-lists). Writes D1.txt, D2.txt, D3.txt: one line per action segment,
`rgb/<split>/<Pxx>/<Pxx_yy>@<start>-<stop> 0 <verb class>`, a frame range of the video's folder.

The segments' start and stop are EPIC's frame numbers (frame files count from 1; a start of 0 reads frame 1);
the range keeps both ends. The default source split is group-aware by video; --split stdn saves STDN's own
train/val split instead, which puts clips of every val video in train too.
"""
import argparse
import os
import os.path as osp
import sys
import tarfile
from collections import Counter, defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from anywhere: import the project

from datasets import epic_kitchens_dg as epic  # noqa: E402
from datasets.base import read_split_file, shared_groups, split_file_path, write_split_file  # noqa: E402
from datasets.list_dataset import clip_key, split_range  # noqa: E402
from datasets.release_check import (ListRow, ReleaseError, head, link_release, require_writable,  # noqa: E402
                                    rows_provenance, run_main, write_prepared)
from tools import stdn_lists  # noqa: E402

SCRIPT = "tools/prepare_epic_kitchens_dg.py"
FRAMES_DIR = "rgb"
BASE_URL = "https://data.bris.ac.uk/datasets/3h91syskeag572hl6tvuovwv4d/frames_rgb_flow/rgb"


def frames_folder(root_dir: str, video: str) -> str:
    return osp.join(root_dir, FRAMES_DIR, video)


def find_frames(dataset_dir: str, videos: Sequence[str]) -> Tuple[Dict[str, int], List[str]]:
    """Frame count of each video folder (extracting its tar first), and the videos found in neither form."""
    counts, missing = {}, []
    for video in videos:
        folder = frames_folder(dataset_dir, video)
        archive = folder + ".tar"
        if not osp.isdir(folder) and osp.isfile(archive):
            print(f"Extracting {osp.relpath(archive, dataset_dir)}")
            os.makedirs(folder + ".part", exist_ok=True)
            with tarfile.open(archive) as t:
                t.extractall(folder + ".part", filter="data")  # refuses absolute paths and ..
            os.replace(folder + ".part", folder)  # an interrupted extraction leaves .part, never a half folder
        if not osp.isdir(folder):
            missing.append(video)
            continue
        counts[video] = sum(1 for name in os.listdir(folder) if name.startswith("frame_") and name.endswith(".jpg"))
    return counts, missing


def missing_report(dataset_dir: str, missing: Sequence[str], total: int) -> str:
    lines = [f"{BASE_URL}/{video}.tar" for video in missing]
    target = osp.join(dataset_dir, FRAMES_DIR)
    return (f"{len(missing)} of the {total} EPIC-Kitchens-55 videos of STDN's lists have no frames in {target}/ "
            "(neither <video>/ nor <video>.tar):\n  " + "\n  ".join(head(lines)) +
            f"\nFetch each tar into the matching folder, e.g.\n  wget -c -P {target}/{osp.dirname(missing[0])} "
            f"{lines[0]}\nor pass --frames with a frames_rgb_flow/rgb/ folder that holds them; then run this again.")


def segment_rows(segments: Sequence[stdn_lists.Segment], counts: Dict[str, int], list_file: str) -> List[ListRow]:
    """List rows (frame ranges) of STDN segments; segments past their video's last frame are refused."""
    rows, beyond = [], []
    for s in segments:
        start = max(s.start, 1) - 1  # frame number -> index into the folder (frame_0000000001.jpg is index 0)
        if s.end > counts[s.path] or s.end <= start or not 0 <= s.label < len(epic.CLASSES):
            beyond.append(f"line {s.line}: {s.path} {s.start}-{s.end} label {s.label} (the folder has "
                          f"{counts[s.path]} frames)")
            continue
        rows.append((f"{FRAMES_DIR}/{s.path}@{start}-{s.end}", 0, s.label))
    if beyond:
        raise ReleaseError(f"{len(beyond)} segments of {list_file} do not fit their video:\n  " +
                           "\n  ".join(head(beyond)) + "\nExtract the video's tar again (an interrupted extraction "
                           "leaves fewer frames), or check that the lists are STDN's.")
    return rows


def unique(rows: List[ListRow], domain: str) -> List[ListRow]:
    """STDN's D3 lists hold one segment twice; a clip is listed once (duplicates would be counted twice)."""
    seen, kept = set(), []
    for row in rows:
        if row[0] not in seen:
            seen.add(row[0])
            kept.append(row)
    if len(kept) < len(rows):
        print(f"NOTE: {domain}: STDN's list names {len(rows) - len(kept)} segment(s) twice; each is listed once here")
    return kept


def stdn_split(domain: str, train: List[ListRow], val: List[ListRow], rows: List[ListRow]) -> List[str]:
    """The val keys of STDN's train/val lists, after checking that they part the full list."""
    if {r[0] for r in train + val} != {r[0] for r in rows} or {r[0] for r in train} & {r[0] for r in val}:
        raise ReleaseError(f"STDN's {domain} train and val lists do not part its full list; use the lists of "
                           f"{stdn_lists.SOURCE}.")
    return sorted({clip_key(*split_range(path)) for path, _, _ in val})


def save_stdn_split(dataset_dir: str, domain: str, val_keys: List[str], rows: List[ListRow]) -> None:
    path = split_file_path(dataset_dir, domain, 0.3, 1)  # STDN's val share is 0.30 in every kitchen
    keys = [clip_key(*split_range(p)) for p, _, _ in rows]
    n_groups, n_clips = shared_groups(keys, val_keys, epic.video_of)
    write_split_file(path, domain, 0.3, 1, val_keys, grouping="none", made_from=rows_provenance(domain, rows),
                     source=f"{stdn_lists.SOURCE}: {len(val_keys)} of {len(rows)} clips in val")
    print(f"  split {osp.relpath(path, dataset_dir)}: STDN's train/val split ({len(val_keys)} of {len(rows)} clips "
          f"in val); NOT group-aware: {n_clips} val clips come from {n_groups} videos that also have clips in train")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, help="DATASET.ROOT; files go to ROOT/epic_kitchens_dg/")
    parser.add_argument("--frames", help="EPIC-Kitchens-55's frames_rgb_flow/rgb/ folder, if elsewhere (linked in)")
    parser.add_argument("--stdn-lists", metavar="DIR", help="a clone of github.com/KunyuLin/STDN (or its "
                        "datalists/); default: fetch the lists from GitHub at the pinned commit")
    parser.add_argument("--stdn-url", help="fetch the lists from this prefix (a mirror of STDN's datalists/)")
    parser.add_argument("--split", choices=("grouped", "stdn"), default="grouped",
                        help="source train/val split saved for VAL_RATIO 0.3, SPLIT_SEED 1: grouped by video "
                             "(default) or STDN's lists (not group-aware)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    dataset_dir = osp.join(osp.abspath(osp.expanduser(args.root)), epic.EPICKitchensDG.dataset_dir)
    require_writable(dataset_dir)
    link_release(dataset_dir, FRAMES_DIR, args.frames)
    segments = {(domain, part): stdn_lists.read_segments(stdn_lists.stdn_list(
        stdn_lists.EPIC.format(domain=domain, part=part), dataset_dir, args.stdn_lists, args.stdn_url))
        for domain in epic.KITCHENS for part in ("train", "val", "full")}
    videos = sorted({s.path for (_, part), segs in segments.items() if part == "full" for s in segs})
    counts, missing = find_frames(dataset_dir, videos)
    if missing:
        raise ReleaseError(missing_report(dataset_dir, missing, len(videos)))
    lists, parts = {}, defaultdict(dict)
    for (domain, part), segs in segments.items():
        name = stdn_lists.EPIC.format(domain=domain, part=part)
        parts[domain][part] = segment_rows(segs, counts, name)
    for domain in epic.KITCHENS:
        lists[domain] = unique(parts[domain]["full"], domain)
        per_video = Counter(epic.video_of(p) for p, _, _ in lists[domain])
        print(f"{domain} ({epic.KITCHENS[domain]}): {len(lists[domain])} clips from {len(per_video)} videos")
    default_splits = {d: split_file_path(dataset_dir, d, 0.3, 1) for d in epic.KITCHENS}
    for path in default_splits.values():  # an STDN split of an earlier run gives way to the split asked for now
        if osp.isfile(path) and read_split_file(path).get("source"):
            os.remove(path)
    info = {"benchmark": "EPIC-Kitchens-55 DG", "lists": stdn_lists.SOURCE, "split": args.split,
            "frames": {d: sum(counts[v] for v in videos if epic.KITCHENS[d] in v) for d in epic.KITCHENS}}
    write_prepared(dataset_dir, SCRIPT, epic.CLASSES, lists, info, epic.EPICKitchensDG,
                   default_splits=args.split == "grouped")
    if args.split == "stdn":
        for domain in epic.KITCHENS:
            val_keys = stdn_split(domain, parts[domain]["train"], parts[domain]["val"], lists[domain])
            save_stdn_split(dataset_dir, domain, val_keys, lists[domain])
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))

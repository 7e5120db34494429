"""Prepare UCF-HMDB from the UCF101 and HMDB51 releases: check the 27 class folders, write ucf.txt and hmdb.txt.

    python tools/prepare_ucf_hmdb.py --root data [--ucf101 PATH] [--hmdb51 PATH] [--official-lists DIR]

Expects data/ucf_hmdb/UCF-101/<Class>/*.avi and data/ucf_hmdb/hmdb51/<class>/*.avi (DATASETS.md); --ucf101 and
--hmdb51 point at copies extracted elsewhere (they are linked in). A clip may also be a frame folder. With
--official-lists, the train/val membership of the official APN list files becomes the saved source split.
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from anywhere: import the project

from datasets import ucf_hmdb  # noqa: E402
from datasets.base import split_file_path, write_split_file  # noqa: E402
from datasets.list_dataset import VIDEO_EXTENSIONS, clip_key, strip_video_extension  # noqa: E402
from datasets.release_check import (ListRow, ReleaseError, check_counts, count_mismatches, head,  # noqa: E402
                                    link_release, require_dir, run_main, with_frame_counts, write_prepared)
from video.listfile import parse_list_file  # noqa: E402

SCRIPT = "tools/prepare_ucf_hmdb.py"
DOWNLOAD = {
    "ucf": ("UCF101", "wget --no-check-certificate https://www.crcv.ucf.edu/data/UCF101/UCF101.rar && "
                      "mkdir -p {dir} && unrar x UCF101.rar {dir}/"),
    "hmdb": ("HMDB51", "wget http://serre-lab.clps.brown.edu/wp-content/uploads/2013/10/hmdb51_org.rar && "
                       "mkdir -p {dir}/hmdb51 && unrar x hmdb51_org.rar {dir}/hmdb51/ && "
                       "for f in {dir}/hmdb51/*.rar; do unrar x -o+ \"$f\" {dir}/hmdb51/; done"),
}
OFFICIAL_LISTS = {"ucf": ("ucf_train.txt", "ucf_val.txt"), "hmdb": ("hmdb_train.txt", "hmdb_val.txt")}


def scan_class_folder(folder: str) -> List[str]:
    """Names of the clips in a class folder: video files, or frame folders (directories)."""
    if not osp.isdir(folder):
        return []
    return sorted(name for name in os.listdir(folder)
                  if osp.isdir(osp.join(folder, name)) or osp.splitext(name)[1].lower() in VIDEO_EXTENSIONS)


def scan_domain(dataset_dir: str, domain: str) -> Tuple[List[ListRow], Dict[str, int]]:
    """List rows of one domain and the clip count of each of its class folders."""
    release, folders, _ = ucf_hmdb.RELEASES[domain]
    rows, found = [], {}
    for folder, label in sorted(folders.items()):
        names = scan_class_folder(osp.join(dataset_dir, release, folder))
        found[folder] = len(names)
        rows += [(f"{release}/{folder}/{name}", 0, label) for name in names]
    return rows, found


def check_domain(dataset_dir: str, domain: str, found: Dict[str, int], allow_mismatch: bool) -> None:
    release, _, expected = ucf_hmdb.RELEASES[domain]
    name, command = DOWNLOAD[domain]
    problems = [f"{release}/{line}" for line in count_mismatches(found, expected)]
    total, want = sum(found.values()), sum(expected.values())
    check_counts(problems, f"{name} ({domain}): {total} of the {want} expected videos found in "
                           f"{osp.join(dataset_dir, release)}.",
                 f"Fix: download and extract {name} again:\n  {command.format(dir=dataset_dir)}", allow_mismatch)


# ---------------------------------------------------------------------------------------------- official lists
def official_entries(path: str) -> List[Tuple[Tuple[str, str], int]]:
    """((class folder, clip name without extension), label) of each line of an official APN list file."""
    return [((osp.basename(osp.dirname(e.path)), strip_video_extension(osp.basename(e.path))), e.label)
            for e in parse_list_file(path)]


def official_split(list_dir: str, domain: str, rows: List[ListRow]) -> Optional[List[str]]:
    """Keys of the validation clips of the official lists, after checking that they match the release."""
    files = [osp.join(list_dir, name) for name in OFFICIAL_LISTS[domain]]
    if not all(osp.isfile(f) for f in files):
        print(f"No official lists for {domain} in {list_dir} (need {OFFICIAL_LISTS[domain]}): its split will be "
              "made by the first training run.")
        return None
    ours = {(path.split("/")[1], strip_video_extension(path.split("/")[2])): (clip_key(path), label)
            for path, _, label in rows}
    train, val = (official_entries(f) for f in files)
    unknown = [f"{folder}/{name}" for (folder, name), _ in train + val if (folder, name) not in ours]
    wrong = [f"{folder}/{name}: label {label} in the list, {ours[(folder, name)][1]} here"
             for (folder, name), label in train + val if (folder, name) in ours and ours[(folder, name)][1] != label]
    listed = {clip for clip, _ in train + val}
    unlisted = [f"{folder}/{name}" for folder, name in sorted(set(ours) - listed)]
    problems = ([f"in the lists, not in the release: {line}" for line in head(unknown)] +
                [f"label differs: {line}" for line in head(wrong)] +
                [f"in the release, in neither list: {line}" for line in head(unlisted)])
    if problems:
        raise ReleaseError(f"The official {domain} lists do not match the prepared videos "
                           f"({len(unknown)} unknown, {len(wrong)} relabelled, {len(unlisted)} unlisted):\n  " +
                           "\n  ".join(problems) + "\nThe official HMDB lists name renamed frame folders "
                           "(video_NNNN) and only match that copy of the data; drop --official-lists to use the "
                           "saved 70/30 split instead.")
    return sorted(ours[clip][0] for clip, _ in val)


def write_split(dataset_dir: str, domain: str, val_keys: List[str], n: int, ratio: Optional[float],
                seed: int, list_dir: str) -> None:
    """Save the split in the format of datasets/base.py, under the name a run with these settings reads."""
    ratio = round(len(val_keys) / n, 2) if ratio is None else ratio
    path = split_file_path(dataset_dir, domain, ratio, seed)
    if osp.isfile(path):
        with open(path) as f:
            if sorted(json.load(f)["val"]) != sorted(val_keys):
                raise ReleaseError(f'"{path}" exists and holds another split; delete it to replace it.')
    write_split_file(path, domain, ratio, seed, val_keys,
                     source=f"official APN lists in {osp.abspath(list_dir)} ({len(val_keys)} of {n} videos in val)")
    print(f"Official {domain} split: {len(val_keys)} of {n} videos in val -> {path}\n"
          f"  train on it with: DATASET.VAL_RATIO {ratio:g} DATASET.SPLIT_SEED {seed}")


# ---------------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, help="DATASET.ROOT; files go to ROOT/ucf_hmdb/")
    parser.add_argument("--ucf101", help="extracted UCF-101/ folder, if not ROOT/ucf_hmdb/UCF-101 (linked in)")
    parser.add_argument("--hmdb51", help="folder of the 51 HMDB51 class folders, if not ROOT/ucf_hmdb/hmdb51")
    parser.add_argument("--official-lists", metavar="DIR",
                        help="folder with the official APN lists (ucf_train.txt, ucf_val.txt, hmdb_train.txt, "
                             "hmdb_val.txt): save their train/val membership as the source split")
    parser.add_argument("--split-ratio", type=float,
                        help="VAL_RATIO under which the official split is saved (default: its val fraction, 0.2)")
    parser.add_argument("--split-seed", type=int, default=1, help="SPLIT_SEED under which it is saved")
    parser.add_argument("--count-frames", action="store_true",
                        help="count every video's frames with decord (also finds unreadable files)")
    parser.add_argument("--allow-mismatch", action="store_true", help="prepare even if counts differ")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    dataset_dir = osp.join(osp.abspath(osp.expanduser(args.root)), ucf_hmdb.UCFHMDB.dataset_dir)
    lists = {}
    for domain, source in (("ucf", args.ucf101), ("hmdb", args.hmdb51)):
        release = ucf_hmdb.RELEASES[domain][0]
        link_release(dataset_dir, release, source)
        name, command = DOWNLOAD[domain]
        require_dir(osp.join(dataset_dir, release), f"{name} ({domain} domain)",
                    f"Fix: download and extract it there:\n  {command.format(dir=dataset_dir)}\n"
                    f"or pass --{name.lower()} <folder where it is extracted>.")
        rows, found = scan_domain(dataset_dir, domain)
        check_domain(dataset_dir, domain, found, args.allow_mismatch)
        lists[domain] = rows
        print(f"{domain}: {len(rows)} videos in {len(found)} class folders")
    if args.count_frames:
        lists = with_frame_counts(dataset_dir, lists)
    write_prepared(dataset_dir, SCRIPT, ucf_hmdb.CLASSES, lists, {"benchmark": "UCF-HMDB"})
    if args.official_lists:
        for domain, rows in lists.items():
            val_keys = official_split(args.official_lists, domain, rows)
            if val_keys is not None:
                write_split(dataset_dir, domain, val_keys, len(rows), args.split_ratio, args.split_seed,
                            args.official_lists)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))

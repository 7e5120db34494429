"""Prepare UCF-HMDB from the UCF101 and HMDB51 releases: check the 27 class folders, write ucf.txt and hmdb.txt.

    python tools/prepare_ucf_hmdb.py --root data [--ucf101 PATH] [--hmdb51 PATH] [--official-lists DIR] [--subset N]

Expects data/ucf_hmdb/UCF-101/<Class>/*.avi and data/ucf_hmdb/hmdb51/<class>/*.avi (docs/datasets.md); --ucf101 and
--hmdb51 point at copies extracted elsewhere (they are linked in). A clip may also be a frame folder. With
--official-lists, the train/val membership of the official APN list files becomes the saved source split.
Both releases are checked before anything is reported, so one run lists every missing class folder; the folder
names the archives unpack to (hmdb51_org, UCF101/UCF-101, ...) are recognised and linked.
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from anywhere: import the project

from datasets import ucf_hmdb  # noqa: E402
from datasets.base import shared_groups, split_file_path, write_split_file  # noqa: E402
from datasets.list_dataset import VIDEO_EXTENSIONS, clip_key, strip_video_extension  # noqa: E402
from datasets.release_check import (ListRow, ReleaseError, count_mismatches, head, link_release,  # noqa: E402
                                    rows_provenance, run_main, with_frame_counts, write_prepared)
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


def domain_report(dataset_dir: str, domain: str, found: Dict[str, int], expected: Dict[str, int]) -> Optional[str]:
    """A report of every class folder whose count differs (all of them, not the first few), or None."""
    release = ucf_hmdb.RELEASES[domain][0]
    name, command = DOWNLOAD[domain]
    problems = [f"{release}/{line}" for line in count_mismatches(found, expected)]
    if not problems:
        return None
    total, want = sum(found.values()), sum(expected.values())
    return (f"{name} ({domain}): {total} of the {want} expected videos found in {osp.join(dataset_dir, release)}.\n"
            + "\n".join(f"  {line}" for line in problems) +
            f"\nFix: download and extract {name} again:\n  {command.format(dir=dataset_dir)}")


# Folder names the archives unpack to, or that other copies use, tried when the canonical folder is absent.
ALTERNATIVE_FOLDERS = {"ucf": ("UCF101/UCF-101", "UCF101", "ucf101", "UCF-101/UCF-101"),
                       "hmdb": ("hmdb51_org", "hmdb51_org/hmdb51", "HMDB51", "hmdb51/hmdb51")}


def find_release(dataset_dir: str, domain: str) -> Optional[str]:
    """The canonical release folder, linked to the folder an archive unpacked to when only that one exists."""
    release, folders, _ = ucf_hmdb.RELEASES[domain]
    target = osp.join(dataset_dir, release)
    if osp.isdir(target):
        return target
    for candidate in ALTERNATIVE_FOLDERS[domain]:
        path = osp.join(dataset_dir, candidate)
        if osp.isdir(path) and any(osp.isdir(osp.join(path, folder)) for folder in folders):
            if not osp.lexists(target):
                os.symlink(candidate, target)  # relative: the dataset folder can move
                print(f"Found the {domain} class folders in {path}: linked {target} -> {candidate}")
                return target
    return None


def unextracted_archives(dataset_dir: str, domain: str) -> List[str]:
    """HMDB51's per-class archives (climb.rar, ...) left unextracted where hmdb51_org.rar put them."""
    if domain != "hmdb":
        return []
    found = []
    for folder in ("", "hmdb51", "hmdb51_org"):
        path = osp.join(dataset_dir, folder)
        if osp.isdir(path):
            found += [osp.join(folder, f"{cls}.rar") for cls in ucf_hmdb.HMDB_FOLDERS
                      if osp.isfile(osp.join(path, f"{cls}.rar"))]
    return found


def missing_release_report(dataset_dir: str, domain: str) -> str:
    release = ucf_hmdb.RELEASES[domain][0]
    name, command = DOWNLOAD[domain]
    archives = unextracted_archives(dataset_dir, domain)
    if archives:
        folder = osp.dirname(archives[0]) or "."
        return (f"{name} ({domain} domain): the class archives are not extracted yet ({len(archives)} of "
                f"{len(ucf_hmdb.HMDB_FOLDERS)} class .rar files found in {osp.join(dataset_dir, folder)}).\n"
                f"Fix: mkdir -p {dataset_dir}/hmdb51 && for f in {osp.join(dataset_dir, folder)}/*.rar; do "
                f'unrar x -o+ "$f" {dataset_dir}/hmdb51/; done   (or 7z x / bsdtar -xf)')
    tried = ", ".join(ALTERNATIVE_FOLDERS[domain])
    return (f'{name} ({domain} domain) not found: "{osp.join(dataset_dir, release)}" is not a folder (also tried '
            f"{tried}).\nFix: download and extract it there:\n  {command.format(dir=dataset_dir)}\n"
            f"or pass --{name.lower()} <folder where it is extracted>, or run `python tools/download.py ucf_hmdb "
            f"--root {osp.dirname(dataset_dir)}`.")


def take_subset(rows: List[ListRow], found: Dict[str, int], domain: str, n: int) -> List[ListRow]:
    """At most n clips per class folder for a trial run, taken round-robin over the folder's groups (UCF101
    groups, HMDB51 source videos) so that a group-aware train/val split of the subset still has both sides."""
    by_folder: Dict[str, Dict[str, List[ListRow]]] = {}
    for row in rows:
        folder = row[0].split("/")[1]
        group = ucf_hmdb.UCFHMDB.group_of(domain, clip_key(row[0]))
        by_folder.setdefault(folder, {}).setdefault(group, []).append(row)
    kept = []
    for folder, groups in sorted(by_folder.items()):
        queues = [groups[g] for g in sorted(groups)]
        picked = []
        while len(picked) < n and any(queues):
            for queue in queues:
                if queue and len(picked) < n:
                    picked.append(queue.pop(0))
        kept += picked
        found[folder] = len(picked)
    return sorted(kept)


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


def write_split(dataset_dir: str, domain: str, val_keys: List[str], rows: List[ListRow], ratio: Optional[float],
                seed: int, list_dir: str) -> None:
    """Save the split in the format of datasets/base.py, under the name a run with these settings reads."""
    ratio = round(len(val_keys) / len(rows), 2) if ratio is None else ratio
    path = split_file_path(dataset_dir, domain, ratio, seed)
    if osp.isfile(path):
        with open(path) as f:
            if sorted(json.load(f)["val"]) != sorted(val_keys):
                raise ReleaseError(f'"{path}" exists and holds another split; delete it to replace it.')
    keys = [clip_key(path) for path, _, _ in rows]
    n_groups, n_clips = shared_groups(keys, val_keys, lambda key: ucf_hmdb.UCFHMDB.group_of(domain, key))
    # grouping "none": the reader accepts the groups it shares between train and val, with a warning
    write_split_file(path, domain, ratio, seed, val_keys, grouping="none", made_from=rows_provenance(domain, rows),
                     source=f"official APN lists in {osp.abspath(list_dir)} ({len(val_keys)} of {len(rows)} videos "
                            "in val)")
    print(f"Official {domain} split: {len(val_keys)} of {len(rows)} videos in val -> {path}\n"
          f"  train on it with: DATASET.VAL_RATIO {ratio:g} DATASET.SPLIT_SEED {seed}")
    if n_groups:
        print(f"  NOT group-aware: {n_clips} of its {len(val_keys)} val clips come from {n_groups} groups that also "
              "have clips in train (near-duplicates inflate source-val accuracy)")


def official_group_overlap(list_dir: str, domain: str) -> Tuple[int, int, int, int]:
    """(val clips, val clips whose group also has train clips, groups on both sides, groups) of the official
    lists, read from their file names alone (HMDB's renamed video_NNNN folders are each their own group)."""
    train, val = (official_entries(osp.join(list_dir, name)) for name in OFFICIAL_LISTS[domain])
    keys = [f"{folder}/{name}" for (folder, name), _ in train + val]
    val_keys = keys[len(train):]
    group = lambda key: ucf_hmdb.UCFHMDB.group_of(domain, key)  # noqa: E731
    n_groups, n_clips = shared_groups(keys, val_keys, group)
    return len(val_keys), n_clips, n_groups, len({group(k) for k in keys})


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
    parser.add_argument("--subset", type=int, metavar="N",
                        help="trial run on part of the releases: take N videos of each class folder (spread over "
                             "its groups) and check only those")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.subset is not None and args.subset < 1:
        raise ReleaseError(f"--subset must be at least 1, got {args.subset}")
    dataset_dir = osp.join(osp.abspath(osp.expanduser(args.root)), ucf_hmdb.UCFHMDB.dataset_dir)
    lists, missing, mismatched = {}, [], []
    for domain, source in (("ucf", args.ucf101), ("hmdb", args.hmdb51)):  # check both before reporting
        release, _, expected = ucf_hmdb.RELEASES[domain]
        link_release(dataset_dir, release, source)
        if find_release(dataset_dir, domain) is None:
            missing.append(missing_release_report(dataset_dir, domain))
            continue
        rows, found = scan_domain(dataset_dir, domain)
        if args.subset is not None:
            rows = take_subset(rows, found, domain, args.subset)
            expected = {folder: min(args.subset, n) for folder, n in expected.items()}
        report = domain_report(dataset_dir, domain, found, expected)
        if report:
            mismatched.append(report)
        lists[domain] = rows
        print(f"{domain}: {len(rows)} videos in {len(found)} class folders")
    if missing or (mismatched and not args.allow_mismatch):
        hint = ("\nIf your copy is complete and only differs from the expected counts, rerun with --allow-mismatch "
                "to prepare it as it is; for a trial on part of a release, --subset N takes N videos per class "
                "folder.") if mismatched else ""
        raise ReleaseError("\n\n".join(missing + mismatched) + hint)
    for report in mismatched:
        print(f"WARNING (--allow-mismatch): {report}")
    if args.count_frames:
        lists = with_frame_counts(dataset_dir, lists)
    info = {"benchmark": "UCF-HMDB", "subset": args.subset}
    write_prepared(dataset_dir, SCRIPT, ucf_hmdb.CLASSES, lists, info, ucf_hmdb.UCFHMDB)
    if args.subset is not None:
        print(f"Prepared a trial subset (--subset {args.subset}: at most {args.subset} videos per class folder); "
              "its results are not comparable with the full benchmark's. Prepare again without --subset for "
              "the real benchmark.")
    if args.official_lists:
        for domain, rows in lists.items():
            val_keys = official_split(args.official_lists, domain, rows)
            if val_keys is not None:
                write_split(dataset_dir, domain, val_keys, rows, args.split_ratio, args.split_seed,
                            args.official_lists)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))

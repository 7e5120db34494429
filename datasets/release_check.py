"""Shared steps of the preparation scripts in tools/: check a raw release, report what is missing, write lists.

A preparation script scans the release as users download it, compares what it finds with the counts the
benchmark expects, and either writes the files that datasets/list_dataset.py reads or stops with a
ReleaseError whose message says what is missing (which domains or classes, how many files) and the command
that fixes it. `run_main` turns that error into a printed report and exit status 1, never a traceback.
"""
import json
import os
import os.path as osp
import sys
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from tqdm import tqdm

from defaults import extend_cfg
from framework import get_cfg_default

from video.datum import VideoDatum
from video.readers import VideoReadError, count_frames

from .base import (grouped_val_keys, grouping_text, read_split_file, split_file_path, split_provenance,
                   write_split_file, write_text_atomic)
from .list_dataset import CLASSES_FILE, MANIFEST_FILE, clip_key, split_range

ListRow = Tuple[str, int, int]  # (path relative to the dataset folder, num_frames or 0, label)
SHOWN = 10  # report at most this many lines of one kind; the count says how many there are


class ReleaseError(Exception):
    """The raw release is missing or incomplete. The message is the report shown to the user."""


def run_main(main: Callable[[Optional[Sequence[str]]], int], argv: Optional[Sequence[str]] = None) -> int:
    """Run a preparation script's main; a ReleaseError is printed as a report (exit status 1)."""
    try:
        return main(argv)
    except ReleaseError as e:
        print(f"\nERROR: {e}", file=sys.stderr)
        return 1


def head(lines: Sequence[str], shown: int = SHOWN) -> List[str]:
    """The first `shown` lines plus one line saying how many were left out."""
    lines = list(lines)
    return lines[:shown] + ([f"... and {len(lines) - shown} more"] if len(lines) > shown else [])


def writable_root(root: str) -> str:
    """The absolute --root folder, created if missing; a root that cannot be written gets advice, not a traceback."""
    path = osp.abspath(osp.expanduser(root))
    advice = "Pass --root a folder you can write to (e.g. --root ~/data)"
    if osp.exists(path) and not osp.isdir(path):
        raise ReleaseError(f'--root "{path}" is a file, not a folder. {advice}.')
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise ReleaseError(f'Cannot create --root "{path}" ({e.strerror}). {advice}, or create it first: '
                           f'mkdir -p "{path}".') from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ReleaseError(f'--root "{path}" is not writable for this user. {advice}, or make it writable: '
                           f'chmod u+w "{path}" (or ask its owner).')
    return path


def require_writable(folder: str) -> None:
    """Stop before any output is written when the benchmark folder cannot take it."""
    if osp.isdir(folder) and not os.access(folder, os.W_OK | os.X_OK):
        raise ReleaseError(f'"{folder}" is not writable for this user, so the list files cannot be written there. '
                           f'Make it writable (chmod u+w "{folder}"), or copy or link the release into a folder you '
                           "can write to and pass that folder's parent as --root.")


def require_dir(path: str, what: str, fix: str) -> None:
    if not osp.isdir(path):
        raise ReleaseError(f'{what} not found: "{path}" is not a folder.\n{fix}')


def link_release(dataset_dir: str, name: str, source: Optional[str]) -> str:
    """The folder dataset_dir/name, made a symlink to `source` when the release was extracted elsewhere.

    List files hold paths relative to the dataset folder; the link keeps them valid wherever the raw files are.
    """
    target = osp.join(dataset_dir, name)
    if not source or osp.abspath(source) == osp.abspath(target):
        return target
    source = osp.abspath(osp.expanduser(source))
    if osp.islink(target) and osp.realpath(target) == osp.realpath(source):
        return target
    if osp.lexists(target):
        raise ReleaseError(f'"{target}" already exists and is not a link to "{source}". Remove it, or drop the '
                           "option and use the files already there.")
    os.makedirs(dataset_dir, exist_ok=True)
    os.symlink(source, target)
    print(f"Linked {target} -> {source}")
    return target


def count_mismatches(found: Mapping[str, int], expected: Mapping[str, int], unit: str = "videos") -> List[str]:
    """One line per group whose count differs from the expected one (missing groups first)."""
    lines = []
    for group in sorted(expected, key=lambda g: (found.get(g, 0) != 0, g)):
        n, want = found.get(group, 0), expected[group]
        if n == want:
            continue
        if n == 0:
            lines.append(f"{group}: missing (expected {want} {unit})")
        elif n < want:
            lines.append(f"{group}: {n} of {want} {unit} ({want - n} missing)")
        else:
            lines.append(f"{group}: {n} {unit}, {n - want} more than the {want} expected")
    return lines


def check_counts(problems: Sequence[str], summary: str, fix: str, allow_mismatch: bool) -> None:
    """Stop with a report when a count differs from the expected one, unless the user allows mismatches."""
    if not problems:
        return
    report = "\n".join(f"  {line}" for line in head(problems))
    if allow_mismatch:
        print(f"WARNING (--allow-mismatch): {summary}\n{report}")
        return
    raise ReleaseError(f"{summary}\n{report}\n{fix}\nIf your copy is complete and only differs from the expected "
                       "counts, rerun with --allow-mismatch to prepare it as it is.")


def count_video_frames(dataset_dir: str, relpaths: Iterable[str], desc: str) -> Tuple[Dict[str, int], List[str]]:
    """Decord's frame count of each video (what the reader will see), and the videos it cannot read."""
    counts, unreadable = {}, []
    for relpath in tqdm(sorted(set(relpaths)), desc=desc, unit="video", disable=None):
        try:
            counts[relpath] = count_frames(VideoDatum(osp.join(dataset_dir, relpath)))
        except VideoReadError as e:
            unreadable.append(f"{relpath}: {e.reason}")
    return counts, unreadable


def with_frame_counts(dataset_dir: str, lists: Mapping[str, List[ListRow]]) -> Dict[str, List[ListRow]]:
    """The lists with decord's frame count of each video file; stop if a video cannot be read."""
    counted = {}
    for domain, rows in lists.items():
        videos = [path for path, _, _ in rows if not osp.isdir(osp.join(dataset_dir, path))]
        counts, unreadable = count_video_frames(dataset_dir, videos, f"count frames ({domain})")
        if unreadable:
            raise ReleaseError(f"{len(unreadable)} {domain} videos cannot be read:\n  " + "\n  ".join(head(unreadable))
                               + "\nFix: extract them again from the downloaded archive.")
        counted[domain] = [(path, counts.get(path, n), label) for path, n, label in rows]
    return counted


def map_with_progress(fn: Callable, items: Sequence, workers: int, desc: str) -> List:
    """[fn(item) for item in items] with a progress bar, in a process pool when workers > 1."""
    with ProcessPoolExecutor(workers) if workers > 1 else nullcontext() as pool:
        results = pool.map(fn, items) if pool is not None else map(fn, items)
        return list(tqdm(results, total=len(items), desc=desc, unit="video", disable=None))


def _write_text(path: str, text: str) -> None:
    write_text_atomic(path, text)  # write, then rename: an interrupted run never leaves half a file


def _listed_paths(list_file: str) -> Optional[List[str]]:
    """The clip paths of an existing list file (None if there is none)."""
    if not osp.isfile(list_file):
        return None
    with open(list_file, encoding="utf-8") as f:
        return sorted(line.split()[0] for line in f if line.strip() and not line.startswith("#"))


def write_prepared(dataset_dir: str, script: str, classnames: Sequence[str], lists: Mapping[str, List[ListRow]],
                   info: Mapping, dataset_cls: type, default_splits: bool = True) -> None:
    """Write classes.txt, one <domain>.txt per domain and prepared.json; warn when saved splits went stale.

    prepared.json holds `info` (what the script wants to record) plus the class names and the clips per
    domain and per class. Each domain's default split groups clips with `dataset_cls.group_of` (unless
    `default_splits` is False: the script saves splits of its own).
    """
    spaced = [path for rows in lists.values() for path, _, _ in rows if len(path.split()) != 1]
    if spaced:  # list files are whitespace separated
        raise ReleaseError(f"{len(spaced)} file names contain whitespace, which list files cannot hold:\n  " +
                           "\n  ".join(head(spaced)) + "\nRename them (e.g. spaces to underscores) and rerun.")
    require_writable(dataset_dir)
    os.makedirs(dataset_dir, exist_ok=True)
    _write_text(osp.join(dataset_dir, CLASSES_FILE), "".join(f"{name}\n" for name in classnames))
    changed = []
    for domain, rows in lists.items():
        list_file = osp.join(dataset_dir, f"{domain}.txt")
        old = _listed_paths(list_file)
        if old is not None and old != sorted(path for path, _, _ in rows):
            changed.append(domain)
        text = f"# written by {script}: path num_frames label (num_frames 0 = not counted)\n"
        _write_text(list_file, text + "".join(f"{path} {n} {label}\n" for path, n, label in sorted(rows)))
    manifest = dict(info, classes=list(classnames), clips={d: len(rows) for d, rows in lists.items()},
                    per_class={d: [sum(1 for row in rows if row[2] == k) for k in range(len(classnames))]
                               for d, rows in lists.items()})
    _write_text(osp.join(dataset_dir, MANIFEST_FILE), json.dumps(manifest, indent=1) + "\n")
    for domain, rows in lists.items():
        print(f"  {domain}.txt: {len(rows)} clips")
    cfg = get_cfg_default()
    extend_cfg(cfg)
    rewritten = [write_default_split(dataset_dir, domain, rows, cfg.DATASET.VAL_RATIO, cfg.DATASET.SPLIT_SEED,
                                     dataset_cls, subset=info.get("subset")) for domain, rows in lists.items()
                 if default_splits]
    split_dir = osp.join(dataset_dir, "splits")
    stale = [name for name in (os.listdir(split_dir) if osp.isdir(split_dir) else [])
             if name.split("_val")[0] in changed and osp.join(split_dir, name) not in rewritten]
    if stale:
        print(f"NOTE: the lists of {changed} changed; the saved splits {stale} in {split_dir} were made from the "
              "old lists. The next run that uses one makes it again from the new list (one from official lists "
              "is refused until you prepare it again); runs on the old split are not comparable with new ones.")
    print(f"Prepared {dataset_dir}")


def rows_provenance(domain: str, rows: Sequence[ListRow]) -> Dict:
    """What a split of these list rows is made from (the record datasets/base.py compares with the list)."""
    return split_provenance([clip_key(*split_range(path)) for path, _, _ in rows], [label for _, _, label in rows],
                            f"{domain}.txt")


def write_default_split(dataset_dir: str, domain: str, rows: List[ListRow], ratio: float, seed: int,
                        dataset_cls: type, subset: Optional[int] = None) -> Optional[str]:
    """Save the train/val split that a run with the default DATASET.VAL_RATIO / SPLIT_SEED uses when this
    domain is a source (the same group-aware split the dataset class would make on first use); keep an
    existing one, unless it was made for another trial subset (`--subset`) than this preparation's.
    Returns the path when it wrote the file."""
    path = split_file_path(dataset_dir, domain, ratio, seed)
    made_from = rows_provenance(domain, rows)
    if osp.isfile(path):
        saved = read_split_file(path)
        same_clips = saved.get("made_from", {}).get("sha256") == made_from["sha256"]
        if saved.get("subset") == subset and same_clips:
            return None
        why = "another --subset preparation" if saved.get("subset") != subset else "other clips"
        print(f"  replacing {osp.relpath(path, dataset_dir)}: it was made for {why}")
    keys = [clip_key(*split_range(relpath)) for relpath, _, _ in rows]
    groups = [dataset_cls.group_of(domain, key) for key in keys]
    val = grouped_val_keys(keys, [label for _, _, label in rows], groups, ratio, seed)
    grouping = grouping_text(dataset_cls, domain)
    extra = {"subset": subset} if subset is not None else {}
    write_split_file(path, domain, ratio, seed, val, grouping=grouping, made_from=made_from, **extra)
    val_set = set(val)
    val_groups = {g for g, k in zip(groups, keys) if k in val_set}
    print(f"  split {osp.relpath(path, dataset_dir)}: the {domain} train/val split of any run with "
          f"DATASET.VAL_RATIO {ratio:g} and DATASET.SPLIT_SEED {seed}: {len(val)} of {len(keys)} clips in val, "
          f"{len(val_groups)} of {len(set(groups))} groups ({grouping})")
    return path

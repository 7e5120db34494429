"""Shared protocol of the video DG benchmarks: domains, the source train/val split, the target test set.

A benchmark subclasses VideoDGDataset, names its folder and domains, and implements `read_domain`; the
protocol (Section 5.1 of the paper) lives here once:

- train_x / val: the source domains, split into (1 - VAL_RATIO) / VAL_RATIO with DATASET.SPLIT_SEED, by
  group: clips cut from one recording (a UCF101 group, an HMDB51 source video, an NTU performer, a PKU-MMD
  sequence; a benchmark names them with `group_of`) all land on the same side, and each class gets about
  VAL_RATIO of its clips in val. The split is written to <dataset_dir>/splits/ on first use and read back
  afterwards, so every method and every run seed trains and selects its model on the same videos;
- test: every video of the target domains.

Domain labels follow Dassl: train/val items are numbered by their position in SOURCE_DOMAINS, test items by
their position in TARGET_DOMAINS.
"""
import json
import os
import os.path as osp
import random
from collections import Counter, defaultdict
from typing import Callable, Dict, Iterable, List, Sequence, Tuple, Union

from framework import DatasetBase
from framework.fileio import write_text_atomic  # noqa: F401 (also imported from here by release_check.py)
from video.datum import VideoDatum


class DatasetNotFoundError(FileNotFoundError):
    """A benchmark's files are missing; the message names the path and the command that prepares it."""


class VideoDGDataset(DatasetBase):
    dataset_dir = ""  # folder under DATASET.ROOT (subclasses set it)
    domains: List[str] = []
    domain_aliases: Dict[str, str] = {}  # other accepted spellings -> canonical domain name
    prepare_hint = ""  # the command that builds this benchmark's files, shown when they are missing
    # What `group_of` groups by, recorded in split files: one text, or one per domain.
    grouping: Union[str, Dict[str, str]] = "each clip is its own group"

    def __init__(self, cfg):
        if not cfg.DATASET.ROOT:
            raise DatasetNotFoundError(
                f"DATASET.ROOT is empty: pass --root <folder that holds {self.dataset_dir}/>. {self.prepare_hint}")
        root = osp.abspath(osp.expanduser(cfg.DATASET.ROOT))
        self.dataset_dir = osp.join(root, type(self).dataset_dir)
        self.cfg = cfg
        source = self.resolve_domains(cfg.DATASET.SOURCE_DOMAINS, "source")
        target = self.resolve_domains(cfg.DATASET.TARGET_DOMAINS, "target")
        self.check_input_domains(source, target)
        overlap = sorted(set(source) & set(target))
        if overlap:
            raise ValueError(f"Domains {overlap} are both source and target; DG evaluates on unseen domains only")
        self.prepare()
        train_x, val = [], []
        for label, domain in enumerate(source):
            items = self.read_domain(domain, label)
            train_part, val_part = self.source_split(domain, items)
            train_x += train_part
            val += val_part
        test = [item for label, domain in enumerate(target) for item in self.read_domain(domain, label)]
        super().__init__(train_x=train_x, val=val, test=test)

    # ------------------------------------------------------------------ hooks for subclasses
    def prepare(self) -> None:
        """Check (or, for generated data, create) the files under self.dataset_dir."""
        if not osp.isdir(self.dataset_dir):
            raise DatasetNotFoundError(f'Dataset folder not found: "{self.dataset_dir}". {self.prepare_hint}')

    def read_domain(self, domain: str, domain_label: int) -> List[VideoDatum]:
        """All labelled clips of one domain, with `domain_label` as their domain."""
        raise NotImplementedError

    @staticmethod
    def group_of(domain: str, key: str) -> str:
        """The recording a clip (named by its split key) was cut from; clips of one group are never split
        between train and val. Benchmarks whose file names say more override this."""
        return key

    def source_split(self, domain: str, items: List[VideoDatum]) -> Tuple[List[VideoDatum], List[VideoDatum]]:
        """(train, val) of a source domain, from the saved split file (made on first use)."""
        ratio, seed = self.cfg.DATASET.VAL_RATIO, self.cfg.DATASET.SPLIT_SEED
        split_file = split_file_path(self.dataset_dir, domain, ratio, seed)
        keys = [self.item_key(item) for item in items]
        group = lambda key: self.group_of(domain, key)  # noqa: E731
        if osp.isfile(split_file):
            saved = read_split_file(split_file)
            val_keys = set(saved["val"])
            unknown = val_keys - set(keys)
            if unknown:
                raise ValueError(f'Split file "{split_file}" lists {len(unknown)} videos that the dataset does not '
                                 f'have (e.g. {sorted(unknown)[0]}); delete it to make a new split.')
            check_saved_split(split_file, saved, keys, group)
            print(f"Loaded the {domain} train/val split from {split_file}")
        else:
            val_keys = set(grouped_val_keys(keys, [item.label for item in items], [group(k) for k in keys],
                                            ratio, seed))
            grouping = grouping_text(type(self), domain)
            write_split_file(split_file, domain, ratio, seed, val_keys, grouping=grouping)
            print(f"Created the {domain} train/val split {split_file} ({len(val_keys)} of {len(keys)} videos in "
                  f"val; grouped by {grouping})")
        train = [item for item, key in zip(items, keys) if key not in val_keys]
        val = [item for item, key in zip(items, keys) if key in val_keys]
        return train, val

    def item_key(self, item: VideoDatum) -> str:
        """A stable name of a clip inside the dataset folder (what split files store)."""
        key = osp.relpath(item.impath, self.dataset_dir)
        if item.frame_range is not None:
            key += f"@{item.frame_range[0]}-{item.frame_range[1]}"
        return key

    # ------------------------------------------------------------------ helpers
    def resolve_domains(self, names: Sequence[str], role: str) -> List[str]:
        resolved = []
        for name in names:
            canonical = self.domain_aliases.get(name, name)
            if canonical not in self.domains:
                aliases = f" (aliases: {self.domain_aliases})" if self.domain_aliases else ""
                raise ValueError(f'Unknown {role} domain "{name}" for {type(self).__name__}. '
                                 f"Valid domains: {self.domains}{aliases}")
            resolved.append(canonical)
        return resolved


def grouping_text(dataset_cls: type, domain: str) -> str:
    """What a benchmark's `group_of` groups the clips of a domain by."""
    grouping = dataset_cls.grouping
    return grouping[domain] if isinstance(grouping, dict) else grouping


def split_file_path(dataset_dir: str, domain: str, val_ratio: float, seed: int) -> str:
    """Where the train/val split of one source domain is saved for a VAL_RATIO / SPLIT_SEED setting."""
    return osp.join(dataset_dir, "splits", f"{domain}_val{val_ratio:g}_seed{seed}.json")


def write_split_file(path: str, domain: str, val_ratio: float, seed: int, val_keys: Iterable[str],
                     **extra) -> None:
    """Save a split (the keys of the validation clips) atomically; `extra` fields are kept for the reader."""
    content = {"domain": domain, "val_ratio": val_ratio, "seed": seed, "val": sorted(val_keys), **extra}
    write_text_atomic(path, json.dumps(content, indent=1))


def read_split_file(path: str) -> Dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def shared_groups(keys: Sequence[str], val_keys: Iterable[str], group: Callable[[str], str]) -> Tuple[int, int]:
    """(groups with clips on both sides, val clips in such groups): 0, 0 for a group-aware split."""
    val_keys = set(val_keys)
    train_groups = {group(k) for k in keys if k not in val_keys}
    val_groups = [group(k) for k in keys if k in val_keys]
    mixed = set(val_groups) & train_groups
    return len(mixed), sum(1 for g in val_groups if g in mixed)


def check_saved_split(path: str, saved: Dict, keys: Sequence[str], group: Callable[[str], str]) -> None:
    """A saved split that puts one group on both sides is accepted only when it says it was chosen that way
    (the official APN lists); an old clip-by-clip split file is refused, with the fix."""
    n_groups, n_clips = shared_groups(keys, saved["val"], group)
    if not n_groups:
        return
    overlap = (f"{n_clips} of its {len(saved['val'])} val clips come from {n_groups} groups (recordings) that "
               "also have clips in train")
    if saved.get("grouping") == "none":
        print(f'WARNING: split file "{path}" ({saved.get("source", "not group-aware")}): {overlap}, so source-val '
              "accuracy is inflated by near-duplicates of training clips.")
        return
    raise ValueError(f'Split file "{path}" was made clip by clip: {overlap}. Delete it; the next run (or the '
                     "preparation script) makes a group-aware split under the same name.")


def grouped_val_keys(keys: Sequence[str], labels: Sequence[int], groups: Sequence[str], val_ratio: float,
                     seed: int) -> List[str]:
    """Validation keys chosen group by group, so no group has clips on both sides.

    Groups are visited in a seeded random order; a group joins val when that brings the per-class val counts
    closer to round(val_ratio * n_c) (summed over its classes). A group may hold several classes (an NTU
    performer holds all of them). When every group is a single clip this is `stratified_val_keys` exactly.
    """
    members, per_group = defaultdict(list), defaultdict(Counter)
    for key, label, group in zip(keys, labels, groups):
        members[group].append(key)
        per_group[group][label] += 1
    if all(len(m) == 1 for m in members.values()):
        return stratified_val_keys(keys, labels, val_ratio, seed)
    target = {label: int(round(val_ratio * n)) for label, n in Counter(labels).items()}
    order = sorted(members)
    random.Random(seed).shuffle(order)
    taken, val = Counter(), []
    for group in order:
        counts = per_group[group]
        before = sum(abs(taken[c] - target[c]) for c in counts)
        after = sum(abs(taken[c] + n - target[c]) for c, n in counts.items())
        if after < before:
            taken.update(counts)
            val += members[group]
    return val


def stratified_val_keys(keys: Sequence[str], labels: Sequence[int], val_ratio: float, seed: int) -> List[str]:
    """Pick round(val_ratio * n_c) keys of every class c, reproducibly for a given seed."""
    by_label = defaultdict(list)
    for key, label in zip(keys, labels):
        by_label[label].append(key)
    rng = random.Random(seed)
    val = []
    for label in sorted(by_label):
        class_keys = sorted(by_label[label])
        rng.shuffle(class_keys)
        val += class_keys[:int(round(val_ratio * len(class_keys)))]
    return val

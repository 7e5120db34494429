"""Shared protocol of the video DG benchmarks: domains, the source train/val split, the target test set.

A benchmark subclasses VideoDGDataset, names its folder and domains, and implements `read_domain`; the
protocol (Section 5.1 of the paper) lives here once:

- train_x / val: the source domains, split class-stratified into (1 - VAL_RATIO) / VAL_RATIO with
  DATASET.SPLIT_SEED; the split is written to <dataset_dir>/splits/ on first use and read back afterwards,
  so every method and every run seed trains and selects its model on the same videos;
- test: every video of the target domains.

Domain labels follow Dassl: train/val items are numbered by their position in SOURCE_DOMAINS, test items by
their position in TARGET_DOMAINS.
"""
import json
import os
import os.path as osp
import random
from collections import defaultdict
from typing import Dict, Iterable, List, Sequence, Tuple

from framework import DatasetBase
from video.datum import VideoDatum


class DatasetNotFoundError(FileNotFoundError):
    """A benchmark's files are missing; the message names the path and the command that prepares it."""


class VideoDGDataset(DatasetBase):
    dataset_dir = ""  # folder under DATASET.ROOT (subclasses set it)
    domains: List[str] = []
    domain_aliases: Dict[str, str] = {}  # other accepted spellings -> canonical domain name
    prepare_hint = ""  # the command that builds this benchmark's files, shown when they are missing

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

    def source_split(self, domain: str, items: List[VideoDatum]) -> Tuple[List[VideoDatum], List[VideoDatum]]:
        """(train, val) of a source domain, from the saved split file (made on first use)."""
        ratio, seed = self.cfg.DATASET.VAL_RATIO, self.cfg.DATASET.SPLIT_SEED
        split_file = split_file_path(self.dataset_dir, domain, ratio, seed)
        keys = [self.item_key(item) for item in items]
        if osp.isfile(split_file):
            with open(split_file) as f:
                val_keys = set(json.load(f)["val"])
            unknown = val_keys - set(keys)
            if unknown:
                raise ValueError(f'Split file "{split_file}" lists {len(unknown)} videos that the dataset does not '
                                 f'have (e.g. {sorted(unknown)[0]}); delete it to make a new split.')
            print(f"Loaded the {domain} train/val split from {split_file}")
        else:
            val_keys = set(stratified_val_keys(keys, [item.label for item in items], ratio, seed))
            write_split_file(split_file, domain, ratio, seed, val_keys)
            print(f"Created the {domain} train/val split {split_file} ({len(val_keys)} of {len(keys)} videos in val)")
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


def split_file_path(dataset_dir: str, domain: str, val_ratio: float, seed: int) -> str:
    """Where the train/val split of one source domain is saved for a VAL_RATIO / SPLIT_SEED setting."""
    return osp.join(dataset_dir, "splits", f"{domain}_val{val_ratio:g}_seed{seed}.json")


def write_split_file(path: str, domain: str, val_ratio: float, seed: int, val_keys: Iterable[str],
                     **extra) -> None:
    """Save a split (the keys of the validation clips) atomically; `extra` fields are kept for the reader."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    content = {"domain": domain, "val_ratio": val_ratio, "seed": seed, "val": sorted(val_keys), **extra}
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(content, f, indent=1)
    os.replace(tmp, path)


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

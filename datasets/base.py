"""Shared protocol of the video DG benchmarks: domains, the source train/val split, the target test set.

A benchmark subclasses VideoDGDataset, names its folder and domains, and implements `read_domain`; the
protocol (Section 5.1 of the paper) lives here once:

- train_x / val: the source domains, split into (1 - VAL_RATIO) / VAL_RATIO with DATASET.SPLIT_SEED, by
  group: clips cut from one recording (a UCF101 group, an HMDB51 source video, an NTU performer, a PKU-MMD
  sequence; a benchmark names them with `group_of`) all land on the same side, and each class gets about
  VAL_RATIO of its clips in val. The split is written to <dataset_dir>/splits/ on first use and read back
  afterwards, so every method and every run seed trains and selects its model on the same videos. The file
  records what it was made from (the clip count and a hash of the clips): when the list changes, the split is
  made again (or, if it came from official lists, refused), so new clips cannot leak into training beside
  copies of validation clips. A benchmark that ships its own train/val split overrides `source_items`;
- test: every video of the target domains; with DATASET.ORACLE_HOLDOUT > 0, less the oracle holdout: that
  share of each target domain, chosen as the val split is (by group, class-stratified, DATASET.SPLIT_SEED),
  kept in `oracle` for target-selected (oracle) model selection only, never in the reported test;
- classes: from the benchmark's class list (`class_names`), so a target class without source clips keeps its
  output and is reported at start.

Domain labels follow Dassl: train/val items are numbered by their position in SOURCE_DOMAINS, test items by
their position in TARGET_DOMAINS.
"""
import hashlib
import json
import os
import os.path as osp
import random
from collections import Counter, defaultdict
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from framework import DatasetBase
from framework.fileio import write_text_atomic  # noqa: F401 (also imported from here by release_check.py)
from video.datum import VideoDatum


class DatasetNotFoundError(FileNotFoundError):
    """A benchmark's files are missing; the message names the path and the command that prepares it."""


class VideoDGDataset(DatasetBase):
    dataset_dir = ""  # folder under DATASET.ROOT (subclasses set it)
    domains: List[str] = []  # in the order of the paper's columns (U->H before H->U)
    # The sources of the benchmark's single-source tasks (the paper's), each against every other domain as the
    # targets; empty: every domain once. `tasks` lists them; scripts, tables and docs read them from there.
    single_sources: List[str] = []
    default_protocol = "single"  # the protocol of the benchmark's reported results: single or lodo
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
        check_val_ratio(cfg.DATASET.VAL_RATIO)
        self.find_domains()
        source = self.resolve_domains(cfg.DATASET.SOURCE_DOMAINS, "source")
        target = self.resolve_domains(cfg.DATASET.TARGET_DOMAINS, "target")
        self.check_input_domains(source, target)
        overlap = sorted(set(source) & set(target))
        if overlap:
            raise ValueError(f"Domains {overlap} are both source and target; DG evaluates on unseen domains only")
        self.prepare()
        train_x, val = [], []
        for label, domain in enumerate(source):
            train_part, val_part = self.source_items(domain, label)
            train_x += train_part
            val += val_part
        test, oracle = [], []
        for label, domain in enumerate(target):
            test_part, oracle_part = self.oracle_split(domain, self.target_items(domain, label))
            test += test_part
            oracle += oracle_part
        super().__init__(train_x=train_x, val=val, test=test)
        self.oracle = oracle  # the target clips held out for the oracle criterion (DATASET.ORACLE_HOLDOUT)
        self.use_class_list()

    @classmethod
    def tasks(cls, protocol: str = "") -> List[Tuple[List[str], List[str]]]:
        """(source domains, target domains) of each task of the benchmark. single: the single-source tasks;
        lodo: leave-one-domain-out, each domain once the target and the others the sources; "": the
        benchmark's default_protocol."""
        protocol = protocol or cls.default_protocol
        if protocol == "single":
            return [([s], [d for d in cls.domains if d != s]) for s in cls.single_sources or cls.domains]
        if protocol == "lodo":
            return [([d for d in cls.domains if d != target], [target]) for target in cls.domains]
        raise ValueError(f"Unknown protocol {protocol!r}: use single or lodo")

    # ------------------------------------------------------------------ hooks for subclasses
    def find_domains(self) -> None:
        """Set self.domains when they are read from the files (VideoListDG); the benchmarks name them."""

    def prepare(self) -> None:
        """Check (or, for generated data, create) the files under self.dataset_dir."""
        if not osp.isdir(self.dataset_dir):
            raise DatasetNotFoundError(f'Dataset folder not found: "{self.dataset_dir}". {self.prepare_hint}')

    def read_domain(self, domain: str, domain_label: int) -> List[VideoDatum]:
        """All labelled clips of one domain, with `domain_label` as their domain."""
        raise NotImplementedError

    def class_names(self) -> Optional[List[str]]:
        """Every class of the benchmark in label order (its classes file); None = Dassl's rule (train labels)."""
        return None

    def source_items(self, domain: str, domain_label: int) -> Tuple[List[VideoDatum], List[VideoDatum]]:
        """(train, val) of a source domain: its clips split by `source_split`. A benchmark that ships its own
        train/val split overrides this."""
        return self.source_split(domain, self.read_domain(domain, domain_label))

    def target_items(self, domain: str, domain_label: int) -> List[VideoDatum]:
        """The test clips of a target domain: all of its clips."""
        return self.read_domain(domain, domain_label)

    def list_name(self, domain: str) -> str:
        """What a domain's clips are read from, as a log line names it."""
        return f"{domain}.txt"

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
        labels = [item.label for item in items]
        made_from = split_provenance(keys, labels, self.list_name(domain))
        group = lambda key: self.group_of(domain, key)  # noqa: E731
        saved = read_split_file(split_file) if osp.isfile(split_file) else None
        if saved is not None and not self.saved_split_still_valid(split_file, saved, made_from):
            saved = None
        if saved is not None:
            val_keys = set(saved["val"])
            unknown = val_keys - set(keys)
            if unknown:
                raise ValueError(f'Split file "{split_file}" lists {len(unknown)} videos that the dataset does not '
                                 f'have (e.g. {sorted(unknown)[0]}); delete it to make a new split.')
            check_saved_split(split_file, saved, keys, group)
            print(f"Loaded the {domain} train/val split from {split_file}")
        else:
            val_keys = set(grouped_val_keys(keys, labels, [group(k) for k in keys], ratio, seed))
            if ratio > 0 and not val_keys:
                raise ValueError(
                    f'The {domain} train/val split has no source validation clip: {self.list_name(domain)} has '
                    f"{len(keys)} clips and DATASET.VAL_RATIO {ratio:g} of each class rounds to 0. Add clips, raise "
                    "DATASET.VAL_RATIO, or train without validation (DATASET.VAL_RATIO 0 with TEST.FINAL_MODEL "
                    "last_step).")
            grouping = grouping_text(self, domain)
            write_split_file(split_file, domain, ratio, seed, val_keys, grouping=grouping, made_from=made_from)
            print(f"Created the {domain} train/val split {split_file} ({len(val_keys)} of {len(keys)} videos in "
                  f"val; grouped by {grouping})")
        train = [item for item, key in zip(items, keys) if key not in val_keys]
        val = [item for item, key in zip(items, keys) if key in val_keys]
        return train, val

    def oracle_split(self, domain: str, items: List[VideoDatum]) -> Tuple[List[VideoDatum], List[VideoDatum]]:
        """(test, oracle holdout) of a target domain: DATASET.ORACLE_HOLDOUT of its clips held out the way the
        val split is chosen (by group, class-stratified, DATASET.SPLIT_SEED), so the same for every method and
        run; the holdout is never part of the reported target test. ORACLE_HOLDOUT 0: (items, [])."""
        ratio = self.cfg.DATASET.ORACLE_HOLDOUT
        if not 0 <= ratio < 1:
            raise ValueError(f"DATASET.ORACLE_HOLDOUT is {ratio:g}: it is the share of each target domain held out "
                             "for the oracle criterion, between 0 and 1 (DomainBed: 0.2; 0 = off)")
        if ratio == 0:
            return items, []
        keys = [self.item_key(item) for item in items]
        groups = [self.group_of(domain, k) for k in keys]
        held = set(grouped_val_keys(keys, [item.label for item in items], groups, ratio, self.cfg.DATASET.SPLIT_SEED))
        if not held or len(held) == len(keys):
            raise ValueError(f"DATASET.ORACLE_HOLDOUT {ratio:g} holds out {len(held)} of the {len(keys)} clips of "
                             f"target domain {domain}: the oracle needs clips on both sides. Change the ratio or "
                             "set it to 0 (off).")
        print(f"Oracle holdout: {len(held)} of the {len(keys)} clips of target domain {domain} (DATASET."
              f"ORACLE_HOLDOUT {ratio:g}; {len(set(groups))} groups, each on one side), left out of the target "
              "test")
        return ([item for item, key in zip(items, keys) if key not in held],
                [item for item, key in zip(items, keys) if key in held])

    def saved_split_still_valid(self, path: str, saved: Dict, made_from: Dict) -> bool:
        """Whether a saved split was made from the clips the domain has now. A split this project made is made
        again when they changed (the old file is kept under splits/replaced/); one chosen elsewhere (official
        lists) is refused, since only its maker knows how to extend it."""
        before = saved.get("made_from")
        if before is not None and before.get("sha256") == made_from["sha256"]:
            return True
        if saved.get("source"):
            if before is None:
                print(f'WARNING: split file "{path}" ({saved["source"]}) does not record which clips it was made '
                      "from (an earlier version wrote it): if the lists changed since, prepare the benchmark again.")
                return True
            raise ValueError(f'Split file "{path}" holds the split of {saved["source"]}, made from '
                             f"{before['clips']} clips; {made_from['list']} now has {made_from['clips']} clips, not the "
                             "same. Run the preparation script again (it writes the split anew from the current "
                             "lists), or delete the file to get a group-aware split.")
        if before is None:
            print(f'"{path}" does not record which clips it was made from (an earlier version wrote it): making the '
                  "split again from the current list (the same clips give the same split).")
        else:
            print(f"{made_from['list']} changed since {path} was made ({before['clips']} clips then, "
                  f"{made_from['clips']} now): making a new split; runs on the old split are not comparable with "
                  "new ones.")
        tag = (before or {}).get("sha256", "old")[:8]
        keep = osp.join(osp.dirname(path), "replaced", f"{osp.splitext(osp.basename(path))[0]}-{tag}.json")
        os.makedirs(osp.dirname(keep), exist_ok=True)
        os.replace(path, keep)
        return False

    def item_key(self, item: VideoDatum) -> str:
        """A stable name of a clip inside the dataset folder (what split files store)."""
        key = osp.relpath(item.impath, self.dataset_dir)
        if item.frame_range is not None:
            key += f"@{item.frame_range[0]}-{item.frame_range[1]}"
        return key

    # ------------------------------------------------------------------ helpers
    def use_class_list(self) -> None:
        """Classes from the classes file, not from the source labels (a target class absent from the source
        would otherwise be outside the model's outputs); a target class without source clips is reported."""
        names = self.class_names()
        if names is None:
            return
        self._num_classes, self._classnames = len(names), list(names)
        self._lab2cname = dict(enumerate(names))
        seen = {item.label for item in self.train_x}
        unseen = Counter(item.label for item in self.test if item.label not in seen)
        for label, n in sorted(unseen.items()):
            print(f"WARNING: class {label} ({names[label]}) has {n} target clips but no source training clip: the "
                  "model cannot learn it, so these clips count as errors.")

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


def check_val_ratio(ratio: float) -> None:
    if not 0 <= ratio < 1:
        raise ValueError(f"DATASET.VAL_RATIO is {ratio:g}: it is the share of source clips held out for validation, "
                         "between 0 and 1 (0.3 in the paper; 0 = no validation split)")


def split_provenance(keys: Sequence[str], labels: Sequence[int], list_name: str) -> Dict:
    """What a split is made from, as its file records it: the list, its clip count and a hash of its clips."""
    digest = hashlib.sha256("\n".join(sorted(f"{k} {y}" for k, y in zip(keys, labels))).encode()).hexdigest()
    return {"list": list_name, "clips": len(keys), "sha256": digest}


def grouping_text(dataset, domain: str) -> str:
    """What a benchmark's `group_of` groups the clips of a domain by (`dataset`: a class or an instance)."""
    grouping = dataset.grouping
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

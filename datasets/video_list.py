"""VideoListDG: your own videos as a DG benchmark; the domains are named by your list files.

    <DATASET.ROOT>/<DATASET.VIDEO_LIST.FOLDER>/      ("" = DATASET.ROOT itself)
        classes.txt                  class names, one per line, in label order (label 0 first)
        <domain>.txt                 every clip of a domain (a source is split into train/val), or
        <domain>_train.txt, <domain>_val.txt [, <domain>_test.txt]    a domain with its own split
        ...                          the videos or frame folders, at the paths the lists give

A list line is `path label`, `path num_frames label` or `path num_frames label group` (one format per file;
num_frames 0 = let the reader count). `path` is relative to the folder and names a video file, a frame
folder (frames named by DATASET.FRAME_TMPL, img_{:05d}.jpg by default) or a clip cut from a longer video,
`video.mp4@start-stop` (frame indices, stop excluded).

A source domain with `<domain>_train.txt` and `<domain>_val.txt` trains and validates on them as they are;
one with `<domain>.txt` (or only a train list) is split by DATASET.VAL_RATIO and SPLIT_SEED, group-aware when
the lines carry a group or DATASET.VIDEO_LIST.GROUP_PATTERN names it, else clip by clip (with a warning: clips
of one recording on both sides inflate source-val accuracy). A target domain is tested on `<domain>_test.txt`,
else `<domain>.txt`, else its train and val lists together.
"""
import os
import os.path as osp
import re
from typing import Dict, List, Tuple

from defaults import CN, config_defaults
from framework import DATASET_REGISTRY
from video.datum import VideoDatum
from video.listfile import ListEntry, parse_clip_list

from .base import DatasetNotFoundError, shared_groups
from .list_dataset import CLASSES_FILE, PreparedVideoDGDataset, clip_key, read_classes, split_range

SPLIT_LIST = re.compile(r"(?P<domain>.+)_(?P<split>train|val|test)\.txt")


@config_defaults
def _video_list_defaults(cfg) -> None:
    cfg.DATASET.VIDEO_LIST = CN()  # VideoListDG: your own videos (datasets/video_list.py)
    cfg.DATASET.VIDEO_LIST.FOLDER = ""  # folder under DATASET.ROOT with classes.txt and the lists ("" = ROOT)
    # A regular expression searched in each clip's path (without extension); its group named `group`, else its
    # first group, else the whole match names the recording the clip comes from: clips of one recording stay
    # on one side of the train/val split. E.g. "(.+)_c\d+$" for UCF101-style names v_X_g01_c02.
    cfg.DATASET.VIDEO_LIST.GROUP_PATTERN = ""


@DATASET_REGISTRY.register()
class VideoListDG(PreparedVideoDGDataset):
    dataset_dir = ""  # DATASET.VIDEO_LIST.FOLDER, read in find_domains
    prepare_hint = ('Write classes.txt and one list file per domain (<domain>.txt, or <domain>_train.txt and '
                    '<domain>_val.txt) into it (docs/datasets.md, "Your own videos").')

    # ------------------------------------------------------------------ the folder's files
    def find_domains(self) -> None:
        self.dataset_dir = osp.normpath(osp.join(self.dataset_dir, self.cfg.DATASET.VIDEO_LIST.FOLDER))
        if not osp.isdir(self.dataset_dir):
            raise DatasetNotFoundError(f'Dataset folder not found: "{self.dataset_dir}" (DATASET.ROOT joined with '
                                       f"DATASET.VIDEO_LIST.FOLDER). {self.prepare_hint}")
        self.files: Dict[str, Dict[str, str]] = {}  # domain -> {"all" | "train" | "val" | "test": path}
        for name in sorted(os.listdir(self.dataset_dir)):
            path = osp.join(self.dataset_dir, name)
            if name == CLASSES_FILE or not name.endswith(".txt") or not osp.isfile(path):
                continue
            match = SPLIT_LIST.fullmatch(name)
            domain, split = (match.group("domain"), match.group("split")) if match else (name[:-4], "all")
            self.files.setdefault(domain, {})[split] = path
        if not self.files:
            raise DatasetNotFoundError(f'"{self.dataset_dir}" has no list files (<domain>.txt). {self.prepare_hint}')
        self.domains = sorted(self.files)
        self.groups: Dict[str, str] = {}  # clip key -> group, from the lists' group column
        self.grouping: Dict[str, str] = {}  # domain -> what its split groups by (recorded in the split file)
        pattern = self.cfg.DATASET.VIDEO_LIST.GROUP_PATTERN
        try:
            self.group_pattern = re.compile(pattern) if pattern else None
        except re.error as e:
            raise ValueError(f"DATASET.VIDEO_LIST.GROUP_PATTERN {pattern!r} is not a regular expression ({e})") from None

    def prepare(self) -> None:
        if not osp.isfile(osp.join(self.dataset_dir, CLASSES_FILE)):
            raise DatasetNotFoundError(f'"{self.dataset_dir}" has no {CLASSES_FILE} (class names, one per line, in '
                                       f"label order). {self.prepare_hint}")
        self.prepared_classes = read_classes(self.dataset_dir)
        self.frame_tmpl = self.cfg.DATASET.FRAME_TMPL

    def list_name(self, domain: str) -> str:
        files = self.files[domain]
        return osp.basename(files.get("all") or files["train"])

    def parse_list(self, list_file: str) -> List[ListEntry]:
        lines = parse_clip_list(list_file)
        for line in lines:
            if line.group is not None:
                self.groups[clip_key(*split_range(line.path))] = line.group
        return [ListEntry(line.path, line.num_frames, line.label) for line in lines]

    # ------------------------------------------------------------------ splits
    def source_items(self, domain: str, domain_label: int) -> Tuple[List[VideoDatum], List[VideoDatum]]:
        files = self.files[domain]
        if "train" in files and "val" in files:
            train = self.read_list(files["train"], domain, domain_label)
            val = self.read_list(files["val"], domain, domain_label)
            self.check_given_split(domain, train, val)
            print(f"The {domain} train/val split is the one of {osp.basename(files['train'])} and "
                  f"{osp.basename(files['val'])} ({len(val)} of {len(train) + len(val)} clips in val; "
                  "DATASET.VAL_RATIO does not apply)")
            return train, val
        items = self.read_list(files.get("all") or files["train"], domain, domain_label)
        self.grouping[domain] = self.describe_grouping(domain, items)
        return self.source_split(domain, items)

    def target_items(self, domain: str, domain_label: int) -> List[VideoDatum]:
        files = self.files[domain]
        for split in ("test", "all"):
            if split in files:
                return self.read_list(files[split], domain, domain_label)
        return [item for split in ("train", "val") if split in files
                for item in self.read_list(files[split], domain, domain_label)]

    def group_of(self, domain: str, key: str) -> str:
        if key in self.groups:
            return self.groups[key]
        match = self.group_pattern.search(key) if self.group_pattern else None
        if match is None:
            return key
        if "group" in match.groupdict():
            return match.group("group")
        return match.group(1) if match.groups() else match.group(0)

    def describe_grouping(self, domain: str, items: List[VideoDatum]) -> str:
        """What the split of a domain groups by, with a warning when nothing says which clips belong together."""
        keys = [self.item_key(item) for item in items]
        with_column = sum(key in self.groups for key in keys)
        if with_column == len(keys):
            return "the group column of the list"
        if self.group_pattern is not None:
            unmatched = [key for key in keys if key not in self.groups and not self.group_pattern.search(key)]
            if unmatched:
                print(f"WARNING: DATASET.VIDEO_LIST.GROUP_PATTERN {self.group_pattern.pattern!r} matches no part of "
                      f'{len(unmatched)} of the {len(keys)} {domain} clips (e.g. "{unmatched[0]}"): each of those is '
                      "its own group.")
            return f"DATASET.VIDEO_LIST.GROUP_PATTERN {self.group_pattern.pattern!r}"
        print(f"WARNING: {self.list_name(domain)} is split into train/val clip by clip: its lines have no group column "
              "and DATASET.VIDEO_LIST.GROUP_PATTERN is empty. If several clips come from one recording (one long "
              "video, one performer, one session), name it so that they stay on one side; otherwise source-val "
              "accuracy is inflated by near-duplicates of training clips.")
        return "each clip is its own group (no group column, no DATASET.VIDEO_LIST.GROUP_PATTERN)"

    def check_given_split(self, domain: str, train: List[VideoDatum], val: List[VideoDatum]) -> None:
        """A clip in both lists is refused; groups on both sides (when the lists name them) are reported."""
        train_keys, val_keys = [self.item_key(i) for i in train], [self.item_key(i) for i in val]
        both = sorted(set(train_keys) & set(val_keys))
        if both:
            raise ValueError(f'{len(both)} clips of domain "{domain}" are in both its train and val lists (e.g. '
                             f'"{both[0]}"): validation would select the model on training clips. Remove them from '
                             "one of the two lists.")
        if self.groups or self.group_pattern:
            n_groups, n_clips = shared_groups(train_keys + val_keys, val_keys, lambda k: self.group_of(domain, k))
            if n_groups:
                print(f"WARNING: the given {domain} split is not group-aware: {n_clips} of its {len(val_keys)} val "
                      f"clips come from {n_groups} groups that also have clips in train.")

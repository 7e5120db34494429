"""Finding runs on disk and reading what each one saved: config.yaml (the merged config) and results.json.

A run folder is a train.py OUTPUT_DIR. It counts as finished once results.json exists (written after the
final evaluation); a folder with config.yaml but no results.json is unfinished (still training, or killed).
Runs are compared by their *setting*: the flattened config without the keys that name where or with which
seed a run was made (IGNORED_KEYS), so that seed runs of one setting group together and anything else
(another epoch count, learning rate, T_max, ...) keeps runs apart.
"""
import glob
import json
import os
import os.path as osp
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import yaml

# Keys that differ between seed runs of one setting, say where things are on disk, or only change what is
# logged and drawn.
IGNORED_KEYS = ("SEED", "OUTPUT_DIR", "RESUME", "DATASET.ROOT", "VERBOSE", "DATALOADER.NUM_WORKERS",
                "TRAIN.PRINT_FREQ", "TRAIN.CHECKPOINT_FREQ", "TEST.FIGURES")

# The rows of results.json for the oracle criterion (DATASET.ORACLE_HOLDOUT, trainers/results.py), last-epoch
# model: its selection score on the held-out target clips, and what it reports, on the reported target clips.
# Target-selected numbers: only tables titled oracle show them.
ORACLE_HOLDOUT = "oracle holdout"
ORACLE_TARGET = "oracle target"
ORACLE_SPLITS = (ORACLE_HOLDOUT, ORACLE_TARGET)


class Run(NamedTuple):
    path: str
    config: Optional[Dict]  # flattened config.yaml ({"OPTIM.LR": 0.002, ...}); None when the run has none
    results: Optional[List[Dict]]  # rows of results.json; None when the run is unfinished

    @property
    def finished(self) -> bool:
        return self.results is not None

    @property
    def seed(self):
        return None if self.config is None else self.config.get("SEED")

    def setting(self) -> Tuple:
        """Hashable setting of the run: every config key but IGNORED_KEYS."""
        if self.config is None:
            return ("<no config.yaml>",)
        return tuple(sorted((k, _hashable(v)) for k, v in self.config.items() if k not in IGNORED_KEYS))

    def row(self, split: str, domain: str) -> Optional[Dict]:
        for row in self.results or []:
            if row["split"] == split and row["domain"] == domain:
                return row
        return None


def _hashable(value):
    return tuple(_hashable(v) for v in value) if isinstance(value, (list, tuple)) else value


def flatten(node: Dict, prefix: str = "") -> Dict:
    flat = {}
    for key, value in node.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def load_run(path: str) -> Run:
    config = results = None
    cfg_path, res_path = osp.join(path, "config.yaml"), osp.join(path, "results.json")
    if osp.isfile(cfg_path):
        with open(cfg_path) as f:
            config = flatten(yaml.safe_load(f) or {})
    if osp.isfile(res_path):
        with open(res_path) as f:
            results = json.load(f)
    return Run(path, config, results)


def is_run_dir(path: str) -> bool:
    return osp.isfile(osp.join(path, "config.yaml")) or osp.isfile(osp.join(path, "results.json"))


def find_runs(directory: str, recursive: bool = False) -> List[Run]:
    """Runs directly below `directory` (its seed folders), or anywhere below it with recursive=True."""
    if not osp.isdir(directory):
        raise FileNotFoundError(f'"{directory}" is not a folder: pass the folder that holds the run folders')
    if recursive:
        dirs = sorted(root for root, _, files in os.walk(directory) if "config.yaml" in files or "results.json" in files)
    else:
        dirs = sorted(d for d in glob.glob(osp.join(directory, "*")) if osp.isdir(d) and is_run_dir(d))
    return [load_run(d) for d in dirs]


def differing_keys(runs: Sequence[Run]) -> List[str]:
    """Config keys (not IGNORED_KEYS) whose value is not the same in all runs."""
    configs = [r.config or {} for r in runs]
    keys = sorted(set().union(*configs) - set(IGNORED_KEYS))
    return [k for k in keys if len({repr(c.get(k, "<absent>")) for c in configs}) > 1]


def group_by_setting(runs: Sequence[Run]) -> List[List[Run]]:
    groups: Dict[Tuple, List[Run]] = {}
    for run in runs:
        groups.setdefault(run.setting(), []).append(run)
    return list(groups.values())


def describe_groups(groups: Sequence[Sequence[Run]]) -> str:
    """One line per group: its folders and its values of the keys that tell the groups apart."""
    keys = differing_keys([r for g in groups for r in g])
    lines = []
    for i, group in enumerate(groups, 1):
        values = ", ".join(f"{k}={(group[0].config or {}).get(k, '<absent>')}" for k in keys) or "no config.yaml"
        names = ", ".join(osp.relpath(r.path) for r in group)
        lines.append(f"  setting {i} ({values}): {names}")
    return "\n".join(lines)

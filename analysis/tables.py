"""Tables from finished runs: the mean +- std over seed runs of one setting, and the paper's layouts.

`seed_summary` is one row per split/domain of results.json with n, mean, std and the per-seed values.
`paper_table` arranges a grid of run folders as the paper's Tables 1, 3, 4 and 5 (rows = models, columns =
tasks, each cell "without / with ADA" with an arrow) and `variants_table` as Table 2 (rows = model + ADA
variant). What a run is (model row, ADA variant, task) is read from its config.yaml (`describe_run`).
"""
import csv
import functools
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from tabulate import tabulate

from analysis.runs import ORACLE_SPLITS, Run, describe_groups, group_by_setting


class ModelRow(NamedTuple):
    name: str  # the paper's row name
    with_ada: str  # the variant of the paper's "with ADA" column for this model (Table 1: ADA* for APN)
    # The model's own name for the classifier's input, which ADA's LEVELS also accepts as last_hidden: ADA
    # (Volpi et al.'s, on the last hidden layer) is LEVELS last_hidden or this level alone.
    classifier_input: str = "last_hidden"


# The paper row of a model, by the name of its head or backbone (backbone first: a 3D backbone such as I3D is
# the model; a frame encoder is not listed, so the head decides). Add a model with one line.
MODEL_ROWS = OrderedDict([
    # name in MODEL.HEAD.NAME / MODEL.BACKBONE.NAME: its row
    ("tsn", ModelRow("TSN", "ADA")),
    ("trn", ModelRow("TRN", "ADA")),
    ("trn_attn", ModelRow("TRN-ATTN", "ADA")),
    ("frame_resnet50_tsm", ModelRow("TSM", "ADA")),  # TSM, I3D and Non-local are backbones under the tsn head
    ("frame_smallres_tsm", ModelRow("TSM", "ADA")),
    ("i3d_resnet50", ModelRow("I3D", "ADA")),
    ("i3d_resnet_small", ModelRow("I3D", "ADA")),
    ("nonlocal_resnet50", ModelRow("Non-local", "ADA")),
    ("nonlocal_resnet_small", ModelRow("Non-local", "ADA")),
    ("apn_pyramid", ModelRow("APN", "ADA*", classifier_input="III")),  # h reads R^III
    ("stdn", ModelRow("STDN", "ADA")),  # Lin et al. 2023: without = the STDN trainer; with ADA = VideoADA on the head
])

# Trainers that train without ADA whatever their config says (ERM; STDN: its own losses, no ADA).
ERM_TRAINERS = ("VideoVanilla", "STDN")


MISSING = "missing"
UP, DOWN = "\u2191", "\u2193"


class RunKey(NamedTuple):
    model: str  # paper row, e.g. "APN"
    variant: str  # "base", "ADA", "ADA*", "ADA[II]", or a trainer name for other DG methods
    task: str  # column, e.g. "ucf->hmdb" or "left->middle,right"


# Frame encoders that are not a setting's CNN: their runs get rows of their own, e.g. "APN (ViT-B/16)", so that
# one grid can hold a model on a ResNet and on a ViT side by side.
ENCODER_ROWS = {"frame_vit_tiny": "ViT-tiny", "frame_vit_b16": "ViT-B/16", "frame_vit_b16_clip": "CLIP ViT-B/16"}


def model_row(config: Dict) -> ModelRow:
    """The model's row from MODEL.BACKBONE.NAME / MODEL.HEAD.NAME."""
    backbone, head = config.get("MODEL.BACKBONE.NAME", ""), config.get("MODEL.HEAD.NAME", "")
    row = next((MODEL_ROWS[name] for name in (backbone, head) if name in MODEL_ROWS),
               ModelRow(head or backbone or "unknown", "ADA"))
    return row._replace(name=f"{row.name} ({ENCODER_ROWS[backbone]})") if backbone in ENCODER_ROWS else row


def ada_variant(config: Dict) -> str:
    trainer = config.get("TRAINER.NAME", "")
    levels = config.get(f"TRAINER.{trainer.upper()}.LEVELS")
    if trainer in ERM_TRAINERS:
        return "base"
    if levels is None:  # another DG method (e.g. VideoCrossGrad): its own row
        return trainer or "unknown"
    parts = [p for p in str(levels).split("+") if p]
    if not parts or parts == ["none"]:
        return "base"
    if len(parts) == 1:
        return "ADA" if parts[0] in ("last_hidden", model_row(config).classifier_input) else f"ADA[{parts[0]}]"
    return "ADA*"


def task_name(config: Dict, target: Optional[str] = None) -> str:
    sources = ",".join(config.get("DATASET.SOURCE_DOMAINS", []) or ["?"])
    targets = target or ",".join(config.get("DATASET.TARGET_DOMAINS", []) or ["?"])
    return f"{sources}->{targets}"


def describe_run(run: Run) -> RunKey:
    config = run.config or {}
    variant = ada_variant(config)
    if config.get("MODEL.BACKBONE.MIXSTYLE.LAYERS"):  # MixStyle, a frame-encoder option of any trainer: own row
        variant = "MixStyle" if variant == "base" else f"{variant} + MixStyle"
    return RunKey(model_row(config).name, variant, task_name(config))


# ---------------------------------------------------------------------------------------------- statistics
class Cell(NamedTuple):
    values: Dict  # seed -> value
    paths: List[str]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.values.values())))

    @property
    def std(self) -> float:  # population std, as Dassl's parse_test_res.py
        return float(np.std(list(self.values.values())))

    @property
    def sample_std(self) -> float:  # ddof 1, for the standard error over trials
        return float(np.std(list(self.values.values()), ddof=1)) if self.n > 1 else float("nan")

    def text(self, digits: int = 2, ci95: bool = False, spread: str = "std") -> str:
        """mean +- spread; spread "std" (population), "ci95" (or ci95=True), or "se": the standard error
        (sample std / sqrt(n)) with that std and n beside, as sweep.py collect reports trials."""
        if not self.n:
            return MISSING
        if spread == "se":
            if self.n == 1:
                return f"{self.mean:.{digits}f} (n 1)"
            se = self.sample_std / np.sqrt(self.n)
            return f"{self.mean:.{digits}f} +- {se:.{digits}f} (std {self.sample_std:.{digits}f}, n {self.n})"
        width = 1.96 * self.std / np.sqrt(self.n) if ci95 or spread == "ci95" else self.std
        return f"{self.mean:.{digits}f} +- {width:.{digits}f}"


def target_value(run: Run, target: Optional[str], metric: str, split: str = "target") -> Optional[float]:
    """The run's accuracy (or macro-F1) on one target domain, or pooled over its targets; `split` "oracle
    target" reads the last-epoch model's rows of the oracle criterion instead."""
    domains = (run.config or {}).get("DATASET.TARGET_DOMAINS", [])
    domain = target or ("pooled" if len(domains) > 1 else (domains[0] if domains else "pooled"))
    row = run.row(split, domain)
    return None if row is None else float(row[metric])


def seed_label(run: Run):
    return run.seed if run.seed is not None else osp.basename(run.path)


def seed_summary(runs: Sequence[Run], metrics: Sequence[str] = ("accuracy", "macro_f1"),
                 ci95: bool = False) -> List[Dict]:
    """Per split/domain row of results.json: n, mean, std of each metric over the runs, and per-seed values.
    The oracle rows (target-selected) are left out: sweep.py collect reports them in tables titled oracle."""
    table: "OrderedDict[Tuple[str, str], Dict]" = OrderedDict()
    for run in runs:
        for row in (r for r in run.results if r["split"] not in ORACLE_SPLITS):
            entry = table.setdefault((row["split"], row["domain"]), {m: {} for m in metrics})
            for m in metrics:
                entry[m][seed_label(run)] = float(row[m])
    out = []
    for (split, domain), entry in table.items():
        cells = {m: Cell(entry[m], []) for m in metrics}
        first = cells[metrics[0]]
        out.append({"split": split, "domain": domain, "n": first.n,
                    **{m: cells[m].text(ci95=ci95) for m in metrics},
                    "per seed": ", ".join(f"{s}: {v:.2f}" for s, v in first.values.items())})
    return out


# ---------------------------------------------------------------------------------------------- the grid
class Grid(NamedTuple):
    cells: Dict[RunKey, Cell]
    unfinished: List[Run]
    skipped: List[str]  # why a run was left out


def collect_grid(runs: Sequence[Run], metric: str = "accuracy", per_target: bool = False,
                 split: str = "target") -> Grid:
    """Group finished runs by (model, variant, task); each cell holds the `split` rows (target, or the oracle's
    "oracle target"). Refuses (ValueError) a cell whose runs differ in any setting other than the seed: such runs
    must not be averaged (drop one setting with --exclude)."""
    unfinished = [r for r in runs if not r.finished]
    skipped = [f"{r.path}: no config.yaml, so model and task are unknown" for r in runs if r.finished and r.config is None]
    by_key: Dict[RunKey, List[Tuple[Run, Optional[str]]]] = OrderedDict()
    for run in runs:
        if not run.finished or run.config is None:
            continue
        targets = run.config.get("DATASET.TARGET_DOMAINS", []) if per_target else [None]
        for target in targets:
            key = describe_run(run)._replace(task=task_name(run.config, target))
            by_key.setdefault(key, []).append((run, target))
    cells, mixed = OrderedDict(), []
    for key, members in by_key.items():
        groups = group_by_setting([r for r, _ in members])
        if len(groups) > 1:
            mixed.append(f"{key.model} / {key.variant} / {key.task}:\n{describe_groups(groups)}")
            continue
        values, paths = {}, []
        for run, target in members:
            value = target_value(run, target, metric, split)
            if value is None:
                skipped.append(f"{run.path}: results.json has no {split} row for {target or 'its targets'}")
                continue
            seed = seed_label(run)
            if seed in values:
                raise ValueError(f'Two runs of {key.model} / {key.variant} / {key.task} with seed {seed}: '
                                 f'"{paths[list(values).index(seed)]}" and "{run.path}"; remove one')
            values[seed] = value
            paths.append(run.path)
        cells[key] = Cell(values, paths)
    if mixed:
        raise ValueError("Runs of one table cell differ in settings other than the seed, so their mean would "
                         "mix settings. Leave one setting out with --exclude SUBSTRING (or give it its own "
                         "grid folder):\n" + "\n".join(mixed))
    return Grid(cells, unfinished, skipped)


def ordered(items, order: Sequence[str]) -> List[str]:
    """items in the order of `order` first, then the rest alphabetically."""
    items = list(dict.fromkeys(items))
    return [o for o in order if o in items] + sorted(i for i in items if i not in order)


@functools.lru_cache(maxsize=1)
def benchmark_domains() -> List[List[str]]:
    """Each benchmark's domains in the order of the paper's columns (U->H before H->U, ...): the `domains` of
    each dataset class (datasets/), the one place that lists them."""
    import datasets  # noqa: F401  (registers the dataset classes: imported only when a table is ordered)
    from framework import DATASET_REGISTRY

    classes = [DATASET_REGISTRY.get(name) for name in DATASET_REGISTRY.registered_names()]
    return [list(cls.domains) for cls in classes if getattr(cls, "domains", None)]


def task_order(tasks) -> List[str]:
    """Tasks in the order of their benchmark's domains (the first dataset class that has every domain of the
    tasks); unknown domains last, then by name."""
    tasks = list(dict.fromkeys(tasks))
    used = {d for task in tasks for d in task.replace("->", ",").split(",")}
    order = next((domains for domains in benchmark_domains() if used <= set(domains)), [])

    def key(task: str):
        source, targets = task.split("->")
        return [order.index(d) if d in order else len(order) for d in [source, *targets.split(",")]], task
    return sorted(tasks, key=key)


def task_labels(tasks: Sequence[str]) -> List[str]:
    """The paper's short column names (U->H, L->M,R) when the domains' initials are unique, else the names."""
    domains = {d for t in tasks for d in t.replace("->", ",").split(",")}
    if len({d[:1].upper() for d in domains}) < len(domains):
        return list(tasks)
    return [",".join(d[:1].upper() for d in t.split("->")[0].split(",")) + "->"
            + ",".join(d[:1].upper() for d in t.split("->")[1].split(",")) for t in tasks]


def average_cell(cells: Sequence[Optional[Cell]]) -> Optional[Cell]:
    """Mean over tasks, per seed (seeds present in every task), so the std is over seeds of the average.
    None (missing) when a task is missing or no seed ran every task."""
    if not cells or any(c is None or c.n == 0 for c in cells):
        return None
    seeds = [s for s in cells[0].values if all(s in c.values for c in cells)]
    if not seeds:
        return None
    return Cell({s: float(np.mean([c.values[s] for c in cells])) for s in seeds}, [])


def _model_order() -> List[str]:
    return list(OrderedDict.fromkeys(row.name for row in MODEL_ROWS.values()))


def paper_table(grid: Grid, digits: int = 2, spread: str = "std") -> Tuple[List[str], List[List[str]]]:
    """Tables 1/3/4/5: one row per model, per task "without / with ADA" + arrow, and the average."""
    tasks = task_order(k.task for k in grid.cells)
    models = ordered((k.model for k in grid.cells), _model_order())
    with_variant = {row.name: row.with_ada for row in MODEL_ROWS.values()}
    headers = ["model", *task_labels(tasks), "average"]
    rows = []
    for model in models:
        with_name = with_variant.get(model, "ADA")
        line, base_cells, ada_cells = [f"{model} (without / with {with_name})"], [], []
        for task in tasks:
            base = grid.cells.get(RunKey(model, "base", task))
            ada = grid.cells.get(RunKey(model, with_name, task))
            base_cells.append(base)
            ada_cells.append(ada)
            line.append(pair_text(base, ada, digits, spread))
        line.append(pair_text(average_cell(base_cells), average_cell(ada_cells), digits, spread))
        rows.append(line)
    return headers, rows


def pair_text(base: Optional[Cell], ada: Optional[Cell], digits: int, spread: str = "std") -> str:
    left = base.text(digits, spread=spread) if base else MISSING
    right = ada.text(digits, spread=spread) if ada else MISSING
    arrow = ""
    if base and ada and base.n and ada.n and round(ada.mean, digits) != round(base.mean, digits):
        arrow = " " + (UP if ada.mean > base.mean else DOWN)  # no arrow where the shown means are equal
    return f"{left} / {right}{arrow}"


def variant_label(model: str, variant: str) -> str:
    return model if variant == "base" else f"{model} + {variant}"


def variant_rows(grid: Grid) -> Tuple[List[str], List[Tuple[str, List[Optional[Cell]]]]]:
    """Table 2's rows, before formatting: the tasks in the paper's order, and per model and variant (base,
    + ADA, + ADA*, then any other variant) its label and one cell per task (None where no run finished)."""
    tasks = task_order(k.task for k in grid.cells)
    models = ordered((k.model for k in grid.cells), _model_order())
    rows = []
    for model in models:
        variants = ordered((k.variant for k in grid.cells if k.model == model), ["base", "ADA", "ADA*"])
        for variant in ordered(variants + ["base", "ADA", "ADA*"], ["base", "ADA", "ADA*"]):
            rows.append((variant_label(model, variant), [grid.cells.get(RunKey(model, variant, t)) for t in tasks]))
    return tasks, rows


def variants_table(grid: Grid, digits: int = 2, spread: str = "std") -> Tuple[List[str], List[List[str]]]:
    """Table 2: one row per model and ADA variant (base, + ADA, + ADA*, then any other variant)."""
    tasks, cell_rows = variant_rows(grid)
    headers = ["model", *task_labels(tasks), "average", "n (seeds)"]
    rows = []
    for label, cells in cell_rows:
        avg = average_cell(cells)
        counts = "/".join(str(c.n) if c else "0" for c in cells)
        rows.append([label, *[c.text(digits, spread=spread) if c else MISSING for c in cells],
                     avg.text(digits, spread=spread) if avg else MISSING, counts])
    return headers, rows


def write_table(prefix: str, headers: Sequence[str], rows: Sequence[Sequence[str]],
                formats: Sequence[str] = ("md", "csv", "tex"), title: str = "") -> str:
    """Write a table as PREFIX.md (GitHub Markdown), PREFIX.csv and PREFIX.tex (LaTeX tabular), those of
    `formats`; returns the Markdown. A title goes above the Markdown table and into the LaTeX file as a
    comment, so that a file read alone still says what it holds (an oracle table says oracle)."""
    markdown = tabulate(rows, headers=headers, tablefmt="github")
    if "md" in formats:
        with open(prefix + ".md", "w") as f:
            f.write((f"{title}\n\n" if title else "") + markdown + "\n")
    if "csv" in formats:
        with open(prefix + ".csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(headers)
            writer.writerows(rows)
    if "tex" in formats:
        with open(prefix + ".tex", "w") as f:
            f.write((f"% {title}\n" if title else "") + tabulate(rows, headers=headers, tablefmt="latex") + "\n")
    return markdown

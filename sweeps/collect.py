"""A sweep's results: per method and task, the hyperparameter draw chosen by a selection criterion, and the
target accuracy of that draw's trials as mean +- standard error (std and n beside).

Criterion `source_val` (training-domain validation, DomainBed's default): each run's epoch is the one its
source validation split chose (TEST.FINAL_MODEL best_val), and the draw is the one whose trials have the
highest mean source validation accuracy (ties: the lower draw index, so the defaults win a tie).

Tables: per method (rows = methods, columns = tasks and their average), and the paper's layouts of
analysis/tables.py (`paper`: Tables 1, 3-5; `variants`: Table 2), each as Markdown, CSV and LaTeX, with the
chosen hyperparameters of every cell in hparams_<criterion>.{md,json} beside them.
"""
import json
import os
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from tabulate import tabulate

from analysis.runs import Run, describe_groups, group_by_setting, load_run
from analysis.tables import (Cell, average_cell, collect_grid, paper_table, task_labels, variants_table,
                             write_table)

CRITERIA = ("source_val",)
SPREAD = "se"


class Trial(NamedTuple):
    record: Dict  # the run's sweep.json: method, task, hparam, seed, drawn
    run: Run


class Choice(NamedTuple):
    method: str
    task: str
    hparam: int
    drawn: Dict
    score: float  # the criterion's value of the chosen draw (mean source val accuracy)
    trials: List[Trial]
    candidates: Dict[int, Tuple[float, int]]  # draw -> (score, trials)


def source_val_accuracy(run: Run) -> Optional[float]:
    """Accuracy on the source validation split: pooled over the sources, or the one source's row."""
    rows = [r for r in run.results or [] if r["split"] == "source val"]
    pooled = [r for r in rows if r["domain"] == "pooled"]
    row = pooled[0] if pooled else rows[0] if len(rows) == 1 else None
    return None if row is None else float(row["accuracy"])


def check_cells(trials: Sequence[Trial]) -> None:
    """Refuse (ValueError) a draw whose trials differ in anything but the seed, or two runs of one seed: such
    runs were made by different sweep commands into one --out (as parse_test_res.py refuses mixed settings)."""
    cells: Dict[Tuple, List[Trial]] = OrderedDict()
    for trial in trials:
        key = (trial.record["method"], trial.record["task"], trial.record["hparam"])
        cells.setdefault(key, []).append(trial)
    mixed = []
    for (method, task, hparam), members in cells.items():
        groups = group_by_setting([t.run for t in members])
        seeds = [t.record["seed"] for t in members]
        if len(groups) > 1 or len(set(seeds)) != len(seeds):
            mixed.append(f"{method} / {task} / draw {hparam}:\n{describe_groups(groups)}")
    if mixed:
        raise ValueError("Runs of one method, task and draw differ in settings other than the seed: they come from "
                         "different sweep commands. Collect with that command's options (--methods ... -- KEY VALUE) "
                         "to take its runs only, or give each command its own --out:\n" + "\n".join(mixed))


def select(trials: Sequence[Trial], criterion: str = "source_val") -> List[Choice]:
    """One Choice per (method, task), in the order the trials come."""
    if criterion not in CRITERIA:
        raise ValueError(f"Unknown selection criterion {criterion!r}: use {', '.join(CRITERIA)}")
    by_cell: Dict[Tuple[str, str], Dict[int, List[Trial]]] = OrderedDict()
    for trial in trials:
        cell = by_cell.setdefault((trial.record["method"], trial.record["task"]), {})
        cell.setdefault(trial.record["hparam"], []).append(trial)
    choices = []
    for (method, task), draws in by_cell.items():
        candidates = {}
        for hparam, members in sorted(draws.items()):
            scores = [s for s in (source_val_accuracy(t.run) for t in members) if s is not None]
            if scores:
                candidates[hparam] = (sum(scores) / len(scores), len(scores))
        if not candidates:
            continue
        best = max(candidates, key=lambda h: (candidates[h][0], -h))
        members = sorted(draws[best], key=lambda t: t.record["seed"])
        choices.append(Choice(method, task, best, members[0].record["drawn"], candidates[best][0], members,
                              candidates))
    return choices


def target_cell(trials: Sequence[Trial]) -> Cell:
    values = {}
    for trial in trials:
        row = trial.run.row("target", "pooled") or next(
            (r for r in trial.run.results if r["split"] == "target"), None)
        if row is not None:
            values[trial.record["seed"]] = float(row["accuracy"])
    return Cell(values, [t.run.path for t in trials])


def method_table(choices: Sequence[Choice], digits: int = 2) -> Tuple[List[str], List[List[str]]]:
    """Rows = methods, columns = tasks (as given) and their average (per seed over the tasks)."""
    tasks = list(OrderedDict.fromkeys(c.task for c in choices))
    methods = list(OrderedDict.fromkeys(c.method for c in choices))
    cells = {(c.method, c.task): target_cell(c.trials) for c in choices}
    rows = []
    for method in methods:
        line = [cells.get((method, t)) for t in tasks]
        average = average_cell(line) if len(tasks) > 1 else None
        rows.append([method, *[c.text(digits, spread=SPREAD) if c else "missing" for c in line]]
                    + ([average.text(digits, spread=SPREAD) if average else "missing"] if len(tasks) > 1 else []))
    return ["method", *task_labels(tasks)] + (["average"] if len(tasks) > 1 else []), rows


def hparam_rows(choices: Sequence[Choice]) -> List[Dict]:
    return [{"method": c.method, "task": c.task, "draw": c.hparam,
             "hyperparameters": c.drawn or "the config's own (draw 0)",
             "source val (mean over trials)": round(c.score, 2), "trials": len(c.trials),
             "every draw: source val (trials)": ", ".join(f"{h}: {s:.2f} ({n})" for h, (s, n) in c.candidates.items()),
             "runs": [t.run.path for t in c.trials]} for c in choices]


def write_hparams(prefix: str, choices: Sequence[Choice]) -> str:
    rows = hparam_rows(choices)
    with open(prefix + ".json", "w") as f:
        json.dump(rows, f, indent=1)
    shown = [{k: (", ".join(f"{a}={b}" for a, b in v.items()) if isinstance(v, dict) else v)
              for k, v in row.items() if k != "runs"} for row in rows]
    markdown = tabulate(shown, headers="keys", tablefmt="github")
    with open(prefix + ".md", "w") as f:
        f.write(markdown + "\n")
    return markdown


def collect(trials: Sequence[Trial], out_dir: str, title: str, criterion: str = "source_val",
            digits: int = 2) -> List[str]:
    """Select, write every table and the chosen hyperparameters into out_dir; returns the text to print."""
    check_cells(trials)
    choices = select(trials, criterion)
    if not choices:
        raise ValueError("No finished run with a source validation row: nothing to select from")
    os.makedirs(out_dir, exist_ok=True)
    chosen_runs = [t.run for c in choices for t in c.trials]
    grid = collect_grid(chosen_runs)  # refuses, as parse_test_res.py, a cell that mixes settings
    lines = [f"{title}; selection: {criterion}; mean +- standard error over trials (sample std, n)"]
    for name, (headers, rows) in (("methods", method_table(choices, digits)),
                                  ("paper", paper_table(grid, digits, spread=SPREAD)),
                                  ("variants", variants_table(grid, digits, spread=SPREAD))):
        prefix = osp.join(out_dir, f"{name}_{criterion}")
        lines += ["", f"== {name} ({prefix}.md, .csv, .tex)", write_table(prefix, headers, rows)]
    prefix = osp.join(out_dir, f"hparams_{criterion}")
    lines += ["", f"== chosen hyperparameters ({prefix}.md, .json)", write_hparams(prefix, choices)]
    return lines


def load_trials(folders: Sequence[str]) -> List[Trial]:
    """Finished runs among the folders, with their sweep.json."""
    from sweeps.plan import SWEEP_FILE

    trials = []
    for folder in folders:
        record_path = osp.join(folder, SWEEP_FILE)
        run = load_run(folder)
        if run.finished and osp.isfile(record_path):
            with open(record_path) as f:
                trials.append(Trial(json.load(f), run))
    return trials


def sweep_folders(directory: str) -> List[str]:
    from sweeps.plan import SWEEP_FILE

    return sorted(root for root, _, files in os.walk(directory) if SWEEP_FILE in files)

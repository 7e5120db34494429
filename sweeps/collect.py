"""A sweep's results: per method and task, the hyperparameter draw chosen by a selection criterion, and the
target accuracy of that draw's trials as mean +- standard error (std and n beside).

Criteria, as DomainBed's:

- `source_val` (training-domain validation, the default): each run's epoch is the one its source validation
  split chose (TEST.FINAL_MODEL best_val), and the draw is the one whose trials have the highest mean source
  validation accuracy;
- `oracle` (test-domain validation): runs with DATASET.ORACLE_HOLDOUT > 0 score their last-epoch model on the
  held-out share of each target domain; the draw is the one whose trials score highest there, reported at the
  last epoch on the other target clips. A target-selected number: an upper reference, never a DG result, so its
  tables and files say oracle.

Ties go to the lower draw index, so to the defaults (draw 0). Leave-one-domain-out validation is not offered:
see docs/sweeps.md.

Tables per criterion: per method (rows = methods, columns = tasks and their average), and the paper's layouts
of analysis/tables.py (`paper`: Tables 1, 3-5; `variants`: Table 2), each as Markdown, CSV and LaTeX, with the
chosen hyperparameters of every cell in hparams_<criterion>.{md,json} beside them.
"""
import json
import os
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from tabulate import tabulate

from analysis.runs import ORACLE_HOLDOUT, ORACLE_TARGET, Run, describe_groups, group_by_setting, load_run
from analysis.tables import (Cell, average_cell, collect_grid, paper_table, task_labels, variants_table,
                             write_table)

SPREAD = "se"
LAYOUTS = {"paper": paper_table, "variants": variants_table}


class Criterion(NamedTuple):
    name: str  # in the file names: methods_<name>.md
    score_split: str  # the results.json split whose accuracy chooses the draw
    report_split: str  # the split whose accuracy the tables report
    title: str  # what the tables' title says about the selection


CRITERIA = OrderedDict((c.name, c) for c in (
    Criterion("source_val", "source val", "target",
              "selection: training-domain validation (the draw with the best mean source-val accuracy, each run at "
              "its best source-val epoch)"),
    Criterion("oracle", ORACLE_HOLDOUT, ORACLE_TARGET,
              "ORACLE, target-domain selection, not a domain generalization result (the draw with the best mean "
              "accuracy on the held-out share of each target domain, each run at its last epoch, scored on the "
              "other target clips)"),
))


class Trial(NamedTuple):
    record: Dict  # the run's sweep.json: method, task, hparam, seed, drawn
    run: Run


class Choice(NamedTuple):
    method: str
    task: str
    hparam: int
    drawn: Dict
    score: float  # the criterion's value of the chosen draw (mean over its trials)
    trials: List[Trial]
    candidates: Dict[int, Tuple[float, int]]  # draw -> (score, trials)


def split_accuracy(run: Run, split: str) -> Optional[float]:
    """Accuracy on a split of results.json: its pooled row, or the row of its one domain."""
    rows = [r for r in run.results or [] if r["split"] == split]
    pooled = [r for r in rows if r["domain"] == "pooled"]
    row = pooled[0] if pooled else rows[0] if len(rows) == 1 else None
    return None if row is None else float(row["accuracy"])


def available_criteria(trials: Sequence[Trial]) -> List[str]:
    """The criteria the runs can be selected by: source_val, and oracle where runs hold an oracle holdout."""
    return [c.name for c in CRITERIA.values() if any(split_accuracy(t.run, c.score_split) is not None
                                                     for t in trials)]


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
    score_split = CRITERIA[criterion].score_split
    by_cell: Dict[Tuple[str, str], Dict[int, List[Trial]]] = OrderedDict()
    for trial in trials:
        cell = by_cell.setdefault((trial.record["method"], trial.record["task"]), {})
        cell.setdefault(trial.record["hparam"], []).append(trial)
    choices = []
    for (method, task), draws in by_cell.items():
        candidates = {}
        for hparam, members in sorted(draws.items()):
            scores = [s for s in (split_accuracy(t.run, score_split) for t in members) if s is not None]
            if scores:
                candidates[hparam] = (sum(scores) / len(scores), len(scores))
        if not candidates:
            continue
        best = max(candidates, key=lambda h: (candidates[h][0], -h))
        members = sorted(draws[best], key=lambda t: t.record["seed"])
        choices.append(Choice(method, task, best, members[0].record["drawn"], candidates[best][0], members,
                              candidates))
    return choices


def report_cell(trials: Sequence[Trial], split: str = "target") -> Cell:
    """The trials' accuracy on `split`, pooled over the targets (or the one target's row), by seed."""
    values = {}
    for trial in trials:
        value = split_accuracy(trial.run, split)
        if value is not None:
            values[trial.record["seed"]] = value
    return Cell(values, [t.run.path for t in trials])


def run_budget(run: Run) -> str:
    """The budget a run trained under as its results.json records it (TRAIN.BUDGET), or "" before that rule."""
    row = next(iter(run.results or []), {})
    return row.get("budget_rule") or row.get("budget") or ""


def budgets_by_method(choices: Sequence[Choice]) -> Dict[str, str]:
    found: Dict[str, set] = OrderedDict()
    for choice in choices:
        found.setdefault(choice.method, set()).update(run_budget(t.run) for t in choice.trials)
    return OrderedDict((m, "; ".join(sorted(b for b in budgets if b))) for m, budgets in found.items())


def method_table(choices: Sequence[Choice], split: str = "target",
                 digits: int = 2) -> Tuple[List[str], List[List[str]]]:
    """Rows = methods, columns = tasks (as given) and their average (per seed over the tasks); a budget
    column when the methods' runs were trained under different budgets."""
    tasks = list(OrderedDict.fromkeys(c.task for c in choices))
    methods = list(OrderedDict.fromkeys(c.method for c in choices))
    cells = {(c.method, c.task): report_cell(c.trials, split) for c in choices}
    budgets = budgets_by_method(choices)
    budget_column = len(set(budgets.values())) > 1
    rows = []
    for method in methods:
        line = [cells.get((method, t)) for t in tasks]
        average = average_cell(line) if len(tasks) > 1 else None
        rows.append([method, *[c.text(digits, spread=SPREAD) if c else "missing" for c in line]]
                    + ([average.text(digits, spread=SPREAD) if average else "missing"] if len(tasks) > 1 else [])
                    + ([budgets[method] or "not recorded"] if budget_column else []))
    headers = ["method", *task_labels(tasks)] + (["average"] if len(tasks) > 1 else [])
    return headers + (["budget"] if budget_column else []), rows


def hparam_rows(choices: Sequence[Choice], criterion: Criterion) -> List[Dict]:
    score = f"{criterion.score_split} (mean over trials)"
    return [{"method": c.method, "task": c.task, "draw": c.hparam,
             "hyperparameters": c.drawn or "the config's own (draw 0)",
             score: round(c.score, 2), "trials": len(c.trials),
             f"every draw: {criterion.score_split} (trials)": ", ".join(f"{h}: {s:.2f} ({n})"
                                                                      for h, (s, n) in c.candidates.items()),
             "runs": [t.run.path for t in c.trials]} for c in choices]


def write_hparams(prefix: str, choices: Sequence[Choice], criterion: Criterion, title: str) -> str:
    rows = hparam_rows(choices, criterion)
    with open(prefix + ".json", "w") as f:
        json.dump({"criterion": criterion.name, "title": title, "cells": rows}, f, indent=1)
    shown = [{k: (", ".join(f"{a}={b}" for a, b in v.items()) if isinstance(v, dict) else v)
              for k, v in row.items() if k != "runs"} for row in rows]
    markdown = tabulate(shown, headers="keys", tablefmt="github")
    with open(prefix + ".md", "w") as f:
        f.write(f"{title}: the chosen hyperparameters\n\n{markdown}\n")
    return markdown


def collect(trials: Sequence[Trial], out_dir: str, title: str, criteria: Sequence[str] = ("source_val",),
            layouts: Sequence[str] = ("paper", "variants"), digits: int = 2) -> List[str]:
    """Per criterion: select, write every table and the chosen hyperparameters into out_dir; returns the text
    to print. ValueError when a criterion has nothing to select from or a cell mixes settings."""
    check_cells(trials)
    os.makedirs(out_dir, exist_ok=True)
    lines: List[str] = []
    for name in criteria:
        criterion = CRITERIA[name]
        choices = select(trials, name)
        if not choices:
            raise ValueError(f"No finished run has {criterion.score_split} rows, so nothing to select by {name}"
                             + (": launch the sweep with -- DATASET.ORACLE_HOLDOUT 0.2" if name == "oracle" else ""))
        budgets = sorted({b for b in budgets_by_method(choices).values() if b})
        heading = (f"{title}; {criterion.title}; mean +- standard error over trials (sample std, n)"
                   + (f"; budget: {budgets[0]}" if len(budgets) == 1 else ""))
        lines += ["", f"### {heading}"]
        grid = collect_grid([t.run for c in choices for t in c.trials], split=criterion.report_split)
        tables = [("methods", method_table(choices, criterion.report_split, digits))]
        tables += [(layout, LAYOUTS[layout](grid, digits, spread=SPREAD)) for layout in layouts]
        for table, (headers, rows) in tables:
            prefix = osp.join(out_dir, f"{table}_{name}")
            lines += ["", f"== {table} ({prefix}.md, .csv, .tex)",
                      write_table(prefix, headers, rows, title=f"{table} table: {heading}")]
        prefix = osp.join(out_dir, f"hparams_{name}")
        lines += ["", f"== chosen hyperparameters ({prefix}.md, .json)",
                  write_hparams(prefix, choices, criterion, heading)]
    return lines[1:]


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

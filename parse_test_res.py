"""Mean and spread over seed runs, and the paper's tables from a grid of runs.

    python parse_test_res.py output/synthetic_dg/studio/APN_ADAstar/smallcnn_cpu [--ci95]
    python parse_test_res.py --table paper output/ucf_hmdb [--per-target] [--exclude SUBSTRING ...]
    python parse_test_res.py --table variants output/ucf_hmdb

Without --table: the run folders directly in the folder (seed1, seed2, ...) must be one setting: their
config.yaml may differ only in the seed and the output/data paths. Mixed settings are refused (or, with
--split-settings, reported one table per setting); unfinished runs (no results.json) are named and left
out. Each split/domain row shows n, accuracy and macro-F1 as mean +- std (population std, as Dassl's
parse_test_res.py) over the seeds, and the accuracy of every seed.

With --table: every run below the folder is placed by its config.yaml (model row from the head/backbone
name, ADA variant from TRAINER.<name>.LEVELS, task from the domains); `paper` is the layout of Tables 1,
3-5 (each cell "without / with ADA" with an arrow), `variants` that of Table 2 (base, + ADA, + ADA*).
Cells are pooled target accuracy of the source-validation-selected model, mean +- std over seeds; missing
runs show as "missing". Markdown is printed and written with CSV to GRID/table_<layout>.{md,csv} (--out);
--figure PNG also draws the grid as a dot plot, one line per model and variant, with every seed.
"""
import argparse
import os.path as osp
import sys
from typing import List, Sequence

from tabulate import tabulate

from analysis.runs import Run, describe_groups, find_runs, group_by_setting
from analysis.tables import (average_cell, collect_grid, paper_table, seed_summary, task_labels, variant_rows,
                             variants_table, write_table)


def warn(message: str) -> None:
    print(f"Warning: {message}", file=sys.stderr)


def warn_selection(runs: Sequence[Run]) -> None:
    """Say when a run's model was not chosen on the source validation split (Section 5.1)."""
    last = [r.path for r in runs if r.config and r.config.get("TEST.FINAL_MODEL", "best_val") != "best_val"]
    if last:
        warn(f"{len(last)} run(s) report the last epoch (TEST.FINAL_MODEL is not best_val), not the "
             "source-val-selected one: " + ", ".join(last))


def split_finished(runs: Sequence[Run]) -> List[Run]:
    unfinished = [r for r in runs if not r.finished]
    if unfinished:
        warn(f"{len(unfinished)} unfinished run(s) (no results.json) left out: "
             + ", ".join(osp.relpath(r.path) for r in unfinished))
    return [r for r in runs if r.finished]


def summarise(args) -> int:
    runs = find_runs(args.directory)
    finished = split_finished(runs)
    if not finished:
        print(f'No finished run (a folder with results.json) directly under "{args.directory}": pass the '
              "folder that holds the seed folders, or use --table for a grid", file=sys.stderr)
        return 1
    groups = group_by_setting(finished)
    if len(groups) > 1 and not args.split_settings:
        print(f'"{args.directory}" mixes {len(groups)} settings; their mean would mean nothing:\n'
              f"{describe_groups(groups)}\nMove the runs of each setting to their own folder, or pass "
              "--split-settings for one table per setting.", file=sys.stderr)
        return 2
    warn_selection(finished)
    for i, group in enumerate(groups, 1):
        if len(groups) > 1:
            print(f"== setting {i}")
        print(f"{len(group)} runs: " + ", ".join(osp.basename(r.path) for r in group))
        rows = seed_summary(group, ci95=args.ci95)
        spread = "+- 95% CI" if args.ci95 else "mean +- std"
        headers = ["split", "domain", "n", f"accuracy ({spread})", f"macro_f1 ({spread})", "accuracy per seed"]
        print(tabulate([list(r.values()) for r in rows], headers=headers, tablefmt="github"))
    return 0


def make_table(args) -> int:
    runs = [r for r in find_runs(args.directory, recursive=True)
            if not any(s in r.path for s in args.exclude)]
    if not runs:
        print(f'No run folder (config.yaml or results.json) below "{args.directory}"', file=sys.stderr)
        return 1
    split_finished(runs)
    warn_selection(runs)
    try:
        grid = collect_grid(runs, metric=args.metric, per_target=args.per_target)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    for reason in grid.skipped:
        warn(f"left out {reason}")
    if not grid.cells:
        print(f'No finished run below "{args.directory}"', file=sys.stderr)
        return 1
    layout = paper_table if args.table == "paper" else variants_table
    headers, rows = layout(grid, digits=args.digits)
    what = "pooled target" if not args.per_target else "per target"
    print(f"{args.metric} ({what}), mean +- std over seeds, model selected on the source validation split")
    prefix = args.out or osp.join(args.directory, f"table_{args.table}")
    print(write_table(prefix, headers, rows, formats=("md", "csv")))
    print(f"Written to {prefix}.md and {prefix}.csv")
    if args.figure:
        draw_table_figure(grid, args, what)
    return 0


def draw_table_figure(grid, args, what: str) -> None:
    """The grid as a dot plot (one line per model and variant, as --table variants), seeds visible."""
    from analysis.figures import plot_grid_table  # matplotlib only when a figure is asked for

    tasks, cell_rows = variant_rows(grid)
    rows = []
    for label, cells in cell_rows:
        average = average_cell(cells)
        rows.append((label, [c.values if c else None for c in cells], average.values if average else None))
    sources, targets = zip(*(t.split("->") for t in tasks))
    # leave-one-domain-out columns (several sources each) differ by their target: name them by it
    multi_source = all("," in s for s in sources) and len(set(targets)) == len(targets)
    columns = [f"-> {t}" for t in targets] if multi_source else task_labels(tasks)
    path = plot_grid_table(rows, columns, args.figure, xlabel=f"{args.metric} (%, {what}), "
                           "mean +- std over seeds", chance=args.chance)
    print(f"Figure written to {path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("directory", help="a folder of seed runs (seed1, seed2, ...), or with --table a grid")
    parser.add_argument("--ci95", action="store_true", help="report the 95%% confidence interval, not the std")
    parser.add_argument("--split-settings", action="store_true",
                        help="a folder that mixes settings: one table per setting instead of refusing")
    parser.add_argument("--table", choices=["paper", "variants"],
                        help="paper: Tables 1, 3-5 (without / with ADA); variants: Table 2 (base, + ADA, + ADA*)")
    parser.add_argument("--per-target", action="store_true", help="--table: one column per target domain")
    parser.add_argument("--metric", default="accuracy", choices=["accuracy", "macro_f1"])
    parser.add_argument("--exclude", nargs="+", default=[], metavar="SUBSTRING",
                        help="--table: leave out runs whose path contains any of these")
    parser.add_argument("--digits", type=int, default=2)
    parser.add_argument("--out", default="", help="--table: output prefix (default GRID/table_<layout>)")
    parser.add_argument("--figure", default="", metavar="PNG",
                        help="--table: also draw the grid as a dot plot (each seed, mean +- std) into PNG")
    parser.add_argument("--chance", type=float, default=None, metavar="PCT",
                        help="--figure: draw the chance level (e.g. 12.5 for 8 classes)")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.figure or args.chance is not None) and not args.table:
        parser.error("--figure and --chance draw a grid: use them with --table paper|variants")
    return make_table(args) if args.table else summarise(args)


if __name__ == "__main__":
    sys.exit(main())

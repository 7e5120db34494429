"""Sweeps as DG benchmarks run them: every method gets the same random search (hyperparameter draws x trial
seeds) on every task of a benchmark, launched here or on SLURM, and collected per selection criterion.

    python sweep.py launch  --benchmark synthetic_dg --methods TSN=VideoVanilla APN --n-hparams 4 --n-trials 2 \\
                            [--launcher local|parallel|slurm|print] [--slots N] [--out output] [-- KEY VALUE ...]
    python sweep.py status  (the same options)   done / running / queued / incomplete / not started
    python sweep.py collect (the same options)   tables of the runs of this sweep; without --methods every
                                                 sweep run below OUT/BENCHMARK
    python sweep.py delete-incomplete (the same options)
    python sweep.py spaces                       every search space and the keys it draws

METHOD: TRAINER, or NAME=TRAINER,KEY=VALUE,... with the keys for that method only; a list value is written in
brackets, KEY=[a,b] (commas inside [] or () belong to the value; quote the whole METHOD in the shell), and
setting=SETTING gives the method its own configs/trainers/TRAINER/SETTING.yaml. KEY VALUE pairs after `--` go
to every run. Keys set on the command line are fixed: the search draws only the others.
Draw 0 is the config as it stands (defaults.py and the YAML files), draw i > 0 a random draw fixed by
(method name, task, i) and shared by the trial seeds 1..N. A run's folder is
OUT/BENCHMARK/SOURCES/NAME/SETTING/hp<i>_seed<s>_<hash of its merged config>; launching again starts only
the runs that are not done (an unfinished one resumes from its checkpoint). docs/sweeps.md has the details.
"""
import argparse
import os.path as osp
import shutil
import sys
from collections import Counter, OrderedDict
from typing import List, Sequence, Tuple

from sweeps.plan import (STATES, Plan, config_differences, make_plan, parse_benchmark, parse_method, parse_pairs,
                         budget_pairs, run_state, saved_config, slurm_job, write_sweep_record)


def build_plan(args) -> Plan:
    benchmark = parse_benchmark(args.benchmark)
    methods = [parse_method(m) for m in args.methods]
    common = parse_pairs(args.pairs) + budget_pairs(args.budget)
    seeds = args.seeds or list(range(1, args.n_trials + 1))
    return make_plan(benchmark, methods, args.setting or benchmark.setting, args.n_hparams, seeds, args.out,
                     args.root, common)


def states(plan: Plan) -> List[str]:
    from sweeps.launchers import queued_slurm_jobs

    queued = queued_slurm_jobs([slurm_job(r.folder) for r in plan.runs if osp.isdir(r.folder)])
    return [run_state(run, queued) for run in plan.runs]


def summary(counts: Counter) -> str:
    return ", ".join(f"{counts[s]} {s}" for s in STATES if counts[s] or s != "differs")


def refuse_differing(plan: Plan, found: Sequence[str]) -> None:
    differing = [r for r, s in zip(plan.runs, found) if s == "differs"]
    if differing:
        lines = [f"  {r.folder}: {', '.join(config_differences(saved_config(r.folder), r.config)[:5])}"
                 for r in differing]
        raise SystemExit("These folders hold a config.yaml other than the one this sweep plans for them (keys "
                         "below), so they are neither resumed nor overwritten. Were they made with another engine "
                         "(VIDEODG_ENGINE) or by hand? Move them away and launch again:\n" + "\n".join(lines))


# ---------------------------------------------------------------------------------------------- subcommands
def cmd_launch(args) -> int:
    from sweeps.launchers import Job, SlurmOptions, print_commands, run_local, run_parallel, submit_slurm

    plan = build_plan(args)
    found = states(plan)
    refuse_differing(plan, found)
    todo = [r for r, s in zip(plan.runs, found) if s in ("not started", "incomplete")]
    print(f"Sweep of {len(plan.runs)} runs: {summary(Counter(found))}", file=sys.stderr)
    if not todo:
        print("Nothing to start.", file=sys.stderr)
        return 0
    jobs = [Job(r.label, r.argv, r.folder) for r in todo]
    if args.launcher == "print":
        print_commands(jobs)
        return 0
    for run in todo:
        write_sweep_record(run, plan)
    print(f"Starting {len(todo)}: " + ", ".join(r.label for r in todo), file=sys.stderr)
    if args.launcher == "slurm":
        options = SlurmOptions(args.partition, args.gpus, args.cpus, args.mem_gb, args.time, args.account,
                               dict(parse_sbatch(args.sbatch)), args.max_timeouts, args.array_parallelism)
        array = submit_slurm(jobs, options, osp.join(plan.folder, ".submitit"))
        print(f"Submitted SLURM job array {array} ({len(jobs)} runs). `python sweep.py status` with the same "
              "options reads the run folders; launching again submits only runs neither done nor queued.")
        return 0
    failed = run_local(jobs) if args.launcher == "local" else run_parallel(jobs, args.slots)
    if failed:
        print(f"{len(failed)} run(s) failed: " + ", ".join(j.folder for j in failed), file=sys.stderr)
        return 1
    return 0


def parse_sbatch(items: Sequence[str]) -> List[Tuple[str, str]]:
    pairs = []
    for item in items:
        key, eq, value = item.lstrip("-").partition("=")
        if not key:
            raise SystemExit(f"--sbatch {item}: write OPTION=VALUE (e.g. qos=high) or OPTION for a bare flag")
        pairs.append((key, value if eq else ""))
    return pairs


def cmd_status(args) -> int:
    plan = build_plan(args)
    found = states(plan)
    per_method: "OrderedDict[str, Counter]" = OrderedDict((m.name, Counter()) for m in plan.methods)
    for run, state in zip(plan.runs, found):
        per_method[run.method.name][state] += 1
        if args.verbose:
            print(f"{state:12s} {run.label:40s} {run.folder}")
    from tabulate import tabulate

    shown = [s for s in STATES if s != "differs" or "differs" in found]
    rows = [[name, *[c[s] for s in shown]] for name, c in per_method.items()]
    print(tabulate(rows, headers=["method", *shown], tablefmt="github"))
    print(f"{len(plan.runs)} runs: {summary(Counter(found))}")
    return 0


def cmd_delete_incomplete(args) -> int:
    plan = build_plan(args)
    doomed = [r for r, s in zip(plan.runs, states(plan)) if s == "incomplete"]
    for run in doomed:
        shutil.rmtree(run.folder)
        print(f"Deleted {run.folder}")
    print(f"{len(doomed)} incomplete run(s) deleted; done and running ones were left alone.")
    return 0


def cmd_collect(args) -> int:
    from sweeps.collect import available_criteria, collect, load_trials, sweep_folders

    benchmark = parse_benchmark(args.benchmark)
    if args.methods:
        plan = build_plan(args)
        folders = [r.folder for r, s in zip(plan.runs, states(plan)) if s == "done"]
        print(f"{len(folders)} of the sweep's {len(plan.runs)} runs are done.")
    else:  # every sweep run of this benchmark's tasks below OUT/BENCHMARK
        folders = sweep_folders(osp.join(args.out, benchmark.name))
    tasks = {t.name for t in benchmark.tasks}
    trials = [t for t in load_trials(folders) if t.record["task"] in tasks]
    if not trials:
        print(f"No finished sweep run of {args.benchmark} below {args.out}", file=sys.stderr)
        return 1
    criteria = args.criteria or available_criteria(trials)
    settings = sorted({t.record["setting"] for t in trials})
    title = f"{args.benchmark} (settings {', '.join(settings)}): target accuracy (pooled over the targets)"
    out_dir = args.tables or osp.join(args.out, benchmark.name, "tables_lodo" if benchmark.lodo else "tables")
    layouts = [] if args.table == ["none"] else args.table
    try:
        lines = collect(trials, out_dir, title, criteria, layouts, digits=args.digits)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


def cmd_spaces(args) -> int:
    from defaults import SEARCH_SPACES
    from tabulate import tabulate
    from train import default_cfg

    default_cfg()  # registers every component, and so their search spaces
    rows = [[s.applies_to, key, repr(dist), s.declared_in] for s in SEARCH_SPACES for key, dist in s.space.items()]
    print(tabulate(rows, headers=["applies to", "key", "draw i > 0 (draw 0: the config's value)", "declared in"],
                   tablefmt="github"))
    return 0


# ---------------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__.split("\n", 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    plan = argparse.ArgumentParser(add_help=False)
    plan.add_argument("--benchmark", required=True, metavar="BENCHMARK[:lodo]",
                      help="synthetic_dg, ucf_hmdb (Table 1), ssv2_dg, pku_mmd, ntu_rgbd, epic_kitchens_dg, jester_dg; "
                      "pacs, digits_dg, office_home_dg (leave-one-domain-out only); :lodo for leave-one-domain-out")
    plan.add_argument("--methods", nargs="+", default=[], metavar="METHOD", help="TRAINER or NAME=TRAINER,KEY=VALUE,...")
    plan.add_argument("--setting", default="", help="configs/trainers/TRAINER/SETTING.yaml (default: smallcnn_cpu "
                      "for synthetic_dg, else r50_paper)")
    plan.add_argument("--n-hparams", type=int, default=1, help="hyperparameter draws per method and task (draw 0: "
                      "the config's values)")
    plan.add_argument("--n-trials", type=int, default=3, help="trial seeds per draw (SEED 1..N)")
    plan.add_argument("--seeds", type=int, nargs="+", default=[], metavar="SEED",
                      help="these trial seeds instead of 1..N (e.g. --seeds 2 to run one seed per machine)")
    plan.add_argument("--budget", default="", metavar="epochs|updates|passes", help="TRAIN.BUDGET of every run")
    plan.add_argument("--out", default="output", help="output folder (default: output)")
    plan.add_argument("--root", default="data", help="datasets folder, DATASET.ROOT (default: data)")

    launch = commands.add_parser("launch", parents=[plan], help="start the runs that are not done")
    launch.add_argument("--launcher", choices=["local", "parallel", "slurm", "print"], default="local")
    launch.add_argument("--slots", type=int, default=2, help="parallel: runs at a time (one GPU each on CUDA)")
    slurm = launch.add_argument_group("slurm (one job array per launch, through submitit)")
    slurm.add_argument("--partition", default=None)
    slurm.add_argument("--account", default=None)
    slurm.add_argument("--gpus", type=int, default=1, help="GPUs per run (default 1); more: torchrun, one process "
                       "per GPU, and DATALOADER.TRAIN_X.BATCH_SIZE is per process")
    slurm.add_argument("--cpus", type=int, default=4, help="CPUs per run (default 4; OMP_NUM_THREADS)")
    slurm.add_argument("--mem-gb", type=float, default=None, help="memory per run")
    slurm.add_argument("--time", type=int, default=24 * 60, help="time limit per job in minutes (default 1440); "
                       "a run that needs longer is requeued and resumes")
    slurm.add_argument("--max-timeouts", type=int, default=3, help="requeues after time-outs (preemptions: unlimited)")
    slurm.add_argument("--array-parallelism", type=int, default=None, help="at most this many runs at once")
    slurm.add_argument("--sbatch", nargs="+", default=[], metavar="OPTION[=VALUE]",
                       help="more sbatch options, e.g. qos=high constraint=a100 exclusive")
    status = commands.add_parser("status", parents=[plan], help="count done / running / queued / incomplete / not started")
    status.add_argument("-v", "--verbose", action="store_true", help="one line per run")
    commands.add_parser("delete-incomplete", parents=[plan], help="delete the folders of unfinished, stopped runs")
    collect = commands.add_parser("collect", parents=[plan], help="tables of the finished runs")
    collect.add_argument("--criteria", nargs="+", choices=["source_val", "oracle"], default=[],
                         help="selection criteria (default: source_val, and oracle when the runs held out target "
                         "clips, -- DATASET.ORACLE_HOLDOUT 0.2)")
    collect.add_argument("--table", nargs="+", choices=["paper", "variants", "none"], default=["paper", "variants"],
                         help="the paper's layouts beside the per-method table: paper (Tables 1, 3-5), variants "
                         "(Table 2), none")
    collect.add_argument("--digits", type=int, default=2)
    collect.add_argument("--tables", default="", help="folder for the tables (default OUT/BENCHMARK/tables)")
    commands.add_parser("spaces", help="list every search space")
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pairs = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    args = build_parser().parse_args(argv)
    args.pairs = pairs
    if args.command in ("launch", "status", "delete-incomplete") and not args.methods:
        raise SystemExit(f"sweep.py {args.command} needs --methods")
    command = {"launch": cmd_launch, "status": cmd_status, "collect": cmd_collect,
               "delete-incomplete": cmd_delete_incomplete, "spaces": cmd_spaces}[args.command]
    return command(args)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SystemExit as stop:
        if isinstance(stop.code, str):  # a refused sweep (the message says why): a usage error, as argparse's
            print(stop.code, file=sys.stderr)
            sys.exit(2)
        raise

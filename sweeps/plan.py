"""A sweep's runs: benchmark tasks x methods x hyperparameter draws x trial seeds, each with its merged config.

A run's config is built by train.py's own functions (train.setup_cfg on the exact train.py command line the run
gets), so what the sweep compares and hashes is what the run will save as OUTPUT_DIR/config.yaml. The folder is
OUT/BENCHMARK/SOURCES/METHOD/SETTING/hp<i>_seed<s>_<hash>, the hash over every key but OUTPUT_DIR: a changed
override, default or draw is a new folder, and a folder is "done" only when its saved config equals the plan's.

Draw i of a method on a task comes from (method name, task, i, key) through SHA-256, so it is the same on every
machine and run, shared by the trial seeds, and a key added to a space leaves the other keys' draws as they
were. Draw 0 is the config as it stands. Keys the command line sets (METHOD,KEY=VALUE or `-- KEY VALUE`) are
fixed, never drawn.
"""
import ast
import hashlib
import json
import os
import os.path as osp
import random
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import yaml

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

STATES = ("done", "running", "queued", "incomplete", "not started", "differs")
SWEEP_FILE = "sweep.json"  # what the sweep made a folder for (method, task, draw, seed), written before the run
SLURM_FILE = ".slurm_job"  # the SLURM job id of a submitted run, written by the slurm launcher


class Task(NamedTuple):
    sources: Tuple[str, ...]
    targets: Tuple[str, ...]

    @property
    def name(self) -> str:  # as analysis/tables.py names a task
        return ",".join(self.sources) + "->" + ",".join(self.targets)

    @property
    def folder(self) -> str:
        return "+".join(self.sources)


class Benchmark(NamedTuple):
    name: str
    lodo: bool
    tasks: List[Task]
    setting: str  # default setting: configs/trainers/TRAINER/<setting>.yaml


def _benchmark_tasks():
    """scripts/benchmark_tasks.py as a module: a benchmark's dataset class and its tasks."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("benchmark_tasks", osp.join(REPO, "scripts", "benchmark_tasks.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_benchmark(spec: str) -> Benchmark:
    """"synthetic_dg" (the tasks the benchmark reports, its dataset class's default protocol) or
    "synthetic_dg:lodo" (each domain once the target, the rest sources). The tasks come from the dataset class
    that configs/datasets/BENCHMARK.yaml names (VideoDGDataset.tasks), the one list of them."""
    name, _, protocol = spec.partition(":")
    tasks_of = _benchmark_tasks()
    if name not in tasks_of.benchmarks():
        raise SystemExit(f"Unknown benchmark '{name}': use {', '.join(tasks_of.benchmarks())} (':lodo' for "
                         "leave-one-domain-out)")
    if protocol not in ("", "lodo"):
        raise SystemExit(f"Unknown protocol ':{protocol}' in --benchmark {spec}: the only one is ':lodo'")
    dataset = tasks_of.dataset_class(name)
    if not hasattr(dataset, "tasks"):
        raise SystemExit(f"--benchmark {name}: its dataset {dataset.__name__} names no tasks (a VideoDGDataset does)")
    tasks = [Task(tuple(sources), tuple(targets)) for sources, targets in dataset.tasks(protocol)]
    if not tasks:
        raise SystemExit(f"--benchmark {name}: {dataset.__name__} reads its domains from your files, so it has no "
                         "fixed tasks; run train.py with --source-domains and --target-domains (docs/datasets.md)")
    lodo = (protocol or dataset.default_protocol) == "lodo"
    return Benchmark(name, lodo, tasks, "smallcnn_cpu" if name == "synthetic_dg" else "r50_paper")


# ---------------------------------------------------------------------------------------------- methods
class Method(NamedTuple):
    name: str
    trainer: str
    overrides: Tuple[Tuple[str, str], ...]  # (KEY, value as train.py reads it)
    setting: str = ""  # configs/trainers/TRAINER/<setting>.yaml for this method; "" = the sweep's --setting


def split_top_level(text: str, sep: str = ",") -> List[str]:
    """Split at `sep` outside brackets and parentheses: "A=B,K=[a,b]" -> ["A=B", "K=[a,b]"]."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += char in "[("
        depth -= char in "])"
        if char == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def cli_value(text: str) -> str:
    """A value as train.py's KEY VALUE pairs read it (yacs literal_eval). A bracketed list of bare words,
    [layer1,layer2], becomes ['layer1', 'layer2']; everything else passes as written."""
    if _literal(text, default=cli_value) is not cli_value:
        return text
    if len(text) >= 2 and (text[0], text[-1]) in (("[", "]"), ("(", ")")):
        items = [cli_value(item.strip()) for item in split_top_level(text[1:-1]) if item.strip()]
        values = [_literal(item, default=item) for item in items]
        return repr(values if text[0] == "[" else tuple(values))
    return text


def _literal(text: str, default=None):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return default


def parse_method(spec: str) -> Method:
    """TRAINER, or NAME=TRAINER,KEY=VALUE,... (commas inside [] or () belong to the value); the lower-case
    pseudo-key setting=SETTING picks this method's configs/trainers/TRAINER/SETTING.yaml."""
    head, *pairs = split_top_level(spec)
    name, _, trainer = head.partition("=")
    trainer = trainer or name
    overrides, setting = [], ""
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise SystemExit(f"--methods {spec}: '{pair}' is not KEY=VALUE (a list value is KEY=[a,b])")
        if key == "setting":
            setting = value
        else:
            overrides.append((key, cli_value(value)))
    if not name or not trainer or "/" in name:
        raise SystemExit(f"--methods {spec}: write TRAINER or NAME=TRAINER,KEY=VALUE,... (NAME names a folder)")
    return Method(name, trainer, tuple(overrides), setting)


def parse_pairs(tokens: Sequence[str]) -> Tuple[Tuple[str, str], ...]:
    if len(tokens) % 2:
        raise SystemExit(f"The KEY VALUE pairs after -- are odd in number: {' '.join(tokens)}")
    return tuple((tokens[i], cli_value(tokens[i + 1])) for i in range(0, len(tokens), 2))


# ---------------------------------------------------------------------------------------------- draws
def _draw_rng(method: str, task: str, index: int, key: str) -> random.Random:
    digest = hashlib.sha256("\0".join((method, task, str(index), key)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def cfg_value(cfg, key: str):
    node = cfg
    for part in key.split("."):
        if part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def applies(cfg, applies_to: str) -> bool:
    from defaults import EVERY_RUN

    if applies_to == EVERY_RUN:
        return True
    key, _, value = applies_to.partition("=")
    negated = key.endswith("!")
    try:
        return (str(cfg_value(cfg, key.rstrip("!"))) == value) != negated
    except KeyError:
        return False


def draw_hparams(cfg, method: str, task: str, index: int, fixed: Sequence[str]) -> Dict[str, object]:
    """Draw `index` of every search space that applies to cfg (the run's config before any draw), without the
    fixed keys. Draw 0: {} (the config's own values)."""
    from defaults import SEARCH_SPACES

    drawn: Dict[str, object] = {}
    if index == 0:
        return drawn
    for applies_to, space, _ in SEARCH_SPACES:
        if not applies(cfg, applies_to):
            continue
        for key, distribution in space.items():
            if key in fixed:
                continue
            try:
                default = cfg_value(cfg, key)
            except KeyError:
                raise SystemExit(f'The search space "{applies_to}" draws {key}, which the config has not') from None
            drawn[key] = distribution.draw(_draw_rng(method, task, index, key), default)
    return drawn


# ---------------------------------------------------------------------------------------------- runs
class PlannedRun(NamedTuple):
    method: Method
    task: Task
    hparam: int
    seed: int
    drawn: Dict[str, object]
    argv: List[str]  # train.py's arguments
    config: Dict  # the merged config, as config.yaml will hold it
    folder: str

    @property
    def label(self) -> str:
        return f"{self.method.name} {self.task.name} hp{self.hparam} seed{self.seed}"

    def sweep_record(self, benchmark: Benchmark, setting: str) -> Dict:
        return {"benchmark": benchmark.name, "lodo": benchmark.lodo, "setting": self.method.setting or setting,
                "method": self.method.name,
                "trainer": self.method.trainer, "overrides": dict(self.method.overrides), "task": self.task.name,
                "hparam": self.hparam, "seed": self.seed, "drawn": self.drawn}


class Plan(NamedTuple):
    benchmark: Benchmark
    setting: str
    methods: List[Method]
    runs: List[PlannedRun]
    out: str

    @property
    def folder(self) -> str:  # everything of this benchmark below --out
        return osp.join(self.out, self.benchmark.name)


def train_argv(method: Method, task: Task, benchmark: Benchmark, setting: str, root: str, seed: int,
               output_dir: str, pairs: Sequence[Tuple[str, str]]) -> List[str]:
    config = osp.join(REPO, "configs", "trainers", method.trainer, f"{setting}.yaml")
    if not osp.isfile(config):
        raise SystemExit(f"No {osp.relpath(config)} for method {method.name}: write it (a _BASE_ line and what "
                         "differs) or pick another --setting")
    flat = [token for pair in pairs for token in pair]
    return ["--root", root, "--seed", str(seed), "--trainer", method.trainer,
            "--dataset-config-file", osp.relpath(osp.join(REPO, "configs", "datasets", f"{benchmark.name}.yaml")),
            "--config-file", osp.relpath(config), "--source-domains", *task.sources,
            "--target-domains", *task.targets, "--output-dir", output_dir, *flat]


def merged_config(argv: Sequence[str]):
    """The config train.py builds from these arguments (train.setup_cfg) after its run checks, or SystemExit
    naming what train.py would refuse, before any run starts."""
    import train
    from trainers.checks import check_run_config

    try:
        cfg = train.setup_cfg(train.build_parser().parse_args(list(argv)))
        check_run_config(cfg)
        return cfg
    except (KeyError, ValueError, AssertionError, FileNotFoundError) as e:
        raise SystemExit(f"train.py would refuse this run ({e}):\n  python train.py {' '.join(argv)}") from None


def config_dict(cfg) -> Dict:
    return yaml.safe_load(cfg.dump())


def config_hash(config: Dict) -> str:
    content = {k: v for k, v in config.items() if k != "OUTPUT_DIR"}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:10]


def budget_pairs(budget: Optional[str]) -> Tuple[Tuple[str, str], ...]:
    """--budget VALUE as TRAIN.BUDGET VALUE, once the config has that key (issue 22's budget rule)."""
    if not budget:
        return ()
    from train import default_cfg

    if "BUDGET" not in default_cfg().TRAIN:
        raise SystemExit(f"--budget {budget}: the config has no key TRAIN.BUDGET yet (the budget rule, "
                         "epochs|updates|passes, adds it); leave --budget out to train every method for the epochs "
                         "its config sets")
    return (("TRAIN.BUDGET", budget),)


def make_plan(benchmark: Benchmark, methods: Sequence[Method], setting: str, n_hparams: int, seeds: Sequence[int],
              out: str, root: str, common: Sequence[Tuple[str, str]]) -> Plan:
    """Every run of the sweep, in order: task, method, draw, seed (the trial seeds, e.g. 1..N)."""
    if n_hparams < 1 or not seeds:
        raise SystemExit("--n-hparams and --n-trials must be at least 1")
    if len(set(seeds)) != len(seeds):
        raise SystemExit(f"--seeds {' '.join(map(str, seeds))}: a seed is given twice")
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise SystemExit(f"Two methods share a name in --methods ({', '.join(names)}): give each NAME=TRAINER,...")
    runs = []
    for task in benchmark.tasks:
        for method in methods:
            own = method.setting or setting
            fixed = [k for k, _ in method.overrides] + [k for k, _ in common]
            pairs = list(method.overrides) + list(common)
            base = merged_config(train_argv(method, task, benchmark, own, root, 1, "", pairs))
            for index in range(n_hparams):
                drawn = draw_hparams(base, method.name, task.name, index, fixed)
                drawn_pairs = [(k, repr(v) if not isinstance(v, str) else v) for k, v in drawn.items()]
                for seed in seeds:
                    argv = train_argv(method, task, benchmark, own, root, seed, "", drawn_pairs + pairs)
                    config = config_dict(merged_config(argv))
                    folder = osp.join(out, benchmark.name, task.folder, method.name, own,
                                      f"hp{index}_seed{seed}_{config_hash(config)}")
                    argv[argv.index("--output-dir") + 1] = folder
                    config["OUTPUT_DIR"] = folder
                    runs.append(PlannedRun(method, task, index, seed, drawn, argv, config, folder))
    return Plan(benchmark, setting, list(methods), runs, out)


# ---------------------------------------------------------------------------------------------- states
def saved_config(folder: str) -> Optional[Dict]:
    path = osp.join(folder, "config.yaml")
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return yaml.safe_load(f) or {}


def config_differences(saved: Dict, planned: Dict, prefix: str = "") -> List[str]:
    """Keys (not OUTPUT_DIR) whose values differ between two configs."""
    keys = []
    for key in sorted(set(saved) | set(planned)):
        path = prefix + key
        a, b = saved.get(key, "<absent>"), planned.get(key, "<absent>")
        if path == "OUTPUT_DIR":
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            keys += config_differences(a, b, path + ".")
        elif a != b:
            keys.append(path)
    return keys


def run_state(run: PlannedRun, queued: Sequence[str] = ()) -> str:
    """done / running / queued / incomplete / not started / differs (a config.yaml that is not the plan's).
    queued: the SLURM job ids squeue still lists."""
    from framework import lock_holder

    if not osp.isdir(run.folder):
        return "not started"
    holder = lock_holder(run.folder)
    job = slurm_job(run.folder)
    if holder is not None and (holder["alive"] or holder["alive"] is None and (job is None or job in queued)):
        return "running"  # alive here; or on another host, where only a SLURM job that squeue lists tells
    saved = saved_config(run.folder)
    if saved is not None and config_differences(saved, run.config):
        return "differs"
    if saved is not None and osp.isfile(osp.join(run.folder, "results.json")):
        return "done"
    if job is not None and job in queued:  # waiting for its first start, or requeued after a preemption
        return "queued"
    return "not started" if saved is None else "incomplete"


def slurm_job(folder: str) -> Optional[str]:
    path = osp.join(folder, SLURM_FILE)
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return f.read().strip() or None


def write_sweep_record(run: PlannedRun, plan: Plan) -> None:
    os.makedirs(run.folder, exist_ok=True)
    with open(osp.join(run.folder, SWEEP_FILE), "w") as f:
        json.dump(run.sweep_record(plan.benchmark, plan.setting), f, indent=1)

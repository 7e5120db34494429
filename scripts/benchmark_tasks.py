"""The tasks of a benchmark, one per line as SOURCES:TARGETS (domains space-separated), from its dataset class.

    python scripts/benchmark_tasks.py ucf_hmdb            # its reported tasks (single source): ucf:hmdb, hmdb:ucf
    python scripts/benchmark_tasks.py pku_mmd lodo        # leave-one-domain-out: middle right:left, ...
    python scripts/benchmark_tasks.py pacs                # image DG sets are reported leave-one-domain-out

BENCHMARK names configs/datasets/BENCHMARK.yaml, whose DATASET.NAME is the dataset class; its `tasks` (and
`domains`, datasets/base.py) are the one list of a benchmark's tasks, read by scripts/paper_tasks.sh.
"""
import glob
import os.path as osp
import sys
from typing import List

import yaml

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)  # run from anywhere: import the project


def benchmarks() -> List[str]:
    return sorted(osp.splitext(osp.basename(p))[0] for p in glob.glob(osp.join(REPO, "configs", "datasets", "*.yaml")))


def dataset_class(benchmark: str):
    """The dataset class that configs/datasets/BENCHMARK.yaml names (its DATASET.NAME)."""
    path = osp.join(REPO, "configs", "datasets", f"{benchmark}.yaml")
    if not osp.isfile(path):
        raise ValueError(f"Unknown benchmark '{benchmark}': use one of {', '.join(benchmarks())} "
                         "(a benchmark is a configs/datasets/<name>.yaml)")
    with open(path) as f:
        name = yaml.safe_load(f)["DATASET"]["NAME"]
    import datasets  # noqa: F401  (registers the dataset classes)
    from framework import DATASET_REGISTRY

    return DATASET_REGISTRY.get(name)


def task_lines(benchmark: str, protocol: str = "") -> List[str]:
    tasks = dataset_class(benchmark).tasks(protocol)
    return [f"{' '.join(sources)}:{' '.join(targets)}" for sources, targets in tasks]


def main(argv: List[str]) -> int:
    if len(argv) not in (1, 2) or argv[0].startswith("-"):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    try:
        print("\n".join(task_lines(argv[0], *argv[1:])))
    except ValueError as e:  # an unknown benchmark or protocol
        print(e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

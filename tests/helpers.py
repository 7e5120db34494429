"""Shared test helpers: a tiny synthetic benchmark setting, train.py runs in this process or in a child."""
import contextlib
import functools
import importlib.util
import io
import json
import os
import os.path as osp
import signal
import subprocess
import sys
from typing import List

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

# A very small synthetic benchmark: 8 classes x 3 clips per domain, 12 frames of 32x32, M=3 segments.
TINY_SYNTHETIC = [
    "DATASET.SYNTHETIC.VIDEOS_PER_CLASS", "3", "DATASET.SYNTHETIC.NUM_FRAMES", "12",
    "INPUT.NUM_SEGMENTS", "3", "DATALOADER.NUM_WORKERS", "0",
    "DATALOADER.TRAIN_X.BATCH_SIZE", "8", "DATALOADER.TEST.BATCH_SIZE", "16",
    "MODEL.BACKBONE.FEATURE_DIM", "16", "TRAIN.PRINT_FREQ", "1", "USE_CUDA", "False",
    "TEST.FIGURES", "False",  # about 3 s a run; tests/test_figures.py turns them on
]
SYNTHETIC_ARGS = ["--dataset-config-file", "configs/datasets/synthetic_dg.yaml", "--source-domains", "studio",
                  "--target-domains", "street", "sketch", "glimpse"]


@functools.lru_cache(maxsize=None)
def dassl_importable() -> bool:
    if importlib.util.find_spec("dassl") is None:
        return False
    probe = subprocess.run([sys.executable, "-c", "import dassl.engine"], capture_output=True)
    return probe.returncode == 0


# Every end-to-end test runs on the built-in engine, and again on real Dassl where it is installed (the dassl
# marker: tests/conftest.py skips it where Dassl cannot be imported).
ENGINES = ["builtin", pytest.param("dassl", marks=pytest.mark.dassl)]


def run_train(args: List[str], engine: str = "builtin", check: bool = True) -> subprocess.CompletedProcess:
    """python train.py <args> from the repository root, on the given engine."""
    env = dict(os.environ, VIDEODG_ENGINE=engine, PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, "train.py", *args], cwd=REPO, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"train.py failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def read_results(output_dir: str) -> dict:
    """A run's results.json as {(split, domain): row}."""
    with open(osp.join(output_dir, "results.json")) as f:
        return {(row["split"], row["domain"]): row for row in json.load(f)}


def train_in_process(args) -> str:
    """train.main(args) in this process (no interpreter start, registries stay loaded): what it printed.

    `args` is a parsed namespace or train.py's argument list. The test gets its stdout back afterwards (train.main
    tees stdout into the run's log file), and the printed text is passed on to it, so a failure shows the run."""
    import train

    if isinstance(args, (list, tuple)):
        args = train.build_parser().parse_args(list(args))
    stdout, printed = sys.stdout, io.StringIO()
    sys.stdout = printed
    try:
        train.main(args)
    finally:
        if sys.stdout is not printed:
            sys.stdout.close()
        sys.stdout = stdout
        stdout.write(printed.getvalue())
    return printed.getvalue()


def train_on(engine: str, args: List[str]) -> str:
    """train.py's output for a run on `engine`: in this process where it runs that engine, else in a child."""
    from framework import ENGINE

    return train_in_process(args) if engine == ENGINE else run_train(args, engine).stdout


def run_bounded(cmd: List[str], what: str, timeout_s: float, **kwargs) -> subprocess.CompletedProcess:
    """subprocess.run(cmd, capture_output=True, text=True, **kwargs), bounded: past timeout_s the child and every
    process it started (its own session) are killed and the test fails, naming `what` and the command, so that a
    hung child cannot hang the suite."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            **kwargs)
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except BaseException as stop:  # the limit, or pytest-timeout / Ctrl-C: no process of the child's is left running
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        if not isinstance(stop, subprocess.TimeoutExpired):
            raise
        pytest.fail(f"Gave up waiting for {what} after {timeout_s:g} s (killed): {' '.join(map(str, cmd))}\n"
                    f"{stdout[-2000:]}{stderr[-2000:]}", pytrace=False)
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)

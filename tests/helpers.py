"""Shared test helpers: a tiny synthetic benchmark setting and train.py runs in a subprocess."""
import importlib.util
import json
import os
import os.path as osp
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


def dassl_importable() -> bool:
    if importlib.util.find_spec("dassl") is None:
        return False
    probe = subprocess.run([sys.executable, "-c", "import dassl.engine"], capture_output=True)
    return probe.returncode == 0


# Every end-to-end test runs on the built-in engine, and again on real Dassl where it is installed.
ENGINES = [
    "builtin",
    pytest.param("dassl", marks=pytest.mark.skipif(not dassl_importable(), reason="Dassl is not installed")),
]


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


def train_in_process(args) -> None:
    """train.main(args) in this process (registries stay loaded); gives the test its stdout back afterwards,
    since train.main tees stdout into the run's log file."""
    import train

    stdout = sys.stdout
    try:
        train.main(args)
    finally:
        if sys.stdout is not stdout:
            sys.stdout.close()
            sys.stdout = stdout

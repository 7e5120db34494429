"""Reliability of a run (issue 13): exact resume after kill -9, one run per output folder, recoverable
checkpoints. Kills are injected at named points (VIDEODG_KILL_AT) so that each lands where it is meant to."""
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest

from tests.helpers import REPO, SYNTHETIC_ARGS, TINY_SYNTHETIC, run_train

# ERM on the relational pyramid (random snippet draws, dropout), 2 epochs, one loader worker (worker seeds)
ERM_ARGS = ["--trainer", "VideoVanilla", "--config-file", "configs/trainers/VideoVanilla/smallcnn_cpu.yaml",
            "--head", "apn_pyramid", "--seed", "3"]
SHORT = [*TINY_SYNTHETIC, "OPTIM.MAX_EPOCH", "2", "DATALOADER.NUM_WORKERS", "1"]


def _train(args, kill_at=None):
    env = dict(os.environ, VIDEODG_ENGINE="builtin", PYTHONUNBUFFERED="1")
    env.pop("VIDEODG_KILL_AT", None)
    if kill_at:
        env["VIDEODG_KILL_AT"] = kill_at
    return subprocess.run([sys.executable, "train.py", *args], cwd=REPO, env=env, capture_output=True, text=True)


def test_killed_three_times_gives_bit_identical_results(tmp_path):
    root = str(tmp_path / "data")
    common = ["--root", root, *SYNTHETIC_ARGS, *ERM_ARGS]
    straight = str(tmp_path / "straight")
    proc = _train([*common, "--output-dir", straight, *SHORT])
    assert proc.returncode == 0, proc.stderr[-3000:]

    out = str(tmp_path / "killed")
    args = [*common, "--output-dir", out, *SHORT]
    for point in ("batch 2 2", "save model.pth.tar-2", "final"):  # in an epoch, in a save, in the final test
        proc = _train(args, kill_at=point)
        assert proc.returncode == -9, f"not killed at {point!r}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        assert not osp.exists(osp.join(out, "results.json"))
    proc = _train(args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Previous epoch: 2" in proc.stdout and "exact resume" in proc.stdout
    with open(osp.join(straight, "results.json")) as a, open(osp.join(out, "results.json")) as b:
        assert json.load(a) == json.load(b)  # every accuracy and F1, to the last bit

"""TRAIN.COMPILE: torch.compile of the frame encoder and head. One APN + ADA* step compiled gives the eager
step's losses within TOLERANCE, the checkpoint keys stay as they are, and the main job trains one epoch with it,
in this process. On the CPU the tests compile with TRAIN.COMPILE_BACKEND aot_eager: the graphs that inductor
would turn into kernels (dynamo's capture, the forward and backward graphs of AOTAutograd) without generating
code, because inductor's C++ kernels take tens of minutes to build on two cores (docs/performance.md);
tests/test_cuda.py runs the same comparison with inductor on a GPU."""
import json
import os.path as osp

import pytest
import torch
import torch._inductor.config as inductor_config

import train
from framework import build_trainer
from tests.helpers import SYNTHETIC_ARGS, TINY_SYNTHETIC, train_in_process

# Relative difference allowed between the compiled and the eager step's losses: the compiled kernels sum in
# another order (measured below 1e-5 on the CPU); the later losses follow three optimiser steps.
TOLERANCE = 1e-3
MAIN_JOB = ["--trainer", "APN", "--config-file", "configs/trainers/APN/smallcnn_cpu.yaml", *SYNTHETIC_ARGS]


CPU_BACKEND = ["TRAIN.COMPILE_BACKEND", "aot_eager"]
SAME_SHAPES = ["TRAINER.APN.T_MAX", "2", "DATALOADER.TEST.BATCH_SIZE", "8"]  # the tests reuse one set of graphs


def make(data_root, tmp_path, *opts):
    args = train.build_parser().parse_args(["--root", data_root, *MAIN_JOB, "--output-dir",
                                            str(tmp_path / "out"), *TINY_SYNTHETIC, *SAME_SHAPES, *opts])
    return build_trainer(train.setup_cfg(args))


def compare_one_step(data_root, tmp_path, opts=CPU_BACKEND) -> None:
    """The losses of one step, eager and compiled, from the same weights, batch and random state."""
    logs, states = {}, {}
    batch = None
    for compiled in (False, True):
        torch.manual_seed(0)
        trainer = make(data_root, tmp_path, "TRAIN.COMPILE", str(compiled), *opts)
        batch = batch if batch is not None else next(iter(trainer.train_loader_x))
        trainer.set_model_mode("train")
        trainer.batch_idx, trainer.num_batches = 0, 10
        torch.manual_seed(1)
        with inductor_config.patch(fallback_random=True):  # inductor's kernels draw as eager code does
            logs[compiled] = trainer.forward_backward(batch)
        states[compiled] = trainer.model.state_dict()
    assert set(logs[True]) == set(logs[False]) and "loss_adv_II" in logs[True]
    for key, eager in logs[False].items():
        assert logs[True][key] == pytest.approx(eager, rel=TOLERANCE, abs=1e-6), key
    assert list(states[True]) == list(states[False])  # checkpoints keep their keys


@pytest.mark.slow
def test_compiled_step_matches_eager(data_root, tmp_path):
    compare_one_step(data_root, tmp_path)


@pytest.mark.slow
def test_the_main_job_trains_one_epoch_compiled(data_root, tmp_path):
    out = tmp_path / "out"
    args = train.build_parser().parse_args(["--root", data_root, *MAIN_JOB, "--output-dir", str(out),
                                            "--seed", "1", *TINY_SYNTHETIC, *SAME_SHAPES, "OPTIM.MAX_EPOCH", "1",
                                            "TRAIN.COMPILE", "True", *CPU_BACKEND])
    train_in_process(args)
    assert "TRAIN.COMPILE: torch.compile" in open(osp.join(out, "log.txt")).read()
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0  # something was compiled
    with open(osp.join(out, "results.json")) as f:
        rows = {(r["split"], r["domain"]): r for r in json.load(f)}
    assert rows[("target", "pooled")]["n"] == 72 and 0 <= rows[("target", "pooled")]["accuracy"] <= 100

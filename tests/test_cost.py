"""What a training step costs (analysis/cost.py): passes, theta steps, FLOPs and saved activations, counted with
hooks on real tiny trainers; the same counts on the CPU and on `meta`; the cost report of scripts/benchmark.py."""
import os.path as osp
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
from torch.nn.attention import SDPBackend, sdpa_kernel

import train
from analysis.cost import META, SavedTensorMeter, meta_log_values, move_trainer, step_cost
from framework import build_trainer
from models.backbones.frame_encoders import FrozenBatchNorm2d, freeze_all_but_first
from tests.helpers import REPO, SYNTHETIC_ARGS, TINY_SYNTHETIC

T_MAX = 5  # the paper's ascent steps


def make(data_root, trainer, config, *opts, sources=SYNTHETIC_ARGS):
    args = train.build_parser().parse_args(["--root", data_root, *sources, "--trainer", trainer, "--config-file",
                                            f"configs/trainers/{config}.yaml", "--output-dir",
                                            osp.join(data_root, "..", "cost_out"), *TINY_SYNTHETIC, *opts])
    return build_trainer(train.setup_cfg(args))


@pytest.fixture
def data(data_root):
    return data_root


def apn_cost(data, *opts, config="APN/smallcnn_cpu", **kwargs):
    torch.manual_seed(0)
    trainer = make(data, "APN", config, "TRAINER.APN.T_MAX", str(T_MAX), *opts)
    return step_cost(trainer, next(iter(trainer.train_loader_x)), **kwargs)


# ---------------------------------------------------------------------------------------------- passes and steps
def test_apn_ada_star_makes_algorithm_1s_least_passes(data):
    """Paper reading, R0 before the line-5 update: R0 (1, no graph) + line 5 (1) + T_max ascent steps of two chains
    (the first shares one encoder pass: 2 T_max - 1) + lines 13-14 (2) forward; 1 + 2 T_max + 2 backward; 3 steps."""
    cost = apn_cost(data)
    B = cost["batch_size"]
    assert (cost["forward_passes"], cost["backward_passes"], cost["theta_steps"]) == (13, 13, 3)
    assert cost["clips_forward"] == 13 * B and cost["no_grad_clips_forward"] == B
    # calls: R0, line 5, T_max ascent calls (2B clips each, the first B), lines 13 and 14
    assert cost["encoder_forward_calls"] == 1 + 1 + T_MAX + 2
    assert cost["encoder_backward_calls"] == 1 + (2 + T_MAX - 1) + 2  # the shared first step: one per chain


@pytest.mark.parametrize("opts,expected", [
    (["TRAINER.APN.R0", "after_update"], (12, 13, 3)),  # R0 read from the first ascent pass
    (["TRAINER.APN.LEVELS", "none"], (1, 1, 1)),  # ERM with the APN head
    (["TRAINER.APN.LEVELS", "III"], (1 + 1 + T_MAX + 1, 1 + T_MAX + 1, 2)),  # APN + ADA: one chain
])
def test_the_other_readings_count_what_they_do(data, opts, expected):
    cost = apn_cost(data, *opts)
    assert (cost["forward_passes"], cost["backward_passes"], cost["theta_steps"]) == expected


def test_the_official_reading_recomputes_r0_and_takes_one_joint_step(data):
    cost = apn_cost(data, config="APN/smallcnn_official")
    # T_max x (R0 + two chains) + one pass over source + both adversarial batches (3B clips)
    assert (cost["forward_passes"], cost["backward_passes"], cost["theta_steps"]) == (3 * T_MAX + 3, 2 * T_MAX + 3, 1)
    assert cost["no_grad_clips_forward"] == T_MAX * cost["batch_size"]


def test_erm_and_a_two_network_method(data):
    erm = step_cost(t := make(data, "VideoVanilla", "VideoVanilla/smallcnn_cpu"), next(iter(t.train_loader_x)))
    assert (erm["forward_passes"], erm["backward_passes"], erm["theta_steps"]) == (1, 1, 1)
    two_sources = ["--dataset-config-file", "configs/datasets/synthetic_dg.yaml", "--source-domains", "studio",
                   "street", "--target-domains", "sketch"]
    crossgrad = make(data, "VideoCrossGrad", "VideoCrossGrad/smallcnn_cpu", sources=two_sources)
    cost = step_cost(crossgrad, next(iter(crossgrad.train_loader_x)))
    assert set(cost["optimizer_steps"]) == {"F", "D"} and cost["theta_steps"] == sum(cost["optimizer_steps"].values())
    assert cost["forward_passes"] >= 2  # F and D both read the clips


def test_the_shared_first_ascent_step_gives_each_chain_its_own_gradient(data):
    torch.manual_seed(0)
    apn = make(data, "APN", "APN/smallcnn_cpu", "MODEL.PYRAMID.DROPOUT", "0.0")
    batch = next(iter(apn.train_loader_x))
    X, Y = batch["img"], batch["label"]
    draw = apn.snippet_draw(len(Y), X.device)
    apn.set_model_mode("eval")
    shared = apn.first_step_gradient(X, Y, ["II", "III"], {}, draw, {})
    separate = torch.cat([apn.chains_gradient(X.clone(), Y, [lvl], {}, draw, {}) for lvl in ("II", "III")])
    apn.set_model_mode("train")
    B = len(Y)
    assert not torch.allclose(shared[:B], shared[B:])  # the chains' gradients differ, so the check can fail
    torch.testing.assert_close(shared, separate, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------------------------- FLOPs and memory
def test_saved_tensor_meter_counts_each_storage_once_and_frees_it_with_the_graph():
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    x = torch.randn(5, 8, requires_grad=True)
    meter = SavedTensorMeter(net.parameters())
    with meter.watch():
        y = net(x).sum()
    # Linear 1 saves x; ReLU saves its output, which Linear 2 saves as its input: one storage. Weights excluded.
    assert meter.peak == meter.bytes == 5 * (8 + 16) * 4
    y.backward()
    assert meter.bytes == 0 and not meter.live
    torch.testing.assert_close(x.grad, torch.autograd.grad(net(x).sum(), x)[0])  # unpack gave the right tensors


def test_the_same_counts_on_the_cpu_and_on_meta(data):
    """FLOPs and saved bytes come from shapes: a meta step computes and saves what a real step does. Attention
    runs on the math kernel here (meta has no fused one; the CPU's fused kernel has no FLOP formula); the saved
    bytes may differ by BatchNorm's per-channel statistics, which the CPU kernel leaves empty in eval mode."""
    costs = {}
    for device in ("cpu", "meta"):
        torch.manual_seed(0)
        trainer = make(data, "APN", "APN/smallcnn_cpu", "TRAINER.APN.T_MAX", "2")
        batch = next(iter(trainer.train_loader_x))
        if device == "meta":
            move_trainer(trainer, META)
        with meta_log_values(), sdpa_kernel(SDPBackend.MATH):
            costs[device] = step_cost(trainer, batch, flops=True, saved_memory=True)
    cpu, meta = costs["cpu"], costs["meta"]
    assert cpu["gflops"] > 0 and cpu["saved_peak_bytes"] > 0
    for key in ("forward_passes", "backward_passes", "theta_steps", "gflops"):
        assert cpu[key] == meta[key], key
    assert meta["saved_peak_bytes"] == pytest.approx(cpu["saved_peak_bytes"], rel=1e-3)


def test_flops_of_an_erm_step_are_its_forward_and_backward(data):
    """A step of ERM costs about three forward passes (backward: input and weight gradients)."""
    from analysis.cost import flop_counter

    trainer = make(data, "VideoVanilla", "VideoVanilla/smallcnn_cpu")
    batch = next(iter(trainer.train_loader_x))
    with torch.no_grad(), flop_counter() as forward:
        trainer.model(batch["img"])
    step = step_cost(trainer, batch, flops=True)["gflops"] * 1e9
    assert 2.5 * forward.get_total_flops() < step <= 3 * forward.get_total_flops()


def test_frozen_batch_norm_computes_eval_mode_batch_norm_and_saves_no_input():
    torch.manual_seed(0)
    layers = [nn.BatchNorm2d(4) for _ in range(2)]
    for bn in layers:
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.normal_()
    reference = nn.BatchNorm2d(4).eval()
    reference.load_state_dict(layers[1].state_dict())
    frozen = freeze_all_but_first(layers, partial_bn=True)
    assert frozen == [layers[1]] and type(layers[1]) is FrozenBatchNorm2d and type(layers[0]) is nn.BatchNorm2d
    assert list(layers[1].state_dict()) == list(reference.state_dict())  # checkpoints unchanged
    x = torch.randn(3, 4, 5, 5, requires_grad=True)
    meter = SavedTensorMeter([*layers[1].parameters(), *layers[1].buffers()])
    with meter.watch():
        y = layers[1](x)
    torch.testing.assert_close(y, reference(x))
    torch.testing.assert_close(torch.autograd.grad(y.sum(), x)[0], torch.autograd.grad(reference(x).sum(), x)[0])
    assert meter.peak == 4 * 4  # the (C,) scale only; eval-mode BatchNorm saves the whole input
    with meter.watch():
        reference(x)
    assert meter.peak >= x.numel() * 4


# ---------------------------------------------------------------------------------------------- the report
@pytest.mark.e2e
@pytest.mark.slow
def test_cost_report_prints_the_rows_and_their_ratios(data_root, tmp_path):
    proc = subprocess.run(
        [sys.executable, "scripts/benchmark.py", "--cost", "--preset", "small", "--device", "cpu", "--batches", "2",
         "4", "--root", data_root, "--output-dir", str(tmp_path / "out"), "--json",
         str(tmp_path / "cost.json"), "--variants", "ERM (TSN)", "APN + ADA* (paper)", "APN + ADA* (official)",
         *TINY_SYNTHETIC[:4], "MODEL.BACKBONE.FEATURE_DIM", "16"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    rows = {(r["row"], r["batch_size"]): r for r in json.loads((tmp_path / "cost.json").read_text())["rows"]}
    assert set(rows) == {(name, b) for name in ("ERM (TSN)", "APN + ADA* (paper)", "APN + ADA* (official)")
                         for b in (2, 4)}
    erm, paper, official = rows[("ERM (TSN)", 4)], rows[("APN + ADA* (paper)", 4)], rows[("APN + ADA* (official)", 4)]
    assert erm["flops_vs_erm"] == 1.0 and official["flops_vs_official"] == 1.0
    assert paper["flops_vs_official"] == pytest.approx(paper["gflops"] / official["gflops"])
    assert (paper["forward_passes"], paper["theta_steps"]) == (9, 3)  # smallcnn_cpu: T_max 3
    assert "Per clip (least-squares slope" in proc.stdout and "| APN + ADA* (official) |" in proc.stdout

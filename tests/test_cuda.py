"""On a CUDA GPU (skipped elsewhere; scripts/gpu_check.sh runs them): APN + ADA* steps on the GPU in fp32, in
bf16 with channels_last and under TRAIN.COMPILE, the same passes, FLOPs and saved activations as on `meta`, and
a peak of GPU memory that the saved activations account for."""
import math

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

import train
from analysis.cost import META, meta_log_values, move_trainer, step_cost
from framework import build_trainer
from tests.helpers import SYNTHETIC_ARGS, TINY_SYNTHETIC

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (scripts/gpu_check.sh)")


def make(data_root, tmp_path, *opts, device="cuda"):
    args = train.build_parser().parse_args([
        "--root", data_root, *SYNTHETIC_ARGS, "--trainer", "APN", "--config-file",
        "configs/trainers/APN/smallcnn_cpu.yaml", "--output-dir", str(tmp_path / "out"), *TINY_SYNTHETIC,
        "USE_CUDA", str(device == "cuda"), "TRAINER.APN.T_MAX", "5", *opts])
    return build_trainer(train.setup_cfg(args))


@pytest.mark.parametrize("opts", [[], ["TRAIN.BF16", "True", "TRAIN.CHANNELS_LAST", "True"]], ids=["fp32", "bf16_cl"])
def test_apn_ada_star_step_on_the_gpu(data_root, tmp_path, opts):
    trainer = make(data_root, tmp_path, *opts)
    assert trainer.device.type == "cuda"
    cost = step_cost(trainer, next(iter(trainer.train_loader_x)))
    assert (cost["forward_passes"], cost["backward_passes"], cost["theta_steps"]) == (13, 13, 3)
    assert all(math.isfinite(v) for v in cost["losses"].values())
    assert all(p.is_cuda for p in trainer.model.parameters())


def test_the_gpu_computes_and_saves_what_meta_counts(data_root, tmp_path):
    costs = {}
    for device in ("cuda", "meta"):
        torch.manual_seed(0)
        trainer = make(data_root, tmp_path, device="cpu" if device == "meta" else "cuda")
        batch = next(iter(trainer.train_loader_x))
        if device == "meta":
            move_trainer(trainer, META)
        with meta_log_values(), sdpa_kernel(SDPBackend.MATH):
            costs[device] = step_cost(trainer, batch, flops=True, saved_memory=True)
    assert costs["cuda"]["gflops"] == costs["meta"]["gflops"]
    assert costs["cuda"]["saved_peak_bytes"] == pytest.approx(costs["meta"]["saved_peak_bytes"], rel=0.02)


def test_the_peak_of_gpu_memory_holds_the_saved_activations(data_root, tmp_path):
    trainer = make(data_root, tmp_path, "DATALOADER.TRAIN_X.BATCH_SIZE", "16")
    batch = next(iter(trainer.train_loader_x))
    step_cost(trainer, batch)  # optimiser state and allocator warm
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    saved = step_cost(trainer, batch, saved_memory=True)["saved_peak_bytes"]
    torch.cuda.synchronize()
    extra = torch.cuda.max_memory_allocated() - before
    print(f"saved activations {saved / 2**20:.1f} MiB, peak above the model's memory {extra / 2**20:.1f} MiB")
    assert extra >= 0.9 * saved  # what autograd saves is on the GPU at the peak


def test_compiled_step_matches_eager_on_the_gpu(data_root, tmp_path):
    from tests.test_compile import compare_one_step

    compare_one_step(data_root, tmp_path, ["USE_CUDA", "True"])  # TRAIN.COMPILE_BACKEND inductor: Triton kernels

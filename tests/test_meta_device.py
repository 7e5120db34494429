"""One training step of every registered trainer with its models and the batch on PyTorch's `meta` device.

A meta tensor has a shape, a dtype and a device but no values, and an operation that mixes it with a tensor on
another device fails as it would on CUDA. So a step that passes here makes no tensor on the CPU by default (a
`torch.zeros(n)` without `device=`), which is the bug that would first break a CUDA run. Host reads of log
values (`.item()`, `.tolist()`) read NaN here (analysis.cost.meta_log_values). Plus bf16 autocast and
channels_last on one APN + ADA* step on the CPU.
"""
import math
import os.path as osp

import pytest
import torch

import components
import train
from analysis.cost import META, meta_log_values, move_trainer, step_cost
from framework import TRAINER_REGISTRY, build_trainer
from tests.helpers import REPO, TINY_SYNTHETIC

TWO_SOURCES = ["--dataset-config-file", "configs/datasets/synthetic_dg.yaml", "--source-domains", "studio", "street",
               "--target-domains", "sketch"]
# Fewer ascent steps where a trainer has them: the meta device is slow per operation, not per element.
SHORT = {"APN": ["TRAINER.APN.T_MAX", "1"], "VideoADA": ["TRAINER.VIDEOADA.T_MAX", "1"]}


def registered_trainers() -> list:
    """The project's trainers registered on this engine (the Dassl* adapters only on real Dassl)."""
    components.register_all()
    registered = set(TRAINER_REGISTRY.registered_names())
    names = [name.split(" (if ")[0] for name in components.list_components()["trainers"]]
    return sorted(name for name in names if name in registered)


def config_for(trainer: str) -> str:
    """The trainer's CPU config (configs/trainers/<name>/smallcnn_cpu.yaml), else the shared CPU base."""
    own = osp.join("configs", "trainers", trainer, "smallcnn_cpu.yaml")
    return own if osp.isfile(osp.join(REPO, own)) else "configs/base/smallcnn_cpu.yaml"


def build(data_root, tmp_path, trainer: str, *opts):
    args = train.build_parser().parse_args([
        "--root", data_root, *TWO_SOURCES, "--trainer", trainer, "--config-file", config_for(trainer),
        "--output-dir", str(tmp_path / "out"), *TINY_SYNTHETIC, *SHORT.get(trainer, []), *opts])
    return build_trainer(train.setup_cfg(args))


@pytest.mark.parametrize("trainer", registered_trainers())
def test_one_step_on_the_meta_device(trainer, data_root, tmp_path):
    t = build(data_root, tmp_path, trainer)
    batch = next(iter(t.train_loader_x))
    move_trainer(t, META)
    with meta_log_values():
        cost = step_cost(t, batch)  # the loader's host batch: parse_batch_train moves it, as on CUDA
    tensors = [p for m in t._models.values() for p in [*m.parameters(), *m.buffers()]]
    tensors += [v for o in t._optims.values() if o is not None for s in o.state.values() for v in s.values()
                if torch.is_tensor(v) and v.dim() > 0]
    assert tensors and all(x.is_meta for x in tensors), "a parameter, buffer or optimizer state left the device"
    assert cost["theta_steps"] >= 1 and cost["forward_passes"] >= 1 and cost["backward_passes"] >= 1
    assert cost["losses"] and all(math.isnan(v) for v in cost["losses"].values())  # read on meta: no values


def test_a_tensor_made_on_the_cpu_is_caught(data_root, tmp_path):
    """The check above can fail: a head that adds a CPU tensor breaks the meta step."""
    t = build(data_root, tmp_path, "VideoVanilla")
    batch = next(iter(t.train_loader_x))
    move_trainer(t, META)
    t.model.head.register_forward_hook(lambda _m, _i, out: out + torch.ones(out.shape[-1]))
    with meta_log_values(), pytest.raises(RuntimeError, match="device"):
        step_cost(t, batch)


def test_bf16_autocast_and_channels_last_run_one_apn_step(data_root, tmp_path):
    t = build(data_root, tmp_path, "APN", "TRAIN.BF16", "True", "TRAIN.CHANNELS_LAST", "True")
    assert t.model.backbone.cnn[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    dtypes = []
    t.model.backbone.register_forward_hook(lambda _m, _i, out: dtypes.append(out.dtype))
    before = [p.detach().clone() for p in t.model.parameters()]
    cost = step_cost(t, next(iter(t.train_loader_x)))
    assert cost["theta_steps"] == 3 and set(dtypes) == {torch.bfloat16}  # every encoder pass under autocast
    assert all(math.isfinite(v) for v in cost["losses"].values()) and "loss_adv_II" in cost["losses"]
    assert all(p.dtype == torch.float32 for p in t.model.parameters())  # the weights stay fp32 ...
    assert any(not torch.equal(a, b) for a, b in zip(before, t.model.parameters()))  # ... and are trained

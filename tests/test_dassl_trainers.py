"""Dassl's own DG trainers on video (trainers/dassl_dg.py: DasslCrossGrad, DasslDDAIG, DasslDAELDG,
DasslDomainMix) through train.py, on real Dassl only.

They exist only when Dassl is the engine, so these tests run train.py with VIDEODG_ENGINE=dassl (in this
process where it runs on Dassl, else in a child) and are skipped where Dassl cannot be imported (the dassl
marker, tests/conftest.py).
"""
import os
import os.path as osp
import subprocess
import sys

import pytest

from tests.helpers import REPO, TINY_SYNTHETIC, read_results, train_on

pytestmark = pytest.mark.dassl

CONFIG = ["--config-file", "configs/trainers/VideoVanilla/smallcnn_cpu.yaml"]
TWO_SOURCES = ["--dataset-config-file", "configs/datasets/synthetic_dg.yaml", "--source-domains", "studio", "street",
               "--target-domains", "sketch", "glimpse"]


def test_video_crossgrad_trains_resumes_and_evaluates(data_root, tmp_path):
    out = str(tmp_path / "crossgrad")
    common = ["--root", data_root, *TWO_SOURCES, "--trainer", "DasslCrossGrad", *CONFIG, "--output-dir", out,
              "--seed", "1", *TINY_SYNTHETIC]
    # Dassl's hyperparameter node survives clean_cfg although the trainer is named DasslCrossGrad
    stdout = train_on("dassl", [*common, "OPTIM.MAX_EPOCH", "1", "TRAINER.CROSSGRAD.EPS_F", "0.5"])
    assert "Engine: dassl" in stdout and "Loading trainer: DasslCrossGrad" in stdout
    assert " loss_f " in stdout and " loss_d " in stdout
    config = open(osp.join(out, "config.yaml")).read()
    assert "  CROSSGRAD:" in config and "EPS_F: 0.5" in config and "VIDEOCROSSGRAD" not in config
    for name in ("F", "D"):  # the label net and the domain net, each in Dassl's layout
        assert sorted(os.listdir(osp.join(out, name))) == ["checkpoint", "model-best.pth.tar", "model.pth.tar-1"]
    rows = read_results(out)
    assert rows[("target", "pooled")]["n"] == 48 and rows[("source val", "studio")]["n"] == 8

    # a longer schedule continues from the checkpoints of both networks
    stdout = train_on("dassl", [*common, "OPTIM.MAX_EPOCH", "2"])
    assert "Resuming after epoch 1" in stdout
    assert "epoch [2/2]" in stdout and "epoch [1/2]" not in stdout

    evaluated = str(tmp_path / "eval")
    stdout = train_on("dassl", ["--root", data_root, *TWO_SOURCES, "--trainer", "DasslCrossGrad", *CONFIG,
                                "--output-dir", evaluated, "--eval-only", "--model-dir", out, "--load-epoch", "2",
                                *TINY_SYNTHETIC])
    assert "model.pth.tar-2 into F (epoch 2" in stdout and "model.pth.tar-2 into D (epoch 2" in stdout
    assert set(read_results(evaluated)) == set(rows)


@pytest.mark.parametrize("trainer,loss_keys", [("DasslDomainMix", ["loss", "acc"]),
                                               ("DasslDDAIG", ["loss_g", "loss_f", "loss_d"]),
                                               ("DasslDAELDG", ["loss_x", "loss_cr"])])
def test_dassl_trainers_with_two_source_domains(trainer, loss_keys, data_root, tmp_path):
    """Two source domains: DomainMix mixes across domains, DDAIG's generator perturbs clips (clip_fcn_gctx),
    DAELDG trains one expert per domain on domain-balanced batches with a strong clip view as img2."""
    out = str(tmp_path / trainer)
    config = ["--config-file", f"configs/trainers/{trainer}/smallcnn_cpu.yaml"]
    stdout = train_on("dassl", ["--root", data_root, *TWO_SOURCES, "--trainer", trainer, *config, "--output-dir",
                                out, "--seed", "1", *TINY_SYNTHETIC, "OPTIM.MAX_EPOCH", "1"])
    for key in loss_keys:
        assert f" {key} " in stdout
    assert "Deploy the model with the best val performance" in stdout
    rows = read_results(out)
    assert rows[("target", "pooled")]["n"] == 48 and rows[("source val", "pooled")]["n"] == 16


def test_registering_our_components_leaves_dassls_modules_and_names_alone():
    """Under real Dassl the plain names stay Dassl's image trainers, and no name inside Dassl's modules changes."""
    probe = """
import dassl.engine.trainer as engine
import dassl.engine.dg.crossgrad as crossgrad
import dassl.engine.dg.daeldg as daeldg
before = {m.__name__: dict(vars(m)) for m in (engine, crossgrad, daeldg)}
import components
components.register_all()
from framework import ENGINE, TRAINER_REGISTRY
assert ENGINE == "dassl"
for m in (engine, crossgrad, daeldg):
    changed = [k for k, v in vars(m).items() if before[m.__name__].get(k) is not v]
    assert not changed, (m.__name__, changed)
for name in ("CrossGrad", "DDAIG", "DAELDG", "DomainMix"):
    assert TRAINER_REGISTRY.get(name).__module__.startswith("dassl."), name
    assert issubclass(TRAINER_REGISTRY.get("Dassl" + name), TRAINER_REGISTRY.get(name)), name
print("checked")
"""
    env = dict(os.environ, VIDEODG_ENGINE="dassl")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "checked" in proc.stdout

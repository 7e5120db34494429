"""Dassl's own DG trainers on video (trainers/dassl_dg.py: DasslCrossGrad, DasslDDAIG, DasslDAELDG,
DasslDomainMix) through train.py, on real Dassl only.

They exist only when Dassl is the engine, so these tests run train.py in a subprocess with
VIDEODG_ENGINE=dassl and are skipped where Dassl cannot be imported.
"""
import os
import os.path as osp

import pytest

from tests.helpers import SYNTHETIC_ARGS, TINY_SYNTHETIC, dassl_importable, read_results, run_train

pytestmark = pytest.mark.skipif(not dassl_importable(), reason="Dassl is not installed (or `import dassl.engine` "
                                "fails); the Dassl* trainers exist only on real Dassl")

CONFIG = ["--config-file", "configs/trainers/VideoVanilla/smallcnn_cpu.yaml"]
TWO_SOURCES = ["--dataset-config-file", "configs/datasets/synthetic_dg.yaml", "--source-domains", "studio", "street",
               "--target-domains", "sketch", "glimpse"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("data"))


def test_video_crossgrad_trains_resumes_and_evaluates(data_root, tmp_path):
    out = str(tmp_path / "crossgrad")
    common = ["--root", data_root, *TWO_SOURCES, "--trainer", "DasslCrossGrad", *CONFIG, "--output-dir", out,
              "--seed", "1", *TINY_SYNTHETIC]
    # Dassl's hyperparameter node survives clean_cfg although the trainer is named DasslCrossGrad
    proc = run_train([*common, "OPTIM.MAX_EPOCH", "1", "TRAINER.CROSSGRAD.EPS_F", "0.5"], "dassl")
    assert "Engine: dassl" in proc.stdout and "Loading trainer: DasslCrossGrad" in proc.stdout
    assert " loss_f " in proc.stdout and " loss_d " in proc.stdout
    config = open(osp.join(out, "config.yaml")).read()
    assert "CROSSGRAD:" in config and "EPS_F: 0.5" in config
    for name in ("F", "D"):  # the label net and the domain net, each in Dassl's layout
        assert sorted(os.listdir(osp.join(out, name))) == ["checkpoint", "model-best.pth.tar", "model.pth.tar-1"]
    rows = read_results(out)
    assert rows[("target", "pooled")]["n"] == 48 and rows[("source val", "studio")]["n"] == 8

    # a longer schedule continues from the checkpoints of both networks
    proc = run_train([*common, "OPTIM.MAX_EPOCH", "2"], "dassl")
    assert "Resuming after epoch 1" in proc.stdout
    assert "epoch [2/2]" in proc.stdout and "epoch [1/2]" not in proc.stdout

    evaluated = str(tmp_path / "eval")
    proc = run_train(["--root", data_root, *TWO_SOURCES, "--trainer", "DasslCrossGrad", *CONFIG,
                      "--output-dir", evaluated, "--eval-only", "--model-dir", out, "--load-epoch", "2",
                      *TINY_SYNTHETIC], "dassl")
    assert "model.pth.tar-2 into F (epoch 2" in proc.stdout and "model.pth.tar-2 into D (epoch 2" in proc.stdout
    assert set(read_results(evaluated)) == set(rows)


@pytest.mark.parametrize("trainer,loss_keys", [("DasslDomainMix", ["loss", "acc"]),
                                               ("DasslDDAIG", ["loss_g", "loss_f", "loss_d"]),
                                               ("DasslDAELDG", ["loss_x", "loss_cr"])])
def test_dassl_trainers_with_two_source_domains(trainer, loss_keys, data_root, tmp_path):
    """Two source domains: DomainMix mixes across domains, DDAIG's generator perturbs clips (clip_fcn_gctx),
    DAELDG trains one expert per domain on domain-balanced batches with a strong clip view as img2."""
    out = str(tmp_path / trainer)
    config = ["--config-file", f"configs/trainers/{trainer[len('Dassl'):]}/smallcnn_cpu.yaml"]
    proc = run_train(["--root", data_root, *TWO_SOURCES, "--trainer", trainer, *config, "--output-dir", out,
                      "--seed", "1", *TINY_SYNTHETIC, "OPTIM.MAX_EPOCH", "1"], "dassl")
    for key in loss_keys:
        assert f" {key} " in proc.stdout
    assert "Deploy the model with the best val performance" in proc.stdout
    rows = read_results(out)
    assert rows[("target", "pooled")]["n"] == 48 and rows[("source val", "pooled")]["n"] == 16

"""End-of-run figures: written as valid PNGs with the expected names by a tiny real run and by --eval-only;
the log parser behind the training curves; a figure that cannot be drawn never fails the run."""
import os
import os.path as osp
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from analysis import figures
from framework import EVALUATION_HEADER
from tests.helpers import REPO, SYNTHETIC_ARGS, TINY_SYNTHETIC, train_in_process, train_on
from trainers.results import Predictions

TARGETS = ["street", "sketch", "glimpse"]
RUN_FIGURES = [f"confusion_{t}.png" for t in TARGETS] + ["per_class_accuracy.png", "showcase.png"]


def assert_pngs(folder, names):
    assert sorted(os.listdir(folder)) == sorted(names)
    for name in names:
        with Image.open(osp.join(folder, name)) as image:
            assert image.format == "PNG" and min(image.size) > 100
            image.verify()


def apn_args(data):
    return ["--root", data, *SYNTHETIC_ARGS, "--trainer", "APN", "--config-file",
            "configs/trainers/APN/smallcnn_cpu.yaml"]


OPTS = [*TINY_SYNTHETIC, "TEST.FIGURES", "True", "TRAINER.APN.T_MAX", "1", "OPTIM.MAX_EPOCH", "1"]


def assert_run_wrote_its_figures(out: str, stdout: str) -> None:
    assert "Warning" not in stdout and "Figures written to" in stdout
    assert_pngs(osp.join(out, "figures"), RUN_FIGURES + ["training_curves.png"])


@pytest.fixture(scope="module")
def apn_run(data_root, tmp_path_factory):
    """A tiny APN + ADA* run (one epoch) with figures, in this process: (output folder, data root, stdout)."""
    out = str(tmp_path_factory.mktemp("figures") / "run")
    return out, data_root, train_in_process([*apn_args(data_root), "--output-dir", out, *OPTS])


@pytest.mark.slow
def test_a_run_writes_its_figures(apn_run):
    out, _, stdout = apn_run
    assert_run_wrote_its_figures(out, stdout)


@pytest.mark.dassl
def test_a_run_on_real_dassl_writes_its_figures(data_root, tmp_path):
    out = str(tmp_path / "run")
    stdout = train_on("dassl", [*apn_args(data_root), "--output-dir", out, *OPTS])
    assert "Engine: dassl" in stdout
    assert_run_wrote_its_figures(out, stdout)


@pytest.mark.slow
def test_eval_only_writes_the_evaluation_figures(apn_run, tmp_path):
    out, data, _ = apn_run
    evaluated = str(tmp_path / "eval")
    stdout = train_in_process([*apn_args(data), "--output-dir", evaluated, "--eval-only", "--model-dir", out, *OPTS])
    assert "no training curves" in stdout  # its log has no training lines
    assert_pngs(osp.join(evaluated, "figures"), RUN_FIGURES)


@pytest.mark.slow
def test_feature_views_of_a_trained_apn(apn_run, tmp_path, capsys):
    sys.path.insert(0, osp.join(REPO, "tools"))
    import feature_views
    out, _, _ = apn_run
    path = str(tmp_path / "views.png")
    feature_views.main(feature_views.build_parser().parse_args([out, "--max-per-domain", "8", "--out", path]))
    assert "t-SNE of 32 clips (global, II, III)" in capsys.readouterr().out  # 8 source-val + 3 x 8 target clips
    assert_pngs(tmp_path, ["views.png"])


def test_training_log_parser_reads_resumed_sessions_and_small_values(tmp_path):
    val_header = EVALUATION_HEADER.format("val")  # the line the engines print before a validation block
    first = ("epoch [1/2] batch [1/2] time 0.1 (0.1) data 0.0 (0.0) loss_src 2.5000 (2.5000) acc 10.0 (10.0) "
             "cost_II 1.5e-05 (1.5e-05) lr 2.0000e-03 eta 0:00:03\n"
             "epoch [1/2] batch [2/2] time 0.1 (0.1) data 0.0 (0.0) loss_src 2.0000 (2.2500) acc 20.0 (15.0) "
             "cost_II 3.0e-05 (2.2e-05) lr 1.0000e-03 eta 0:00:02\n"
             f"{val_header}\n=> result\n* total: 8\n* correct: 2\n* accuracy: 25.0%\n"
             "epoch [2/2] batch [1/2] time 0.1 (0.1) data 0.0 (0.0) loss_src 9.0000 (9.0000) acc 0.0 (0.0) "
             "lr 5.0000e-04 eta 0:00:01\n")
    (tmp_path / "log.txt").write_text(first)  # killed during epoch 2, then resumed from epoch 1's checkpoint
    (tmp_path / "log.txt-2026-01-01-00-00-00").write_text(
        "epoch [2/2] batch [1/2] time 0.1 (0.1) data 0.0 (0.0) loss_src 1.5000 (1.5000) acc 40.0 (40.0) "
        f"lr 5.0000e-04 eta 0:00:01\n{val_header}\n* accuracy: 50.0%\n")
    series = figures.parse_training_log(figures.log_files(str(tmp_path)))
    assert series["loss_src"] == {0.5: 2.5, 1.0: 2.0, 1.5: 1.5}  # the resumed session wins
    assert series["cost_II"] == {0.5: 1.5e-05, 1.0: 3.0e-05}
    assert series["lr"][1.5] == 5e-4 and series["val_accuracy"] == {1.0: 25.0, 2.0: 50.0}
    assert "time" not in series and "data" not in series
    path = figures.plot_training_curves(series, str(tmp_path / "curves.png"))
    with Image.open(path) as image:
        assert image.format == "PNG"


def test_confusion_matrix_is_row_normalised():
    matrix = figures.confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 0, 1, 1]), 3)
    assert matrix.tolist() == [[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 0.0]]


def test_a_figure_that_cannot_be_drawn_is_a_warning(tmp_path, capsys):
    from yacs.config import CfgNode
    cfg = CfgNode({"OUTPUT_DIR": str(tmp_path), "TRAINER": {"NAME": "APN"},
                   "DATASET": {"SOURCE_DOMAINS": ["studio"], "TARGET_DOMAINS": ["street", "sketch"]}})
    rng = np.random.default_rng(0)
    test = Predictions(rng.dirichlet(np.ones(4), 12), np.arange(12) % 4, np.arange(12) // 6)
    # the loaders cannot give frames (no dataset), so the showcase fails; everything else is drawn
    trainer = SimpleNamespace(cfg=cfg, lab2cname={0: "a", 1: "b", 2: "c", 3: "d"}, val_loader=None, test_loader=None)
    written = figures.draw_run_figures(trainer, test)
    out = capsys.readouterr().out
    assert "Warning: could not draw the showcase figure" in out and "no training curves" in out
    assert sorted(osp.basename(p) for p in written) == ["confusion_sketch.png", "confusion_street.png",
                                                        "per_class_accuracy.png"]


def test_no_figures_flag_turns_the_config_key_off():
    import train
    args = ["--dataset-config-file", "configs/datasets/synthetic_dg.yaml", "--trainer", "APN", "--config-file",
            "configs/trainers/APN/smallcnn_cpu.yaml"]
    assert train.setup_cfg(train.build_parser().parse_args(args)).TEST.FIGURES is True
    assert train.setup_cfg(train.build_parser().parse_args([*args, "--no-figures"])).TEST.FIGURES is False


def test_showcase_refuses_predictions_that_left_clips_out():
    preds = Predictions(np.full((3, 2), 0.5), np.zeros(3, int), np.zeros(3, int))
    loader = SimpleNamespace(dataset=[None] * 3)
    figures.check_aligned(preds, loader, "test")  # one prediction per item: aligned
    with pytest.raises(RuntimeError, match="unreadable clips were left out"):
        figures.check_aligned(preds._replace(skipped=np.array([0])), SimpleNamespace(dataset=[None] * 4), "test")

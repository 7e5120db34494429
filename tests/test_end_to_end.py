"""train.py end to end on a tiny synthetic benchmark: train, save, resume, --eval-only, APN, bad input."""
import glob
import json
import os
import os.path as osp
import signal
import subprocess
import sys

import pytest

from tests.helpers import (ENGINES, REPO, SYNTHETIC_ARGS, TINY_SYNTHETIC, read_results, run_train, train_in_process,
                           train_on)

ERM_ARGS = ["--trainer", "VideoVanilla", "--config-file", "configs/trainers/VideoVanilla/smallcnn_cpu.yaml"]


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_train_resume_and_eval_only(engine, data_root, tmp_path):
    out = str(tmp_path / "run")
    common = ["--root", data_root, *SYNTHETIC_ARGS, *ERM_ARGS, "--output-dir", out, "--seed", "1"]
    proc = run_train([*common, *TINY_SYNTHETIC, "OPTIM.MAX_EPOCH", "2"], engine)

    # Dassl's layout: one folder per model, 1-based epoch files, the best_val copy and the pointer
    files = sorted(os.listdir(osp.join(out, "model")))
    assert files == ["checkpoint", "model-best.pth.tar", "model.pth.tar-1", "model.pth.tar-2"]
    assert glob.glob(osp.join(out, "tensorboard", "events.*"))
    log = open(osp.join(out, "log.txt")).read()
    assert "epoch [2/2] batch [" in log and " lr " in log and " eta " in log and "acc " in log
    assert "Chosen epoch " in log  # the best_val model was deployed for the final test
    rows = read_results(out)
    assert set(rows) == {("source val", "studio"), ("target", "street"), ("target", "sketch"),
                         ("target", "glimpse"), ("target", "pooled")}
    assert rows[("target", "pooled")]["n"] == 3 * 24 and rows[("source val", "studio")]["n"] == 8
    assert osp.isfile(osp.join(out, "results.csv"))
    assert "| split" in proc.stdout  # the results table is printed

    # started again with a longer schedule, the run continues after its last checkpoint
    proc = run_train([*common, *TINY_SYNTHETIC, "OPTIM.MAX_EPOCH", "3"], engine)
    assert "Resuming after epoch 2" in proc.stdout
    assert "epoch [3/3]" in proc.stdout and "epoch [1/3]" not in proc.stdout and "epoch [2/3]" not in proc.stdout
    assert glob.glob(osp.join(out, "log.txt-*"))  # a resumed run keeps the first log

    # --eval-only loads a given epoch (Dassl 0.6.3 crashed here) and reports the same table
    evaluated = str(tmp_path / "eval")
    proc = run_train(["--root", data_root, *SYNTHETIC_ARGS, *ERM_ARGS, "--output-dir", evaluated, "--eval-only",
                      "--model-dir", out, "--load-epoch", "2", *TINY_SYNTHETIC], engine)
    assert "model.pth.tar-2 into model (epoch 2, val accuracy n/a)" in proc.stdout
    assert set(read_results(evaluated)) == set(rows)
    assert not osp.exists(osp.join(evaluated, "model"))  # evaluation writes no checkpoints


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("levels,loss_keys", [("none", ["loss_src"]),
                                              ("II+III", ["loss_src", "loss_adv_II", "loss_adv_III", "cost_II"])])
def test_apn_end_to_end(engine, levels, loss_keys, data_root, tmp_path):
    out = str(tmp_path / "apn")
    stdout = train_on(engine, ["--root", data_root, *SYNTHETIC_ARGS, "--trainer", "APN", "--config-file",
                               "configs/trainers/APN/smallcnn_cpu.yaml", "--output-dir", out, *TINY_SYNTHETIC,
                               "OPTIM.MAX_EPOCH", "1", "TRAINER.APN.LEVELS", levels, "TRAINER.APN.T_MAX", "2"])
    assert f"Engine: {engine}" in stdout
    for key in loss_keys:
        assert f" {key} " in stdout
    assert ("loss_adv_II" in stdout) == (levels != "none")
    assert read_results(out)[("target", "pooled")]["n"] == 72


@pytest.mark.e2e
@pytest.mark.slow
def test_killed_run_continues_from_its_last_checkpoint(data_root, tmp_path):
    out = str(tmp_path / "killed")
    train_args = ["--root", data_root, *SYNTHETIC_ARGS, *ERM_ARGS, "--output-dir", out, *TINY_SYNTHETIC]
    env = dict(os.environ, VIDEODG_ENGINE="builtin", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "train.py", *train_args, "OPTIM.MAX_EPOCH", "40"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # Wait on the log, not on a file: the first batch line of epoch 3 is printed after epoch 2's checkpoint
    # was saved (the keep-3 rule deletes model.pth.tar-2 later, so waiting for that file can miss it).
    printed = []
    try:
        for line in proc.stdout:
            printed.append(line)
            if line.startswith("epoch [3/40]"):
                break
        proc.send_signal(signal.SIGKILL)  # no chance to clean up, as with a crash or a pre-empted job
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL, "".join(printed)[-3000:]  # killed, not finished or failed
    assert not osp.exists(osp.join(out, "results.json"))
    last = int(open(osp.join(out, "model", "checkpoint")).read().strip().rsplit("-", 1)[1])
    assert last >= 2

    resumed = train_in_process([*train_args, "OPTIM.MAX_EPOCH", str(last + 1)])
    assert f"Resuming after epoch {last}" in resumed and f"epoch [{last + 1}/{last + 1}]" in resumed
    assert f"epoch [{last}/{last + 1}]" not in resumed


def test_unknown_names_list_the_valid_ones(data_root):
    with pytest.raises((Exception, SystemExit)) as e:
        train_in_process(["--root", data_root, *SYNTHETIC_ARGS, "--trainer", "APM", *TINY_SYNTHETIC])
    assert "APN" in str(e.value) and "VideoVanilla" in str(e.value)
    with pytest.raises((Exception, SystemExit)) as e:
        train_in_process(["--root", data_root, *SYNTHETIC_ARGS, *ERM_ARGS, "--target-domains", "stret",
                          *TINY_SYNTHETIC])
    assert "stret" in str(e.value) and "glimpse" in str(e.value)
    with pytest.raises((Exception, SystemExit)) as e:
        train_in_process([*SYNTHETIC_ARGS, *ERM_ARGS, *TINY_SYNTHETIC])
    assert "DATASET.ROOT is empty" in str(e.value) and "--root" in str(e.value)


@pytest.mark.e2e
@pytest.mark.slow
def test_gamma_ensemble_of_trained_runs(data_root, tmp_path):
    members = []
    for gamma in ("0.1", "1.0"):
        out = str(tmp_path / f"gamma{gamma}")
        # in a child, as a user runs them: an in-process run saves the config keys that other tests registered
        # in this process (a plugin's node), which a fresh ensemble.py could not read
        run_train(["--root", data_root, *SYNTHETIC_ARGS, "--trainer", "APN", "--config-file",
                   "configs/trainers/APN/smallcnn_cpu.yaml", "--output-dir", out, "--seed", "1", *TINY_SYNTHETIC,
                   "OPTIM.MAX_EPOCH", "1", "TRAINER.APN.T_MAX", "1", "TRAINER.APN.GAMMA", gamma])
        members.append(out)
    ensemble_dir = str(tmp_path / "ensemble")
    env = dict(os.environ, VIDEODG_ENGINE="builtin")
    proc = subprocess.run([sys.executable, "ensemble.py", "--model-dirs", *members, "--output-dir", ensemble_dir],
                          cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(osp.join(ensemble_dir, "ensemble_results.json")) as f:
        rows = json.load(f)
    models = {row["model"] for row in rows}
    assert models == {"gamma0.1", "gamma1.0", "ensemble: most-confident", "ensemble: softmax-average"}
    pooled = {row["model"]: row for row in rows if row["domain"] == "pooled"}
    assert all(row["n"] == 72 for row in pooled.values())
    # each member's numbers are its own run's, evaluated again from its best checkpoint
    for member in members:
        own = read_results(member)[("target", "pooled")]["accuracy"]
        assert pooled[osp.basename(member)]["accuracy"] == pytest.approx(own)


@pytest.mark.e2e
@pytest.mark.slow
def test_throughput_benchmark_script_runs(tmp_path):
    proc = subprocess.run([sys.executable, "scripts/benchmark.py", "--preset", "small", "--device", "cpu", "--steps", "1",
                           "--warmup", "0", "--root", str(tmp_path / "data"), "--output-dir", str(tmp_path / "out")],
                          cwd=REPO, env=dict(os.environ, VIDEODG_ENGINE="builtin"), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for variant in ("TSN-ERM", "APN-ERM", "APN+ADA*", "TRN-ERM", "TRN-ATTN-ERM", "TSM-ERM", "I3D-ERM", "NL-ERM",
                    "ViT-TSN-ERM", "ViT-APN-ERM", "ViT-APN+ADA*"):
        assert f"| {variant}" in proc.stdout

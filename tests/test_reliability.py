"""Reliability of a run (issue 13): exact resume after kill -9, one run per output folder, evaluation that
never overwrites a run, flags misplaced after KEY VALUE pairs. Kills are injected at named points
(VIDEODG_KILL_AT) so that each lands where it is meant to."""
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest

from tests.helpers import REPO, SYNTHETIC_ARGS, TINY_SYNTHETIC, train_in_process

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


def _read(path):
    with open(path) as f:
        return f.read()


@pytest.fixture(scope="module")
def finished_run(data_root, tmp_path_factory):
    """An uninterrupted run in a child process, as the killed ones: (train.py arguments without --output-dir,
    its output folder)."""
    base = tmp_path_factory.mktemp("reliability")
    common = ["--root", data_root, *SYNTHETIC_ARGS, *ERM_ARGS]
    out = str(base / "straight")
    proc = _train([*common, "--output-dir", out, *SHORT])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return common, out


@pytest.mark.e2e
@pytest.mark.slow
def test_killed_three_times_gives_bit_identical_results(finished_run, tmp_path):
    common, straight = finished_run
    out = str(tmp_path / "killed")
    args = [*common, "--output-dir", out, *SHORT]
    for point in ("batch 2 2", "save model.pth.tar-2", "final"):  # in an epoch, in a save, in the final test
        proc = _train(args, kill_at=point)
        assert proc.returncode == -9, f"not killed at {point!r}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        assert not osp.exists(osp.join(out, "results.json"))
    proc = _train(args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Resuming after epoch 2" in proc.stdout and "exact resume" in proc.stdout
    assert "Taking over the lock" in proc.stdout  # the killed runs left their lock behind
    assert json.loads(_read(osp.join(straight, "results.json"))) == json.loads(_read(osp.join(out, "results.json")))
    leftovers = [f for _, _, files in os.walk(out) for f in files if ".tmp-" in f]
    assert leftovers == []  # the save killed half-way left a temporary file; the next start removed it


@pytest.mark.slow
def test_eval_only_reads_the_run_config_and_never_overwrites_the_run(finished_run):
    _, run = finished_run
    before = {name: _read(osp.join(run, name)) for name in ("results.json", "results.csv", "config.yaml")}
    train_in_process(["--eval-only", "--model-dir", run])  # no config files, no --root: the run's config.yaml
    best = json.loads(_read(osp.join(run, "eval", "test-best", "results.json")))
    assert best == json.loads(before["results.json"])  # same model, same data, same numbers
    train_in_process(["--eval-only", "--model-dir", run, "--output-dir", run, "--load-epoch", "1"])
    assert osp.isfile(osp.join(run, "eval", "test-epoch1", "results.json"))
    assert {name: _read(osp.join(run, name)) for name in before} == before


@pytest.mark.slow
def test_one_run_per_output_folder(data_root, tmp_path):
    common = ["--root", data_root, *SYNTHETIC_ARGS, *ERM_ARGS]
    out = tmp_path / "busy"
    # another process holds the folder until the test closes its stdin (no sleep that a slow machine outlasts)
    holder = subprocess.Popen([sys.executable, "-c", "import sys; from framework import claim_output_dir; "
                               f"claim_output_dir({str(out)!r}); print('held', flush=True); sys.stdin.read()"],
                              cwd=REPO, env=dict(os.environ, VIDEODG_ENGINE="builtin"), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SystemExit) as e:
            train_in_process([*common, "--output-dir", str(out), *SHORT])
        assert f"PID {holder.pid}" in str(e.value) and socket.gethostname() in str(e.value)
        assert not osp.exists(out / "log.txt")  # stopped before writing anything
    finally:
        holder.kill()
        holder.wait()
        holder.stdin.close()
        holder.stdout.close()


def test_stale_lock_is_taken_over_with_a_log_line(tmp_path):
    from framework import claim_output_dir
    out = tmp_path / "stale"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / ".run.lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": "x"}))
    (out / "model").mkdir()
    half = out / "model" / f"model.pth.tar-3.tmp-{dead.pid}"
    half.write_bytes(b"half")
    other_run = out / "seed1" / "model"  # a run nested below this folder is not this run's business
    other_run.mkdir(parents=True)
    (other_run / f"model.pth.tar-1.tmp-{dead.pid}").write_bytes(b"theirs")
    notes = claim_output_dir(str(out))
    assert any(f"PID {dead.pid}" in n and "no longer running" in n for n in notes)
    assert any(half.name in n for n in notes) and not half.exists()
    assert (other_run / f"model.pth.tar-1.tmp-{dead.pid}").exists()
    assert json.loads((out / ".run.lock").read_text())["pid"] == os.getpid()


def test_a_flag_after_the_key_value_pairs_gets_a_hint():
    with pytest.raises(SystemExit) as e:  # a message and exit status 1, no traceback
        train_in_process(["--trainer", "VideoVanilla", "OPTIM.MAX_EPOCH", "2", "--eval-only"])
    assert "--eval-only stands after the KEY VALUE pairs" in str(e.value)

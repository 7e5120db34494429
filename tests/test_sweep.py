"""sweep.py: method specs, search-space draws, run folders named by the merged config, run states, the parallel
launcher on real tiny runs, relaunching, and collect's tables."""
import json
import os
import subprocess
import sys

import pytest
import yaml

import sweep  # in-process for the steps that plan and compare within one process
from sweeps.plan import (cli_value, make_plan, parse_benchmark, parse_method, parse_pairs, run_state,
                         SWEEP_FILE, budget_pairs)
from tests.helpers import REPO, TINY_SYNTHETIC


def plan_for(tmp_path, methods, n_hparams=2, n_trials=2, benchmark="synthetic_dg", pairs=()):
    return make_plan(parse_benchmark(benchmark), [parse_method(m) for m in methods], "smallcnn_cpu", n_hparams,
                     list(range(1, n_trials + 1)), str(tmp_path / "out"), str(tmp_path / "data"),
                     parse_pairs(list(pairs)))


def test_method_specs_keep_commas_inside_brackets_and_read_bare_list_items():
    method = parse_method("MIX=VideoVanilla,MODEL.BACKBONE.MIXSTYLE.LAYERS=[layer1,layer2],OPTIM.LR=0.01")
    assert method.name == "MIX" and method.trainer == "VideoVanilla"
    assert method.overrides == (("MODEL.BACKBONE.MIXSTYLE.LAYERS", "['layer1', 'layer2']"), ("OPTIM.LR", "0.01"))
    assert parse_method("APN") == ("APN", "APN", (), "")
    assert parse_method("TRN=VideoVanilla,setting=trn_cpu,OPTIM.LR=0.01").setting == "trn_cpu"
    assert cli_value("(1.0,0.875)") == "(1.0,0.875)" and cli_value("none") == "none"
    with pytest.raises(SystemExit, match="not KEY=VALUE"):
        parse_method("A=APN,OPTIM.LR")


@pytest.mark.slow
def test_draw_zero_is_the_config_and_later_draws_are_shared_by_trials_and_fixed_by_method_task_index(tmp_path):
    plan = plan_for(tmp_path, ["TSN=VideoVanilla", "APN"], n_hparams=3, n_trials=2)
    runs = {(r.method.name, r.hparam, r.seed): r for r in plan.runs}
    assert len(plan.runs) == 2 * 3 * 2
    with open(os.path.join(REPO, "configs", "base", "smallcnn_cpu.yaml")) as f:
        base_lr = yaml.safe_load(f)["OPTIM"]["LR"]
    assert runs["TSN", 0, 1].drawn == {} and runs["TSN", 0, 1].config["OPTIM"]["LR"] == base_lr
    for name in ("TSN", "APN"):
        for index in (1, 2):
            assert runs[name, index, 1].drawn == runs[name, index, 2].drawn  # one draw, two trial seeds
            assert runs[name, index, 1].folder != runs[name, index, 2].folder
            assert runs[name, index, 1].config["SEED"] == 1 and runs[name, index, 2].config["SEED"] == 2
    assert runs["TSN", 1, 1].drawn != runs["TSN", 2, 1].drawn
    apn = runs["APN", 1, 1].drawn
    assert set(apn) == {"OPTIM.LR", "OPTIM.WEIGHT_DECAY", "DATALOADER.TRAIN_X.BATCH_SIZE", "TRAINER.APN.GAMMA",
                        "TRAINER.APN.ETA"}
    assert set(runs["TSN", 1, 1].drawn) == {"OPTIM.LR", "OPTIM.WEIGHT_DECAY", "DATALOADER.TRAIN_X.BATCH_SIZE"}
    assert 0.001 <= apn["TRAINER.APN.GAMMA"] <= 1.0 and base_lr * 0.1 <= apn["OPTIM.LR"] <= base_lr * 3.0
    assert runs["APN", 1, 1].config["TRAINER"]["APN"]["GAMMA"] == apn["TRAINER.APN.GAMMA"]  # the draw is in the config
    # the same plan again: the same draws and folders; another task (leave-one-domain-out): other draws
    again = plan_for(tmp_path, ["TSN=VideoVanilla", "APN"], n_hparams=3, n_trials=2)
    assert [(r.drawn, r.folder) for r in again.runs] == [(r.drawn, r.folder) for r in plan.runs]
    lodo = plan_for(tmp_path, ["APN"], n_hparams=2, n_trials=1, benchmark="synthetic_dg:lodo")
    assert len({json.dumps(r.drawn, sort_keys=True) for r in lodo.runs if r.hparam == 1}) == 4


@pytest.mark.slow
def test_draws_do_not_depend_on_pythons_string_hash(tmp_path):
    code = ("import json; from tests.test_sweep import plan_for; from pathlib import Path; "
            f"print(json.dumps([r.drawn for r in plan_for(Path({str(tmp_path)!r}), ['APN'], 3, 1).runs]))")
    outputs = [subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                              env=dict(os.environ, PYTHONHASHSEED=seed, VIDEODG_ENGINE="builtin")) for seed in "12"]
    assert all(p.returncode == 0 for p in outputs), outputs[0].stderr[-2000:]
    assert outputs[0].stdout.splitlines()[-1] == outputs[1].stdout.splitlines()[-1]
    assert json.loads(outputs[0].stdout.splitlines()[-1])[1]  # draw 1 drew something


@pytest.mark.slow
def test_keys_set_on_the_command_line_are_fixed_and_a_changed_override_is_a_new_folder(tmp_path):
    plan = plan_for(tmp_path, ["TSN=VideoVanilla", "APN"], pairs=["OPTIM.MAX_EPOCH", "1"])
    changed = plan_for(tmp_path, ["TSN=VideoVanilla", "APN,OPTIM.LR=0.01"], pairs=["OPTIM.MAX_EPOCH", "1"])
    for old, new in zip(plan.runs, changed.runs):
        assert old.config["OPTIM"]["MAX_EPOCH"] == 1
        if old.method.name == "TSN":
            assert new.folder == old.folder
        else:
            assert new.folder != old.folder and new.config["OPTIM"]["LR"] == 0.01
            assert "OPTIM.LR" not in new.drawn
    with pytest.raises(SystemExit, match="odd in number"):
        parse_pairs(["OPTIM.MAX_EPOCH"])
    with pytest.raises(SystemExit, match="NO.SUCH_KEY"):
        plan_for(tmp_path, ["APN"], pairs=["NO.SUCH_KEY", "1"])


def test_budget_goes_to_train_budget_only_once_the_key_exists():
    from train import default_cfg

    if "BUDGET" in default_cfg().TRAIN:
        assert budget_pairs("updates") == (("TRAIN.BUDGET", "updates"),)
    else:
        with pytest.raises(SystemExit, match="TRAIN.BUDGET"):
            budget_pairs("updates")
    assert budget_pairs("") == ()


@pytest.mark.slow
def test_status_tells_done_running_incomplete_differing_and_delete_incomplete_keeps_the_rest(tmp_path, capsys):
    from framework import claim_output_dir

    plan = plan_for(tmp_path, ["TSN=VideoVanilla"], n_hparams=2, n_trials=2)
    done, running, incomplete, differs = plan.runs
    for run in plan.runs:
        os.makedirs(run.folder)
        with open(os.path.join(run.folder, "config.yaml"), "w") as f:
            yaml.safe_dump(run.config, f)
    with open(os.path.join(done.folder, "results.json"), "w") as f:
        json.dump([], f)
    claim_output_dir(running.folder)  # this process holds it, as a training run would
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    with open(os.path.join(incomplete.folder, ".run.lock"), "w") as f:  # left by a process that has exited
        json.dump({"pid": int(gone.stdout), "host": os.uname().nodename}, f)
    other = dict(differs.config, SEED=99)
    with open(os.path.join(differs.folder, "config.yaml"), "w") as f:
        yaml.safe_dump(other, f)
    assert [run_state(r) for r in plan.runs] == ["done", "running", "incomplete", "differs"]

    args = ["--benchmark", "synthetic_dg", "--methods", "TSN=VideoVanilla", "--n-hparams", "2", "--n-trials", "2",
            "--out", str(tmp_path / "out"), "--root", str(tmp_path / "data")]
    assert sweep.main(["status", *args]) == 0
    assert "4 runs: 1 done, 1 running, 0 queued, 1 incomplete, 0 not started, 1 differs" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="config.yaml other than the one this sweep plans"):
        sweep.main(["launch", "--launcher", "print", *args])
    assert sweep.main(["delete-incomplete", *args]) == 0
    assert [os.path.isdir(r.folder) for r in plan.runs] == [True, True, False, True]


@pytest.mark.e2e
@pytest.mark.slow
def test_parallel_sweep_runs_skips_what_is_done_and_collects(tmp_path):
    # every step in its own process, as a user runs it (a pytest process may hold components other tests added)
    common = ["--benchmark", "synthetic_dg", "--n-hparams", "2", "--n-trials", "1", "--out", str(tmp_path / "out"),
              "--root", str(tmp_path / "data")]
    pairs = ["--", "OPTIM.MAX_EPOCH", "1", *TINY_SYNTHETIC]

    def sweep(*args: str, method: str = "TSN=VideoVanilla") -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "sweep.py", *args, "--methods", method, *common, *pairs], cwd=REPO,
                              env=dict(os.environ, VIDEODG_ENGINE="builtin"), capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc

    launch = sweep("launch", "--launcher", "parallel", "--slots", "2")
    assert "2 at a time" in launch.stdout and launch.stdout.count(": done") == 2
    assert "2 runs: 2 done" in sweep("status").stdout
    again = sweep("launch", "--launcher", "print")
    assert "Nothing to start" in again.stderr and "train.py" not in again.stdout
    # a changed override is another run: both of its draws are to start
    changed = sweep("launch", "--launcher", "print", method="TSN=VideoVanilla,OPTIM.LR=0.01")
    printed = [line for line in changed.stdout.splitlines() if "train.py" in line]
    assert len(printed) == 2 and all("OPTIM.LR 0.01" in line for line in printed)

    out = sweep("collect").stdout
    tables = tmp_path / "out" / "synthetic_dg" / "tables"
    for name in ("methods", "paper", "variants"):
        for ext in ("md", "csv", "tex"):
            assert (tables / f"{name}_source_val.{ext}").is_file()
    chosen = json.loads((tables / "hparams_source_val.json").read_text())
    assert len(chosen) == 1 and chosen[0]["method"] == "TSN" and chosen[0]["draw"] in (0, 1)
    run = chosen[0]["runs"][0]
    with open(os.path.join(run, "results.json")) as f:
        target = next(r["accuracy"] for r in json.load(f) if r["split"] == "target" and r["domain"] == "pooled")
    with open(os.path.join(run, SWEEP_FILE)) as f:
        assert json.load(f)["hparam"] == chosen[0]["draw"]
    assert f"| TSN      | {target:.2f} (n 1)" in out

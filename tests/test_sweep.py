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
from tests.helpers import REPO, TINY_SYNTHETIC, read_results, run_bounded

PLAN_LIMIT_S = 300  # a child that plans a sweep (builds its configs) or prints its draws
SWEEP_LIMIT_S = 480  # a sweep.py command that trains two tiny 1-epoch runs


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
                        "TRAINER.APN.ETA", "MODEL.PYRAMID.DROPOUT"}  # the trainer's space and its head's
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
    outputs = [run_bounded([sys.executable, "-c", code], f"the draws with PYTHONHASHSEED={seed}", PLAN_LIMIT_S,
                           cwd=REPO, env=dict(os.environ, PYTHONHASHSEED=seed, VIDEODG_ENGINE="builtin"))
               for seed in "12"]
    assert all(p.returncode == 0 for p in outputs), outputs[0].stderr[-2000:]
    assert outputs[0].stdout.splitlines()[-1] == outputs[1].stdout.splitlines()[-1]
    assert json.loads(outputs[0].stdout.splitlines()[-1])[1]  # draw 1 drew something


def test_every_search_space_names_a_registered_component_and_keys_its_runs_have():
    from defaults import EVERY_RUN, SEARCH_SPACES
    from framework import HEAD_REGISTRY, TRAINER_REGISTRY
    from sweeps.plan import applies, cfg_value
    from trainers.dassl_dg import DASSL_ADAPTERS
    from train import default_cfg

    cfg = default_cfg()
    registries = {"TRAINER.NAME": (TRAINER_REGISTRY, DASSL_ADAPTERS), "MODEL.HEAD.NAME": (HEAD_REGISTRY, ())}
    assert {s.declared_in for s in SEARCH_SPACES} >= {"defaults", "trainers.rsc", "trainers.stdn", "trainers.dassl_dg",
                                                       "models.heads.apn_pyramid", "models.backbones.frame_encoders"}
    for declared in SEARCH_SPACES:
        key, _, value = declared.applies_to.partition("=")
        if key in registries:  # a misspelt name would silently never apply
            registry, adapters = registries[key]
            assert value in registry or value in adapters, f"{declared.declared_in}: {declared.applies_to}"
        else:
            assert declared.applies_to == EVERY_RUN or key.endswith("!"), declared
        if value in DASSL_ADAPTERS and key.split(".")[1] not in cfg.TRAINER:
            continue  # the node of a Dassl trainer exists where real Dassl is installed
        for drawn_key in declared.space:
            cfg_value(cfg, drawn_key)  # KeyError: a key no config has
    assert not applies(cfg, "MODEL.BACKBONE.MIXSTYLE.LAYERS!=[]")  # MixStyle is off by default


@pytest.mark.slow
def test_a_negated_condition_draws_mixstyle_only_where_it_is_on(tmp_path):
    plan = plan_for(tmp_path, ["TSN=VideoVanilla", "MIX=VideoVanilla,MODEL.BACKBONE.MIXSTYLE.LAYERS=[conv1,conv2]"],
                    n_hparams=2, n_trials=1)
    drawn = {r.method.name: r.drawn for r in plan.runs if r.hparam == 1}
    assert {"MODEL.BACKBONE.MIXSTYLE.P", "MODEL.BACKBONE.MIXSTYLE.ALPHA"} <= set(drawn["MIX"])
    assert not any(k.startswith("MODEL.BACKBONE.MIXSTYLE") for k in drawn["TSN"])


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
    gone = run_bounded([sys.executable, "-c", "import os; print(os.getpid())"], "a process that prints its pid", 60)
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
def test_parallel_sweep_runs_skips_what_is_done_and_collects(data_root, tmp_path):
    # every step in its own process, as a user runs it (a pytest process may hold components other tests added)
    common = ["--benchmark", "synthetic_dg", "--n-hparams", "2", "--n-trials", "1", "--out", str(tmp_path / "out"),
              "--root", data_root]
    # an oracle holdout of a third of each target domain's clips: collect selects by both criteria
    pairs = ["--", "OPTIM.MAX_EPOCH", "1", "DATASET.ORACLE_HOLDOUT", "0.34", *TINY_SYNTHETIC]

    def sweep(*args: str, method: str = "TSN=VideoVanilla") -> subprocess.CompletedProcess:
        proc = run_bounded([sys.executable, "sweep.py", *args, "--methods", method, *common, *pairs],
                           f"sweep.py {args[0]}", SWEEP_LIMIT_S, cwd=REPO, env=dict(os.environ, VIDEODG_ENGINE="builtin"))
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
    for criterion in ("source_val", "oracle"):
        for name in ("methods", "paper", "variants"):
            for ext in ("md", "csv", "tex"):
                assert (tables / f"{name}_{criterion}.{ext}").is_file()
    chosen = json.loads((tables / "hparams_source_val.json").read_text())
    assert chosen["criterion"] == "source_val" and "ORACLE" not in chosen["title"]
    (cell,) = chosen["cells"]
    assert cell["method"] == "TSN" and cell["draw"] in (0, 1)
    with open(os.path.join(cell["runs"][0], SWEEP_FILE)) as f:
        assert json.load(f)["hparam"] == cell["draw"]
    rows = read_results(cell["runs"][0])
    assert rows[("target", "pooled")]["n"] == 3 * 8 * 2  # the held-out clip of each class is not reported
    # each criterion in its own section; the oracle's title, files and numbers say oracle
    honest, oracle = out.split("### ")[1:]
    assert "ORACLE" not in honest and "ORACLE, target-domain selection" in oracle.splitlines()[0]
    assert f"| TSN      | {rows[('target', 'pooled')]['accuracy']:.2f} (n 1)" in honest
    assert "ORACLE" not in (tables / "methods_source_val.md").read_text()
    assert (tables / "methods_oracle.md").read_text().startswith("methods table: ") and \
        "ORACLE, target-domain selection" in (tables / "methods_oracle.md").read_text().splitlines()[0]
    (oracle_cell,) = json.loads((tables / "hparams_oracle.json").read_text())["cells"]
    oracle_rows = read_results(oracle_cell["runs"][0])
    assert f"| TSN      | {oracle_rows[('oracle target', 'pooled')]['accuracy']:.2f} (n 1)" in oracle

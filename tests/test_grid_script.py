"""scripts/paper_tasks.sh (a thin call of sweep.py): methods as arguments, per-method overrides, a finished run
run again only when its config changed, LODO tasks."""
import json
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO, TINY_SYNTHETIC, read_results, run_bounded

GRID_LIMIT_S = 480  # a grid of one or two tiny runs, or a refusal before any run


def run_grid(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, VIDEODG_ENGINE="builtin", PATH=os.path.dirname(sys.executable) + os.pathsep +
               os.environ["PATH"])
    return run_bounded(["bash", "scripts/paper_tasks.sh", *args], "scripts/paper_tasks.sh", GRID_LIMIT_S, cwd=REPO,
                       env=env)


@pytest.mark.e2e
@pytest.mark.slow
def test_grid_runs_named_methods_with_their_overrides_and_runs_a_changed_override_anew(data_root, tmp_path):
    def grid(method: str) -> subprocess.CompletedProcess:
        proc = run_grid("--root", data_root, "--seeds", "1", "--out", str(tmp_path / "out"),
                        "synthetic_dg", method, "--", *TINY_SYNTHETIC)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        return proc

    method_dir = tmp_path / "out" / "synthetic_dg" / "studio" / "TSN" / "smallcnn_cpu"
    proc = grid("TSN=VideoVanilla,OPTIM.MAX_EPOCH=1")
    (run,) = method_dir.glob("hp0_seed1_*")
    rows = read_results(str(run))
    assert rows[("target", "pooled")]["n"] == 3 * 8 * 3  # three target domains x 8 classes x 3 clips
    assert "MAX_EPOCH: 1" in (run / "config.yaml").read_text()
    assert f"| TSN      | {rows[('target', 'pooled')]['accuracy']:.2f} (n 1)" in proc.stdout  # collect's table
    again = grid("TSN=VideoVanilla,OPTIM.MAX_EPOCH=1")
    assert "Nothing to start" in again.stderr and list(method_dir.iterdir()) == [run]
    # a changed override is a new run, never the old result reported again (the old skip rule's fault)
    changed = grid("TSN=VideoVanilla,OPTIM.MAX_EPOCH=2")
    (new,) = set(method_dir.iterdir()) - {run}
    assert "MAX_EPOCH: 2" in (new / "config.yaml").read_text()
    accuracy = read_results(str(new))[("target", "pooled")]["accuracy"]
    assert f"| TSN      | {accuracy:.2f} (n 1)" in changed.stdout
    chosen = json.loads((tmp_path / "out" / "synthetic_dg" / "tables" / "hparams_source_val.json").read_text())
    assert [cell["runs"] for cell in chosen["cells"]] == [[str(new)]]  # the table holds the new run only


def test_grid_refuses_unknown_benchmark_and_missing_setting(tmp_path):
    proc = run_grid("--out", str(tmp_path), "no_such_benchmark", "APN")
    assert proc.returncode == 2 and "Unknown benchmark" in proc.stderr
    proc = run_grid("--out", str(tmp_path), "--setting", "no_such_setting", "synthetic_dg", "APN")
    assert proc.returncode == 2 and "configs/trainers/APN/no_such_setting.yaml" in proc.stderr


def test_dg_table_script_refuses_an_unknown_part_before_any_run(tmp_path):
    env = dict(os.environ, PARTS="single lodos", PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    proc = run_bounded(["bash", "scripts/dg_baselines_table.sh", str(tmp_path / "data"), "1", str(tmp_path / "out")],
                       "scripts/dg_baselines_table.sh", GRID_LIMIT_S, cwd=REPO, env=env)
    assert proc.returncode == 2 and "Unknown part 'lodos'" in proc.stderr
    assert not (tmp_path / "out").exists()  # the valid part before it did not start


def test_a_benchmarks_tasks_come_from_its_dataset_class():
    """scripts/benchmark_tasks.py (read by paper_tasks.sh) prints the dataset class's tasks: the paper's
    single-source tasks of Table 4 and the leave-one-domain-out tasks of the synthetic benchmark."""
    from datasets.synthetic_dg import SyntheticVideoDG

    def tasks(*args):
        proc = run_bounded([sys.executable, "scripts/benchmark_tasks.py", *args], "scripts/benchmark_tasks.py", 120,
                           cwd=REPO)
        return proc.returncode, proc.stdout.split("\n")[:-1], proc.stderr

    assert tasks("pku_mmd")[:2] == (0, ["left:middle right", "middle:left right", "right:left middle"])
    code, lodo, _ = tasks("synthetic_dg", "lodo")
    assert code == 0 and [line.split(":")[1] for line in lodo] == SyntheticVideoDG.domains
    assert all(sorted(line.replace(":", " ").split()) == sorted(SyntheticVideoDG.domains) for line in lodo)
    assert tasks("synthetic_dg")[1] == ["studio:street sketch glimpse"]
    code, _, err = tasks("no_such_benchmark")
    assert code == 2 and "Unknown benchmark 'no_such_benchmark'" in err and "ucf_hmdb" in err

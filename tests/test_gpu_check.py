"""scripts/gpu_check.sh on a machine without CUDA: it refuses with what it needs; its plan fits the 8-minute budget
and names commands that exist; a part is run under its time limit and its numbers read back."""
import json
import os
import subprocess
import sys
import time

import pytest

from scripts import gpu_check
from tests.helpers import REPO


@pytest.mark.e2e
def test_without_cuda_the_check_refuses_with_what_it_needs(tmp_path):
    """No visible GPU (CUDA_VISIBLE_DEVICES empty), as on a machine without one."""
    proc = subprocess.run(["bash", "scripts/gpu_check.sh", str(tmp_path / "out")], cwd=REPO, capture_output=True,
                          text=True, env=dict(os.environ, CUDA_VISIBLE_DEVICES=""), timeout=120)
    assert proc.returncode == 2
    assert "needs a CUDA GPU" in proc.stderr and "torch.cuda.is_available() is False" in proc.stderr
    assert not (tmp_path / "out").exists()  # nothing written


def test_the_plan_fits_the_budget_and_names_what_exists(tmp_path):
    parts = gpu_check.plan(str(tmp_path), gpus=2)
    assert sum(p.budget_s for p in parts) <= gpu_check.BUDGET_S == 480
    assert [p.name for p in parts] == ["cuda_tests", "benchmark_fp32", "benchmark_bf16_cl", "benchmark_compile",
                                       "torchrun_main_job"]
    for part in parts:
        scripts = [a for a in part.argv if a.endswith(".py")]
        assert scripts and all(os.path.isfile(os.path.join(REPO, s)) for s in scripts), part.name
    assert parts[-1].argv[parts[-1].argv.index("--nproc_per_node") + 1] == "2"  # every visible GPU
    proc = subprocess.run(["bash", "scripts/gpu_check.sh", "--dry-run", str(tmp_path)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "of a 480 s budget" in proc.stdout


@pytest.mark.parametrize("part", ["benchmark_fp32", "benchmark_bf16_cl", "benchmark_compile"])
def test_the_benchmark_parts_parse(part, tmp_path):
    """Each benchmark command's options are accepted, and its variants exist."""
    from scripts import benchmark

    argv = next(p for p in gpu_check.plan(str(tmp_path), 1) if p.name == part).argv
    args = benchmark.resolve(benchmark.build_parser().parse_args(argv[argv.index("scripts/benchmark.py") + 1:]))
    assert (args.preset, args.device, args.cost) == ("paper", "cuda", False)
    assert set(args.variants or []) <= {v[0] for v in benchmark.VARIANTS}
    assert args.compile == (part == "benchmark_compile") and args.bf16 == (part != "benchmark_fp32")


def test_a_part_runs_under_its_time_limit_and_its_numbers_are_read(tmp_path):
    result = tmp_path / "numbers.json"
    code = f"import json; json.dump({{'x': 1}}, open({str(result)!r}, 'w'))"
    write = gpu_check.Part("write", 60, [sys.executable, "-c", code], str(result))
    record = gpu_check.run_part(write)
    assert record["passed"] and record["result"] == {"x": 1} and not record["timed_out"]
    code = "import time; print('started', flush=True); time.sleep(30)"
    slow = gpu_check.Part("slow", 1, [sys.executable, "-c", code], None)
    record = gpu_check.run_part(slow)
    assert record["timed_out"] and not record["passed"] and record["seconds"] < 20
    assert json.loads(json.dumps(record))  # the record goes into the JSON as it is


def running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


def test_a_part_out_of_time_stops_with_its_children(tmp_path):
    """A part stopped at its limit takes its children with it (torchrun's workers left running would hold the
    GPU through the next part)."""
    pid_file = tmp_path / "child.pid"
    child = f"import os, pathlib, time; pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid())); time.sleep(60)"
    part = gpu_check.Part("orphan", 3, ["bash", "-c", f"{sys.executable} -c {child!r} & wait"], None)
    record = gpu_check.run_part(part)
    assert pid_file.exists(), "the child never started, so the check proves nothing"
    assert record["timed_out"] and not record["passed"] and record["seconds"] < 40
    pid, deadline = int(pid_file.read_text()), time.monotonic() + 10
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(pid), f"the part's child {pid} is still running after the part was stopped"

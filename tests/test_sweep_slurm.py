"""sweep.py --launcher slurm on a real single-node SLURM cluster (tools/local_slurm.py: slurmctld, slurmd, munged):
a 4-run sweep submitted through submitit as one job array, one run preempted mid-training the way SLURM warns a
job (SIGUSR2) and requeued, its resumed result equal to an uninterrupted run's, and the sweep collected.

With CI=true the test fails when the cluster cannot start; elsewhere it skips when SLURM, root or submitit is
missing, and says which."""
import importlib.util
import json
import os
import os.path as osp
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace

import pytest

from tests.helpers import REPO, TINY_SYNTHETIC, run_bounded

_spec = importlib.util.spec_from_file_location("local_slurm", osp.join(REPO, "tools", "local_slurm.py"))
local_slurm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(local_slurm)

IN_CI = os.environ.get("CI", "").lower() == "true"
WAIT_LIMIT_S = 900  # a safety net for a broken cluster: every wait below ends on a state or a file
COMMAND_LIMIT_S = 60  # one squeue / scancel / scontrol call
SWEEP_LIMIT_S = 600  # one sweep.py command (launch plans the 4 runs first), or the 10-epoch tiny run


def missing_requirement() -> str:
    missing = local_slurm.missing_programs()
    if missing:
        return f"SLURM is not installed (no {', '.join(missing)}): apt-get install slurm-wlm munge (.ci/run does)"
    if os.geteuid() != 0:
        return "the local SLURM cluster runs its daemons as root"
    if importlib.util.find_spec("submitit") is None:
        return "submitit is not installed (pip install -r requirements.txt)"
    return ""


@pytest.fixture(scope="module")
def slurm_env():
    reason = missing_requirement()
    if reason:
        if IN_CI:
            pytest.fail(f"CI=true, so the SLURM test must run, but {reason}")
        pytest.skip(reason)
    folder = tempfile.mkdtemp(prefix="slurm-")  # a short path: munge's socket path is limited to 108 bytes
    try:
        proc = run_bounded([sys.executable, osp.join(REPO, "tools", "local_slurm.py"), "start", folder],
                           "the local SLURM cluster to start", local_slurm.START_TIMEOUT_S + 4 * COMMAND_LIMIT_S)
        if proc.returncode != 0:
            pytest.fail(f"The local SLURM cluster did not start:\n{proc.stdout}{proc.stderr}")
        yield dict(os.environ, SLURM_CONF=osp.join(folder, "slurm.conf"), VIDEODG_ENGINE="builtin",
                   OMP_NUM_THREADS="1")
    finally:
        local_slurm.stop(folder)
        shutil.rmtree(folder, ignore_errors=True)


def wait_for(condition, what: str, env) -> None:
    deadline = time.monotonic() + WAIT_LIMIT_S
    while not condition():
        if time.monotonic() > deadline:
            queue = run_bounded(["squeue"], "squeue", COMMAND_LIMIT_S, env=env).stdout
            pytest.fail(f"Gave up waiting for {what} after {WAIT_LIMIT_S} s; squeue:\n{queue}")
        time.sleep(0.1)


def squeue_state(job: str, env) -> str:
    proc = run_bounded(["squeue", "-h", "-o", "%T", "-j", job], f"squeue on job {job}", COMMAND_LIMIT_S, env=env)
    return proc.stdout.strip()


def results(folder: str) -> list:
    with open(osp.join(folder, "results.json")) as f:
        return [(r["split"], r["domain"], r["accuracy"], r["macro_f1"]) for r in json.load(f)]


@pytest.mark.e2e
@pytest.mark.slow
def test_slurm_sweep_runs_as_one_job_array_requeues_a_preempted_run_that_resumes_and_collects(slurm_env, tmp_path):
    from sweeps.launchers import queued_slurm_jobs
    from sweeps.plan import run_state, saved_config, slurm_job

    pairs = ["OPTIM.MAX_EPOCH", "10", *TINY_SYNTHETIC]
    options = ["--benchmark", "synthetic_dg", "--methods", "TSN=VideoVanilla", "--n-hparams", "2", "--n-trials", "2",
               "--root", str(tmp_path / "data")]

    def sweep(*args: str, out: str = str(tmp_path / "out")) -> subprocess.CompletedProcess:
        return run_bounded([sys.executable, "sweep.py", *args, *options, "--out", out, "--", *pairs],
                           f"sweep.py {args[0]}", SWEEP_LIMIT_S, cwd=REPO, env=slurm_env)

    launch = sweep("launch", "--launcher", "slurm", "--gpus", "0", "--cpus", "1", "--time", "30")
    assert launch.returncode == 0, launch.stdout + launch.stderr
    assert "Submitted SLURM job array" in launch.stdout
    method_dir = tmp_path / "out" / "synthetic_dg" / "studio" / "TSN" / "smallcnn_cpu"
    folders = sorted(str(p) for p in method_dir.iterdir())
    jobs = [slurm_job(f) for f in folders]
    assert len(folders) == 4 and len({j.split("_")[0] for j in jobs}) == 1  # one array, one task per run

    # Preempt one run once it has a checkpoint: freeze it so that it cannot finish meanwhile, then send its job
    # SLURM's warning signal; submitit requeues the job, whose process tree (the frozen run) is killed.
    (victim, job), = [(f, j) for f, j in zip(folders, jobs) if osp.basename(f).startswith("hp0_seed1_")]
    wait_for(lambda: osp.isfile(osp.join(victim, "model", "checkpoint")), "a first checkpoint", slurm_env)
    with open(osp.join(victim, ".run.lock")) as f:
        pid = json.load(f)["pid"]
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert victim.encode() in f.read(), "the lock names another process"
    os.kill(pid, signal.SIGSTOP)
    assert not osp.isfile(osp.join(victim, "results.json")), "the run finished before it could be preempted"
    # scancel is not waited on: the requeue completes the job step while scancel is still signalling it, and
    # scancel then retries for minutes and may exit non-zero. What counts is the state the job reaches.
    signaller = subprocess.Popen(["scancel", "--signal=USR2", job], env=slurm_env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: squeue_state(job, slurm_env) == "PENDING", "the requeued job", slurm_env)
    finally:
        try:
            signaller.wait(timeout=COMMAND_LIMIT_S)
        except subprocess.TimeoutExpired:
            signaller.kill()
            signaller.wait()
    run = SimpleNamespace(folder=victim, config=saved_config(victim))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLURM_CONF", slurm_env["SLURM_CONF"])
        assert run_state(run, queued_slurm_jobs(jobs)) == "queued"  # not "incomplete": launch leaves it alone
    update = run_bounded(["scontrol", "update", f"JobId={job}", "StartTime=now"], "scontrol update",
                         COMMAND_LIMIT_S, env=slurm_env)  # skip the requeue's begin-time delay
    assert update.returncode == 0, update.stdout + update.stderr

    wait_for(lambda: all(osp.isfile(osp.join(f, "results.json")) for f in folders), "every run", slurm_env)
    wait_for(lambda: not squeue_state(job, slurm_env), "the jobs to leave the queue", slurm_env)
    logs = "".join(open(osp.join(victim, name)).read() for name in os.listdir(victim) if name.startswith("log.txt"))
    assert "Restored the random state of that checkpoint (exact resume)" in logs
    # the resumed run ends where the same command run without interruption ends (another --out, same hash)
    printed = sweep("launch", "--launcher", "print", out=str(tmp_path / "uninterrupted")).stdout.splitlines()
    (command,) = [line for line in printed if osp.basename(victim) in line]
    tokens = shlex.split(command)
    uninterrupted = run_bounded(tokens, "the uninterrupted run", SWEEP_LIMIT_S, cwd=REPO, env=slurm_env)
    assert uninterrupted.returncode == 0, uninterrupted.stdout[-3000:] + uninterrupted.stderr[-3000:]
    assert results(victim) == results(tokens[tokens.index("--output-dir") + 1])

    status = sweep("status")
    assert "4 runs: 4 done" in status.stdout, status.stdout + status.stderr
    again = sweep("launch", "--launcher", "slurm", "--gpus", "0", "--cpus", "1")
    assert again.returncode == 0 and "Nothing to start" in again.stderr
    collect = sweep("collect")
    assert collect.returncode == 0, collect.stderr
    assert "| TSN " in collect.stdout and (tmp_path / "out" / "synthetic_dg" / "tables" / "methods_source_val.tex").is_file()
    print(collect.stdout)  # the docs quote this sweep's tables (pytest -s)

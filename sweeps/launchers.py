"""Where a sweep's runs execute: here one at a time (local), here N at a time (parallel), on SLURM (slurm), or
nowhere, printed for another tool (print).

Every launcher runs the same command, `python train.py ARGS` in the folder sweep.py was started from, and
train.py resumes an unfinished OUTPUT_DIR from its newest checkpoint: so a stopped sweep continues where it
was when launched again, and a preempted or timed-out SLURM job is requeued (submitit) and resumes.
"""
import os
import os.path as osp
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, NamedTuple, Optional, Sequence

from sweeps.plan import REPO, SLURM_FILE

TRAIN = osp.join(REPO, "train.py")
OUTPUT_FILE = "train_output.txt"  # the parallel launcher's capture of a run's stdout and stderr


class Job(NamedTuple):
    label: str
    argv: List[str]  # train.py's arguments
    folder: str


def command(job: Job) -> List[str]:
    return [sys.executable, osp.relpath(TRAIN), *job.argv]


def shown_python() -> str:
    """`python` when that is this interpreter on PATH (commands a person copies), else its full path."""
    found = shutil.which("python")
    return "python" if found and osp.realpath(found) == osp.realpath(sys.executable) else sys.executable


def run_local(jobs: Sequence[Job]) -> List[Job]:
    """One run at a time, its output on this terminal. Returns the jobs that failed."""
    failed = []
    for i, job in enumerate(jobs, 1):
        print(f"[{i}/{len(jobs)}] {job.label}", flush=True)
        if subprocess.run(command(job)).returncode != 0:
            failed.append(job)
    return failed


def visible_gpus() -> List[str]:
    """GPU ids a run may be given (CUDA_VISIBLE_DEVICES), [] on a machine without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [g.strip() for g in listed.split(",") if g.strip()] if listed else []
    return ids or [str(i) for i in range(torch.cuda.device_count())]


def slot_environments(slots: int) -> List[Dict[str, str]]:
    """One environment per slot: a GPU each on a CUDA machine, else an equal share of the CPU threads."""
    gpus = visible_gpus()
    if gpus:
        if slots > len(gpus):
            raise SystemExit(f"--slots {slots}: this machine shows {len(gpus)} GPU(s), one run per GPU; "
                             f"use --slots {len(gpus)} or fewer")
        return [{"CUDA_VISIBLE_DEVICES": gpu} for gpu in gpus[:slots]]
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = str(max(1, cpus // slots))
    return [{"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads} for _ in range(slots)]


def run_parallel(jobs: Sequence[Job], slots: int) -> List[Job]:
    """`slots` runs at a time, each with its slot's environment; a run's output goes to FOLDER/train_output.txt.
    Returns the jobs that failed."""
    free = list(slot_environments(slots))
    lock = threading.Lock()
    failed: List[Job] = []
    done = [0]
    print(f"Running {len(jobs)} run(s), {len(free)} at a time: " + "; ".join(
        ", ".join(f"{k}={v}" for k, v in env.items()) for env in free), flush=True)

    def one(job: Job) -> None:
        with lock:
            env = free.pop()
        code = -1
        try:
            os.makedirs(job.folder, exist_ok=True)
            with open(osp.join(job.folder, OUTPUT_FILE), "ab") as out:
                code = subprocess.run(command(job), stdout=out, stderr=subprocess.STDOUT,
                                      env={**os.environ, **env}).returncode
        finally:
            with lock:
                free.append(env)
                done[0] += 1
                if code != 0:
                    failed.append(job)
                word = "done" if code == 0 else f"FAILED (exit {code}, see {osp.join(job.folder, OUTPUT_FILE)})"
                print(f"[{done[0]}/{len(jobs)}] {job.label}: {word}", flush=True)

    with ThreadPoolExecutor(max_workers=len(free)) as pool:
        for future in [pool.submit(one, job) for job in jobs]:
            future.result()
    return failed


def print_commands(jobs: Sequence[Job]) -> None:
    """One shell command per line on stdout (for xargs -P, GNU parallel or an sbatch --array script)."""
    for job in jobs:
        print(shlex.join([shown_python(), *command(job)[1:]]))
    print(f"{len(jobs)} command(s); run them from {os.getcwd()}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------- SLURM
class SlurmOptions(NamedTuple):
    partition: Optional[str]
    gpus: int  # per run; more than 1: torchrun, one process per GPU (DATALOADER.TRAIN_X.BATCH_SIZE is per process)
    cpus: int  # per run
    mem_gb: Optional[float]
    time_min: int
    account: Optional[str]
    extra: Dict[str, str]  # more sbatch options, e.g. {"qos": "high", "constraint": "a100"}
    max_timeouts: int  # requeues after a time-out before the run is given up (preemptions are not counted)
    parallel: Optional[int]  # at most this many runs of the array at once


class TrainJob:
    """What a SLURM array task runs: train.py in a subprocess, data parallel over `nproc` GPUs through torchrun
    when nproc > 1 (docs/multi_gpu.md). `checkpoint` makes submitit requeue the task when SLURM signals a
    time-out or preemption; the requeued task runs the same command, and train.py resumes from the newest
    checkpoint in OUTPUT_DIR (exact resume)."""

    def __call__(self, argv: List[str], cwd: str, env: Dict[str, str], nproc: int = 1) -> str:
        launcher = [sys.executable] if nproc == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                       f"--nproc_per_node={nproc}"]
        # train.py ignores SIGUSR2, SLURM's warning before the kill: submitit's handler in this process answers it
        # by requeueing, and train.py's checkpoints are atomic whenever it is stopped.
        proc = subprocess.run([*launcher, TRAIN, *argv], cwd=cwd, env={**os.environ, **env},
                              preexec_fn=lambda: signal.signal(signal.SIGUSR2, signal.SIG_IGN))
        if proc.returncode != 0:
            raise RuntimeError(f"train.py exited with {proc.returncode}; its log: {argv[argv.index('--output-dir') + 1]}")
        return argv[argv.index("--output-dir") + 1]

    def checkpoint(self, *args, **kwargs):
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)


def submit_slurm(jobs: Sequence[Job], options: SlurmOptions, log_folder: str) -> str:
    """Submit every job as one SLURM job array and return at once; returns the array's job id. Each run folder
    gets .slurm_job (its task's id) so that status can tell queued runs from runs never submitted."""
    try:
        import submitit
    except ImportError:
        raise SystemExit("--launcher slurm needs submitit: pip install submitit (requirements.txt)") from None
    executor = submitit.SlurmExecutor(folder=osp.join(log_folder, "%j"), max_num_timeout=options.max_timeouts)
    params = dict(job_name="sweep", time=options.time_min, cpus_per_task=options.cpus,
                  # the job's Python unpickles TrainJob from this repository
                  setup=[f"export PYTHONPATH={shlex.quote(REPO)}${{PYTHONPATH:+:$PYTHONPATH}}"],
                  additional_parameters=dict(options.extra))
    if options.gpus:
        params["gpus_per_node"] = options.gpus
    for key, value in (("partition", options.partition), ("account", options.account),
                       ("array_parallelism", options.parallel)):
        if value:
            params[key] = value
    if options.mem_gb:
        params["mem"] = f"{int(options.mem_gb * 1024)}M"
    executor.update_parameters(**params)
    nproc = max(1, options.gpus)  # one process per GPU
    env = {"OMP_NUM_THREADS": str(max(1, options.cpus // nproc))}
    with executor.batch():
        submitted = [executor.submit(TrainJob(), job.argv, os.getcwd(), env, nproc) for job in jobs]
    for job, handle in zip(jobs, submitted):
        os.makedirs(job.folder, exist_ok=True)
        with open(osp.join(job.folder, SLURM_FILE), "w") as f:
            f.write(handle.job_id + "\n")
    return submitted[0].job_id.split("_")[0]


def queued_slurm_jobs(job_ids: Sequence[str]) -> List[str]:
    """Those of the job ids (ARRAY_TASK) that squeue still lists (pending or running); [] without squeue."""
    arrays = sorted({j.split("_")[0] for j in job_ids if j})
    if not arrays:
        return []
    try:
        proc = subprocess.run(["squeue", "-h", "-r", "-o", "%i", "-j", ",".join(arrays)], capture_output=True,
                              text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return proc.stdout.split()  # an array squeue no longer knows is an error line on stderr, the rest still listed

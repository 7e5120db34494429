"""A single-node SLURM cluster on this machine, for tests: munged, slurmctld and slurmd with their state in one
folder, on free local ports, nothing installed into /etc. Needs root and Debian's packages:

    apt-get install slurm-wlm munge            (.ci/run installs them)
    python tools/local_slurm.py start [DIR]    # prints `export SLURM_CONF=DIR/slurm.conf` once the node is idle
    SLURM_CONF=DIR/slurm.conf sbatch ...       # sbatch, squeue, scontrol, submitit use that cluster
    python tools/local_slurm.py stop DIR       # stops the three daemons (DIR keeps the logs)

The node is this host as `slurmd -C` sees it, in one partition `debug` (the default), with
ProctrackType=proctrack/linuxproc and TaskPlugin=task/none (no cgroups needed in a container) and jobs sharing
the node CPU by CPU (select/cons_tres, CR_CPU). There is no slurmdbd, so `sacct` is off and submitit warns that
job states may be inaccurate; sweep.py status reads the run folders and squeue instead.
"""
import argparse
import os
import os.path as osp
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

DAEMONS = ("slurmd", "slurmctld", "munged")  # stopped in this order
# the daemons live in /usr/sbin, which a non-login shell's PATH may lack
os.environ["PATH"] = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
START_TIMEOUT_S = 120  # how long the node may take to report idle before start gives up
COMMAND_TIMEOUT_S = 60  # any one SLURM or munge command; one that hangs (a daemon not answering) is an error


def missing_programs() -> List[str]:
    return [p for p in ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "sinfo", "scontrol")
            if shutil.which(p) is None]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_line() -> str:
    """This host's hardware as slurmd detects it (NodeName=... CPUs=... RealMemory=...)."""
    first = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True,
                           timeout=COMMAND_TIMEOUT_S).stdout.splitlines()[0]
    return f"{first} NodeAddr=127.0.0.1 State=UNKNOWN"


def write_config(folder: str) -> str:
    node = node_line()
    name = node.split()[0].split("=", 1)[1]
    for sub in ("state", "spool"):
        os.makedirs(osp.join(folder, sub), exist_ok=True)
    lines = [
        "ClusterName=localtest",
        f"SlurmctldHost={name}(127.0.0.1)",
        f"SlurmctldPort={free_port()}",
        f"SlurmdPort={free_port()}",
        "AuthType=auth/munge",
        f"AuthInfo=socket={osp.join(folder, 'munge.socket')}",
        "CredType=cred/munge",
        "SlurmUser=root",
        "SlurmdUser=root",
        f"StateSaveLocation={osp.join(folder, 'state')}",
        f"SlurmdSpoolDir={osp.join(folder, 'spool')}",
        f"SlurmctldPidFile={osp.join(folder, 'slurmctld.pid')}",
        f"SlurmdPidFile={osp.join(folder, 'slurmd.pid')}",
        f"SlurmctldLogFile={osp.join(folder, 'slurmctld.log')}",
        f"SlurmdLogFile={osp.join(folder, 'slurmd.log')}",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU",
        "MpiDefault=none",
        "ReturnToService=2",
        "MailProg=/bin/true",
        node,
        f"PartitionName=debug Nodes={name} Default=YES MaxTime=INFINITE State=UP",
    ]
    path = osp.join(folder, "slurm.conf")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def environment(folder: str) -> Dict[str, str]:
    return {**os.environ, "SLURM_CONF": osp.join(folder, "slurm.conf")}


def bounded(cmd: List[str], folder: str) -> subprocess.CompletedProcess:
    """cmd against the cluster in `folder`; RuntimeError naming the command when it runs past COMMAND_TIMEOUT_S."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, env=environment(folder), timeout=COMMAND_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{' '.join(cmd)} did not return within {COMMAND_TIMEOUT_S} s; logs: {folder}/*.log") from None


def run(cmd: List[str], folder: str) -> None:
    proc = bounded(cmd, folder)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stdout}{proc.stderr}"
                           f"\nLogs: {folder}/*.log")


def start(folder: str) -> str:
    """Start munged, slurmctld and slurmd; return slurm.conf once the node reports idle."""
    missing = missing_programs()
    if missing:
        raise RuntimeError(f"Not installed: {', '.join(missing)}. Install them: apt-get install slurm-wlm munge")
    if os.geteuid() != 0:
        raise RuntimeError("The local SLURM cluster runs its daemons as root (slurmd starts jobs as their user)")
    os.makedirs(folder, exist_ok=True)
    os.chmod(folder, 0o711)  # munged needs others to reach its socket through this folder
    key = osp.join(folder, "munge.key")
    run(["mungekey", "--create", "--force", f"--keyfile={key}"], folder)
    run(["munged", f"--key-file={key}", f"--socket={osp.join(folder, 'munge.socket')}",
         f"--pid-file={osp.join(folder, 'munged.pid')}", f"--log-file={osp.join(folder, 'munged.log')}",
         f"--seed-file={osp.join(folder, 'munged.seed')}"], folder)
    conf = write_config(folder)
    run(["slurmctld", "-f", conf], folder)
    run(["slurmd", "-f", conf], folder)
    deadline = time.monotonic() + START_TIMEOUT_S
    state = ""
    while time.monotonic() < deadline:
        proc = bounded(["sinfo", "-h", "-o", "%T"], folder)
        state = proc.stdout.strip()
        if state == "idle":
            return conf
        time.sleep(0.5)
    raise RuntimeError(f"The node did not become idle within {START_TIMEOUT_S} s (sinfo says {state!r}); "
                       f"logs: {folder}/slurmctld.log, {folder}/slurmd.log")


def _pid(folder: str, daemon: str) -> int:
    try:
        with open(osp.join(folder, f"{daemon}.pid")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def cancel_jobs(folder: str, grace_s: float) -> None:
    """Cancel every job of the cluster (all are the tests'), so that no job step outlives slurmd."""
    if not _alive(_pid(folder, "slurmctld")):
        return
    deadline = time.monotonic() + grace_s
    try:
        bounded(["scancel", "--partition=debug"], folder)
        while time.monotonic() < deadline:
            proc = bounded(["squeue", "-h", "-o", "%A"], folder)
            if proc.returncode != 0 or not proc.stdout.strip():
                return
            time.sleep(0.5)
    except RuntimeError as e:  # a controller that does not answer: stop() kills the daemons anyway
        print(f"Cancelling the jobs: {e}", file=sys.stderr)


def stop(folder: str, grace_s: float = 30.0) -> None:
    """Cancel the cluster's jobs, then stop the daemons started in `folder` (by the PIDs they wrote there):
    SIGTERM, then SIGKILL after grace_s."""
    cancel_jobs(folder, grace_s)
    for daemon in DAEMONS:
        pid = _pid(folder, daemon)
        if not pid or not _alive(pid):
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("folder", nargs="?", default="", help="state folder (start: default a new temporary one)")
    args = parser.parse_args(argv)
    if args.action == "stop":
        if not args.folder:
            parser.error("stop needs the folder that start printed")
        stop(args.folder)
        return 0
    folder = args.folder or tempfile.mkdtemp(prefix="slurm-")
    try:
        conf = start(folder)
    except (RuntimeError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        stop(folder)
        print(f"Could not start the local SLURM cluster: {e}", file=sys.stderr)
        return 1
    print(f"export SLURM_CONF={conf}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

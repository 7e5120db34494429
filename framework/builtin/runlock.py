"""One run per output folder: a lock file in OUTPUT_DIR naming the process that holds it.

`claim_output_dir(dir)` creates OUTPUT_DIR/.run.lock with the holder's PID, host and start time. A second
run on a folder whose holder is alive stops at once with a message naming that process; a lock left by a
process that no longer exists (killed, crashed, machine rebooted) is taken over, and the temporary files of
saves that process did not finish are deleted. The lock is released when the process exits.
`lock_holder(dir)` tells another program (sweep.py status) whether a run holds the folder now.
"""
import atexit
import json
import os
import os.path as osp
import socket
import time
from typing import List, Optional

from .utils import _process_alive as _alive
from .utils import remove_stale_temp_files

LOCK_NAME = ".run.lock"


class OutputDirInUse(RuntimeError):
    """Another live process holds the output folder."""


def _read(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}  # half-written or unreadable: treat as stale


def _release(path: str, pid: int) -> None:
    if _read(path).get("pid") == pid and os.getpid() == pid:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def claim_output_dir(output_dir: str) -> List[str]:
    """Take the lock of `output_dir` for this process; return lines to log (a takeover, cleaned files).

    Raises OutputDirInUse when a live process holds it."""
    os.makedirs(output_dir, exist_ok=True)
    path = osp.join(output_dir, LOCK_NAME)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    notes = []
    for _ in range(2):  # a second try after removing a stale lock
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read(path)
            if holder.get("pid") == me["pid"] and holder.get("host") == me["host"]:
                return notes  # this process already holds it (a second run in one process)
            same_host = holder.get("host") == me["host"]
            if holder and (not same_host or _alive(int(holder["pid"]))):
                where = f"PID {holder['pid']} on host {holder['host']}, started {holder.get('started', '?')}"
                advice = ("Wait for it to finish, or use another --output-dir." if same_host else
                          f"If that process is gone, delete {path} and start again; else use another --output-dir.")
                raise OutputDirInUse(f'Output folder "{output_dir}" is in use by another run ({where}). {advice}')
            notes.append(f"Taking over the lock of {output_dir}: its holder (PID {holder.get('pid', '?')}, "
                         f"started {holder.get('started', '?')}) is no longer running")
            os.remove(path)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        atexit.register(_release, path, me["pid"])
        for stale in remove_stale_temp_files(output_dir):
            notes.append(f"Removed the temporary file of an unfinished save: {stale}")
        return notes
    raise OutputDirInUse(f'Could not take the lock "{path}": another run took it first.')


def lock_holder(output_dir: str) -> Optional[dict]:
    """The holder of `output_dir`'s lock ({"pid", "host", "started", "alive"}) or None when no lock is there.
    alive is True or False for a holder on this host, None for one on another host (its PID cannot be checked
    from here)."""
    path = osp.join(output_dir, LOCK_NAME)
    if not osp.exists(path):
        return None
    holder = _read(path)
    if "pid" not in holder:
        return {**holder, "alive": False}  # half-written or unreadable: a run taking it would call it stale
    same_host = holder.get("host") == socket.gethostname()
    return {**holder, "alive": _alive(int(holder["pid"])) if same_host else None}

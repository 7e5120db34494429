"""The project's file writers: every file that a reader may open while it is written goes through here.

`write_atomic(path, write)` lets `write` fill a temporary file next to `path` and renames it into place, so a
reader sees the old file or the new one, never half of one. The temporary file is removed again when `write`
fails (a full disk, an exception, Ctrl-C); only a process killed outright leaves it behind, and its hidden
name (`.<name>.tmp-<pid>-<random>`) lets `stale_temp_file_pid` tell a later run whose it was. Several writers of one
path (threads or processes) each use their own temporary file; the last rename wins.

A written file gets the permissions a plain open() would give it under the process umask (mkstemp alone
makes files owner-only); `current_umask()` reads the umask without changing it where Linux shows it.
"""
import os
import os.path as osp
import tempfile
from typing import Callable, Optional

TEMP_MARK = ".tmp-"


def current_umask() -> int:
    """The process umask. Linux shows it in /proc/self/status; elsewhere the only way to read it is to set it,
    which briefly changes it for every thread, so that is the fallback."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str, write: Callable[[str], None], mode: int = 0o666) -> None:
    """Call `write(temporary_path)`, then rename the temporary file to `path` (folders are made as needed).

    `mode` is the permission before the umask (0o666 for data files). On any failure the temporary file is
    deleted and the exception goes on; the file previously at `path`, if any, is left as it was."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{osp.basename(path)}{TEMP_MARK}{os.getpid()}-", dir=folder)
    os.close(handle)
    try:
        write(temporary)
        os.chmod(temporary, mode & ~current_umask())
        os.replace(temporary, path)
    except BaseException:
        if osp.lexists(temporary):
            os.remove(temporary)
        raise


def write_text_atomic(path: str, text: str) -> None:
    """A UTF-8 text file written through write_atomic."""

    def fill(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8") as f:
            f.write(text)

    write_atomic(path, fill)


def stale_temp_file_pid(name: str) -> Optional[int]:
    """The writer's process id in a temporary file name of write_atomic (also the older `<name>.tmp-<pid>`
    form), or None for any other name."""
    _, mark, tail = name.rpartition(TEMP_MARK)
    pid = tail.split("-", 1)[0]
    return int(pid) if mark and pid.isdigit() else None

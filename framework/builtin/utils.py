"""Logging, seeding, meters, JSON and checkpoint helpers of the built-in engine."""
import atexit
import json
import os
import os.path as osp
import random
import shutil
import signal
import sys
import time
import warnings
from collections import OrderedDict, defaultdict
from typing import Any, Dict, List, Optional

import numpy as np
import torch
import torch.nn as nn


# --------------------------------------------------------------------------- files and misc
def mkdir_if_missing(dirname: str) -> None:
    """Create a folder and its parents; an existing folder is fine."""
    os.makedirs(dirname, exist_ok=True)


def check_isfile(fpath: str) -> bool:
    isfile = osp.isfile(fpath)
    if not isfile:
        warnings.warn(f'No file found at "{fpath}"')
    return isfile


def read_json(fpath: str) -> Any:
    with open(fpath, "r") as f:
        return json.load(f)


def write_json(obj: Any, fpath: str) -> None:
    mkdir_if_missing(osp.dirname(osp.abspath(fpath)))
    with open(fpath, "w") as f:
        json.dump(obj, f, indent=4, separators=(",", ": "))


def tolist_if_not(x: Any) -> list:
    return x if isinstance(x, list) else [x]


def listdir_nohidden(path: str, sort: bool = False) -> List[str]:
    items = [f for f in os.listdir(path) if not f.startswith(".")]
    return sorted(items) if sort else items


def set_random_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def collect_env_info() -> str:
    import PIL
    lines = [
        f"Python: {sys.version.split()[0]}",
        f"PyTorch: {torch.__version__}",
        f"CUDA available: {torch.cuda.is_available()}",
        f"Pillow: {PIL.__version__}",
        f"NumPy: {np.__version__}",
    ]
    if torch.cuda.is_available():
        lines.append(f"GPU: {torch.cuda.get_device_name(0)}")
    return "\n".join(lines)


def count_num_param(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------- logging
class Logger:
    """Tee stdout into a file."""

    def __init__(self, fpath: str):
        self.console = sys.stdout
        mkdir_if_missing(osp.dirname(osp.abspath(fpath)))
        self.file = open(fpath, "w")

    def write(self, msg: str) -> None:
        self.console.write(msg)
        if not self.file.closed:
            self.file.write(msg)

    def flush(self) -> None:
        self.console.flush()
        if not self.file.closed:
            self.file.flush()
            os.fsync(self.file.fileno())

    def close(self) -> None:
        if not self.file.closed:
            self.file.close()

    def isatty(self) -> bool:
        return False


def setup_logger(output: Optional[str] = None) -> None:
    """Tee stdout into OUTPUT_DIR/log.txt; an existing log gets a timestamped sibling instead."""
    if output is None:
        return
    fpath = output if output.endswith((".txt", ".log")) else osp.join(output, "log.txt")
    if osp.exists(fpath):
        fpath += time.strftime("-%Y-%m-%d-%H-%M-%S")
    if isinstance(sys.stdout, Logger):  # a second run in the same process (tests) replaces the tee
        sys.stdout.close()
        sys.stdout = sys.stdout.console
    sys.stdout = Logger(fpath)
    atexit.register(sys.stdout.close)


# --------------------------------------------------------------------------- meters
class AverageMeter:

    def __init__(self, ema: bool = False):
        self.ema = ema
        self.reset()

    def reset(self) -> None:
        self.val = 0
        self.avg = 0
        self.sum = 0
        self.count = 0

    def update(self, val: Any, n: int = 1) -> None:
        if isinstance(val, torch.Tensor):
            val = val.item()
        self.val = val
        self.sum += val * n
        self.count += n
        self.avg = self.avg * 0.9 + self.val * 0.1 if self.ema else self.sum / self.count


class MetricMeter:

    def __init__(self, delimiter: str = " "):
        self.meters: Dict[str, AverageMeter] = defaultdict(AverageMeter)
        self.delimiter = delimiter

    def update(self, input_dict: Optional[Dict[str, Any]]) -> None:
        if input_dict is None:
            return
        if not isinstance(input_dict, dict):
            raise TypeError("forward_backward must return a dict of floats")
        for k, v in input_dict.items():
            if isinstance(v, torch.Tensor):
                v = v.item()
            self.meters[k].update(v)

    def __str__(self) -> str:
        return self.delimiter.join(f"{name} {format_value(m.val)} ({format_value(m.avg)})"
                                   for name, m in self.meters.items())


def format_value(value: float) -> str:
    """Four decimals, or three significant digits in exponent form for values too small for that (a transport
    cost of 3e-6 printed as 0.0000 says nothing)."""
    if value != 0 and abs(value) < 1e-3:
        return f"{value:.3e}"
    return f"{value:.4f}"


# --------------------------------------------------------------------------- checkpoints
def save_checkpoint(
    state: Dict[str, Any],
    save_dir: str,
    is_best: bool = False,
    remove_module_from_keys: bool = True,
    model_name: str = "",
) -> str:
    """Write `state` to save_dir/model_name (default model.pth.tar-<epoch>) through a temporary file and
    a rename, so a run killed while saving never leaves a truncated checkpoint behind."""
    mkdir_if_missing(save_dir)
    if remove_module_from_keys:
        state["state_dict"] = OrderedDict(
            (k[7:] if k.startswith("module.") else k, v) for k, v in state["state_dict"].items())
    if not model_name:
        model_name = f"model.pth.tar-{state['epoch']}"
    fpath = osp.join(save_dir, model_name)
    _atomic_torch_save(state, fpath)
    print(f"Checkpoint saved to {fpath}")
    if is_best:
        shutil.copy(fpath, osp.join(save_dir, "model-best.pth.tar"))
    if model_name != "model-best.pth.tar":  # the pointer names the latest *regular* checkpoint
        _atomic_write_text(osp.join(save_dir, "checkpoint"), model_name + "\n")
    return fpath


class CheckpointError(RuntimeError):
    """A checkpoint that exists but cannot be read (truncated, empty, or not a weights-only file)."""


def kill_point(point: str) -> None:
    """Fault injection for the kill/resume tests: SIGKILL this process when VIDEODG_KILL_AT names `point`."""
    if os.environ.get("VIDEODG_KILL_AT") == point:
        os.kill(os.getpid(), signal.SIGKILL)


def _atomic_torch_save(obj: Any, fpath: str) -> None:
    """torch.save through a temporary file and a rename. A failed write (disk full) removes the temporary
    file and raises with the path; the file previously at `fpath`, if any, is left as it was."""
    tmp = f"{fpath}.tmp-{os.getpid()}"
    try:
        torch.save(obj, tmp)
        kill_point("save " + osp.basename(fpath))
        os.replace(tmp, fpath)
    except OSError as e:
        if osp.exists(tmp):
            os.remove(tmp)
        raise OSError(e.errno, f'Could not write the checkpoint "{fpath}" ({e.strerror or e}). The previous '
                      "checkpoint is untouched; free disk space (or fix permissions) and start the same "
                      "command again to resume.") from e


def _atomic_write_text(fpath: str, text: str) -> None:
    tmp = f"{fpath}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, fpath)


def remove_stale_temp_files(root: str) -> List[str]:
    """Delete the temporary files (`<name>.tmp-<pid>`) that killed saves left in `root` and its model folders
    (one level down), when the process that wrote them is gone. Deeper folders, which may be other runs'
    output folders, are not touched."""
    removed = []
    folders = [root] + [osp.join(root, d) for d in sorted(os.listdir(root)) if osp.isdir(osp.join(root, d))]
    for folder in folders:
        for name in os.listdir(folder):
            _, sep, pid = name.rpartition(".tmp-")
            if sep and pid.isdigit() and not _process_alive(int(pid)):
                os.remove(osp.join(folder, name))
                removed.append(osp.join(folder, name))
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def load_checkpoint(fpath: str) -> Dict[str, Any]:
    """Load a checkpoint with weights_only=True: only tensors and plain Python types are unpickled.

    A file that cannot be read raises CheckpointError naming the file and what to do about it."""
    if not fpath:
        raise ValueError("File path is empty")
    if not osp.exists(fpath):
        raise FileNotFoundError(f'No checkpoint at "{fpath}"')
    not_torch = _not_a_torch_file(fpath)
    if not_torch:
        raise CheckpointError(f'Cannot load the checkpoint "{fpath}": it is not a PyTorch checkpoint ({not_torch}). '
                              "Point to a model.pth.tar-N or model-best.pth.tar written by a training run.")
    try:
        return torch.load(fpath, map_location=None if torch.cuda.is_available() else "cpu", weights_only=True)
    except Exception as e:  # truncated zip, empty file, or a pickle that needs more than weights-only loading
        detail = str(e).split("\n")[0][:300]
        if "weights_only" in str(e) or "nsupported global" in str(e):
            reason = ("it holds objects other than tensors and plain values, which weights-only loading refuses "
                      f"for safety ({detail})")
            advice = "Use a checkpoint written by this project; do not load files of unknown origin."
        else:
            reason = f"it is truncated or damaged ({type(e).__name__}: {detail})"
            advice = ("Delete it: a resumed run then continues from the newest intact checkpoint, and "
                      "--eval-only can load another epoch with --load-epoch N.")
        raise CheckpointError(f'Cannot load the checkpoint "{fpath}": {reason}. {advice}') from None


def _not_a_torch_file(fpath: str) -> str:
    """What a file is instead of a checkpoint, from its first bytes ('' = it may be one: torch writes a zip
    archive, older versions a pickle; an empty or cut file is reported by torch.load's own error)."""
    with open(fpath, "rb") as f:
        head = f.read(512)
    if not head or head.startswith(b"PK") or head[:1] == b"\x80":
        return ""
    text = head.decode("utf-8", errors="ignore")  # a character cut at byte 512 is dropped, not an error
    if not text.strip() or not all(c.isprintable() or c in "\r\n\t" for c in text):
        return f"its first bytes are {head[:8]!r}"
    return f'a text file that begins "{text.strip().splitlines()[0][:60]}"'


def capture_rng_state() -> Dict[str, Any]:
    """Every global random state that the next epoch draws from: Python, NumPy, torch CPU and CUDA. Samplers
    and data-loader workers take their seeds from torch's generator when an epoch starts, so they follow."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def resume_from_checkpoint(fdir: str, model: nn.Module, optimizer=None, scheduler=None) -> int:
    """Restore model/optimizer/scheduler from the checkpoint named in fdir/checkpoint; return its epoch."""
    with open(osp.join(fdir, "checkpoint"), "r") as f:
        model_name = f.readline().strip("\n")
    fpath = osp.join(fdir, model_name)
    print(f'Loading checkpoint from "{fpath}"')
    checkpoint = load_checkpoint(fpath)
    model.load_state_dict(checkpoint["state_dict"])
    print("Loaded model weights")
    if optimizer is not None and checkpoint.get("optimizer") is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        print("Loaded optimizer")
    if scheduler is not None and checkpoint.get("scheduler") is not None:
        scheduler.load_state_dict(checkpoint["scheduler"])
        print("Loaded scheduler")
    start_epoch = checkpoint["epoch"]
    print(f"Previous epoch: {start_epoch}")
    return start_epoch


def load_pretrained_weights(model: nn.Module, weight_path: str) -> None:
    """Copy the entries of a state dict whose name and shape match (a leading 'module.' is ignored)."""
    checkpoint = load_checkpoint(weight_path)
    state_dict = checkpoint.get("state_dict", checkpoint)
    model_dict = model.state_dict()
    matched, discarded = OrderedDict(), []
    for k, v in state_dict.items():
        k = k[7:] if k.startswith("module.") else k
        if k in model_dict and model_dict[k].size() == v.size():
            matched[k] = v
        else:
            discarded.append(k)
    model_dict.update(matched)
    model.load_state_dict(model_dict)
    if not matched:
        warnings.warn(f'No layer of "{weight_path}" matched the model (check key names)')
    else:
        print(f'Loaded pretrained weights from "{weight_path}"')
        if discarded:
            print(f"** Layers discarded due to unmatched keys or size: {discarded}")

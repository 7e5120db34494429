"""Logging, seeding, meters, JSON and checkpoint files of the built-in engine.

Names and signatures are the ones Dassl's `dassl.utils` gives a plugin; what this project does not use
(image reading, downloads, layer freezing, resume_from_checkpoint, which CheckpointMixin replaces) is left out.
"""
import atexit
import json
import os
import os.path as osp
import random
import signal
import sys
import time
import warnings
from collections import defaultdict
from typing import Any, Dict, List, Mapping, Optional

import numpy as np
import torch
import torch.nn as nn

from ..fileio import stale_temp_file_pid, write_atomic, write_text_atomic


# --------------------------------------------------------------------------- files and misc
def mkdir_if_missing(dirname: str) -> None:
    """Create a folder and its parents; an existing folder is fine."""
    os.makedirs(dirname, exist_ok=True)


def read_json(fpath: str) -> Any:
    with open(fpath, encoding="utf-8") as f:
        return json.load(f)


def write_json(obj: Any, fpath: str) -> None:
    """Indented JSON, written atomically (a reader never sees half a file)."""
    write_text_atomic(fpath, json.dumps(obj, indent=4))


def set_random_seed(seed: int) -> None:
    """Seed every generator a run draws from: Python's, NumPy's global one, torch's CPU and CUDA ones."""
    for seed_one in (random.seed, np.random.seed, torch.manual_seed, torch.cuda.manual_seed_all):
        seed_one(seed)


def collect_env_info() -> str:
    import PIL
    versions = {"Python": sys.version.split()[0], "PyTorch": torch.__version__, "NumPy": np.__version__,
                "Pillow": PIL.__version__, "CUDA available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        versions["GPU"] = torch.cuda.get_device_name(0)
    return "\n".join(f"{what}: {value}" for what, value in versions.items())


def count_num_param(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------- logging
class Logger:
    """A stand-in for sys.stdout that also writes everything to a log file, flushed to disk on flush()
    (a killed run keeps its log up to the last line printed)."""

    def __init__(self, fpath: str):
        mkdir_if_missing(osp.dirname(osp.abspath(fpath)))
        self.file = open(fpath, "w", encoding="utf-8")
        self.console = sys.stdout  # what print() wrote to before

    def _open_streams(self) -> list:
        return [self.console] if self.file.closed else [self.console, self.file]

    def write(self, msg: str) -> None:
        for stream in self._open_streams():
            stream.write(msg)

    def flush(self) -> None:
        for stream in self._open_streams():
            stream.flush()
        if not self.file.closed:
            os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()

    def isatty(self) -> bool:
        return False


def setup_logger(output: Optional[str] = None) -> None:
    """Tee stdout into OUTPUT_DIR/log.txt (or into `output` itself when it names a .txt/.log file). A log that
    exists already is kept: the new one gets the start time as a suffix (log.txt-YYYY-MM-DD-HH-MM-SS)."""
    if output is None:
        return
    target = output if output.endswith((".txt", ".log")) else osp.join(output, "log.txt")
    if osp.exists(target):
        target = f"{target}-{time.strftime('%Y-%m-%d-%H-%M-%S')}"
    if isinstance(sys.stdout, Logger):  # a second run in one process (tests): end the first tee
        sys.stdout.close()
        sys.stdout = sys.stdout.console
    sys.stdout = tee = Logger(target)  # Logger takes the console it writes to from sys.stdout
    atexit.register(tee.close)


# --------------------------------------------------------------------------- meters
class AverageMeter:
    """The latest value of a stream of numbers and its mean (weighted by `n`), or with ema=True an exponential
    mean that gives the newest value a weight of 0.1 and starts at the first value."""

    def __init__(self, ema: bool = False):
        self.ema = ema
        self.reset()

    def reset(self) -> None:
        self.val = self.avg = self.sum = 0.0
        self.count = 0

    def update(self, val: Any, n: int = 1) -> None:
        latest = float(val)  # a one-element tensor converts too
        first = self.count == 0
        self.count, self.sum, self.val = self.count + n, self.sum + latest * n, latest
        if not self.ema:
            self.avg = self.sum / self.count
        else:
            self.avg = latest if first else 0.9 * self.avg + 0.1 * latest


class MetricMeter:
    """One AverageMeter per name that forward_backward reports; str() is the batch line's `name val (avg)` part."""

    def __init__(self, delimiter: str = " "):
        self.meters: Dict[str, AverageMeter] = defaultdict(AverageMeter)
        self.delimiter = delimiter

    def update(self, input_dict: Optional[Mapping[str, Any]]) -> None:
        """Add one minibatch's summary; None (a trainer that reports nothing) adds nothing."""
        try:
            named_values = list((input_dict or {}).items())
        except AttributeError:
            raise TypeError(f"forward_backward returned a {type(input_dict).__name__}; it must return a dict "
                            "of named numbers, such as {'loss': 0.7, 'acc': 50.0}, or None") from None
        for name, value in named_values:
            self.meters[name].update(value)

    def __str__(self) -> str:
        return self.delimiter.join(map(_meter_text, self.meters, self.meters.values()))


def _meter_text(name: str, meter: AverageMeter) -> str:
    return f"{name} {format_value(meter.val)} ({format_value(meter.avg)})"


def format_value(value: float) -> str:
    """Four decimals, or three significant digits in exponent form for values too small for that (a transport
    cost of 3e-6 printed as 0.0000 says nothing)."""
    if value != 0 and abs(value) < 1e-3:
        return f"{value:.3e}"
    return f"{value:.4f}"


# --------------------------------------------------------------------------- checkpoints
class CheckpointError(RuntimeError):
    """A checkpoint that exists but cannot be read (truncated, empty, or not a weights-only file)."""


def kill_point(point: str) -> None:
    """Fault injection for the kill/resume tests: SIGKILL this process when VIDEODG_KILL_AT names `point`."""
    if os.environ.get("VIDEODG_KILL_AT") == point:
        os.kill(os.getpid(), signal.SIGKILL)


def _without_module_prefix(state_dict: Mapping[str, Any]) -> Dict[str, Any]:
    """Keys as a bare model has them: DataParallel/DDP wrappers add `module.` in front."""
    return {key.removeprefix("module."): value for key, value in state_dict.items()}


def save_checkpoint(
    state: Dict[str, Any],
    save_dir: str,
    is_best: bool = False,
    remove_module_from_keys: bool = True,
    model_name: str = "",
) -> str:
    """Write `state` as save_dir/model_name (default model.pth.tar-<epoch>) and point save_dir/checkpoint at
    it; is_best also writes model-best.pth.tar. Every file is written atomically: a run killed or out of disk
    space while saving leaves the previous files as they were."""
    if remove_module_from_keys:
        state["state_dict"] = _without_module_prefix(state["state_dict"])
    name = model_name or f"model.pth.tar-{state['epoch']}"
    targets = [name] + (["model-best.pth.tar"] if is_best and name != "model-best.pth.tar" else [])
    for target in targets:
        _save_torch_atomic(state, osp.join(save_dir, target))
    print(f"Saved {osp.join(save_dir, name)}")
    if name != "model-best.pth.tar":  # the pointer names the latest *regular* checkpoint
        write_text_atomic(osp.join(save_dir, "checkpoint"), name + "\n")
    return osp.join(save_dir, name)


def _save_torch_atomic(obj: Any, fpath: str) -> None:
    def fill(temporary: str) -> None:
        torch.save(obj, temporary)
        kill_point("save " + osp.basename(fpath))  # a kill here leaves the temporary file, never a torn one

    try:
        write_atomic(fpath, fill)
    except OSError as e:
        raise OSError(e.errno, f'Could not write the checkpoint "{fpath}" ({e.strerror or e}). The previous '
                      "checkpoint is untouched; free disk space (or fix permissions) and start the same "
                      "command again to resume.") from e


def remove_stale_temp_files(root: str) -> List[str]:
    """Delete the temporary files that killed saves left in `root` and its model folders (one level down),
    when the process that wrote them is gone. Deeper folders, which may be other runs' output folders, are
    not touched."""
    folders = [root] + [osp.join(root, d) for d in sorted(os.listdir(root)) if osp.isdir(osp.join(root, d))]
    removed = []
    for folder in folders:
        for name in sorted(os.listdir(folder)):
            pid = stale_temp_file_pid(name)
            if pid is not None and not _process_alive(pid):
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
        raise ValueError("load_checkpoint was given an empty path: name the checkpoint file to load")
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


def load_pretrained_weights(model: nn.Module, weight_path: str) -> None:
    """Initialise `model` from a saved state dict (or a checkpoint holding one): every tensor whose name and
    shape match is copied, the rest of the model keeps its values, and what was skipped is listed."""
    saved = load_checkpoint(weight_path)
    saved = _without_module_prefix(saved.get("state_dict", saved))
    own = model.state_dict()
    fits = {key for key, tensor in saved.items() if key in own and own[key].shape == tensor.shape}
    if not fits:
        warnings.warn(f'None of the {len(saved)} tensors in "{weight_path}" has a name and shape of this model; '
                      "nothing was loaded (was it saved from another architecture?)")
        return
    own.update({key: saved[key] for key in fits})
    model.load_state_dict(own)
    print(f'Initialised {len(fits)} of {len(own)} tensors from "{weight_path}"')
    skipped = sorted(set(saved) - fits)
    if skipped:
        print(f"Not used (no tensor of that name and shape in the model): {skipped}")

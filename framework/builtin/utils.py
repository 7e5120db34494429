"""Logging, seeding, meters, JSON and checkpoint helpers of the built-in engine."""
import atexit
import errno
import json
import os
import os.path as osp
import random
import shutil
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
    if not osp.exists(dirname):
        try:
            os.makedirs(dirname)
        except OSError as e:
            if e.errno != errno.EEXIST:
                raise


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
        return self.delimiter.join(f"{name} {m.val:.4f} ({m.avg:.4f})" for name, m in self.meters.items())


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


def _atomic_torch_save(obj: Any, fpath: str) -> None:
    tmp = f"{fpath}.tmp-{os.getpid()}"
    torch.save(obj, tmp)
    os.replace(tmp, fpath)


def _atomic_write_text(fpath: str, text: str) -> None:
    tmp = f"{fpath}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, fpath)


def load_checkpoint(fpath: str) -> Dict[str, Any]:
    """Load a checkpoint with weights_only=True: only tensors and plain Python types are unpickled."""
    if not fpath:
        raise ValueError("File path is empty")
    if not osp.exists(fpath):
        raise FileNotFoundError(f'No checkpoint at "{fpath}"')
    return torch.load(fpath, map_location=None if torch.cuda.is_available() else "cpu", weights_only=True)


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

"""The one check for a loss that is NaN or infinite, on both engines.

`check_finite(losses, trainer)` stops the run with a FloatingPointError that names each bad term, the epoch
and batch, and the config keys worth changing. Which keys those are is the trainer's business: it answers
through the hook `non_finite_hints()` (the engine's own answer names only the optimiser's keys), so the
engine knows no method's keys.

Two ways in: `detect_anomaly(loss)`, Dassl's hook, which model_backward calls before every backward pass (one
host sync each), and `check_finite_losses({name: value})` for a trainer that reads all the losses of a
minibatch at once and checks them after its single sync.
"""
import inspect
import math
import os.path as osp
from typing import Any, List, Mapping

import torch

_ENGINE_FOLDER = osp.dirname(osp.dirname(osp.abspath(__file__)))  # framework/: frames there name no loss


def _as_float(value: Any) -> float:
    if isinstance(value, torch.Tensor):
        return value.detach().float().flatten()[0].item() if value.numel() else math.nan
    return float(value)


def _is_finite(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return bool(torch.isfinite(value).all())
    return math.isfinite(value)


def check_finite(losses: Mapping[str, Any], trainer: Any = None) -> None:
    """Raise FloatingPointError if any named loss (a number or a tensor) is not finite."""
    bad = {name: _as_float(value) for name, value in losses.items() if not _is_finite(value)}
    if not bad:
        return
    terms = ", ".join(f"{name} = {value}" for name, value in bad.items())
    where = ""
    if hasattr(trainer, "epoch") and hasattr(trainer, "batch_idx"):
        where = f" at epoch {trainer.epoch + 1}, batch {trainer.batch_idx + 1}"
    hints = trainer.non_finite_hints() if hasattr(trainer, "non_finite_hints") else []
    advice = f" Look at {', '.join(hints)}: smaller steps or gradient clipping usually help." if hints else ""
    raise FloatingPointError(f"The loss is no longer a finite number{where}: {terms}.{advice}")


def loss_term_name(loss: Any) -> str:
    """The name under which the caller (a trainer's forward_backward or its helpers) holds `loss`, e.g.
    loss_src, or loss_adv_II when the caller also holds `level`; "loss" when no caller names it."""
    frame = inspect.currentframe()
    try:
        frame = frame.f_back
        while frame is not None:
            if not frame.f_code.co_filename.startswith(_ENGINE_FOLDER):
                names = [n for n, v in frame.f_locals.items() if v is loss and n not in ("self", "loss")]
                if names:
                    level = frame.f_locals.get("level")
                    return f"{names[0]}_{level}" if isinstance(level, str) else names[0]
            frame = frame.f_back
    finally:
        del frame
    return "loss"


class LossCheck:
    """The loss-check half of CheckpointMixin."""

    def detect_anomaly(self, loss) -> None:
        if not _is_finite(loss):
            check_finite({loss_term_name(loss): loss}, self)

    def check_finite_losses(self, losses: Mapping[str, Any]) -> None:
        check_finite(losses, self)

    def non_finite_hints(self) -> List[str]:
        """Config keys (as "KEY=value (what it does)") to name when a loss is not finite. A trainer adds its
        own step sizes and weights in front: `return [...] + super().non_finite_hints()`."""
        cfg = getattr(self, "cfg", None)
        if cfg is None:
            return []
        hints = [f"OPTIM.LR={cfg.OPTIM.LR}"]
        if "CLIP_GRAD_NORM" in cfg.OPTIM:
            hints.append(f"OPTIM.CLIP_GRAD_NORM={cfg.OPTIM.CLIP_GRAD_NORM} (> 0 clips gradients)")
        return hints

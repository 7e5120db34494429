"""Optimiser and LR-scheduler builders with Dassl's OPTIM keys.

The scheduler is a single LambdaLR: the learning rate of epoch e is written out as a formula (warmup, then
the step, multi-step or cosine decay), so warmup needs no second, wrapped scheduler (Dassl's raises TypeError
on torch >= 2.7), nothing accumulates rounding from epoch to epoch, and its state is one epoch counter.
"""
import bisect
import math
import warnings
from typing import Callable, List

import torch
import torch.nn as nn
from torch.optim.lr_scheduler import LambdaLR

OPTIMIZERS = ("adam", "amsgrad", "sgd", "rmsprop", "radam", "adamw")
SCHEDULERS = ("single_step", "multi_step", "cosine")
IMPLEMENTATIONS = ("auto", "foreach", "fused", "for_loop")


# --------------------------------------------------------------------------- optimisers
def build_optimizer(model, optim_cfg, param_groups=None) -> torch.optim.Optimizer:
    """The optimiser OPTIM.NAME over `model`'s parameters (a module or an iterable of them), or over the given
    param_groups; OPTIM.STAGED_LR gives the children not in OPTIM.NEW_LAYERS LR * BASE_LR_MULT."""
    if optim_cfg.NAME not in OPTIMIZERS:
        raise ValueError(f"OPTIM.NAME {optim_cfg.NAME!r} is not an optimiser the engine knows; set it to one of "
                         f"{', '.join(OPTIMIZERS)}")
    cls, options = _recipe(optim_cfg)
    return cls(_parameters(model, optim_cfg, param_groups), lr=optim_cfg.LR, weight_decay=optim_cfg.WEIGHT_DECAY,
               **options)


def _recipe(c) -> tuple:
    """(torch optimiser class, its keyword arguments beyond lr and weight decay) for OPTIM.NAME."""
    betas = {"betas": (c.ADAM_BETA1, c.ADAM_BETA2)}
    kernel = _implementation(c)
    return {
        "adam": (torch.optim.Adam, {**betas, **kernel}),
        "amsgrad": (torch.optim.Adam, {**betas, "amsgrad": True, **kernel}),
        "sgd": (torch.optim.SGD, {"momentum": c.MOMENTUM, "dampening": c.SGD_DAMPNING,
                                  "nesterov": c.SGD_NESTEROV, **kernel}),
        "rmsprop": (torch.optim.RMSprop, {"momentum": c.MOMENTUM, "alpha": c.RMSPROP_ALPHA}),
        "radam": (torch.optim.RAdam, betas),
        "adamw": (torch.optim.AdamW, betas),
    }[c.NAME]


def _parameters(model, c, param_groups):
    if param_groups is not None:
        if c.STAGED_LR:
            warnings.warn("OPTIM.STAGED_LR has no effect here: the caller gave the optimiser its own param_groups")
        return param_groups
    if c.STAGED_LR:
        return _staged_param_groups(model, c)
    return model.parameters() if isinstance(model, nn.Module) else model


def _implementation(optim_cfg) -> dict:
    """Keyword arguments that pick torch's SGD/Adam kernel (OPTIM.IMPLEMENTATION, a project key):
    auto = torch's default (the multi-tensor foreach kernel on CUDA); fused = one fused kernel per step
    (CUDA, CPU on recent torch; fastest, but rounds differently from foreach); for_loop = one parameter at a time."""
    impl = optim_cfg.get("IMPLEMENTATION", "auto")
    if impl not in IMPLEMENTATIONS:
        raise ValueError(f"OPTIM.IMPLEMENTATION must be one of {IMPLEMENTATIONS}, got {impl!r}")
    if impl == "auto":
        return {}
    if impl == "fused":
        return {"fused": True}
    return {"foreach": impl == "foreach"}


def _staged_param_groups(model, optim_cfg) -> List[dict]:
    if not isinstance(model, nn.Module):
        raise TypeError("OPTIM.STAGED_LR needs an nn.Module, not an iterable of parameters")
    if isinstance(model, nn.DataParallel):
        model = model.module
    new_layers = optim_cfg.NEW_LAYERS
    new_layers = [new_layers] if isinstance(new_layers, str) else list(new_layers)
    if not new_layers:
        warnings.warn("OPTIM.STAGED_LR is on but OPTIM.NEW_LAYERS is empty")
    base, new = [], []
    for name, module in model.named_children():
        (new if name in new_layers else base).extend(module.parameters())
    return [{"params": base, "lr": optim_cfg.LR * optim_cfg.BASE_LR_MULT}, {"params": new}]


# --------------------------------------------------------------------------- learning-rate schedules
Factor = Callable[[int], float]  # epoch (0-based) -> multiple of a param group's base LR


def _decay(c) -> Factor:
    """The main schedule of OPTIM.LR_SCHEDULER as a factor of the base LR."""
    name, gamma = c.LR_SCHEDULER, c.GAMMA
    steps = c.STEPSIZE if isinstance(c.STEPSIZE, (list, tuple)) else [c.STEPSIZE]
    if name == "single_step":
        every = steps[-1] if steps else -1
        if not isinstance(every, int):
            raise TypeError(f"OPTIM.STEPSIZE for single_step is a whole number of epochs, got {every!r}")
        every = every if every > 0 else c.MAX_EPOCH  # Dassl: <= 0 means one step at the end, a constant LR
        return lambda epoch: gamma ** (epoch // every)
    if name == "multi_step":
        if not isinstance(c.STEPSIZE, (list, tuple)):
            raise TypeError(f"OPTIM.STEPSIZE for multi_step is a list of epochs, e.g. [30, 60], got {c.STEPSIZE!r}")
        milestones = sorted(steps)
        return lambda epoch: gamma ** bisect.bisect_right(milestones, epoch)
    period = float(c.MAX_EPOCH)
    return lambda epoch: 0.5 * (1.0 + math.cos(math.pi * epoch / period))


def _with_warmup(decay: Factor, base_lr: float, c) -> Factor:
    """WARMUP_EPOCH epochs of warmup in front of `decay`: linear (WARMUP_MIN_LR at epoch 0, then LR * e / W)
    or constant (WARMUP_CONS_LR). The main schedule then starts from its own epoch 0 (WARMUP_RECOUNT) or goes
    on as if it had run through the warmup epochs too."""
    length = c.WARMUP_EPOCH
    if c.WARMUP_TYPE not in ("linear", "constant"):
        raise ValueError(f"OPTIM.WARMUP_TYPE must be linear or constant, got {c.WARMUP_TYPE!r}")
    start = c.WARMUP_MIN_LR if c.WARMUP_TYPE == "linear" else c.WARMUP_CONS_LR
    start_factor = start / base_lr if base_lr else 0.0
    offset = length if c.WARMUP_RECOUNT else 0

    def factor(epoch: int) -> float:
        if epoch >= length:
            return decay(epoch - offset)
        if c.WARMUP_TYPE == "constant" or epoch == 0:
            return start_factor
        return epoch / length

    return factor


def build_lr_scheduler(optimizer, optim_cfg) -> LambdaLR:
    """A per-epoch schedule (stepped once per epoch) from OPTIM.LR_SCHEDULER, STEPSIZE, GAMMA, MAX_EPOCH and the
    WARMUP_* keys; each param group follows it from its own base LR."""
    if optim_cfg.LR_SCHEDULER not in SCHEDULERS:
        raise ValueError(f"OPTIM.LR_SCHEDULER {optim_cfg.LR_SCHEDULER!r} is not a schedule the engine knows; set "
                         f"it to one of {', '.join(SCHEDULERS)}")
    decay = _decay(optim_cfg)
    if optim_cfg.WARMUP_EPOCH <= 0:
        return LambdaLR(optimizer, decay)
    factors = [_with_warmup(decay, group.get("initial_lr", group["lr"]), optim_cfg) for group in optimizer.param_groups]
    return LambdaLR(optimizer, factors)

"""Optimizer and LR-scheduler builders with Dassl's OPTIM keys; warmup works on current PyTorch."""
import warnings
from typing import List

import torch
import torch.nn as nn
from torch.optim.lr_scheduler import LRScheduler

AVAI_OPTIMS = ["adam", "amsgrad", "sgd", "rmsprop", "radam", "adamw"]
AVAI_SCHEDS = ["single_step", "multi_step", "cosine"]


def build_optimizer(model, optim_cfg, param_groups=None) -> torch.optim.Optimizer:
    name = optim_cfg.NAME
    if name not in AVAI_OPTIMS:
        raise ValueError(f"optim must be one of {AVAI_OPTIMS}, but got {name}")
    lr, wd = optim_cfg.LR, optim_cfg.WEIGHT_DECAY
    if param_groups is not None and optim_cfg.STAGED_LR:
        warnings.warn("OPTIM.STAGED_LR is ignored because param_groups were given")
    if param_groups is None:
        if optim_cfg.STAGED_LR:
            param_groups = _staged_param_groups(model, optim_cfg)
        else:
            param_groups = model.parameters() if isinstance(model, nn.Module) else model
    betas = (optim_cfg.ADAM_BETA1, optim_cfg.ADAM_BETA2)
    impl = _implementation(optim_cfg)
    if name in ("adam", "amsgrad"):
        return torch.optim.Adam(param_groups, lr=lr, weight_decay=wd, betas=betas, amsgrad=name == "amsgrad",
                                **impl)
    if name == "sgd":
        return torch.optim.SGD(param_groups, lr=lr, momentum=optim_cfg.MOMENTUM, weight_decay=wd,
                               dampening=optim_cfg.SGD_DAMPNING, nesterov=optim_cfg.SGD_NESTEROV, **impl)
    if name == "rmsprop":
        return torch.optim.RMSprop(param_groups, lr=lr, momentum=optim_cfg.MOMENTUM, weight_decay=wd,
                                   alpha=optim_cfg.RMSPROP_ALPHA)
    if name == "radam":
        return torch.optim.RAdam(param_groups, lr=lr, weight_decay=wd, betas=betas)
    return torch.optim.AdamW(param_groups, lr=lr, weight_decay=wd, betas=betas)


IMPLEMENTATIONS = ("auto", "foreach", "fused", "for_loop")


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


class WarmupScheduler(LRScheduler):
    """Warmup for WARMUP_EPOCH epochs, then hand over to `successor`.

    linear: epoch 0 at min_lr, epoch e at base_lr * e / warmup_epoch; constant: cons_lr throughout.
    """

    def __init__(self, optimizer, successor: LRScheduler, warmup_epoch: int, warmup_type: str,
                 cons_lr: float, min_lr: float):
        if warmup_type not in ("linear", "constant"):
            raise ValueError(f"OPTIM.WARMUP_TYPE must be linear or constant, got {warmup_type}")
        self.successor = successor
        self.warmup_epoch = warmup_epoch
        self.warmup_type = warmup_type
        self.cons_lr = cons_lr
        self.min_lr = min_lr
        super().__init__(optimizer)

    def get_lr(self) -> List[float]:
        if self.last_epoch >= self.warmup_epoch:
            return self.successor.get_last_lr()
        if self.warmup_type == "constant":
            return [self.cons_lr for _ in self.base_lrs]
        if self.last_epoch == 0:
            return [self.min_lr for _ in self.base_lrs]
        return [lr * self.last_epoch / self.warmup_epoch for lr in self.base_lrs]

    def step(self, epoch=None) -> None:
        if self.last_epoch >= self.warmup_epoch:
            self.successor.step()
            self.last_epoch += 1
            self._last_lr = self.successor.get_last_lr()
        else:
            super().step()

    def state_dict(self) -> dict:
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "successor")}
        state["successor"] = self.successor.state_dict()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        self.successor.load_state_dict(state_dict.pop("successor"))
        self.__dict__.update(state_dict)


def build_lr_scheduler(optimizer, optim_cfg) -> LRScheduler:
    name = optim_cfg.LR_SCHEDULER
    stepsize, gamma, max_epoch = optim_cfg.STEPSIZE, optim_cfg.GAMMA, optim_cfg.MAX_EPOCH
    if name not in AVAI_SCHEDS:
        raise ValueError(f"scheduler must be one of {AVAI_SCHEDS}, but got {name}")
    if name == "single_step":
        if isinstance(stepsize, (list, tuple)):
            stepsize = stepsize[-1]
        if not isinstance(stepsize, int):
            raise TypeError(f"For single_step lr_scheduler, stepsize must be an integer, got {type(stepsize)}")
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=stepsize if stepsize > 0 else max_epoch,
                                                    gamma=gamma)
    elif name == "multi_step":
        if not isinstance(stepsize, (list, tuple)):
            raise TypeError(f"For multi_step lr_scheduler, stepsize must be a list, got {type(stepsize)}")
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(stepsize), gamma=gamma)
    else:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, float(max_epoch))
    if optim_cfg.WARMUP_EPOCH > 0:
        if not optim_cfg.WARMUP_RECOUNT:
            scheduler.last_epoch = optim_cfg.WARMUP_EPOCH
        scheduler = WarmupScheduler(optimizer, scheduler, optim_cfg.WARMUP_EPOCH, optim_cfg.WARMUP_TYPE,
                                    optim_cfg.WARMUP_CONS_LR, optim_cfg.WARMUP_MIN_LR)
    return scheduler

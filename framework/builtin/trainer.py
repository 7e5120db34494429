"""Trainers of the built-in engine, written for this project against Dassl's public trainer API.

Class chain and lifecycle (as a Dassl plugin sees them):

    TrainerBase    named models with their optimiser and scheduler, the epoch loop, update helpers
    SimpleTrainer  data, model, evaluator, resume, per-epoch selection (CheckpointMixin), final test
    TrainerX       one epoch over the labelled loader train_loader_x

    train(): before_train -> [before_epoch -> run_epoch -> after_epoch] per epoch -> after_train

A method overrides forward_backward (and when it must, build_model, parse_batch_* or model_inference).
"""
import datetime
import os.path as osp
import time
from collections import OrderedDict
from typing import Dict, List, Optional, Union

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from .checkpointing import CheckpointMixin
from .data import DataManager
from .evaluation import build_evaluator
from .modeling import SimpleNet
from .optim import build_lr_scheduler, build_optimizer
from .registry import Registry, check_availability
from .utils import (AverageMeter, MetricMeter, count_num_param, kill_point, load_pretrained_weights,
                    mkdir_if_missing)

TRAINER_REGISTRY = Registry("TRAINER")


def build_trainer(cfg):
    """Instantiate the trainer registered under cfg.TRAINER.NAME."""
    name = cfg.TRAINER.NAME
    check_availability(name, TRAINER_REGISTRY.registered_names())
    if cfg.VERBOSE:
        print(f"Loading trainer: {name}")
    trainer_class = TRAINER_REGISTRY.get(name)
    return trainer_class(cfg)


def _must_override(hook: str):
    """A method that a concrete trainer has to provide."""

    def missing(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not implement {hook}()")

    missing.__name__ = hook
    return missing


class TrainerBase(CheckpointMixin):
    """Registered models (each with an optional optimiser and scheduler) and the epoch loop."""

    def __init__(self):
        # Dassl's attribute names: CheckpointMixin and plugins read these three tables.
        self._models: "OrderedDict[str, torch.nn.Module]" = OrderedDict()
        self._optims: "OrderedDict[str, Optional[torch.optim.Optimizer]]" = OrderedDict()
        self._scheds: "OrderedDict[str, object]" = OrderedDict()
        self._writer: Optional[SummaryWriter] = None

    # ------------------------------------------------------------------ the model table
    def register_model(self, name="model", model=None, optim=None, sched=None):
        if "_models" not in self.__dict__:
            raise AttributeError("call super().__init__() before register_model()")
        if name in self._models:
            raise KeyError(f'a model named "{name}" is already registered')
        self._models[name], self._optims[name], self._scheds[name] = model, optim, sched

    def get_model_names(self, names=None) -> List[str]:
        known = list(self._models)
        if names is None:
            return known
        wanted = [names] if isinstance(names, str) else list(names)
        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise KeyError(f"unknown model name(s) {unknown}; registered: {known}")
        return wanted

    def set_model_mode(self, mode="train", names=None):
        if mode not in ("train", "test", "eval"):
            raise KeyError(f"model mode must be train, test or eval, got {mode!r}")
        for name in self.get_model_names(names):
            self._models[name].train(mode == "train")

    def _each(self, table: dict, names):
        """The non-None entries of one table for the given model names."""
        return [table[n] for n in self.get_model_names(names) if table[n] is not None]

    def update_lr(self, names=None):
        for scheduler in self._each(self._scheds, names):
            scheduler.step()

    # ------------------------------------------------------------------ updates
    # detect_anomaly comes from CheckpointMixin (both engines): it names the loss term and the keys to check.

    def model_zero_grad(self, names=None):
        for optimizer in self._each(self._optims, names):
            optimizer.zero_grad()

    def model_backward(self, loss):
        self.detect_anomaly(loss)
        loss.backward()

    def model_update(self, names=None):
        for optimizer in self._each(self._optims, names):
            optimizer.step()

    def model_backward_and_update(self, loss, names=None):
        self.model_zero_grad(names)
        self.model_backward(loss)
        self.model_update(names)

    # ------------------------------------------------------------------ tensorboard (training runs only)
    def init_writer(self, log_dir):
        if self.__dict__.get("_writer") is None:
            print(f"Initialize tensorboard (log_dir={log_dir})")
            self._writer = SummaryWriter(log_dir=log_dir)

    def close_writer(self):
        writer, self._writer = self.__dict__.get("_writer"), None
        if writer is not None:
            writer.close()

    def write_scalar(self, tag, scalar_value, global_step=None):
        writer = self.__dict__.get("_writer")
        if writer is not None:  # no writer outside training (evaluation-only runs)
            writer.add_scalar(tag, scalar_value, global_step)

    # ------------------------------------------------------------------ the loop and its hooks
    def train(self, start_epoch, max_epoch):
        self.start_epoch, self.max_epoch = start_epoch, max_epoch
        self.before_train()  # may move start_epoch (resume)
        epoch = self.start_epoch
        while epoch < self.max_epoch:
            self.epoch = epoch
            self.before_epoch()
            self.run_epoch()
            self.after_epoch()
            epoch += 1
        self.after_train()

    def before_train(self):
        """Called once before the first epoch."""

    def before_epoch(self):
        """Called at the start of every epoch."""

    def after_epoch(self):
        """Called at the end of every epoch."""

    def after_train(self):
        """Called once after the last epoch."""

    run_epoch = _must_override("run_epoch")
    test = _must_override("test")
    parse_batch_train = _must_override("parse_batch_train")
    parse_batch_test = _must_override("parse_batch_test")
    forward_backward = _must_override("forward_backward")
    model_inference = _must_override("model_inference")


class SimpleTrainer(TrainerBase):
    """Builds data, model and evaluator from cfg; validates, checkpoints and tests around the loop."""

    def __init__(self, cfg):
        super().__init__()
        self.check_cfg(cfg)
        self.cfg = cfg
        use_gpu = cfg.USE_CUDA and torch.cuda.is_available()
        self.device = torch.device("cuda" if use_gpu else "cpu")
        self.output_dir = cfg.OUTPUT_DIR
        self.start_epoch = 0
        self.epoch = 0
        self.max_epoch = cfg.OPTIM.MAX_EPOCH
        self.build_data_loader()
        self.build_model()
        self.evaluator = build_evaluator(cfg, lab2cname=self.lab2cname)
        self.best_result = -np.inf

    def check_cfg(self, cfg):
        """Reject settings the trainer cannot run with (a trainer overrides this)."""

    def build_data_loader(self):
        self.dm = DataManager(self.cfg)
        for attr in ("train_loader_x", "train_loader_u", "val_loader", "test_loader", "num_classes",
                     "num_source_domains", "lab2cname"):
            setattr(self, attr, getattr(self.dm, attr))

    def build_model(self):
        print("Building model")
        self.model = SimpleNet(self.cfg, self.cfg.MODEL, self.num_classes)
        if self.cfg.MODEL.INIT_WEIGHTS:
            load_pretrained_weights(self.model, self.cfg.MODEL.INIT_WEIGHTS)
        self.model.to(self.device)
        print(f"# params: {count_num_param(self.model):,}")
        self.optim = build_optimizer(self.model, self.cfg.OPTIM)
        self.sched = build_lr_scheduler(self.optim, self.cfg.OPTIM)
        self.register_model("model", self.model, self.optim, self.sched)

    def train(self):
        super().train(self.start_epoch, self.max_epoch)

    def before_train(self):
        self.start_epoch = self.resume_model_if_exist(self.cfg.RESUME or self.cfg.OUTPUT_DIR)
        board = osp.join(self.output_dir, "tensorboard")
        mkdir_if_missing(board)
        self.init_writer(board)
        self.time_start = time.time()

    def after_epoch(self):
        self.checkpoint_after_epoch()  # CheckpointMixin: best-on-val selection and regular checkpoints

    def _final_test(self) -> None:
        best = self.cfg.TEST.FINAL_MODEL == "best_val"
        print("Deploy the model with the best val performance" if best else "Deploy the last-epoch model")
        if best:
            self.load_model(self.output_dir)
        self.test()

    def after_train(self):
        print("Finish training")
        if not self.cfg.TEST.NO_TEST:
            self._final_test()
        print(f"Elapsed: {datetime.timedelta(seconds=round(time.time() - self.time_start))}")
        self.close_writer()

    def _loader_for(self, split: str):
        """The loader of a split; without a validation split Dassl evaluates on test, and so does this."""
        if split == "val" and self.val_loader is not None:
            return "val", self.val_loader
        return "test", self.test_loader

    @torch.no_grad()
    def test(self, split=None):
        self.set_model_mode("eval")
        split, loader = self._loader_for(split or self.cfg.TEST.SPLIT)
        print(f"Evaluate on the *{split}* set")
        self.evaluator.reset()
        for batch in tqdm(loader):
            inputs, labels = self.parse_batch_test(batch)
            self.evaluator.process(self.model_inference(inputs), labels)
        metrics = self.evaluator.evaluate()
        for name, value in metrics.items():
            self.write_scalar(f"{split}/{name}", value, self.epoch)
        return next(iter(metrics.values()))

    def model_inference(self, input):
        return self.model(input)

    def parse_batch_test(self, batch):
        return batch["img"].to(self.device), batch["label"].to(self.device)

    def get_current_lr(self, names=None) -> float:
        first = self.get_model_names(names)[0]
        return self._optims[first].param_groups[0]["lr"]


class TrainerX(SimpleTrainer):
    """An epoch is one pass over the labelled source loader (what DG methods train on)."""

    def _print_due(self) -> bool:
        every = self.cfg.TRAIN.PRINT_FREQ
        return self.num_batches < every or (self.batch_idx + 1) % every == 0

    def _eta(self, seconds_per_batch: float) -> str:
        batches_left = (self.max_epoch - self.epoch) * self.num_batches - (self.batch_idx + 1)
        return str(datetime.timedelta(seconds=int(seconds_per_batch * batches_left)))

    def _progress(self, losses: MetricMeter, step: AverageMeter, wait: AverageMeter) -> str:
        fields = [
            f"epoch [{self.epoch + 1}/{self.max_epoch}]",
            f"batch [{self.batch_idx + 1}/{self.num_batches}]",
            f"time {step.val:.3f} ({step.avg:.3f})",
            f"data {wait.val:.3f} ({wait.avg:.3f})",
            str(losses),
            f"lr {self.get_current_lr():.4e}",
            f"eta {self._eta(step.avg)}",
        ]
        return " ".join(fields)

    def _scalars(self, losses: MetricMeter) -> Dict[str, Union[float, int]]:
        values = {f"train/{name}": meter.avg for name, meter in losses.meters.items()}
        values["train/lr"] = self.get_current_lr()
        return values

    def run_epoch(self):
        self.set_model_mode("train")
        self.num_batches = len(self.train_loader_x)
        losses, step, wait = MetricMeter(), AverageMeter(), AverageMeter()
        started = time.time()
        for self.batch_idx, batch in enumerate(self.train_loader_x):
            wait.update(time.time() - started)  # time spent waiting for the loader
            kill_point(f"batch {self.epoch + 1} {self.batch_idx + 1}")
            losses.update(self.forward_backward(batch))
            step.update(time.time() - started)
            if self._print_due():
                print(self._progress(losses, step, wait))
            global_step = self.epoch * self.num_batches + self.batch_idx
            for tag, value in self._scalars(losses).items():
                self.write_scalar(tag, value, global_step)
            started = time.time()

    def parse_batch_train(self, batch):
        return tuple(batch[key].to(self.device) for key in ("img", "label", "domain"))

"""Trainers of the built-in engine, written for this project against Dassl's public trainer API.

Class chain and lifecycle (as a Dassl plugin sees them):

    TrainerBase    named models with their optimiser and scheduler, the epoch loop, update helpers
    SimpleTrainer  data, model, evaluator, resume, per-epoch selection (CheckpointMixin), final test
    TrainerX       one epoch over the labelled loader train_loader_x

    train(): before_train -> [before_epoch -> run_epoch -> after_epoch] per epoch -> after_train

A method overrides forward_backward (and when it must, build_model, parse_batch_* or model_inference).
"""
import datetime
import math
import os.path as osp
import time
from collections import OrderedDict
from typing import Dict, List, Optional, Union

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from .checkpointing import CheckpointMixin
from .selection import EVALUATION_HEADER
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
        print(f"Trainer: {name}")
    return TRAINER_REGISTRY.get(name)(cfg)


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
        tables = [self.__dict__.get(t) for t in ("_models", "_optims", "_scheds")]
        if any(table is None for table in tables):
            raise AttributeError(f"{type(self).__name__}.register_model({name!r}) ran before TrainerBase.__init__: "
                                 "call super().__init__() first in the trainer's __init__")
        if name in tables[0]:
            raise KeyError(f'{type(self).__name__} registers two models named "{name}"; give each its own name '
                           "(it is also the checkpoint folder)")
        for table, entry in zip(tables, (model, optim, sched)):
            table[name] = entry

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
    def _open_writer(self) -> Optional[SummaryWriter]:
        return self.__dict__.get("_writer")  # absent, not None, while a mixin's __init__ runs first

    def init_writer(self, log_dir):
        """Open the TensorBoard event file in log_dir (made if missing); a second call keeps the first writer."""
        if self._open_writer() is None:
            mkdir_if_missing(log_dir)
            self._writer = SummaryWriter(log_dir)
            print(f"TensorBoard scalars: {log_dir}")

    def close_writer(self):
        writer, self._writer = self._open_writer(), None
        if writer is not None:
            writer.close()

    def write_scalar(self, tag, scalar_value, global_step=None):
        """Record one scalar; nothing happens outside training, where no writer is open (--eval-only)."""
        writer = self._open_writer()
        if writer is not None:
            writer.add_scalar(tag, scalar_value, global_step)

    # ------------------------------------------------------------------ the loop and its hooks
    def train(self, start_epoch, max_epoch):
        """before_train; before_epoch, run_epoch and after_epoch for every epoch left; after_train."""
        self.start_epoch, self.max_epoch = start_epoch, max_epoch
        self.before_train()
        for self.epoch in self._epochs_left():
            self._one_epoch()
        self.after_train()

    def _epochs_left(self) -> range:
        """Read only after before_train, because resuming there moves start_epoch."""
        return range(self.start_epoch, self.max_epoch)

    def _one_epoch(self):
        self.before_epoch()
        self.run_epoch()
        self.after_epoch()

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


def _run_state(cfg) -> dict:
    """The attributes a trainer starts with (Dassl's names): device, output folder, epoch counters, and the
    val accuracy of the best epoch so far (CheckpointMixin keeps it)."""
    gpu = cfg.USE_CUDA and torch.cuda.is_available()
    return {"device": torch.device("cuda" if gpu else "cpu"), "output_dir": cfg.OUTPUT_DIR, "start_epoch": 0,
            "epoch": 0, "max_epoch": cfg.OPTIM.MAX_EPOCH, "best_result": -math.inf}


def _trainable(net, cfg, device) -> tuple:
    """(net on `device`, initialised from MODEL.INIT_WEIGHTS when set, its optimiser, its LR schedule)."""
    if cfg.MODEL.INIT_WEIGHTS:
        load_pretrained_weights(net, cfg.MODEL.INIT_WEIGHTS)
    net = net.to(device)
    optimiser = build_optimizer(net, cfg.OPTIM)
    return net, optimiser, build_lr_scheduler(optimiser, cfg.OPTIM)


class SimpleTrainer(TrainerBase):
    """Builds data, model and evaluator from cfg; validates, checkpoints and tests around the loop."""

    def __init__(self, cfg):
        super().__init__()
        self.check_cfg(cfg)  # first, before anything is built (as in Dassl, self.cfg is not set yet)
        vars(self).update(_run_state(cfg), cfg=cfg)
        for build in (self.build_data_loader, self.build_model):
            build()
        self.evaluator = build_evaluator(cfg, lab2cname=self.lab2cname)

    def check_cfg(self, cfg):
        """Reject settings the trainer cannot run with (a trainer overrides this)."""

    def build_data_loader(self):
        self.dm = DataManager(self.cfg)
        for attr in ("train_loader_x", "train_loader_u", "val_loader", "test_loader", "num_classes",
                     "num_source_domains", "lab2cname"):
            setattr(self, attr, getattr(self.dm, attr))

    def build_model(self):
        """One SimpleNet, registered as "model" with its optimiser and scheduler (video trainers build VideoNet)."""
        parts = _trainable(SimpleNet(self.cfg, self.cfg.MODEL, self.num_classes), self.cfg, self.device)
        self.model, self.optim, self.sched = parts
        self.register_model("model", *parts)
        print(f"Model: {type(self.model).__name__} with {count_num_param(self.model):,} parameters")

    def train(self):
        super().train(self.start_epoch, self.max_epoch)

    def before_train(self):
        """Resume from RESUME (else OUTPUT_DIR) when it holds checkpoints, then open TensorBoard."""
        self.time_start = time.monotonic()
        self.start_epoch = self.resume_model_if_exist(self.cfg.RESUME or self.cfg.OUTPUT_DIR)
        self.init_writer(osp.join(self.cfg.OUTPUT_DIR, "tensorboard"))

    def after_epoch(self):
        self.checkpoint_after_epoch()  # CheckpointMixin: best-on-val selection and regular checkpoints

    def after_train(self):
        print("Finish training")  # parse_test_res reads the test block after this line: keep the words
        if not self.cfg.TEST.NO_TEST:
            self._test_deployed_model()
        took = datetime.timedelta(seconds=round(time.monotonic() - self.time_start))
        self.close_writer()
        print(f"Elapsed: {took}")

    def _test_deployed_model(self):
        """The final test: of the epoch chosen on validation (TEST.FINAL_MODEL best_val), else of the last one."""
        chosen_on_val = self.cfg.TEST.FINAL_MODEL == "best_val"
        print("Testing the epoch chosen on validation" if chosen_on_val else "Testing the model of the last epoch")
        if chosen_on_val:
            self.load_model(self.cfg.OUTPUT_DIR)
        self.test()

    def _loader_for(self, split: str):
        """(split, loader); without a validation loader "val" falls back to test, as in Dassl."""
        loaders = {"test": self.test_loader, "val": self.val_loader}
        chosen = split if loaders.get(split) is not None else "test"
        return chosen, loaders[chosen]

    @torch.no_grad()
    def test(self, split=None):
        self.set_model_mode("eval")
        split, loader = self._loader_for(split or self.cfg.TEST.SPLIT)
        print(EVALUATION_HEADER.format(split))
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
        """The learning rate of the first param group of the first named model (Dassl's choice)."""
        optimiser = self._optims[self.get_model_names(names)[0]]
        first_group, *_ = optimiser.param_groups
        return first_group["lr"]


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

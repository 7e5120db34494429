"""Checkpoints, resume and best-epoch selection, shared by both engines.

Layout (Dassl's): <dir>/<model name>/model.pth.tar-<epoch> (1-based), model-best.pth.tar, and a text file
`checkpoint` naming the latest regular checkpoint. A checkpoint is a dict with state_dict, epoch, optimizer,
scheduler and val_result (Dassl's keys), plus rng_state in regular checkpoints (exact resume) and val_loss /
selection in model-best.

The built-in TrainerBase inherits this mixin; under real Dassl the framework access point puts it in front of
Dassl's TrainerX. Both engines therefore share:

- atomic writes (a killed or failed save leaves the previous checkpoint usable) and weights-only loads;
- resume from the newest *intact* checkpoint, with the random state of the moment it was written, so a run
  killed at any point and started again gives bit-identical results on CPU;
- `load_model(dir, epoch=N)` that works although regular checkpoints store val_result=None, and says which
  epochs were kept when N was not;
- the last TRAIN.CHECKPOINT_KEEP regular checkpoints on disk (plus model-best);
- best-on-val selection (TEST.FINAL_MODEL best_val) with a tie-break: the higher source-validation accuracy
  wins; at equal accuracy the lower validation loss (mean cross-entropy); at equal loss the later epoch.
  The log says which epoch was chosen and why.
"""
import inspect
import math
import os
import os.path as osp
import re
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F

from ..distributed import gather_shards
from .utils import (CheckpointError, capture_rng_state, kill_point, load_checkpoint, restore_rng_state,
                    save_checkpoint)

_REGULAR = re.compile(r"^model\.pth\.tar-(\d+)$")


def kept_epochs(folder: str) -> List[int]:
    """Epochs (1-based) of the regular checkpoints in a model folder, oldest first."""
    if not osp.isdir(folder):
        return []
    found = (_REGULAR.match(name) for name in os.listdir(folder))
    return sorted(int(m.group(1)) for m in found if m)


def selection_key(record: Dict) -> tuple:
    """Larger is better: accuracy, then lower loss, then the later epoch."""
    loss = record.get("loss")
    return (record["accuracy"], -loss if loss is not None and math.isfinite(loss) else -math.inf,
            record["epoch"])


def explain_choice(new: Dict, old: Optional[Dict]) -> str:
    """Why `new` replaces `old` as the selected epoch (both are selection records)."""
    if old is None:
        return "first validated epoch"
    if new["accuracy"] > old["accuracy"]:
        return f"higher val accuracy than epoch {old['epoch']} ({old['accuracy']:.2f}%)"
    if new.get("loss") != old.get("loss"):
        return (f"val accuracy tied with epoch {old['epoch']}; lower val loss "
                f"({new['loss']:.4g} < {old['loss']:.4g})")
    return f"val accuracy and loss tied with epoch {old['epoch']}; the later epoch"


def _loss_term_name(loss) -> str:
    """The name under which the caller (a trainer's forward_backward or its helpers) holds `loss`, e.g.
    loss_src, or loss_adv_II when the caller also holds `level`; "loss" when no caller names it."""
    frame = inspect.currentframe()
    try:
        frame = frame.f_back
        while frame is not None:
            if not frame.f_code.co_filename.startswith(osp.dirname(osp.dirname(__file__))):
                names = [n for n, v in frame.f_locals.items() if v is loss and n not in ("self", "loss")]
                if names:
                    level = frame.f_locals.get("level")
                    return f"{names[0]}_{level}" if isinstance(level, str) else names[0]
            frame = frame.f_back
    finally:
        del frame
    return "loss"


class CheckpointMixin:

    # ------------------------------------------------------------------ non-finite losses
    def detect_anomaly(self, loss):
        if bool(torch.isfinite(loss).all()):
            return
        cfg = getattr(self, "cfg", None)
        where = ""
        if hasattr(self, "epoch") and hasattr(self, "batch_idx"):
            where = f" at epoch {self.epoch + 1}, batch {self.batch_idx + 1}"
        keys = []
        node = getattr(self, "config_node", None)
        if cfg is not None and node and node in cfg.TRAINER:
            for key, meaning in (("ETA", "ascent step on the input"), ("GAMMA", "weight of the transport cost")):
                if key in cfg.TRAINER[node]:
                    keys.append(f"TRAINER.{node}.{key}={cfg.TRAINER[node][key]} ({meaning})")
        if cfg is not None:
            keys.append(f"OPTIM.LR={cfg.OPTIM.LR}")
            if "CLIP_GRAD_NORM" in cfg.OPTIM:
                keys.append(f"OPTIM.CLIP_GRAD_NORM={cfg.OPTIM.CLIP_GRAD_NORM} (> 0 clips gradients)")
        advice = f" Look at {', '.join(keys)}: smaller steps or gradient clipping usually help." if keys else ""
        raise FloatingPointError(f"Loss is infinite or NaN! The loss term {_loss_term_name(loss)} is "
                                 f"{loss.detach().float().flatten()[0].item()}{where}.{advice}")

    # ------------------------------------------------------------------ settings
    def _setting(self, group: str, key: str, default):
        cfg = getattr(self, "cfg", None)
        node = getattr(cfg, group, None) if cfg is not None else None
        return node.get(key, default) if node is not None else default

    # ------------------------------------------------------------------ saving
    def save_model(self, epoch: int, directory: str, is_best: bool = False, val_result: Optional[float] = None,
                   model_name: str = "", extra: Optional[Dict] = None) -> None:
        """Write every registered model's checkpoint for `epoch` (0-based, stored 1-based)."""
        regular = not model_name
        rng = capture_rng_state() if regular else None
        for name in self.get_model_names():
            optim, sched = self._optims[name], self._scheds[name]
            state = dict(state_dict=self._models[name].state_dict(), epoch=epoch + 1,
                         optimizer=None if optim is None else optim.state_dict(),
                         scheduler=None if sched is None else sched.state_dict(), val_result=val_result)
            if rng is not None:
                state["rng_state"] = rng
            state.update(extra or {})
            folder = osp.join(directory, name)
            save_checkpoint(state, folder, is_best=is_best, model_name=model_name)
            if regular:
                self._prune_checkpoints(folder)

    def _prune_checkpoints(self, folder: str) -> None:
        keep = self._setting("TRAIN", "CHECKPOINT_KEEP", 0)
        if keep <= 0:
            return
        for old in kept_epochs(folder)[:-keep]:
            os.remove(osp.join(folder, f"model.pth.tar-{old}"))

    # ------------------------------------------------------------------ end of an epoch
    def after_epoch(self):
        self.checkpoint_after_epoch()

    def checkpoint_after_epoch(self) -> None:
        """Validate and keep the best epoch (best_val), then write the regular checkpoint when one is due.

        The regular checkpoint is written last, so the random state it stores is the one the next epoch starts
        from, whichever engine runs the loop."""
        cfg = self.cfg
        if not cfg.TEST.NO_TEST and cfg.TEST.FINAL_MODEL == "best_val":
            self._select_epoch()
        freq = cfg.TRAIN.CHECKPOINT_FREQ
        due = freq > 0 and (self.epoch + 1) % freq == 0
        if due or self.epoch + 1 == self.max_epoch:
            self.save_model(self.epoch, self.output_dir)

    @torch.no_grad()
    def validate(self) -> Dict:
        """Accuracy (the evaluator's `=> result` block is printed) and mean cross-entropy on the val split."""
        if self.val_loader is None:
            raise ValueError("TEST.FINAL_MODEL best_val needs a validation split; this dataset has none")
        self.set_model_mode("eval")
        self.evaluator.reset()
        print("Evaluate on the *val* set")
        outputs, targets = [], []
        for batch in self.val_loader:
            inputs, labels = self.parse_batch_test(batch)
            outputs.append(self.model_inference(inputs).float().cpu())
            targets.append(labels.cpu())
        # under torchrun each rank scored its shard: every clip of the split, once, on every rank
        logits, labels = (torch.from_numpy(a) for a in gather_shards(
            [torch.cat(outputs).numpy(), torch.cat(targets).numpy()], self.val_loader))
        self.evaluator.process(logits, labels)
        loss_sum, count = F.cross_entropy(logits, labels, reduction="sum").item(), labels.numel()
        metrics = self.evaluator.evaluate()
        for name, value in metrics.items():
            self.write_scalar(f"val/{name}", value, self.epoch)
        loss = loss_sum / max(count, 1)
        self.write_scalar("val/loss", loss, self.epoch)
        return {"epoch": self.epoch + 1, "accuracy": float(next(iter(metrics.values()))), "loss": loss}

    def _select_epoch(self) -> None:
        record = self.validate()
        best = getattr(self, "best_selection", None)
        if best is not None and selection_key(record) < selection_key(best):
            print(f"Best epoch stays {best['epoch']} (val accuracy {best['accuracy']:.2f}%, "
                  f"val loss {best['loss']:.4g})")
            return
        reason = explain_choice(record, best)
        self.best_selection = dict(record, reason=reason)
        self.best_result = record["accuracy"]
        print(f"Best epoch so far: {record['epoch']} (val accuracy {record['accuracy']:.2f}%, "
              f"val loss {record['loss']:.4g}): {reason}")
        self.save_model(self.epoch, self.output_dir, val_result=record["accuracy"], model_name="model-best.pth.tar",
                        extra={"val_loss": record["loss"], "selection": reason})

    # ------------------------------------------------------------------ resuming
    def _newest_intact(self, folder: str) -> Optional[Dict]:
        """The newest regular checkpoint that loads; every unreadable newer one is reported."""
        for epoch in reversed(kept_epochs(folder)):
            path = osp.join(folder, f"model.pth.tar-{epoch}")
            try:
                checkpoint = load_checkpoint(path)
            except CheckpointError as e:
                print(f"{e}\nFalling back to the newest intact checkpoint before it.")
                continue
            checkpoint["_path"] = path
            return checkpoint
        return None

    def resume_model_if_exist(self, directory: str) -> int:
        names = self.get_model_names()
        if not any(kept_epochs(osp.join(directory, n)) for n in names):
            print("No checkpoint found, train from scratch")
            return 0
        print(f"Found checkpoint at {directory} (will resume training)")
        start_epoch = 0
        rng_state = None
        for name in names:
            folder = osp.join(directory, name)
            checkpoint = self._newest_intact(folder)
            if checkpoint is None:
                print(f"No intact checkpoint in {folder}: train from scratch")
                return 0
            print(f'Loading checkpoint from "{checkpoint["_path"]}"')
            self._models[name].load_state_dict(checkpoint["state_dict"])
            for part, target in (("optimizer", self._optims[name]), ("scheduler", self._scheds[name])):
                if target is not None and checkpoint.get(part) is not None:
                    target.load_state_dict(checkpoint[part])
            start_epoch = checkpoint["epoch"]
            rng_state = checkpoint.get("rng_state", rng_state)
            self._restore_selection(folder)
        print(f"Previous epoch: {start_epoch}")
        if rng_state is not None:
            restore_rng_state(rng_state)
            print("Restored the random state of that checkpoint (exact resume)")
        return start_epoch

    def _restore_selection(self, folder: str) -> None:
        best_file = osp.join(folder, "model-best.pth.tar")
        if not osp.isfile(best_file) or not hasattr(self, "best_result"):
            return
        try:
            best = load_checkpoint(best_file)
        except CheckpointError as e:
            print(f"{e}\nThe best-epoch record is lost; selection starts again from the resumed epoch.")
            return
        if best.get("val_result") is None:
            return
        self.best_result = best["val_result"]
        self.best_selection = {"epoch": best["epoch"], "accuracy": best["val_result"],
                               "loss": best.get("val_loss"), "reason": best.get("selection", "")}
        print(f"Restored best validation result: {self.best_result:.1f} (epoch {best['epoch']})")

    # ------------------------------------------------------------------ loading for evaluation
    def load_model(self, directory: str, epoch: Optional[int] = None) -> None:
        if not directory:
            print("Note that load_model() is skipped as no pretrained model is given")
            return
        kill_point("final")
        wanted = "model-best.pth.tar" if epoch is None else f"model.pth.tar-{epoch}"
        for name in self.get_model_names():
            folder = osp.join(directory, name)
            path = osp.join(folder, wanted)
            if not osp.exists(path):
                raise FileNotFoundError(self._missing_message(folder, path, epoch))
            checkpoint = load_checkpoint(path)
            val = checkpoint.get("val_result")
            val_text = "n/a" if val is None else f"{val:.1f}"
            print(f'Load {path} to {name} (epoch={checkpoint["epoch"]}, val_result={val_text})')
            if checkpoint.get("selection"):
                loss = checkpoint.get("val_loss")
                loss_text = "" if loss is None else f", val loss {loss:.4g}"
                print(f"Chosen epoch {checkpoint['epoch']} (val accuracy {val_text}%{loss_text}): "
                      f"{checkpoint['selection']}")
            self._models[name].load_state_dict(checkpoint["state_dict"])

    def _missing_message(self, folder: str, path: str, epoch: Optional[int]) -> str:
        epochs = kept_epochs(folder)
        best = osp.isfile(osp.join(folder, "model-best.pth.tar"))
        have = (f"regular checkpoints of epochs {epochs}" if epochs else "no regular checkpoints") + \
            (" and model-best.pth.tar" if best else "")
        if epoch is not None and epochs and epoch < epochs[-1]:
            return (f'Epoch {epoch} was not kept: "{path}" does not exist. {folder} holds {have} '
                    "(TRAIN.CHECKPOINT_KEEP keeps only the last K regular checkpoints). "
                    "Pass --load-epoch with one of those epochs, or omit it for the best_val model.")
        return (f'Model not found at "{path}". {folder} holds {have}. Pass --model-dir <the training run\'s '
                "OUTPUT_DIR> and, for a regular checkpoint, --load-epoch N; without --load-epoch the best_val "
                "model is loaded.")

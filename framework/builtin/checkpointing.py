"""Checkpoints and resume, shared by both engines (CheckpointMixin).

Layout (Dassl's): <dir>/<model name>/model.pth.tar-<epoch> (1-based), model-best.pth.tar, and a text file
`checkpoint` naming the latest regular checkpoint. A checkpoint is a dict with state_dict, epoch, optimizer,
scheduler and val_result (Dassl's keys), plus rng_state in regular checkpoints (exact resume) and val_loss /
selection in model-best.

The built-in TrainerBase inherits CheckpointMixin; under real Dassl the framework access point puts it in front
of Dassl's TrainerX. The mixin brings three pieces, each in its own module:

- here: atomic writes (a killed or failed save leaves the previous checkpoint usable) and weights-only loads;
  resume from the newest *intact* checkpoint, with the random state of the moment it was written, so a run
  killed at any point and started again gives bit-identical results on CPU; `load_model(dir, epoch=N)` that
  works although regular checkpoints store val_result=None, and says which epochs were kept when N was not;
  the last TRAIN.CHECKPOINT_KEEP regular checkpoints on disk (plus model-best);
- selection.py: best-on-val selection (TEST.FINAL_MODEL best_val) with its tie-break;
- losscheck.py: the check for a non-finite loss, whose advice the trainer gives (non_finite_hints).
"""
import os
import os.path as osp
import re
from typing import Dict, List, Optional

from .losscheck import LossCheck
from .selection import BEST_FILE, EpochSelection, explain_choice, selection_key  # noqa: F401 (re-exported)
from .utils import CheckpointError, capture_rng_state, kill_point, load_checkpoint, restore_rng_state, save_checkpoint

_REGULAR = re.compile(r"^model\.pth\.tar-(\d+)$")


def kept_epochs(folder: str) -> List[int]:
    """Epochs (1-based) of the regular checkpoints in a model folder, oldest first."""
    if not osp.isdir(folder):
        return []
    found = (_REGULAR.match(name) for name in os.listdir(folder))
    return sorted(int(m.group(1)) for m in found if m)


class CheckpointMixin(EpochSelection, LossCheck):

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
            self.select_epoch()
        freq = cfg.TRAIN.CHECKPOINT_FREQ
        due = freq > 0 and (self.epoch + 1) % freq == 0
        if due or self.epoch + 1 == self.max_epoch:
            self.save_model(self.epoch, self.output_dir)

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

    def _restore(self, name: str, checkpoint: Dict) -> None:
        """Weights, and the optimiser and scheduler states where both the model and the checkpoint have them."""
        print(f"Restoring {name} from {checkpoint['_path']}")
        self._models[name].load_state_dict(checkpoint["state_dict"])
        for part, target in (("optimizer", self._optims[name]), ("scheduler", self._scheds[name])):
            if target is not None and checkpoint.get(part) is not None:
                target.load_state_dict(checkpoint[part])

    def resume_model_if_exist(self, directory: str) -> int:
        """Continue a run whose checkpoints are in `directory`: returns the number of epochs done (0: none)."""
        names = self.get_model_names()
        if not any(kept_epochs(osp.join(directory, n)) for n in names):
            print(f"Training from the start: no checkpoints in {directory}")
            return 0
        found = {name: self._newest_intact(osp.join(directory, name)) for name in names}
        unusable = [name for name, checkpoint in found.items() if checkpoint is None]
        if unusable:
            print(f"Training from the start: no intact checkpoint of {', '.join(unusable)} in {directory}")
            return 0
        for name, checkpoint in found.items():
            self._restore(name, checkpoint)
            self.restore_selection(osp.join(directory, name))
        last = found[names[-1]]
        print(f"Resuming after epoch {last['epoch']} (checkpoints in {directory})")
        rng_state = next((c["rng_state"] for c in reversed(list(found.values())) if "rng_state" in c), None)
        if rng_state is not None:
            restore_rng_state(rng_state)
            print("Restored the random state of that checkpoint (exact resume)")
        return last["epoch"]

    # ------------------------------------------------------------------ loading for evaluation
    def load_model(self, directory: str, epoch: Optional[int] = None) -> None:
        """Load model-best.pth.tar (epoch None) or model.pth.tar-<epoch> of every registered model."""
        if not directory:
            print("load_model: no model folder given (--model-dir), so the model keeps its current weights")
            return
        kill_point("final")
        wanted = BEST_FILE if epoch is None else f"model.pth.tar-{epoch}"
        for name in self.get_model_names():
            folder = osp.join(directory, name)
            path = osp.join(folder, wanted)
            if not osp.exists(path):
                raise FileNotFoundError(self._missing_message(folder, path, epoch))
            checkpoint = load_checkpoint(path)
            self._models[name].load_state_dict(checkpoint["state_dict"])
            print(self._loaded_line(path, name, checkpoint))

    @staticmethod
    def _loaded_line(path: str, name: str, checkpoint: Dict) -> str:
        val = checkpoint.get("val_result")
        val_text = "n/a" if val is None else f"{val:.1f}"
        line = f"Loaded {path} into {name} (epoch {checkpoint['epoch']}, val accuracy {val_text})"
        if checkpoint.get("selection"):
            loss = checkpoint.get("val_loss")
            loss_text = "" if loss is None else f", val loss {loss:.4g}"
            line += (f"\nChosen epoch {checkpoint['epoch']} (val accuracy {val_text}%{loss_text}): "
                     f"{checkpoint['selection']}")
        return line

    def _missing_message(self, folder: str, path: str, epoch: Optional[int]) -> str:
        epochs = kept_epochs(folder)
        best = osp.isfile(osp.join(folder, BEST_FILE))
        have = (f"regular checkpoints of epochs {epochs}" if epochs else "no regular checkpoints") + \
            (f" and {BEST_FILE}" if best else "")
        if epoch is not None and epochs and epoch < epochs[-1]:
            return (f'Epoch {epoch} was not kept: "{path}" does not exist. {folder} holds {have} '
                    "(TRAIN.CHECKPOINT_KEEP keeps only the last K regular checkpoints). "
                    "Pass --load-epoch with one of those epochs, or omit it for the best_val model.")
        return (f'Model not found at "{path}". {folder} holds {have}. Pass --model-dir <the training run\'s '
                "OUTPUT_DIR> and, for a regular checkpoint, --load-epoch N; without --load-epoch the best_val "
                "model is loaded.")

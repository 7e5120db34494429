"""Checkpoint save / resume / load for trainers, in Dassl's layout.

Layout: <dir>/<model name>/model.pth.tar-<epoch> (1-based), model-best.pth.tar, and a text file `checkpoint`
naming the latest regular checkpoint. Saved dict: state_dict, epoch, optimizer, scheduler, val_result.

Both engines use this mixin (the built-in TrainerBase inherits it; under real Dassl the framework access
point puts it in front of Dassl's TrainerX), so they behave the same. Differences from Dassl 0.6.3, each a
fix: files are written atomically; loads use weights_only=True; `load_model(dir, epoch=N)` works although
regular checkpoints store val_result=None; saving model-best does not move the `checkpoint` pointer (so a
resume continues from the latest epoch, not from the best one); a resume restores the best validation
result, so a resumed best_val run does not overwrite model-best with a worse epoch.
"""
import os
import os.path as osp
from typing import Optional

from .utils import load_checkpoint, resume_from_checkpoint, save_checkpoint


class CheckpointMixin:

    def save_model(self, epoch: int, directory: str, is_best: bool = False, val_result: Optional[float] = None,
                   model_name: str = "") -> None:
        for name in self.get_model_names():
            optim, sched = self._optims[name], self._scheds[name]
            state = {
                "state_dict": self._models[name].state_dict(),
                "epoch": epoch + 1,
                "optimizer": optim.state_dict() if optim is not None else None,
                "scheduler": sched.state_dict() if sched is not None else None,
                "val_result": val_result,
            }
            save_checkpoint(state, osp.join(directory, name), is_best=is_best, model_name=model_name)

    def resume_model_if_exist(self, directory: str) -> int:
        names = self.get_model_names()
        if not all(osp.isfile(osp.join(directory, name, "checkpoint")) for name in names):
            print("No checkpoint found, train from scratch")
            return 0
        print(f'Found checkpoint at {directory} (will resume training)')
        start_epoch = 0
        for name in names:
            path = osp.join(directory, name)
            start_epoch = resume_from_checkpoint(path, self._models[name], self._optims[name], self._scheds[name])
            best_file = osp.join(path, "model-best.pth.tar")
            if osp.isfile(best_file) and hasattr(self, "best_result"):
                best = load_checkpoint(best_file).get("val_result")
                if best is not None:
                    self.best_result = best
                    print(f"Restored best validation result: {best:.1f}")
        return start_epoch

    def load_model(self, directory: str, epoch: Optional[int] = None) -> None:
        if not directory:
            print("Note that load_model() is skipped as no pretrained model is given")
            return
        model_file = "model-best.pth.tar" if epoch is None else f"model.pth.tar-{epoch}"
        for name in self.get_model_names():
            path = osp.join(directory, name, model_file)
            if not osp.exists(path):
                folder = osp.join(directory, name)
                have = sorted(f for f in os.listdir(folder) if f.startswith("model")) if osp.isdir(folder) else []
                raise FileNotFoundError(
                    f'Model not found at "{path}". Files there: {have or "none"}. '
                    "Pass --model-dir <the training run's OUTPUT_DIR> and, for a regular checkpoint, "
                    "--load-epoch N; without --load-epoch the best_val model is loaded.")
            checkpoint = load_checkpoint(path)
            val = checkpoint.get("val_result")
            val_text = "n/a" if val is None else f"{val:.1f}"
            print(f'Load {path} to {name} (epoch={checkpoint["epoch"]}, val_result={val_text})')
            self._models[name].load_state_dict(checkpoint["state_dict"])

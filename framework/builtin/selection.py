"""Best-epoch selection on the source validation split (TEST.FINAL_MODEL best_val), on both engines.

After every epoch the model is scored on the validation split; the epoch with the highest accuracy is kept as
model-best.pth.tar. Ties are common on small validation splits (several epochs at 100%), so they are broken by
the lower validation loss (mean cross-entropy), and at equal loss by the later epoch. The log and the
checkpoint say which epoch was chosen and why; a resumed run restores the record from model-best.pth.tar.

A record is a dict {"epoch": 1-based epoch, "accuracy": %, "loss": mean cross-entropy}.
"""
import math
import os.path as osp
from typing import Dict, Optional

import torch
import torch.nn.functional as F

from ..distributed import gather_shards
from .utils import CheckpointError, load_checkpoint

# The line before an evaluation block, on both engines (validate() below, the built-in test(), the results table
# of trainers/results.py). analysis/figures.py finds each epoch's validation accuracy after it (its _VAL_HEADER).
EVALUATION_HEADER = "Scoring the {} split"
BEST_FILE = "model-best.pth.tar"


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


class EpochSelection:
    """The selection half of CheckpointMixin. Needs a trainer's val_loader, evaluator, parse_batch_test,
    model_inference and CheckpointMixin.save_model; keeps `best_selection` (a record with its reason) and
    Dassl's `best_result` (its accuracy)."""

    best_selection: Optional[Dict] = None

    @torch.no_grad()
    def validate(self) -> Dict:
        """This epoch's record. The evaluator prints its `=> result` block; accuracy and loss go to TensorBoard."""
        if self.val_loader is None:
            raise ValueError("TEST.FINAL_MODEL best_val needs a validation split; this dataset has none")
        self.set_model_mode("eval")
        self.evaluator.reset()
        print(EVALUATION_HEADER.format("val"))
        scores, labels = [], []
        for batch in self.val_loader:
            inputs, truth = self.parse_batch_test(batch)
            scores.append(self.model_inference(inputs).float().cpu())
            labels.append(truth.cpu())
        # under torchrun each rank scored its shard: every clip of the split, once, on every rank
        logits, truth = (torch.from_numpy(part) for part in gather_shards(
            [torch.cat(scores).numpy(), torch.cat(labels).numpy()], self.val_loader))
        self.evaluator.process(logits, truth)
        metrics = self.evaluator.evaluate()
        loss = F.cross_entropy(logits, truth, reduction="sum").item() / max(truth.numel(), 1)
        for name, value in [*metrics.items(), ("loss", loss)]:
            self.write_scalar(f"val/{name}", value, self.epoch)
        return {"epoch": self.epoch + 1, "accuracy": float(next(iter(metrics.values()))), "loss": loss}

    def select_epoch(self) -> None:
        """Validate this epoch and, when it beats the record, save it as the best model."""
        record = self.validate()
        best = self.best_selection
        if best is not None and selection_key(record) < selection_key(best):
            print(f"Best epoch stays {best['epoch']} (val accuracy {best['accuracy']:.2f}%, "
                  f"val loss {best['loss']:.4g})")
            return
        reason = explain_choice(record, best)
        self.best_selection = dict(record, reason=reason)
        self.best_result = record["accuracy"]
        print(f"Best epoch so far: {record['epoch']} (val accuracy {record['accuracy']:.2f}%, "
              f"val loss {record['loss']:.4g}): {reason}")
        self.save_model(self.epoch, self.output_dir, val_result=record["accuracy"], model_name=BEST_FILE,
                        extra={"val_loss": record["loss"], "selection": reason})

    def restore_selection(self, folder: str) -> None:
        """Take the record of a resumed run from its model-best.pth.tar (when there is one)."""
        path = osp.join(folder, BEST_FILE)
        if not osp.isfile(path) or not hasattr(self, "best_result"):
            return
        try:
            best = load_checkpoint(path)
        except CheckpointError as e:
            print(f"{e}\nThe best-epoch record is lost; selection starts again from the resumed epoch.")
            return
        if best.get("val_result") is None:
            return
        self.best_result = best["val_result"]
        self.best_selection = {"epoch": best["epoch"], "accuracy": best["val_result"],
                               "loss": best.get("val_loss"), "reason": best.get("selection", "")}
        print(f"Restored the best epoch so far: {best['epoch']} (val accuracy {self.best_result:.1f}%)")

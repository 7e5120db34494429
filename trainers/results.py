"""End-of-run results: accuracy and macro-F1 on the source validation split and per target domain.

`collect_predictions` runs a model over a loader and keeps logits, labels and domain indices; the other
functions turn those into rows, print them as a table and write results.json / results.csv. ResultsTableMixin
makes a trainer's final test that table (per-epoch validation stays the engine's).

With DATASET.ORACLE_HOLDOUT > 0 the last-epoch model is also scored on the held-out target clips ("oracle
holdout") and on the reported target clips ("oracle target"), before the engine deploys its final model. Those
rows are in results.json for sweep.py collect's oracle criterion only: the printed table and results.csv leave
them out, and one line titled ORACLE names them.
"""
import csv
import json
import os
import os.path as osp
import sys
from typing import Callable, Dict, List, NamedTuple, Sequence

import numpy as np
import torch
from sklearn.metrics import f1_score
from tabulate import tabulate
from tqdm import tqdm

from analysis.runs import ORACLE_HOLDOUT, ORACLE_SPLITS, ORACLE_TARGET
from framework import EVALUATION_HEADER
from framework.distributed import gather_shards, is_main_process
from video.loader import drop_skipped


class Predictions(NamedTuple):
    probs: np.ndarray  # (N, K) softmax probabilities
    labels: np.ndarray  # (N,)
    domains: np.ndarray  # (N,) position of each item's domain in its domain list
    skipped: np.ndarray = np.zeros(0, np.int64)  # domain index of each unreadable clip left out (SKIP_CORRUPT)


@torch.no_grad()
def collect_predictions(infer: Callable[[torch.Tensor], torch.Tensor], loader, device: torch.device,
                        desc: str = "") -> Predictions:
    probs, labels, domains, skipped, index = [], [], [], [], []
    # a progress bar for a person at a terminal; nothing in logs and pipes (tqdm writes to stderr)
    quiet = not (sys.stderr.isatty() and is_main_process())
    for batch in tqdm(loader, desc=f"evaluate {desc}".strip(), leave=False, disable=quiet):
        batch, dropped = drop_skipped(batch)  # unreadable clips are left out, never replaced
        skipped.append(dropped)
        if len(batch["label"]) == 0:
            continue
        logits = infer(batch["img"].to(device))
        probs.append(torch.softmax(logits.float(), dim=1).cpu())
        labels.append(torch.as_tensor(batch["label"]))
        domains.append(torch.as_tensor(batch["domain"]))
        if "index" in batch:
            index.append(torch.as_tensor(batch["index"]))
    arrays = [torch.cat(t).numpy() if t else np.zeros(0) for t in (probs, labels, domains)]
    order = None if len(index) != len(probs) else torch.cat(index).numpy() if index else np.zeros(0, np.int64)
    # torchrun: each rank scored its shard; every clip once, in the split's order, on every rank
    arrays = gather_shards(arrays, loader, index=order)
    skipped = gather_shards([torch.cat(skipped).numpy()], loader)[0]
    if not len(arrays[0]):
        raise RuntimeError(f"No clip of the {desc or 'evaluation'} split could be read; see the [skip] lines")
    return Predictions(*arrays, skipped)


def accuracy_and_f1(pred: np.ndarray, labels: np.ndarray) -> Dict[str, float]:
    """Accuracy and macro-F1 (over the classes present in `labels`), both in percent."""
    return {
        "n": int(len(labels)),
        "accuracy": float(100.0 * (pred == labels).mean()),
        "macro_f1": float(100.0 * f1_score(labels, pred, average="macro", labels=np.unique(labels))),
    }


def split_rows(split: str, domain_names: Sequence[str], preds: Predictions) -> List[Dict]:
    """One row per domain of the split, plus a pooled row when there are several domains."""
    pred = preds.probs.argmax(1)
    rows = []
    for index, name in enumerate(domain_names):
        mask, skipped = preds.domains == index, int((preds.skipped == index).sum())
        if mask.any():
            rows.append({"split": split, "domain": name, **accuracy_and_f1(pred[mask], preds.labels[mask]),
                         "skipped": skipped})
        elif skipped:  # every clip of the domain was unreadable: say so rather than drop the row
            rows.append({"split": split, "domain": name, "n": 0, "accuracy": float("nan"),
                         "macro_f1": float("nan"), "skipped": skipped})
    if len(domain_names) > 1:
        rows.append({"split": split, "domain": "pooled", **accuracy_and_f1(pred, preds.labels),
                     "skipped": int(len(preds.skipped))})
    return rows


def print_and_save(rows: List[Dict], output_dir: str, title: str = "Results", basename: str = "results") -> None:
    """Print the rows as a table and write them to BASENAME.json and .csv; oracle rows go to the JSON alone,
    named on one line of their own."""
    oracle = [row for row in rows if row["split"] in ORACLE_SPLITS]
    rows_shown = [row for row in rows if row["split"] not in ORACLE_SPLITS]
    headers = list(rows_shown[0].keys())
    # n counts evaluated clips only; the skipped column (unreadable clips left out) is printed when nonzero.
    shown = [h for h in headers if h != "skipped" or any(row.get(h) for row in rows_shown)]
    table = [[f"{row[h]:.2f}" if isinstance(row[h], float) else row[h] for h in shown] for row in rows_shown]
    print(f"=> {title}")
    print(tabulate(table, headers=shown, tablefmt="github"))
    if oracle:
        print(oracle_line(oracle))
    os.makedirs(output_dir, exist_ok=True)
    with open(osp.join(output_dir, f"{basename}.json"), "w") as f:
        json.dump(rows, f, indent=1)
    with open(osp.join(output_dir, f"{basename}.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=headers)
        writer.writeheader()
        writer.writerows(rows_shown)
    print(f"Results written to {osp.join(output_dir, basename)}.json and .csv")


def overall_row(rows: Sequence[Dict], split: str):
    """The pooled row of a split, or its one domain's row; None when it has neither."""
    own = [row for row in rows if row["split"] == split]
    pooled = [row for row in own if row["domain"] == "pooled"]
    return pooled[0] if pooled else own[0] if len(own) == 1 else None


def oracle_line(rows: Sequence[Dict]) -> str:
    holdout, target = overall_row(rows, ORACLE_HOLDOUT), overall_row(rows, ORACLE_TARGET)
    parts = [f"{name} {row['accuracy']:.2f}% (n {row['n']})" for name, row in
             (("held-out target clips", holdout), ("target test", target)) if row is not None]
    return ("=> ORACLE (target-domain selection, not a DG result; for sweep.py collect's oracle tables only): "
            "the last-epoch model on the " + ", on the ".join(parts))


class ResultsTableMixin:

    def after_train(self):
        """With an oracle holdout, score the last-epoch model (the one in memory now) for the oracle criterion
        before the engine deploys the final model (best_val loads another epoch)."""
        self.oracle_predictions = None
        if getattr(self, "oracle_loader", None) is not None and not self.cfg.TEST.NO_TEST:
            self.set_model_mode("eval")
            holdout = collect_predictions(self.model_inference, self.oracle_loader, self.device,
                                          desc="oracle holdout")
            target = None  # last_step: the final test is the last-epoch model's
            if self.cfg.TEST.FINAL_MODEL == "best_val":
                target = collect_predictions(self.model_inference, self.test_loader, self.device,
                                             desc="test, last epoch")
            self.oracle_predictions = (holdout, target)
        super().after_train()

    def test(self, split=None):
        if (split or self.cfg.TEST.SPLIT) == "val":
            return super().test(split="val")  # per-epoch model selection on the source validation split
        return self.report_results()

    @torch.no_grad()
    def report_results(self) -> float:
        """Evaluate the deployed model on source val and every target domain; return pooled target accuracy."""
        self.set_model_mode("eval")
        cfg = self.cfg
        print(EVALUATION_HEADER.format("test"))
        test = collect_predictions(self.model_inference, self.test_loader, self.device, desc="test")
        self.evaluator.reset()
        self.evaluator.process(torch.from_numpy(test.probs), torch.from_numpy(test.labels))
        summary = self.evaluator.evaluate()  # Dassl's `=> result` block, on all target videos
        for k, v in summary.items():
            self.write_scalar(f"test/{k}", v, self.epoch)
        val = None
        if self.val_loader is not None:
            val = collect_predictions(self.model_inference, self.val_loader, self.device, desc="val")
        if not is_main_process():  # torchrun: every rank has the gathered predictions; rank 0 writes them
            return list(summary.values())[0]
        rows = []
        if val is not None:
            rows += split_rows("source val", cfg.DATASET.SOURCE_DOMAINS, val)
        rows += split_rows("target", cfg.DATASET.TARGET_DOMAINS, test)
        if getattr(self, "oracle_predictions", None) is not None:  # after training (not --eval-only)
            holdout, target = self.oracle_predictions
            rows += split_rows(ORACLE_HOLDOUT, cfg.DATASET.TARGET_DOMAINS, holdout)
            rows += split_rows(ORACLE_TARGET, cfg.DATASET.TARGET_DOMAINS, test if target is None else target)
        print_and_save(rows, cfg.OUTPUT_DIR, title=f"{cfg.TRAINER.NAME} on {cfg.DATASET.NAME}")
        warn_if_one_class(test.probs, test.labels)
        if cfg.TEST.FIGURES:  # OUTPUT_DIR/figures/; a failure to draw is a warning (analysis/figures.py)
            from analysis.figures import draw_run_figures  # imports matplotlib only when drawing
            draw_run_figures(self, test, val)
        return list(summary.values())[0]


def warn_if_one_class(probs, labels) -> None:
    """A model that gives every clip the same class has usually stopped using its input (e.g. dead ReLUs after
    a too-large learning rate); its accuracy is the share of that class, which can look like a result."""
    predicted = set(probs.argmax(axis=1).tolist()) if len(probs) else set()
    if len(predicted) == 1 and len(set(labels.tolist())) > 1:
        print(f"WARNING: the model predicts class {predicted.pop()} for every target clip: it has collapsed to a "
              f"constant output. Lower OPTIM.LR (or clip gradients, OPTIM.CLIP_GRAD_NORM) and train again.")

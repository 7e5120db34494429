"""The Classification evaluator of the built-in engine: accuracy, error, macro-F1, per-class accuracy and the
confusion matrix.

Its `=> result` block keeps the lines `* accuracy: X%`, `* error: X%` and `* macro_f1: X%` exactly as Dassl
prints them, because Dassl's tools/parse_test_res.py reads them (see docs/engines.md, "Log fields").
"""
import os.path as osp
from collections import OrderedDict
from typing import Dict, List

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, f1_score

from .registry import Registry, check_availability

EVALUATOR_REGISTRY = Registry("EVALUATOR")


def build_evaluator(cfg, **kwargs):
    """Instantiate the evaluator registered under cfg.TEST.EVALUATOR."""
    name = cfg.TEST.EVALUATOR
    check_availability(name, EVALUATOR_REGISTRY.registered_names())
    if cfg.VERBOSE:
        print(f"Evaluator: {name}")
    return EVALUATOR_REGISTRY.get(name)(cfg, **kwargs)


class EvaluatorBase:
    """reset() before a pass, process(outputs, labels) per batch, evaluate() -> ordered metrics."""

    def __init__(self, cfg):
        self.cfg = cfg

    def reset(self):
        raise NotImplementedError(f"{type(self).__name__}.reset")

    def process(self, mo, gt):
        raise NotImplementedError(f"{type(self).__name__}.process")

    def evaluate(self):
        raise NotImplementedError(f"{type(self).__name__}.evaluate")


@EVALUATOR_REGISTRY.register()
class Classification(EvaluatorBase):
    """Keeps every (true, predicted) pair of a pass; the metrics are computed from them at the end."""

    def __init__(self, cfg, lab2cname=None, **kwargs):
        super().__init__(cfg)
        if cfg.TEST.PER_CLASS_RESULT and lab2cname is None:
            raise ValueError("TEST.PER_CLASS_RESULT needs the class names (lab2cname)")
        self._lab2cname = lab2cname
        self.reset()

    def reset(self) -> None:
        self._y_true: List[int] = []
        self._y_pred: List[int] = []

    def process(self, mo: torch.Tensor, gt: torch.Tensor) -> None:
        self._y_pred += mo.argmax(dim=1).tolist()
        self._y_true += gt.tolist()

    def _per_class(self, truth: np.ndarray, hits: np.ndarray) -> float:
        """Accuracy of each class present in `truth`, one line each; returns their mean."""
        print("=> accuracy per class")
        accuracies = []
        for label in np.unique(truth):
            of_class = hits[truth == label]
            accuracies.append(100.0 * of_class.mean())
            print(f"* {int(label)} {self._lab2cname[int(label)]}: {accuracies[-1]:.1f}% "
                  f"({int(of_class.sum()):,} of {of_class.size:,} right)")
        mean_acc = float(np.mean(accuracies))
        print(f"* average: {mean_acc:.1f}%")
        return mean_acc

    def evaluate(self) -> "OrderedDict[str, float]":
        truth, pred = np.asarray(self._y_true), np.asarray(self._y_pred)
        hits = truth == pred
        n, correct = truth.size, int(hits.sum())
        accuracy = 100.0 * correct / n if n else 0.0
        f1 = 100.0 * f1_score(truth, pred, average="macro", labels=np.unique(truth)) if n else 0.0
        metrics: Dict[str, float] = OrderedDict(accuracy=accuracy, error_rate=100.0 - accuracy, macro_f1=f1)
        report = ["=> result", f"* total: {n:,}", f"* correct: {correct:,}", f"* accuracy: {accuracy:.1f}%",
                  f"* error: {100.0 - accuracy:.1f}%", f"* macro_f1: {f1:.1f}%"]
        print("\n".join(report))
        if self.cfg.TEST.PER_CLASS_RESULT:
            metrics["perclass_accuracy"] = self._per_class(truth, hits)
        if self.cfg.TEST.COMPUTE_CMAT:
            target = osp.join(self.cfg.OUTPUT_DIR, "cmat.pt")
            torch.save(confusion_matrix(truth, pred, normalize="true"), target)
            print(f"Row-normalised confusion matrix (true class x predicted class) written to {target}")
        return metrics

"""Classification evaluator (accuracy, error, macro-F1, per-class accuracy, confusion matrix)."""
import os.path as osp
from collections import OrderedDict, defaultdict

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, f1_score

from .registry import Registry, check_availability

EVALUATOR_REGISTRY = Registry("EVALUATOR")


def build_evaluator(cfg, **kwargs):
    check_availability(cfg.TEST.EVALUATOR, EVALUATOR_REGISTRY.registered_names())
    if cfg.VERBOSE:
        print(f"Loading evaluator: {cfg.TEST.EVALUATOR}")
    return EVALUATOR_REGISTRY.get(cfg.TEST.EVALUATOR)(cfg, **kwargs)


class EvaluatorBase:

    def __init__(self, cfg):
        self.cfg = cfg

    def reset(self):
        raise NotImplementedError

    def process(self, mo, gt):
        raise NotImplementedError

    def evaluate(self):
        raise NotImplementedError


@EVALUATOR_REGISTRY.register()
class Classification(EvaluatorBase):

    def __init__(self, cfg, lab2cname=None, **kwargs):
        super().__init__(cfg)
        self._lab2cname = lab2cname
        self._per_class_res = None
        self.reset()

    def reset(self) -> None:
        self._correct = 0
        self._total = 0
        self._y_true = []
        self._y_pred = []
        if self.cfg.TEST.PER_CLASS_RESULT:
            assert self._lab2cname is not None, "TEST.PER_CLASS_RESULT needs class names"
            self._per_class_res = defaultdict(list)

    def process(self, mo: torch.Tensor, gt: torch.Tensor) -> None:
        pred = mo.max(1)[1]
        matches = pred.eq(gt).int()
        self._correct += int(matches.sum().item())
        self._total += gt.shape[0]
        self._y_true.extend(gt.tolist())
        self._y_pred.extend(pred.tolist())
        if self._per_class_res is not None:
            for label, hit in zip(gt.tolist(), matches.tolist()):
                self._per_class_res[label].append(hit)

    def evaluate(self) -> "OrderedDict[str, float]":
        results = OrderedDict()
        acc = 100.0 * self._correct / max(self._total, 1)
        macro_f1 = 100.0 * f1_score(self._y_true, self._y_pred, average="macro", labels=np.unique(self._y_true))
        results["accuracy"] = acc
        results["error_rate"] = 100.0 - acc
        results["macro_f1"] = macro_f1
        print("=> result\n"
              f"* total: {self._total:,}\n"
              f"* correct: {self._correct:,}\n"
              f"* accuracy: {acc:.1f}%\n"
              f"* error: {100.0 - acc:.1f}%\n"
              f"* macro_f1: {macro_f1:.1f}%")
        if self._per_class_res is not None:
            print("=> per-class result")
            accs = []
            for label in sorted(self._per_class_res):
                hits = self._per_class_res[label]
                class_acc = 100.0 * sum(hits) / len(hits)
                accs.append(class_acc)
                print(f"* class: {label} ({self._lab2cname[label]})\ttotal: {len(hits):,}\t"
                      f"correct: {sum(hits):,}\tacc: {class_acc:.1f}%")
            results["perclass_accuracy"] = float(np.mean(accs))
            print(f"* average: {results['perclass_accuracy']:.1f}%")
        if self.cfg.TEST.COMPUTE_CMAT:
            cmat = confusion_matrix(self._y_true, self._y_pred, normalize="true")
            save_path = osp.join(self.cfg.OUTPUT_DIR, "cmat.pt")
            torch.save(cmat, save_path)
            print(f"Confusion matrix is saved to {save_path}")
        return results

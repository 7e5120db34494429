"""APN: the Adversarial Pyramid Network trained with video ADA, Algorithm 1 of the paper.

Per minibatch (X, Y), with h the classifier and c the mean squared error between features of one level:

    lines 4-5   R0 = pyramid features of X;  theta <- theta - alpha * grad_theta l(h(R0^III), Y)
    lines 6-12  X^L <- X for each level L;  T_max times:
                    X^L <- X^L + eta * grad_x [ l(h(R^L(X^L)), Y) - gamma * c(R^L(X^L), R0^L) ]
    lines 13-14 for each level L:  theta <- theta - alpha * grad_theta l(h(R^III(X^L)), Y)

The levels L are TRAINER.APN.LEVELS: II+III is the paper's APN + ADA*, III (= last_hidden for APN) is
APN + ADA, and II, global give the ablations of Section 5.3; none trains APN without ADA. Settings that
differ from the official code (update order, model mode during the maximisation) are config keys; see
defaults.py. The maximisation takes gradients with respect to the input only (torch.autograd.grad), so it
computes no weight gradients, and runs the level chains as one batched pass when BATCH_CHAINS is set.
"""
import re
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F

from defaults import CN, config_defaults
from framework import TRAINER_REGISTRY, TrainerX
from trainers.video_mixin import VideoDataMixin, accuracy

LEVEL_CHOICES = ("II", "III", "global", "last_hidden")
SCALE_LEVEL = re.compile(r"scale\d+$")  # TRN / TRN-ATTN: the feature of its k-frame relations (ADA*)


def ada_node(levels: str) -> CN:
    """Settings of the video ADA procedure (Algorithm 1); shared by the APN and VideoADA trainers."""
    node = CN()
    # Pyramid features that generate adversarial examples, joined by '+': II, III, global, last_hidden.
    # II+III = ADA* (the paper's APN + ADA*), last_hidden = ADA (for APN identical to III), none = ERM only.
    node.LEVELS = levels
    node.T_MAX = 5  # maximisation steps per minibatch (paper: 5)
    node.ETA = 1.0  # ascent step size on the input (paper: 1)
    node.GAMMA = 0.01  # weight of the transport cost c (paper: one model per 0.001, 0.01, 0.1, 1)
    # sequential: Algorithm 1 (a theta step on the source batch, then one per adversarial batch: 3 steps);
    # joint: official code (one theta step on source + all adversarial batches concatenated).
    node.UPDATE = "sequential"
    # Model mode during the maximisation. eval (default): no dropout, BN uses running statistics, so the
    # ascent follows one deterministic loss surface and adversarial inputs never touch BN statistics; the
    # reference R0 is then read, in the same mode, from the first ascent pass (where X^II = X^III = X).
    # train: official code (dropout and BN batch statistics active); R0 comes from line 4's forward pass.
    node.MAX_MODE = "eval"
    node.BATCH_CHAINS = True  # run the level chains of one ascent step as one batched forward/backward
    # sum: each clip ascends its own objective, as Eq. 4-5 define it per data point (paper);
    # mean: the gradient of the batch-mean objective, i.e. a step of eta / batch size per clip (official code).
    node.ASCENT_REDUCTION = "sum"
    return node


@config_defaults
def _apn_defaults(cfg) -> None:
    cfg.TRAINER.APN = ada_node("II+III")  # APN + ADA* by default


def parse_levels(spec: str) -> List[str]:
    """'II+III' -> ['II', 'III']; 'none' or '' -> [] (no adversarial examples)."""
    if spec.strip().lower() in ("", "none"):
        return []
    levels = [part.strip() for part in spec.split("+")]
    unknown = [lvl for lvl in levels if lvl not in LEVEL_CHOICES and not SCALE_LEVEL.match(lvl)]
    if unknown or len(set(levels)) != len(levels):
        raise ValueError(f"LEVELS={spec!r}: use 'none' or levels from {LEVEL_CHOICES} or scaleK (TRN's k-frame "
                         "relations) joined by '+', each once")
    return levels


@TRAINER_REGISTRY.register()
class APN(VideoDataMixin, TrainerX):
    config_node = "APN"  # VideoADA reuses this trainer with its own node

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        node = cfg.TRAINER[self.config_node]
        parse_levels(node.LEVELS)
        if node.UPDATE not in ("sequential", "joint"):
            raise ValueError(f"TRAINER.{self.config_node}.UPDATE must be sequential or joint, got {node.UPDATE!r}")
        if node.MAX_MODE not in ("eval", "train"):
            raise ValueError(f"TRAINER.{self.config_node}.MAX_MODE must be eval or train, got {node.MAX_MODE!r}")
        if node.ASCENT_REDUCTION not in ("sum", "mean"):
            raise ValueError(f"TRAINER.{self.config_node}.ASCENT_REDUCTION must be sum or mean, "
                             f"got {node.ASCENT_REDUCTION!r}")
        if node.T_MAX < 1:
            raise ValueError(f"TRAINER.{self.config_node}.T_MAX must be >= 1 (use LEVELS none for no ADA)")

    def __init__(self, cfg):
        super().__init__(cfg)
        node = cfg.TRAINER[self.config_node]
        self.levels = parse_levels(node.LEVELS)
        self.t_max = node.T_MAX
        self.eta = node.ETA
        self.gamma = node.GAMMA
        self.update = node.UPDATE
        self.max_mode = node.MAX_MODE
        self.batch_chains = node.BATCH_CHAINS
        self.ascent_reduction = node.ASCENT_REDUCTION
        missing = [lvl for lvl in self.levels if lvl not in self.model.levels]
        if missing:
            raise ValueError(f"TRAINER.{self.config_node}.LEVELS asks for {missing}, but head "
                             f"{cfg.MODEL.HEAD.NAME!r} exposes only {self.model.levels} (II, III and global need "
                             "MODEL.HEAD.NAME apn_pyramid)")

    def forward_backward(self, batch):
        X, Y, _ = self.parse_batch_train(batch)
        if self.update == "sequential":
            summary = self.sequential_step(X, Y)
        else:
            summary = self.joint_step(X, Y)
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return summary

    # ================================================================== Algorithm 1 (sequential)
    def sequential_step(self, X: torch.Tensor, Y: torch.Tensor) -> Dict[str, float]:
        # ---- lines 4-5: source pyramid features, then a theta step on l(h(R0^III), Y)
        keep_r0 = self.max_mode == "train"  # in eval mode R0 is read during the first ascent pass instead
        with self.autocast():
            feats = self.model.features(X, ["last_hidden"] + (self.levels if keep_r0 else []))
            logits = self.model.classify(feats["last_hidden"])
            loss_src = F.cross_entropy(logits, Y)
        self.model_backward_and_update(loss_src)
        summary = {"loss_src": loss_src.item(), "acc": accuracy(logits, Y)}
        if not self.levels:
            return summary
        r0 = {lvl: feats[lvl].detach().float() for lvl in self.levels} if keep_r0 else None

        # ---- lines 6-12: T_max ascent steps that build one adversarial batch per level
        X_adv = self.maximize(X, Y, r0, summary)

        # ---- lines 13-14: a theta step on each adversarial batch
        for level, X_level in X_adv.items():
            with self.autocast():
                loss_adv = F.cross_entropy(self.model(X_level), Y)
            self.model_backward_and_update(loss_adv)
            summary[f"loss_adv_{level}"] = loss_adv.item()
        return summary

    # ================================================================== official code's order (joint)
    def joint_step(self, X: torch.Tensor, Y: torch.Tensor) -> Dict[str, float]:
        r0 = None
        if self.levels and self.max_mode == "train":
            with torch.no_grad(), self.autocast():
                r0 = {lvl: f.float() for lvl, f in self.model.features(X, self.levels).items()}
        summary = {}
        X_adv = self.maximize(X, Y, r0, summary) if self.levels else {}
        X_all = torch.cat([X, *X_adv.values()])
        Y_all = Y.repeat(1 + len(X_adv))
        with self.autocast():
            logits = self.model(X_all)
            loss = F.cross_entropy(logits, Y_all)
        self.model_backward_and_update(loss)
        summary.update({"loss_all": loss.item(), "acc": accuracy(logits[:len(Y)], Y)})
        return summary

    # ================================================================== the maximisation phase
    def maximize(self, X: torch.Tensor, Y: torch.Tensor, r0: Optional[Dict[str, torch.Tensor]],
                 summary: Dict[str, float]) -> Dict[str, torch.Tensor]:
        """Lines 6-12: X^L <- X^L + eta * grad_x [l(h(R^L), Y) - gamma * c(R^L, R0^L)] for each level L.

        Model mode (MAX_MODE): `eval` (default) switches dropout off and makes every BatchNorm use its running
        statistics (partial BN makes no difference then), so all T_max steps ascend one deterministic
        objective and adversarial clips never update BN statistics; `train` keeps the training mode, as the
        official code does. r0 None means "read R0 from the first pass" (there X^L = X, so that pass computes
        R^L(X) in the same mode). The loss and cost are per clip, summed (or averaged, ASCENT_REDUCTION) over
        the batch; the gradient is taken with respect to the clips only.
        """
        if self.max_mode == "eval":
            self.set_model_mode("eval")
        r0 = dict(r0 or {})
        X_adv = {lvl: X.detach().clone() for lvl in self.levels}  # line 6
        groups = [self.levels] if self.batch_chains else [[lvl] for lvl in self.levels]
        reduce = torch.sum if self.ascent_reduction == "sum" else torch.mean
        last = {}  # the last step's loss and cost per level, for the log (read once: no sync per step)
        for _ in range(self.t_max):  # line 7
            for levels in groups:  # lines 8-9 and 10-11 (batched together when BATCH_CHAINS)
                x = torch.cat([X_adv[lvl] for lvl in levels]).requires_grad_(True)
                with self.autocast():
                    feats = self.model.features(x, levels)
                    objective = 0.0
                    for i, lvl in enumerate(levels):
                        R = feats[lvl][i * len(Y):(i + 1) * len(Y)].float()
                        if lvl not in r0:  # first pass: X^L is still X, so R is R0^L in this mode
                            r0[lvl] = R.detach()
                        loss = F.cross_entropy(self.model.classify(R), Y, reduction="none")  # per clip
                        cost = (R - r0[lvl]).pow(2).flatten(1).mean(1)  # c: mean squared error per clip
                        objective = objective + reduce(loss - self.gamma * cost)
                        last[lvl] = (loss.detach().mean(), cost.detach().mean())
                (grad, ) = torch.autograd.grad(objective, x)
                x = (x + self.eta * grad).detach()
                for i, lvl in enumerate(levels):
                    X_adv[lvl] = x[i * len(Y):(i + 1) * len(Y)]
        self.set_model_mode("train")
        for lvl, (loss, cost) in last.items():
            summary[f"max_loss_{lvl}"], summary[f"cost_{lvl}"] = loss.item(), cost.item()
        return X_adv

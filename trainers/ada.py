"""VideoADA: video adversarial data augmentation, Algorithm 1 of the paper, for any backbone + head.

Per minibatch (X, Y), with h the shared classifier and c the mean squared error between features of one level
(the levels L are TRAINER.<NODE>.LEVELS, names the head exposes in `head.levels`):

    lines 4-5   R0 = features of X;  theta <- theta - alpha * grad_theta l(h(R0^last_hidden), Y)
    lines 6-12  X^L <- X for each level L;  T_max times:
                    X^L <- X^L + eta * grad_x [ l(h(R^L(X^L)), Y) - gamma * c(R^L(X^L), R0^L) ]
    lines 13-14 for each level L:  theta <- theta - alpha * grad_theta l(h(R^L(X^L)), Y)

`last_hidden` (the classifier's input) gives ADA, as in Volpi et al. 2018 but trained on the fly (TSN + ADA is
`--trainer VideoADA MODEL.HEAD.NAME tsn`); a head with several levels gives ADA* (APN, trainers/apn.py, is
this procedure on the relational feature pyramid). A new temporal head joins by exposing `levels` and
`forward_levels`. Where the official APN code (thuml/VideoDG) reads Algorithm 1 differently, a key of the
node gives its reading; docs/paper_vs_official.md lists them.

The maximisation takes gradients with respect to the input only (torch.autograd.grad), so it computes no
weight gradients, and runs the chains of all levels as one batched pass (each clip's objective is its own, so in
MAX_MODE eval this equals one chain after the other). The step keeps its log values on the device and reads them
once per minibatch (one host sync).
"""
import contextlib
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from defaults import CN, LogUniform, Scaled, config_defaults, search_space
from framework import TRAINER_REGISTRY
from trainers.video_trainer import VideoTrainer

Tensors = Dict[str, torch.Tensor]

# The keys that take one of a fixed set of values; the first is the default (the paper's reading).
CHOICES = {
    "UPDATE": ("sequential", "joint"),
    "MAX_MODE": ("eval", "train"),
    "ASCENT_REDUCTION": ("sum", "mean"),
    "ADV_LOSS_LEVEL": ("own", "last_hidden"),
    "R0": ("before_update", "after_update", "every_step"),
    "MAX_SNIPPETS": ("once", "mode"),
}


def ada_node(levels: str) -> CN:
    """Settings of the video ADA procedure (Algorithm 1); the APN and VideoADA trainers each hold one."""
    node = CN()
    # Features that generate adversarial examples, joined by '+', from the head's `levels`: for apn_pyramid
    # II, III, global, last_hidden (= III). II+III = ADA* (the paper's APN + ADA*), last_hidden = ADA,
    # none = ERM only.
    node.LEVELS = levels
    node.T_MAX = 5  # maximisation steps per minibatch (paper: 5)
    node.ETA = 1.0  # ascent step size on the input (paper: 1)
    node.GAMMA = 0.01  # weight of the transport cost c (paper: one model per 0.001, 0.01, 0.1, 1)
    # sequential: Algorithm 1 (a theta step on the source batch, then one per adversarial batch: 3 steps);
    # joint: official code (one theta step on source + all adversarial batches concatenated).
    node.UPDATE = "sequential"
    # Model mode during the maximisation. eval (default): no dropout, BN on running statistics, so the ascent
    # follows one deterministic objective and adversarial inputs never touch BN statistics.
    # train: official code (dropout and BN batch statistics active in the ascent).
    node.MAX_MODE = "eval"
    # sum: each clip ascends its own objective, Eq. 4-5 per data point: a step of eta per clip;
    # mean: the gradient of the batch-mean objective, a step of eta / batch size per clip (official code).
    node.ASCENT_REDUCTION = "sum"
    # Lines 13-14: own: the theta step on X^L reads h(R^L(X^L)) (paper); last_hidden: h(R^III(X^L)) for every
    # level L (official code).
    node.ADV_LOSS_LEVEL = "own"
    # R0, the reference features of the transport cost. before_update (Algorithm 1's order, line 4 before
    # line 5): from X before the line-5 update, in the maximisation's mode (in MAX_MODE eval one more forward
    # pass); after_update: read from the first ascent pass (where X^L = X), i.e. after the line-5 update, at no
    # extra cost; every_step: recomputed from X before every ascent step (official code). With UPDATE joint
    # nothing updates theta before the maximisation, so before_update reads as after_update. docs/paper_vs_official.md
    # measures both orders on the synthetic benchmark.
    node.R0 = "before_update"
    # Random choices of the head during the maximisation (the pyramid's snippets). once: one training-mode draw
    # per minibatch, shared by R0 and all T_max steps, so the ascent reaches every segment and still follows one
    # objective; mode: whatever the model mode gives (MAX_MODE eval: the centred snippets only; train: a new
    # draw per forward pass, official code).
    node.MAX_SNIPPETS = "once"
    return node


def ada_space(node: str) -> dict:
    """The keys of an ADA node a random search draws. GAMMA over the paper's range (it trains one model per
    0.001 ... 1); ETA as a factor of the setting's step, which already depends on ASCENT_REDUCTION. T_MAX is not
    drawn: it sets the passes per minibatch, so drawing it would buy accuracy with compute (TRAIN.BUDGET's
    business), and the paper fixes it at 5."""
    return {f"TRAINER.{node}.GAMMA": LogUniform(0.001, 1.0), f"TRAINER.{node}.ETA": Scaled(0.1, 10.0)}


@config_defaults
def _videoada_defaults(cfg) -> None:
    cfg.TRAINER.VIDEOADA = ada_node("last_hidden")  # ADA for any backbone + head


search_space("TRAINER.NAME=VideoADA", ada_space("VIDEOADA"))


def parse_levels(spec: str, available: Optional[Sequence[str]] = None) -> List[str]:
    """'II+III' -> ['II', 'III']; 'none' or '' -> [] (no adversarial examples).

    `available` (the head's `levels`) checks the names; without it only the syntax is checked."""
    if spec.strip().lower() in ("", "none"):
        return []
    levels = [part.strip() for part in spec.split("+")]
    if "" in levels or len(set(levels)) != len(levels):
        raise ValueError(f"LEVELS={spec!r}: use 'none' or feature levels joined by '+', each once")
    unknown = [lvl for lvl in levels if available is not None and lvl not in available]
    if unknown:
        raise ValueError(f"LEVELS={spec!r}: the head has no level {unknown}; it has {list(available)}")
    return levels


def read_log(log: Tensors) -> Dict[str, float]:
    """Device scalars -> floats with one host sync for the whole minibatch."""
    values = torch.stack([v.detach().float().reshape(()) for v in log.values()]).tolist()
    return dict(zip(log, values))


def batch_accuracy(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(1) == label).float().mean() * 100.0


@TRAINER_REGISTRY.register()
class VideoADA(VideoTrainer):

    @classmethod
    def node_name(cls) -> str:
        """The node of this trainer's settings, TRAINER.<class name>: VIDEOADA; APN (trainers/apn.py), this
        procedure under another name, reads TRAINER.APN."""
        return cls.__name__.upper()

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        node = cfg.TRAINER[self.node_name()]
        parse_levels(node.LEVELS)
        for key, choices in CHOICES.items():
            if node[key] not in choices:
                raise ValueError(f"TRAINER.{self.node_name()}.{key} must be one of {choices}, got {node[key]!r}")
        if node.T_MAX < 1:
            raise ValueError(f"TRAINER.{self.node_name()}.T_MAX must be >= 1 (use LEVELS none for no ADA)")

    def __init__(self, cfg):
        super().__init__(cfg)
        node = cfg.TRAINER[self.node_name()]
        try:
            self.levels = parse_levels(node.LEVELS, self.model.levels)
        except ValueError as e:
            raise ValueError(f"TRAINER.{self.node_name()}.{e} (head {cfg.MODEL.HEAD.NAME!r}; II, III and global "
                             "need MODEL.HEAD.NAME apn_pyramid)") from None
        self.t_max = node.T_MAX
        self.eta = node.ETA
        self.gamma = node.GAMMA
        self.update = node.UPDATE
        self.max_mode = node.MAX_MODE
        self.ascent_reduction = node.ASCENT_REDUCTION
        self.adv_loss_level = node.ADV_LOSS_LEVEL
        self.r0_mode = node.R0
        self.max_snippets = node.MAX_SNIPPETS

    def forward_backward(self, batch):
        X, Y, _ = self.parse_batch_train(batch)
        log = self.sequential_step(X, Y) if self.update == "sequential" else self.joint_step(X, Y)
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        values = read_log(log)
        self.check_finite_losses({k: v for k, v in values.items() if k.startswith("loss")})
        return values

    def detect_anomaly(self, loss):
        """Deferred to forward_backward, which checks every loss of the minibatch after its one host sync
        (Dassl's check here would sync once per backward pass)."""

    def non_finite_hints(self):
        node = f"TRAINER.{self.node_name()}"
        return [f"{node}.ETA={self.eta} (ascent step on the input)",
                f"{node}.GAMMA={self.gamma} (weight of the transport cost)"] + super().non_finite_hints()

    # ================================================================== helpers
    def theta_level(self, level: str) -> str:
        """The features that the theta step on X^level classifies (line 13-14)."""
        return level if self.adv_loss_level == "own" else "last_hidden"

    def snippet_draw(self, batch_size: int, device: torch.device) -> Optional[Tensors]:
        """MAX_SNIPPETS once: one training-mode draw of the head's random choices for this minibatch."""
        head = self.model.head
        if not self.levels or self.max_snippets != "once" or not hasattr(head, "draw_snippets"):
            return None
        return head.draw_snippets(batch_size, device)

    def fixed(self, draw: Optional[Tensors]):
        return self.model.head.fixed_snippets(draw) if draw is not None else contextlib.nullcontext()

    def reference(self, X: torch.Tensor, draw: Optional[Tensors]) -> Tensors:
        """R0 of every level from X, without gradients, in the maximisation's model mode."""
        if self.max_mode == "eval":
            self.set_model_mode("eval")
        with torch.no_grad(), self.autocast(), self.fixed(draw):
            r0 = {lvl: f.float() for lvl, f in self.model.features(X, self.levels).items()}
        self.set_model_mode("train")
        return r0

    # ================================================================== Algorithm 1 (sequential)
    def sequential_step(self, X: torch.Tensor, Y: torch.Tensor) -> Tensors:
        draw = self.snippet_draw(len(Y), X.device)
        r0 = None
        before = self.levels and self.r0_mode == "before_update"
        if before and self.max_mode == "eval":
            r0 = self.reference(X, draw)  # line 4 in the maximisation's mode, before the line-5 update
        # ---- lines 4-5: a theta step on l(h(R0^last_hidden), Y); in MAX_MODE train this pass also gives R0
        keep_r0 = before and self.max_mode == "train"
        with self.autocast(), (self.fixed(draw) if keep_r0 else contextlib.nullcontext()):
            feats = self.model.features(X, ["last_hidden"] + (self.levels if keep_r0 else []))
            logits = self.model.classify(feats["last_hidden"])
            loss_src = F.cross_entropy(logits, Y)
        self.model_backward_and_update(loss_src)
        log = {"loss_src": loss_src.detach(), "acc": batch_accuracy(logits.detach(), Y)}
        if not self.levels:
            return log
        if keep_r0:
            r0 = {lvl: feats[lvl].detach().float() for lvl in self.levels}

        # ---- lines 6-12: T_max ascent steps that build one adversarial batch per level
        X_adv, max_log = self.maximize(X, Y, r0, draw)
        log.update(max_log)

        # ---- lines 13-14: a theta step on each adversarial batch
        for level, X_level in X_adv.items():
            lvl = self.theta_level(level)
            with self.autocast():
                loss_adv = F.cross_entropy(self.model.classify(self.model.features(X_level, [lvl])[lvl]), Y)
            self.model_backward_and_update(loss_adv)
            log[f"loss_adv_{level}"] = loss_adv.detach()
        return log

    # ================================================================== official code's order (joint)
    def joint_step(self, X: torch.Tensor, Y: torch.Tensor) -> Tensors:
        B = len(Y)
        X_adv, log = self.maximize(X, Y, None, self.snippet_draw(B, X.device)) if self.levels else ({}, {})
        X_all = torch.cat([X, *X_adv.values()])
        read = ["last_hidden"] + [self.theta_level(level) for level in X_adv]  # per chunk of B clips
        with self.autocast():
            feats = self.model.features(X_all, sorted(set(read)))
            logits = torch.cat([self.model.classify(feats[lvl][i * B:(i + 1) * B]) for i, lvl in enumerate(read)])
            loss = F.cross_entropy(logits, Y.repeat(len(read)))
        self.model_backward_and_update(loss)
        log.update({"loss_all": loss.detach(), "acc": batch_accuracy(logits[:B].detach(), Y)})
        return log

    # ================================================================== the maximisation phase
    def maximize(self, X: torch.Tensor, Y: torch.Tensor, r0: Optional[Tensors] = None,
                 draw: Optional[Tensors] = None) -> Tuple[Tensors, Tensors]:
        """Lines 6-12: X^L <- X^L + eta * grad_x [l(h(R^L), Y) - gamma * c(R^L, R0^L)] for each level L.

        Returns the adversarial batches {L: X^L} and the log {max_loss_L, cost_L: the last step's batch means}.
        r0 None means "read R0 from the first pass" (there X^L = X) unless R0 is every_step. `draw` (from
        snippet_draw) fixes the head's random choices for all passes. The loss and cost are per clip, summed (or
        averaged, ASCENT_REDUCTION) over the batch; the gradient is taken with respect to the clips only.
        """
        r0 = dict(r0 or {})
        X_adv = {lvl: X.detach().clone() for lvl in self.levels}  # line 6
        reduce = torch.sum if self.ascent_reduction == "sum" else torch.mean
        log = {}
        for _ in range(self.t_max):  # line 7
            if self.r0_mode == "every_step":
                r0 = self.reference(X, draw)
            if self.max_mode == "eval":
                self.set_model_mode("eval")
            # lines 8-9 and 10-11, every level's chain in one batched pass: chunk i of x is X^(levels[i])
            x = torch.cat([X_adv[lvl] for lvl in self.levels]).requires_grad_(True)
            with self.autocast(), self.fixed(draw):
                feats = self.model.features(x, self.levels)
                objective = 0.0
                for i, lvl in enumerate(self.levels):
                    R = feats[lvl][i * len(Y):(i + 1) * len(Y)].float()
                    if lvl not in r0:  # first pass: X^L is still X, so R is R0^L in this mode
                        r0[lvl] = R.detach()
                    loss = F.cross_entropy(self.model.classify(R), Y, reduction="none")  # per clip
                    cost = (R - r0[lvl]).pow(2).flatten(1).mean(1)  # c: mean squared error per clip
                    objective = objective + reduce(loss - self.gamma * cost)
                    log[f"max_loss_{lvl}"], log[f"cost_{lvl}"] = loss.detach().mean(), cost.detach().mean()
            (grad, ) = torch.autograd.grad(objective, x)
            x = (x + self.eta * grad).detach()
            for i, lvl in enumerate(self.levels):
                X_adv[lvl] = x[i * len(Y):(i + 1) * len(Y)]
            self.set_model_mode("train")
        return X_adv, log

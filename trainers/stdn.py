"""STDN (Lin et al., "Diversifying Spatial-Temporal Perception for Video Domain Generalization", NeurIPS 2023):
the `stdn` head (models/heads/stdn.py) trained with its diversity losses; one source domain is enough.

Per minibatch (X, Y), with the head's parts: the scale features v_k (k = M..2, S = M-1 scales), the output
sum_k a_k, and each temporal scale's group assignment A (positions x K groups, per frame):

    L = CE(h(sum_k a_k), Y)                                       classification (the sum of the scales' scores)
      + LAMBDA_ENTROPY_MIN      * mean_p H(A_p)                   each position is assigned to one group,
      - LAMBDA_ENTROPY_MEAN_MAX * H(mean_p A_p)                   and every frame uses all K groups
      + LAMBDA_CROSS_RELATION   * CE(r(v_k), S * Y + s(k))         the scales stay different: r classifies
                                                                  each v_k into (class, scale)

H is the entropy over the K groups, averaged over frames and temporal scales. r (the cross-relation classifier)
is BOTTLENECK -> RELATION_DIM -> ReLU -> K_classes * S, trained with the model (its own optimiser, cfg.OPTIM) and
not used at test time. One theta step per minibatch, one forward and one backward pass: the budget of ERM.
"""
from typing import List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from defaults import CN, Scaled, config_defaults, search_space
from framework import TRAINER_REGISTRY
from trainers.video_trainer import VideoTrainer, accuracy

# What the entropy terms read; the first is the default.
# assignment: A_p, each position's distribution over the K groups (softmax over groups).
# normalised: official code: A divided by its column sums over positions (detached), as its group features
#   use it; then mean_p of it is 1/P for every group, so the second term's value is constant and only its
#   gradient through the detached sums remains.
ENTROPY_READINGS = ("assignment", "normalised")


@config_defaults
def _stdn_trainer_defaults(cfg) -> None:
    cfg.TRAINER.STDN = CN()  # "official" = KunyuLin/STDN, scripts/train_ucfhmdb.sh
    cfg.TRAINER.STDN.LAMBDA_ENTROPY_MIN = 0.15  # weight of mean_p H(A_p) (official script: 0.15)
    cfg.TRAINER.STDN.LAMBDA_ENTROPY_MEAN_MAX = 0.15  # weight of -H(mean_p A_p) (official script: 0.15)
    cfg.TRAINER.STDN.LAMBDA_CROSS_RELATION = 0.5  # weight of the cross-relation loss (official script: 0.5)
    cfg.TRAINER.STDN.RELATION_DIM = 128  # hidden width of the cross-relation classifier r (official: 128)
    cfg.TRAINER.STDN.ENTROPY_OF = "assignment"  # see ENTROPY_READINGS; official: normalised


# The weights of STDN's three extra losses, 0.1x to 10x the official script's; the widths stay (capacity).
search_space("TRAINER.NAME=STDN", {f"TRAINER.STDN.{key}": Scaled(0.1, 10.0) for key in
                                   ("LAMBDA_ENTROPY_MIN", "LAMBDA_ENTROPY_MEAN_MAX", "LAMBDA_CROSS_RELATION")})


def entropy(p: torch.Tensor, dim: int) -> torch.Tensor:
    return -(p * torch.log(p + 1e-5)).sum(dim=dim)


def grouping_entropies(assignments: List[torch.Tensor],
                       reading: str = "assignment") -> Tuple[torch.Tensor, torch.Tensor]:
    """(mean_p H(A_p), H(mean_p A_p)) over the K groups, each averaged over frames and temporal scales.
    `assignments`: per temporal scale, (frames, positions, K)."""
    per_position, of_mean = [], []
    for A in assignments:
        if reading == "normalised":
            A = A / (A.sum(dim=1, keepdim=True).detach() + 1e-6)
        per_position.append(entropy(A, dim=2).mean())
        of_mean.append(entropy(A.mean(dim=1), dim=1).mean())
    return torch.stack(per_position).mean(), torch.stack(of_mean).mean()


def cross_relation_loss(scores: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """CE of r's scores (B, S, K_classes * S) on every scale feature; scale s of a clip of class y is y * S + s."""
    B, S = scores.shape[:2]
    target = label[:, None] * S + torch.arange(S, device=label.device)
    return F.cross_entropy(scores.flatten(0, 1), target.flatten())


class RelationClassifier(nn.Module):
    """r: each scale feature (B, S, D) -> scores over (class, scale) pairs (B, S, K_classes * S)."""

    def __init__(self, in_features: int, hidden: int, num_outputs: int):
        super().__init__()
        to_hidden, to_scores = nn.Linear(in_features, hidden), nn.Linear(hidden, num_outputs)
        self.mlp = nn.Sequential(to_hidden, nn.ReLU(), to_scores)  # keys mlp.0 / mlp.2, as saved before

    def forward(self, scale_features: torch.Tensor) -> torch.Tensor:
        return self.mlp(scale_features)


@TRAINER_REGISTRY.register()
class STDN(VideoTrainer):

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        if cfg.MODEL.HEAD.NAME != "stdn":
            raise ValueError(f"The STDN trainer trains the stdn head; MODEL.HEAD.NAME is {cfg.MODEL.HEAD.NAME!r}. Use "
                             "configs/trainers/STDN/*.yaml (or MODEL.HEAD.NAME stdn)")
        if cfg.TRAINER.STDN.ENTROPY_OF not in ENTROPY_READINGS:
            raise ValueError(f"TRAINER.STDN.ENTROPY_OF must be one of {ENTROPY_READINGS}, "
                             f"got {cfg.TRAINER.STDN.ENTROPY_OF!r}")

    def build_model(self):
        super().build_model()
        head = self.model.head
        print("Building r (cross-relation classifier)")
        r = RelationClassifier(head.out_features, self.cfg.TRAINER.STDN.RELATION_DIM,
                               self.num_classes * len(head.scales))
        self.relation_classifier = self.register_video_model("relation_classifier", r)

    def forward_backward(self, batch):
        opts = self.cfg.TRAINER.STDN
        X, Y, _ = self.parse_batch_train(batch)
        with self.autocast():
            parts = self.model.head.forward_parts(self.model.frame_features(X))
            logits = self.model.classify(parts.output)
            loss_ce = F.cross_entropy(logits, Y)
            entropy_min, entropy_mean = grouping_entropies(parts.assignments, opts.ENTROPY_OF)
            loss_relation = cross_relation_loss(self.relation_classifier(parts.scale_features), Y)
            loss = (loss_ce + opts.LAMBDA_ENTROPY_MIN * entropy_min - opts.LAMBDA_ENTROPY_MEAN_MAX * entropy_mean
                    + opts.LAMBDA_CROSS_RELATION * loss_relation)
        self.model_backward_and_update(loss)
        return self.end_of_step(loss=loss, loss_ce=loss_ce, entropy=entropy_min, mean_entropy=entropy_mean,
                                loss_relation=loss_relation, acc=accuracy(logits, Y))

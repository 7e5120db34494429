"""The multi-scale Temporal Relation Network of Zhou et al. 2018 (TRN), registered as the Dassl head `trn`.

A k-frame relation is k frame features taken in temporal order and concatenated. For every scale
k = M, M-1, ..., 2 the head scores a few such relations with

    g_k: ReLU -> Linear(k * D, bottleneck) -> ReLU        (one vector per relation)
    h_k: Linear(bottleneck, bottleneck)                    (on the sum over the scale's relations)

and the head's output (the classifier's input, ADA's `last_hidden`) is the sum of the M - 1 scale features.
In TRN the last layer of each scale maps straight to the classes; here VideoNet's shared classifier h does
that, so h_k stops at the bottleneck and each scale feature (`scale2` ... `scaleM`) can be classified on its
own: those are the multilayer features of TRN + ADA*.

Relations per scale: all k-subsets of the M frames, in order; scale M has one. Training draws
RELATIONS_PER_SCALE of them at random per minibatch (TRN: 3); evaluation takes the same number spread
evenly over the ordered list, so it is deterministic.
"""
import itertools
from typing import Dict, List

import torch
import torch.nn as nn

from defaults import CN, config_defaults
from framework import HEAD_REGISTRY
from models.video_net import reads_config


@config_defaults
def _trn_defaults(cfg) -> None:
    cfg.MODEL.TRN = CN()  # the multi-scale temporal relation head (trn)
    cfg.MODEL.TRN.BOTTLENECK = 256  # width of g and h (TRN: 256)
    cfg.MODEL.TRN.RELATIONS_PER_SCALE = 3  # relations scored per scale (TRN: 3)


def scale_level(k: int) -> str:
    """The feature-level name of scale k (k-frame relations)."""
    return f"scale{k}"


class RelationSampler(nn.Module):
    """The ordered k-frame relations of M frames for k = M..2, and which of them a forward pass uses.

    `ordered` takes every ordering of k items instead (k-permutations: STDN's relations among the groups of a
    frame, models/heads/stdn.py); `random_in_eval` draws at random in eval mode too (STDN's official code)."""

    def __init__(self, num_segments: int, relations_per_scale: int, ordered: bool = False,
                 random_in_eval: bool = False):
        super().__init__()
        if num_segments < 2:
            raise ValueError(f"Temporal relations need M >= 2 segments (INPUT.NUM_SEGMENTS); got {num_segments}")
        if relations_per_scale < 1:
            raise ValueError(f"RELATIONS_PER_SCALE must be >= 1, got {relations_per_scale}")
        self.scales = list(range(num_segments, 1, -1))
        self.relations_per_scale = relations_per_scale
        self.random_in_eval = random_in_eval
        tuples = itertools.permutations if ordered else itertools.combinations
        for k in self.scales:
            frames = torch.tensor(list(tuples(range(num_segments), k)))
            self.register_buffer(f"relations{k}", frames, persistent=False)

    def chosen(self, k: int) -> torch.Tensor:
        """(n, k) frame indices of the relations used at scale k in this pass."""
        relations = getattr(self, f"relations{k}")
        total = relations.shape[0]
        n = min(self.relations_per_scale, total)
        if self.training or self.random_in_eval:
            pick = torch.randperm(total, device=relations.device)[:n].sort().values
        else:
            pick = torch.linspace(0, total - 1, n, device=relations.device).round().long()
        return relations[pick]


def gather_relations(frame_features: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
    """(B, M, D) features and (n, k) frame indices -> (B, n, k * D) concatenated relations."""
    B, _, D = frame_features.shape
    n, k = relations.shape
    return frame_features[:, relations.flatten()].view(B, n, k * D)


class MultiScaleTRN(nn.Module):

    def __init__(self, in_features: int, num_segments: int, *, bottleneck: int = 256, relations_per_scale: int = 3):
        super().__init__()
        self.num_segments = num_segments
        self.sampler = RelationSampler(num_segments, relations_per_scale)
        self.scales = self.sampler.scales
        self.g = nn.ModuleList(
            nn.Sequential(nn.ReLU(), nn.Linear(k * in_features, bottleneck), nn.ReLU()) for k in self.scales)
        self.h = nn.ModuleList(nn.Linear(bottleneck, bottleneck) for _ in self.scales)
        self.out_features = bottleneck

    def relation_features(self, frame_features: torch.Tensor, i: int) -> torch.Tensor:
        """g_k of the chosen relations of the i-th scale: (B, n, bottleneck)."""
        if frame_features.shape[1] != self.num_segments:
            raise ValueError(f"Expected {self.num_segments} segments, got input of shape "
                             f"{tuple(frame_features.shape)}")
        return self.g[i](gather_relations(frame_features, self.sampler.chosen(self.scales[i])))

    def scale_features(self, frame_features: torch.Tensor) -> torch.Tensor:
        """(B, number of scales, bottleneck): h_k of the summed g_k of each scale."""
        return torch.stack([self.h[i](self.relation_features(frame_features, i).sum(dim=1))
                            for i in range(len(self.scales))], dim=1)

    def forward_levels(self, frame_features: torch.Tensor) -> Dict[str, torch.Tensor]:
        per_scale = self.scale_features(frame_features)
        levels = {scale_level(k): per_scale[:, i] for i, k in enumerate(self.scales)}
        levels["last_hidden"] = per_scale.sum(dim=1)
        return levels

    def forward(self, frame_features: torch.Tensor) -> torch.Tensor:
        return self.scale_features(frame_features).sum(dim=1)

    @property
    def levels(self) -> List[str]:
        return [scale_level(k) for k in self.scales] + ["last_hidden"]


@HEAD_REGISTRY.register()
@reads_config("TRN")
def trn(*, in_features: int, num_segments: int, **options) -> MultiScaleTRN:
    """`options`: the keys of MODEL.TRN in lower case."""
    return MultiScaleTRN(in_features, num_segments, **options)

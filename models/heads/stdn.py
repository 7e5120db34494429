"""STDN, the Spatial-Temporal Diversification Network of Lin et al. (NeurIPS 2023), as the Dassl head `stdn`.

STDN looks for many kinds of cues in a clip, so that a target domain that lacks some of them still shows others.
It reads every frame's spatial map z, (B, M, C, h, w) (the frame encoder's last map: ResNet-50 layer4, 7x7 at
224 px), with P = h*w positions z_p, and for every temporal scale k = M, M-1, ..., 2 has its own

    spatial grouping    centres  c_j = sum_p softmax_p(W_c(z))_pj z_p      (W_c: conv3x3, ReLU, conv3x3 to K maps)
       (K groups)       assignment A_pj = softmax_j(-||z_p - c_j|| / TAU)
                        groups   g_j = sum_p A_pj z_p / sum_p A_pj           (K, C) per frame
    spatial relations   per scale i = K..2: i ordered groups concatenated, Linear(i*C, LOCAL_DIM), averaged over
                        GROUP_RELATIONS sampled i-tuples; the K-1 scales concatenated with a global feature, a
                        linear map of the whole map (GLOBAL_DIM): the frame feature f, (B, M, F)
    temporal relations  TRN's k-frame relations of f: ReLU, Dropout, Linear(k*F, BOTTLENECK), ReLU, summed over
                        TEMPORAL_RELATIONS sampled ones: the scale feature v_k
    scale gate          a_k = v_k * sigmoid(W2 ReLU(W1 v_k))

One grouping per temporal scale gives groups at several space-time scales. The head's output (the classifier's
input) is sum_k a_k: VideoNet's shared classifier h on it is the sum of the per-scale scores, STDN's prediction
(with h's bias counted once). Feature levels for video ADA: `scale{k}` (a_k) and `last_hidden`.

STDN's losses (trainers/stdn.py) read `forward_parts`: the v_k (the cross-relation loss tells the scales apart)
and each scale's assignment A (the entropy terms: each position takes one group, each frame uses all K).
Relations are drawn at random in training and spread evenly over the ordered list in evaluation (as `trn`).
"""
from typing import Dict, List, NamedTuple, Tuple

import torch
import torch.nn as nn

from defaults import CN, Uniform, config_defaults, search_space
from framework import HEAD_REGISTRY
from models.heads.trn import RelationSampler, gather_relations, scale_level
from models.video_net import reads_config, reads_feature_maps


@config_defaults
def _stdn_defaults(cfg) -> None:
    cfg.MODEL.STDN = CN()  # the STDN head (stdn); "official" = KunyuLin/STDN and its scripts/train_ucfhmdb.sh
    cfg.MODEL.STDN.GROUPS = 4  # K, spatial groups per frame (official script: 4)
    cfg.MODEL.STDN.TAU = 0.5  # temperature of the group assignment (official: 0.5)
    cfg.MODEL.STDN.CENTRE_DIM = 256  # hidden channels of W_c, the convolutions that place the centres (official: 256)
    cfg.MODEL.STDN.LOCAL_DIM = 192  # width of each spatial-relation scale (official: 192)
    cfg.MODEL.STDN.GLOBAL_DIM = 192  # width of the global frame feature (official: 192)
    # The global feature is a linear map of the whole map, pooled to GLOBAL_GRID x GLOBAL_GRID first (a no-op
    # where the map has that size). Official: a 7x7 convolution without padding on ResNet-50's 7x7 map.
    cfg.MODEL.STDN.GLOBAL_GRID = 7
    cfg.MODEL.STDN.GROUP_RELATIONS = 12  # ordered group tuples sampled per spatial scale (official: 12)
    cfg.MODEL.STDN.TEMPORAL_RELATIONS = 3  # k-frame relations sampled per temporal scale (official: 3, as TRN)
    cfg.MODEL.STDN.BOTTLENECK = 256  # width of a scale feature v_k, the classifier's input (official: 256)
    cfg.MODEL.STDN.GATE_DIM = 64  # hidden width of the scale gate (official: 64)
    cfg.MODEL.STDN.DROPOUT = 0.3  # dropout before each temporal relation's Linear (official script: 0.3)
    cfg.MODEL.STDN.DETACH_GROUP_MASS = False  # official: True (the normaliser sum_p A_pj of g_j carries no gradient)
    cfg.MODEL.STDN.RANDOM_EVAL_RELATIONS = False  # official: True (relations drawn at random at test time too)


search_space("MODEL.HEAD.NAME=stdn", {"MODEL.STDN.DROPOUT": Uniform(0.0, 0.5)})


class SpatialGrouping(nn.Module):
    """Frame maps (N, C, h, w) -> K group features (N, K, C) and the soft assignment A (N, h*w, K)."""

    def __init__(self, channels: int, groups: int, centre_dim: int, tau: float, detach_mass: bool):
        super().__init__()
        if tau <= 0:
            raise ValueError(f"MODEL.STDN.TAU must be > 0, got {tau}")
        self.place_centres = nn.Sequential(nn.Conv2d(channels, centre_dim, 3, padding=1), nn.ReLU(),
                                           nn.Conv2d(centre_dim, groups, 3, padding=1))
        self.tau = tau
        self.detach_mass = detach_mass

    def forward(self, maps: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        z = maps.flatten(2).transpose(1, 2)  # (N, P, C): one feature per position
        where = self.place_centres(maps).flatten(2).softmax(dim=2)  # (N, K, P): each centre's weights over positions
        centres = where @ z  # (N, K, C)
        A = (-torch.cdist(z, centres) / self.tau).softmax(dim=2)  # (N, P, K)
        mass = A.sum(dim=1, keepdim=True)  # (N, 1, K): how many positions each group holds
        if self.detach_mass:
            mass = mass.detach()
        groups = (A / (mass + 1e-6)).transpose(1, 2) @ z  # (N, K, C): assignment-weighted means
        return groups, A


class GroupRelations(nn.Module):
    """K group features (N, K, C) -> (N, (K-1) * out_dim): at every scale i = K..2, Linear(i*C, out_dim) of i
    ordered groups, averaged over the sampled i-tuples; the scales concatenated."""

    def __init__(self, channels: int, groups: int, out_dim: int, relations_per_scale: int, random_in_eval: bool):
        super().__init__()
        self.sampler = RelationSampler(groups, relations_per_scale, ordered=True, random_in_eval=random_in_eval)
        self.fuse = nn.ModuleList(nn.Linear(i * channels, out_dim) for i in self.sampler.scales)
        self.out_features = len(self.sampler.scales) * out_dim

    def forward(self, groups: torch.Tensor) -> torch.Tensor:
        return torch.cat([fuse(gather_relations(groups, self.sampler.chosen(i))).mean(dim=1)
                          for i, fuse in zip(self.sampler.scales, self.fuse)], dim=1)


class SpatialView(nn.Module):
    """What one temporal scale sees in a frame: its own grouping, group relations and global feature.
    Frame maps (N, C, h, w) -> frame features (N, F) and the assignment A (N, h*w, K)."""

    def __init__(self, channels: int, *, groups: int, centre_dim: int, tau: float, detach_mass: bool,
                 local_dim: int, global_dim: int, global_grid: int, group_relations: int, random_in_eval: bool):
        super().__init__()
        self.grouping = SpatialGrouping(channels, groups, centre_dim, tau, detach_mass)
        self.relations = GroupRelations(channels, groups, local_dim, group_relations, random_in_eval)
        # a convolution whose kernel covers the whole (pooled) map: a linear map of every position's feature
        self.global_feature = nn.Sequential(nn.AdaptiveAvgPool2d(global_grid),
                                            nn.Conv2d(channels, global_dim, global_grid))
        self.out_features = self.relations.out_features + global_dim

    def forward(self, maps: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        groups, A = self.grouping(maps)
        return torch.cat([self.relations(groups), self.global_feature(maps).flatten(1)], dim=1), A


class ScaleGate(nn.Module):
    """a = v * sigmoid(W2 ReLU(W1 v)), without biases: each scale re-weights its own feature channels."""

    def __init__(self, features: int, hidden: int):
        super().__init__()
        self.w1 = nn.Linear(features, hidden, bias=False)
        self.w2 = nn.Linear(hidden, features, bias=False)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return v * torch.sigmoid(self.w2(torch.relu(self.w1(v))))


class STDNParts(NamedTuple):
    scale_features: torch.Tensor  # (B, S, BOTTLENECK): v_k for k = M..2, before the gate
    gated: torch.Tensor  # (B, S, BOTTLENECK): a_k
    assignments: List[torch.Tensor]  # per temporal scale, (B*M, h*w, K): A of every frame

    @property
    def output(self) -> torch.Tensor:
        """The classifier's input: sum_k a_k."""
        return self.gated.sum(dim=1)


class STDNHead(nn.Module):

    def __init__(self, in_features: int, num_segments: int, *, groups: int = 4, tau: float = 0.5,
                 centre_dim: int = 256, local_dim: int = 192, global_dim: int = 192, global_grid: int = 7,
                 group_relations: int = 12, temporal_relations: int = 3, bottleneck: int = 256, gate_dim: int = 64,
                 dropout: float = 0.3, detach_group_mass: bool = False, random_eval_relations: bool = False):
        super().__init__()
        if groups < 2:
            raise ValueError(f"MODEL.STDN.GROUPS must be >= 2 (STDN relates groups to each other); got {groups}")
        self.num_segments = num_segments
        self.sampler = RelationSampler(num_segments, temporal_relations, random_in_eval=random_eval_relations)
        self.scales = self.sampler.scales  # k = M..2
        self.spatial = nn.ModuleList(
            SpatialView(in_features, groups=groups, centre_dim=centre_dim, tau=tau, detach_mass=detach_group_mass,
                        local_dim=local_dim, global_dim=global_dim, global_grid=global_grid,
                        group_relations=group_relations, random_in_eval=random_eval_relations)
            for _ in self.scales)
        frame_dim = self.spatial[0].out_features
        self.temporal = nn.ModuleList(
            nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(k * frame_dim, bottleneck), nn.ReLU())
            for k in self.scales)
        self.gates = nn.ModuleList(ScaleGate(bottleneck, gate_dim) for _ in self.scales)
        self.out_features = bottleneck

    def scale_feature(self, i: int, frame_features: torch.Tensor) -> torch.Tensor:
        """v_k of the i-th temporal scale from its frame features (B, M, F): (B, BOTTLENECK)."""
        k = self.scales[i]
        relations = self.temporal[i](gather_relations(frame_features, self.sampler.chosen(k)))  # (B, n, BOTTLENECK)
        # The full scale has one relation; it counts as many as a sampled scale's (official code), so every v_k is
        # a sum of TEMPORAL_RELATIONS relation features.
        weight = self.sampler.relations_per_scale if k == self.num_segments else 1
        return relations.sum(dim=1) * weight

    def forward_parts(self, maps: torch.Tensor) -> STDNParts:
        if maps.dim() != 5 or maps.shape[1] != self.num_segments:
            raise ValueError(f"The stdn head takes frame maps (B, M={self.num_segments}, C, h, w); got "
                             f"{tuple(maps.shape)}")
        B, M = maps.shape[:2]
        frames = maps.flatten(0, 1)
        v, assignments = [], []
        for i, view in enumerate(self.spatial):
            frame_features, A = view(frames)
            v.append(self.scale_feature(i, frame_features.view(B, M, -1)))
            assignments.append(A)
        v = torch.stack(v, dim=1)
        gated = torch.stack([gate(v[:, i]) for i, gate in enumerate(self.gates)], dim=1)
        return STDNParts(v, gated, assignments)

    def forward_levels(self, maps: torch.Tensor) -> Dict[str, torch.Tensor]:
        parts = self.forward_parts(maps)
        levels = {scale_level(k): parts.gated[:, i] for i, k in enumerate(self.scales)}
        levels["last_hidden"] = parts.output
        return levels

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return self.forward_parts(maps).output

    @property
    def levels(self) -> List[str]:
        return [scale_level(k) for k in self.scales] + ["last_hidden"]


@HEAD_REGISTRY.register()
@reads_config("STDN")
@reads_feature_maps
def stdn(*, in_features: int, num_segments: int, **options) -> STDNHead:
    """`options`: the keys of MODEL.STDN in lower case."""
    return STDNHead(in_features, num_segments, **options)

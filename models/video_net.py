"""VideoNet: frame encoder (backbone) -> temporal head -> classifier h; Dassl's SimpleNet for video clips.

It takes SimpleNet's constructor arguments `(cfg, model_cfg, num_classes)`, so a trainer builds it where a
Dassl trainer builds SimpleNet. Unlike SimpleNet it always builds the head (MODEL.HEAD.NAME), because a clip's
M frame features need a temporal model before the classifier.

Besides `forward(x) -> logits (B, K)` it exposes the head's named feature levels, which is what video ADA
needs: `features(x, levels)` returns {level: (B, F)} and `classify(feature)` applies the shared h.
"""
from typing import Dict, List, Sequence

import torch
import torch.nn as nn

from framework import build_backbone, build_head


def backbone_kwargs(cfg) -> dict:
    b = cfg.MODEL.BACKBONE
    return dict(pretrained=b.PRETRAINED, feature_dim=b.FEATURE_DIM, dropout=b.DROPOUT,
                dropout_before_fc=b.DROPOUT_BEFORE_FC, partial_bn=b.PARTIAL_BN, weights=b.WEIGHTS)


def head_kwargs(cfg, in_features: int) -> dict:
    """Every head gets the width and M; the pyramid settings (MODEL.PYRAMID) as lower-case keywords."""
    kwargs = {key.lower(): value for key, value in cfg.MODEL.PYRAMID.items()}
    return dict(in_features=in_features, num_segments=cfg.INPUT.NUM_SEGMENTS, **kwargs)


class VideoNet(nn.Module):

    def __init__(self, cfg, model_cfg, num_classes: int, **kwargs):
        super().__init__()
        if not model_cfg.BACKBONE.NAME or not model_cfg.HEAD.NAME:
            raise ValueError("A video model needs MODEL.BACKBONE.NAME (a frame encoder, e.g. frame_smallcnn) and "
                             "MODEL.HEAD.NAME (a temporal head, e.g. tsn or apn_pyramid)")
        self.backbone = build_backbone(model_cfg.BACKBONE.NAME, verbose=cfg.VERBOSE, **backbone_kwargs(cfg))
        self.head = build_head(model_cfg.HEAD.NAME, verbose=cfg.VERBOSE,
                               **head_kwargs(cfg, self.backbone.out_features))
        fdim = self.head.out_features
        linear = nn.Linear(fdim, num_classes)
        # The official APN code puts a ReLU in front of h (MODEL.PYRAMID.CLASSIFIER_RELU).
        self.classifier = nn.Sequential(nn.ReLU(), linear) if self.head.classifier_relu else linear
        self._fdim = fdim

    @property
    def fdim(self) -> int:
        return self._fdim

    @property
    def levels(self) -> List[str]:
        return self.head.levels

    def features(self, x: torch.Tensor, levels: Sequence[str]) -> Dict[str, torch.Tensor]:
        """The requested feature levels of clips x, each (B, fdim)."""
        all_levels = self.head.forward_levels(self.backbone(x))
        missing = [lvl for lvl in levels if lvl not in all_levels]
        if missing:
            raise KeyError(f"Head {type(self.head).__name__} has no feature level {missing}; it has {self.levels}")
        return {lvl: all_levels[lvl] for lvl in levels}

    def classify(self, feature: torch.Tensor) -> torch.Tensor:
        return self.classifier(feature)

    def forward(self, x: torch.Tensor, return_feature: bool = False):
        f = self.head(self.backbone(x))
        y = self.classifier(f)
        return (y, f) if return_feature else y

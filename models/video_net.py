"""VideoNet: frame encoder (backbone) -> temporal head -> classifier h; Dassl's SimpleNet for video clips.

It takes SimpleNet's constructor arguments `(cfg, model_cfg, num_classes)`, so a trainer builds it where a
Dassl trainer builds SimpleNet. Unlike SimpleNet it always builds the head (MODEL.HEAD.NAME), because a clip's
M frame features need a temporal model before the classifier.

The stages are public, for trainers that work between them:

    frames = net.frame_features(x)                 # (B, M, C, H, W) -> (B, M, D)
    logits = net.logits_from_frame_features(frames)  # head, then classifier h -> (B, K)

and for video ADA it exposes the head's named feature levels: `features(x, levels)` returns {level: (B, F)}
and `classify(feature)` applies the shared h.

A head that reads the frame encoder's spatial maps instead of its D-dimensional features (STDN) says so with
`@reads_feature_maps`; its "frame features" are then the maps (B, M, C', h, w) (`backbone.feature_maps`) and
its `in_features` is C' (`backbone.map_channels`). The frame encoder's FC layer is then unused.

What a backbone or head factory receives: the common keywords below, plus, if the factory is decorated with
`@reads_config("NODE")`, every key of `cfg.MODEL.NODE` as a lower-case keyword (e.g. MODEL.PYRAMID.NUM_HEADS
-> num_heads). So a new model declares its keys in its own file and needs no change here.
"""
from typing import Callable, Dict, List, Optional, Sequence, TypeVar

import torch
import torch.nn as nn

from framework import BACKBONE_REGISTRY, HEAD_REGISTRY, build_backbone, build_head

Factory = TypeVar("Factory", bound=Callable)


def reads_config(node: str) -> Callable[[Factory], Factory]:
    """Decorator for a backbone/head factory: pass it the keys of cfg.MODEL.<node> as keywords."""
    def mark(factory: Factory) -> Factory:
        factory.model_node = node
        return factory
    return mark


def reads_feature_maps(factory: Factory) -> Factory:
    """Decorator for a head factory: the head takes frame feature maps (B, M, C', h, w), not features (B, M, D)."""
    factory.reads_feature_maps = True
    return factory


def _node_options(cfg, registry, name: str) -> dict:
    node = getattr(registry.get(name), "model_node", None)
    if node is None:
        return {}
    if node not in cfg.MODEL:
        raise KeyError(f"{name} reads cfg.MODEL.{node}, which is not in the config: the file that registers "
                       f"{name} must declare it with @config_defaults")
    return {key.lower(): value for key, value in cfg.MODEL[node].items()}


def backbone_kwargs(cfg) -> dict:
    """Every frame encoder gets the MODEL.BACKBONE basics, M and the clip transform's normalisation (a
    pre-trained encoder may expect another), plus its own node's keys."""
    b = cfg.MODEL.BACKBONE
    return dict(pretrained=b.PRETRAINED, feature_dim=b.FEATURE_DIM, dropout=b.DROPOUT,
                dropout_before_fc=b.DROPOUT_BEFORE_FC, partial_bn=b.PARTIAL_BN, weights=b.WEIGHTS,
                num_segments=cfg.INPUT.NUM_SEGMENTS, pixel_mean=cfg.INPUT.PIXEL_MEAN,
                pixel_std=cfg.INPUT.PIXEL_STD, **_node_options(cfg, BACKBONE_REGISTRY, b.NAME))


def head_kwargs(cfg, in_features: int) -> dict:
    """Every head gets the frame-feature width and M, plus its own node's keys."""
    return dict(in_features=in_features, num_segments=cfg.INPUT.NUM_SEGMENTS,
                **_node_options(cfg, HEAD_REGISTRY, cfg.MODEL.HEAD.NAME))


class VideoNet(nn.Module):

    def __init__(self, cfg, model_cfg, num_classes: int, **kwargs):
        super().__init__()
        if not model_cfg.BACKBONE.NAME or not model_cfg.HEAD.NAME:
            raise ValueError("A video model needs MODEL.BACKBONE.NAME (a frame encoder, e.g. frame_smallcnn) and "
                             "MODEL.HEAD.NAME (a temporal head, e.g. tsn or apn_pyramid)")
        self.backbone = build_backbone(model_cfg.BACKBONE.NAME, verbose=cfg.VERBOSE, **backbone_kwargs(cfg))
        self.head_reads_maps = getattr(HEAD_REGISTRY.get(model_cfg.HEAD.NAME), "reads_feature_maps", False)
        if self.head_reads_maps and not getattr(self.backbone, "map_channels", 0):
            raise ValueError(f"MODEL.HEAD.NAME {model_cfg.HEAD.NAME} reads spatial feature maps, which "
                             f"{model_cfg.BACKBONE.NAME} does not give; use frame_resnet50, frame_resnet18 or "
                             "frame_smallcnn")
        in_features = self.backbone.map_channels if self.head_reads_maps else self.backbone.out_features
        self.head = build_head(model_cfg.HEAD.NAME, verbose=cfg.VERBOSE, **head_kwargs(cfg, in_features))
        mixstyle = model_cfg.BACKBONE.get("MIXSTYLE")
        if mixstyle is not None and mixstyle.LAYERS:  # MixStyle in the frame encoder (frame_encoders.py)
            if not hasattr(self.backbone, "add_mixstyle"):
                raise ValueError(f"MODEL.BACKBONE.MIXSTYLE.LAYERS is set but {model_cfg.BACKBONE.NAME} is not a "
                                 "FrameEncoder (models/backbones/frame_encoders.py), which is what offers MixStyle")
            self.backbone.add_mixstyle(mixstyle.LAYERS, p=mixstyle.P, alpha=mixstyle.ALPHA, mix=mixstyle.MIX)
        fdim = self.head.out_features
        if num_classes > 0:
            linear = nn.Linear(fdim, num_classes)
            self.classifier = nn.Sequential(nn.ReLU(), linear) if model_cfg.CLASSIFIER_RELU else linear
        else:  # as Dassl's SimpleNet with 0 classes: a feature extractor whose output is the head's feature
            self.classifier = nn.Identity()
        self._fdim = fdim
        if model_cfg.BACKBONE.FC_INIT_STD > 0:
            self.init_encoder_fc(model_cfg.BACKBONE.FC_INIT_STD)

    def init_encoder_fc(self, std: float) -> None:
        """N(0, std) weights and zero bias for the frame encoder's last FC layer (MODEL.BACKBONE.FC_INIT_STD)."""
        fc = getattr(self.backbone, "fc", None)
        if not isinstance(fc, nn.Linear):
            raise ValueError(f"MODEL.BACKBONE.FC_INIT_STD needs a frame encoder with a Linear `fc`; "
                             f"{type(self.backbone).__name__} has none (set FC_INIT_STD 0)")
        nn.init.normal_(fc.weight, 0.0, std)
        nn.init.zeros_(fc.bias)

    @property
    def fdim(self) -> int:
        return self._fdim

    @property
    def levels(self) -> List[str]:
        return self.head.levels

    def optimizer_groups(self, lr: float) -> Optional[List[dict]]:
        """Optimiser parameter groups when the frame encoder gives its parameters their own learning rates (a
        ViT's layer-wise decay): its groups, then every other trainable parameter at lr. None: one group."""
        offer = getattr(self.backbone, "optimizer_groups", None)
        groups = offer(lr) if offer is not None else None
        if groups is None:
            return None
        grouped = {id(p) for group in groups for p in group["params"]}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in grouped]
        return groups + [{"params": rest, "lr": lr, "name": "head_and_classifier"}]

    def frame_features(self, x: torch.Tensor) -> torch.Tensor:
        """Clips (B, M, C, H, W) -> frame features (B, M, D) from the frame encoder (for a head that reads maps:
        the maps, (B, M, C', h, w))."""
        return self.backbone.feature_maps(x) if self.head_reads_maps else self.backbone(x)

    def logits_from_frame_features(self, frame_features: torch.Tensor, return_feature: bool = False):
        """Frame features (B, M, D) -> logits (B, K) through the head and the classifier h."""
        f = self.head(frame_features)
        y = self.classifier(f)
        return (y, f) if return_feature else y

    def features(self, x: torch.Tensor, levels: Sequence[str]) -> Dict[str, torch.Tensor]:
        """The requested feature levels of clips x, each (B, fdim)."""
        return self.features_from_frame_features(self.frame_features(x), levels)

    def features_from_frame_features(self, frame_features: torch.Tensor,
                                     levels: Sequence[str]) -> Dict[str, torch.Tensor]:
        """The requested feature levels from frame features (B, M, D), each (B, fdim)."""
        all_levels = self.head.forward_levels(frame_features)
        missing = [lvl for lvl in levels if lvl not in all_levels]
        if missing:
            raise KeyError(f"Head {type(self.head).__name__} has no feature level {missing}; it has {self.levels}")
        return {lvl: all_levels[lvl] for lvl in levels}

    def compile_parts(self, backend: str = "inductor") -> None:
        """torch.compile the frame encoder and the head in place (TRAIN.COMPILE): their forward, and the head's
        forward_levels, which video ADA calls. Parameters, buffers and state_dict keys stay as they are."""
        self.backbone.compile(backend=backend)
        self.head.compile(backend=backend)
        self.head.forward_levels = torch.compile(self.head.forward_levels, backend=backend)
        print(f"TRAIN.COMPILE: torch.compile of the frame encoder and the head, backend {backend} (the first "
              "steps compile them)")

    def classify(self, feature: torch.Tensor) -> torch.Tensor:
        return self.classifier(feature)

    def forward(self, x: torch.Tensor, return_feature: bool = False):
        return self.logits_from_frame_features(self.frame_features(x), return_feature)

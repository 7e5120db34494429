"""Backbone / head / network registries, builders and SimpleNet of the built-in engine."""
import torch.nn as nn

from .registry import Registry, check_availability

BACKBONE_REGISTRY = Registry("BACKBONE")
HEAD_REGISTRY = Registry("HEAD")
NETWORK_REGISTRY = Registry("NETWORK")


class Backbone(nn.Module):
    """Base class of feature extractors. A subclass sets `_out_features` (its feature width) and forward."""

    _out_features = None

    @property
    def out_features(self):
        return self._out_features


def _build(registry: Registry, kind: str, name: str, verbose: bool, **kwargs):
    check_availability(name, registry.registered_names())
    if verbose:
        print(f"{kind}: {name}")
    return registry.get(name)(**kwargs)


def build_backbone(name: str, verbose: bool = True, **kwargs):
    return _build(BACKBONE_REGISTRY, "Backbone", name, verbose, **kwargs)


def build_head(name: str, verbose: bool = True, **kwargs):
    return _build(HEAD_REGISTRY, "Head", name, verbose, **kwargs)


def build_network(name: str, verbose: bool = True, **kwargs):
    return _build(NETWORK_REGISTRY, "Network", name, verbose, **kwargs)


class SimpleNet(nn.Module):
    """backbone -> optional head (built when HEAD.NAME and HEAD.HIDDEN_LAYERS are set) -> linear classifier."""

    def __init__(self, cfg, model_cfg, num_classes: int, **kwargs):
        super().__init__()
        self.backbone = build_backbone(model_cfg.BACKBONE.NAME, verbose=cfg.VERBOSE,
                                       pretrained=model_cfg.BACKBONE.PRETRAINED, **kwargs)
        fdim = self.backbone.out_features
        self.head = None
        if model_cfg.HEAD.NAME and model_cfg.HEAD.HIDDEN_LAYERS:
            self.head = build_head(model_cfg.HEAD.NAME, verbose=cfg.VERBOSE, in_features=fdim,
                                   hidden_layers=model_cfg.HEAD.HIDDEN_LAYERS,
                                   activation=model_cfg.HEAD.ACTIVATION, bn=model_cfg.HEAD.BN,
                                   dropout=model_cfg.HEAD.DROPOUT, **kwargs)
            fdim = self.head.out_features
        self.classifier = nn.Linear(fdim, num_classes) if num_classes > 0 else None
        self._fdim = fdim

    @property
    def fdim(self) -> int:
        return self._fdim

    def forward(self, x, return_feature: bool = False):
        features = self.backbone(x)
        if self.head is not None:
            features = self.head(features)
        if self.classifier is None:  # a feature extractor only (num_classes == 0)
            return features
        logits = self.classifier(features)
        return (logits, features) if return_feature else logits

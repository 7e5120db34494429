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


# build_head keyword -> MODEL.HEAD key (the head gets its input width from the backbone)
_HEAD_OPTIONS = {"hidden_layers": "HIDDEN_LAYERS", "activation": "ACTIVATION", "bn": "BN", "dropout": "DROPOUT"}


def _head_or_none(head_cfg, in_features: int, verbose: bool, extra: dict):
    """A head only when MODEL.HEAD names one and gives it hidden layers (Dassl's rule); else None."""
    if not (head_cfg.NAME and head_cfg.HIDDEN_LAYERS):
        return None
    options = {argument: head_cfg[key] for argument, key in _HEAD_OPTIONS.items()}
    return build_head(head_cfg.NAME, verbose=verbose, in_features=in_features, **options, **extra)


class SimpleNet(nn.Module):
    """backbone -> optional head -> linear classifier; without classes (num_classes 0) a feature extractor."""

    def __init__(self, cfg, model_cfg, num_classes: int, **kwargs):
        super().__init__()
        backbone_cfg = model_cfg.BACKBONE
        self.backbone = build_backbone(backbone_cfg.NAME, verbose=cfg.VERBOSE, pretrained=backbone_cfg.PRETRAINED,
                                       **kwargs)
        self.head = _head_or_none(model_cfg.HEAD, self.backbone.out_features, cfg.VERBOSE, kwargs)
        self._fdim = (self.backbone if self.head is None else self.head).out_features
        self.classifier = nn.Linear(self._fdim, num_classes) if num_classes > 0 else None

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

"""Dassl's own image DG trainers on video clips: VideoCrossGrad and VideoDomainMix (real Dassl only).

Each is `class Video<X>(VideoDataMixin, <X>)`: Dassl's algorithm unchanged, with video data, VideoNet models
and the results table. Hyperparameters stay in Dassl's node, e.g. `TRAINER.CROSSGRAD.EPS_F 0.5` with
`--trainer VideoCrossGrad` (framework.clean_cfg keeps the node named by the class's `config_node`).
Dassl's trainers build their networks as `SimpleNet(cfg, cfg.MODEL, n)` by the module-level name SimpleNet;
while such a trainer's build_model runs, that name (and build_lr_scheduler, whose warmup is broken on
current PyTorch) resolves to this project's VideoNet (same constructor) and scheduler builder.
Nothing is registered on the built-in engine, which has no CrossGrad or DomainMix.

Not wrapped: DAELDG (needs a strong clip augmentation for `img2`) and DDAIG (its generator networks are
2-D convnets that reject (B, M, C, H, W) input).
"""
import contextlib
import sys

from framework import TRAINER_REGISTRY, build_lr_scheduler
from models.video_net import VideoNet
from trainers.video_mixin import VideoDataMixin

WRAPPED_DASSL_TRAINERS = ("CrossGrad", "DomainMix")


@contextlib.contextmanager
def video_networks_for(trainer_cls: type):
    """Within the block, modules of `trainer_cls` and its bases build VideoNet where they name SimpleNet."""
    replacements = {"SimpleNet": VideoNet, "build_lr_scheduler": build_lr_scheduler}
    saved = []
    for cls in trainer_cls.__mro__:
        module = sys.modules.get(cls.__module__)
        for name, new in replacements.items():
            if module is not None and hasattr(module, name) and getattr(module, name) is not new:
                saved.append((module, name, getattr(module, name)))
                setattr(module, name, new)
    try:
        yield
    finally:
        for module, name, old in reversed(saved):
            setattr(module, name, old)


def make_video_trainer(dassl_cls: type) -> type:
    """Video<Name>: dassl_cls on video batches, built with the networks above."""

    def build_model(self):
        with video_networks_for(dassl_cls):
            dassl_cls.build_model(self)

    return type(f"Video{dassl_cls.__name__}", (VideoDataMixin, dassl_cls), {
        "build_model": build_model,
        "config_node": dassl_cls.__name__.upper(),  # clean_cfg keeps TRAINER.<X>, which Dassl's code reads
        "__doc__": f"Dassl's {dassl_cls.__name__} trained on video clips (see trainers/dassl_dg.py).",
    })


for _name in WRAPPED_DASSL_TRAINERS:
    if _name in TRAINER_REGISTRY.registered_names():
        TRAINER_REGISTRY.register(make_video_trainer(TRAINER_REGISTRY.get(_name)))

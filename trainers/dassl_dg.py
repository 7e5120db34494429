"""Dassl's own DG trainers on video clips, under Dassl* names: DasslCrossGrad, DasslDDAIG, DasslDAELDG and
DasslDomainMix (real Dassl only).

The plain names (CrossGrad, DDAIG, DAELDG, DomainMix) are this project's trainers, written from the papers,
which run on both engines and replace Dassl's entries in the registry (framework.register_trainer). These
wrappers keep Dassl's originals runnable for comparison (tests/test_dg_parity.py checks that both compute the
same loss terms on one batch): each is `class Dassl<X>(VideoDataMixin, <Dassl's X>)`, Dassl's algorithm
unchanged, with video data, VideoNet models and the results table. Hyperparameters stay in Dassl's node, which
our trainer of the same name declares with the same keys and defaults (e.g. `TRAINER.CROSSGRAD.EPS_F 0.5` with
`--trainer DasslCrossGrad`; framework.clean_cfg keeps the node named by the class's `config_node`).

Dassl's trainers build their networks as `SimpleNet(cfg, cfg.MODEL, n)` by the module-level name SimpleNet;
while such a trainer's build_model runs, that name (and build_lr_scheduler, whose warmup is broken on current
PyTorch) resolves to this project's VideoNet (same constructor; with 0 classes it returns features, as
SimpleNet does) and scheduler builder. For video, DasslDDAIG gets the clip generator `clip_fcn_gctx`
(TRAINER.DDAIG.G_ARCH, trainers/ddaig.py; Dassl's generators are 2-D convnets) and DasslDAELDG the weak and
strong clip transforms of trainers/daeldg.py as img and img2.
"""
import contextlib
import sys

from framework import DASSL_TRAINERS, TRAINER_REGISTRY, build_lr_scheduler
from models.video_net import VideoNet
from trainers.crossgrad import CrossGrad
from trainers.daeldg import DAELDG, weak_and_strong_transforms
from trainers.ddaig import DDAIG
from trainers.domainmix import DomainMix
from trainers.video_mixin import VideoDataMixin

# Dassl's name -> ours, whose source-domain requirement the wrapper shares
WRAPPED_DASSL_TRAINERS = {"CrossGrad": CrossGrad, "DDAIG": DDAIG, "DAELDG": DAELDG, "DomainMix": DomainMix}
WRAPPER_PREFIX = "Dassl"
# Every wrapper name, on any engine: train.py says "needs real Dassl" for these on the built-in engine.
DASSL_ONLY_TRAINERS = tuple(WRAPPER_PREFIX + name for name in WRAPPED_DASSL_TRAINERS)


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


def make_video_trainer(dassl_cls: type, ours: type) -> type:
    """Dassl<Name>: dassl_cls on video batches, built with the networks above."""

    def build_model(self):
        with video_networks_for(dassl_cls):
            dassl_cls.build_model(self)

    members = {
        "build_model": build_model,
        "config_node": dassl_cls.__name__.upper(),  # clean_cfg keeps TRAINER.<X>, which Dassl's code reads
        "required_source_domains": ours.required_source_domains,
        "__doc__": f"Dassl's {dassl_cls.__name__} trained on video clips (see trainers/dassl_dg.py).",
    }
    if ours is DAELDG:  # Dassl's DAELDG reads batch["img2"]; its own loader would build image transforms
        members["build_train_transform"] = lambda self: weak_and_strong_transforms(self.cfg)
    return type(WRAPPER_PREFIX + dassl_cls.__name__, (VideoDataMixin, dassl_cls), members)


for _name, _ours in WRAPPED_DASSL_TRAINERS.items():
    if _name in DASSL_TRAINERS:
        TRAINER_REGISTRY.register(make_video_trainer(DASSL_TRAINERS[_name], _ours))

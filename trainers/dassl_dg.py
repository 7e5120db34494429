"""Dassl's own DG trainers on video clips: DasslCrossGrad, DasslDDAIG, DasslDAELDG, DasslDomainMix (real Dassl).

Dassl's CrossGrad, DDAIG, DAELDG and DomainMix keep their names and stay image trainers: under real Dassl,
`--trainer CrossGrad` is Dassl's. This project's versions, written from the papers, are VideoCrossGrad,
VideoDDAIG, VideoDAELDG and VideoDomainMix and run on both engines. The adapters below keep Dassl's algorithms
runnable on video for comparison (tests/test_dg_parity.py checks that both compute the same loss terms on one
batch). Each is `class Dassl<X>(VideoTrainerMixin, <Dassl's X>)`: Dassl's forward_backward unchanged, this project's
loaders, clip transforms and results table, and a build_model of its own that builds the networks Dassl's code
uses, under the same attribute and model names, as VideoNet with this project's optimiser and scheduler
builders (Dassl's warmup scheduler breaks on current PyTorch). Nothing of Dassl's modules is changed.

Hyperparameters stay in Dassl's own node (TRAINER.CROSSGRAD for DasslCrossGrad, ...), named by the class
attribute `dassl_node`, which framework.clean_cfg keeps. The video settings the adapters need are declared into
those nodes here: DDAIG's G_ARCH is the clip generator clip_fcn_gctx (Dassl's generators take images), and the
DAELDG node gets the keys of the strong clip view (trainers/daeldg.py), which becomes the batch's img2.
"""
import sys

from defaults import config_defaults, search_space
from framework import ENGINE, TRAINER_REGISTRY
from trainers.crossgrad import VideoCrossGrad, crossgrad_space
from trainers.daeldg import (VideoDAELDG, add_strong_view_keys, build_feature_net_and_experts, strong_view_space,
                             weak_and_strong_transforms)
from trainers.ddaig import VideoDDAIG, build_ddaig_networks, ddaig_space
from trainers.domainmix import mix_requirements, mix_space
from trainers.requirements import Requirements
from trainers.video_trainer import VideoTrainerMixin

# The adapters exist on real Dassl only; train.py says "needs real Dassl" for these names on the built-in engine.
DASSL_ADAPTERS = ("DasslCrossGrad", "DasslDDAIG", "DasslDAELDG", "DasslDomainMix")


@config_defaults
def _adapter_settings(cfg) -> None:
    if "DDAIG" in cfg.TRAINER:
        cfg.TRAINER.DDAIG.G_ARCH = "clip_fcn_gctx"  # Dassl's default "" names no generator
    if "DAELDG" in cfg.TRAINER:
        add_strong_view_keys(cfg.TRAINER.DAELDG)  # Dassl's default () has no strong view


# The spaces of this project's versions, in Dassl's nodes
for _adapter, _node, _space in (("DasslCrossGrad", "CROSSGRAD", crossgrad_space), ("DasslDDAIG", "DDAIG", ddaig_space),
                                ("DasslDAELDG", "DAELDG", strong_view_space), ("DasslDomainMix", "DOMAINMIX", mix_space)):
    search_space(f"TRAINER.NAME={_adapter}", _space(_node))

if ENGINE == "dassl":
    _dassl = TRAINER_REGISTRY.get  # Dassl's own trainers, registered by `import dassl.engine`

    @TRAINER_REGISTRY.register()
    class DasslCrossGrad(VideoTrainerMixin, _dassl("CrossGrad")):
        """Dassl's CrossGrad on clips; F and D are VideoNets."""
        dassl_node = "CROSSGRAD"
        requirements = VideoCrossGrad.requirements

        def build_model(self):
            self.build_label_and_domain_nets()

    @TRAINER_REGISTRY.register()
    class DasslDDAIG(VideoTrainerMixin, _dassl("DDAIG")):
        """Dassl's DDAIG on clips; F and D are VideoNets, G the generator named by TRAINER.DDAIG.G_ARCH."""
        dassl_node = "DDAIG"
        requirements = VideoDDAIG.requirements

        def build_model(self):
            build_ddaig_networks(self, self.cfg.TRAINER.DDAIG.G_ARCH)

    @TRAINER_REGISTRY.register()
    class DasslDAELDG(VideoTrainerMixin, _dassl("DAELDG")):
        """Dassl's DAELDG on clips; F is a VideoNet without classifier, E Dassl's own experts."""
        dassl_node = "DAELDG"
        requirements = VideoDAELDG.requirements

        def build_train_transform(self):
            return weak_and_strong_transforms(self.cfg, self.cfg.TRAINER.DAELDG)

        def build_model(self):
            # Dassl's experts end in a softmax, which its loss terms expect; ours return logits.
            build_feature_net_and_experts(self, sys.modules[_dassl("DAELDG").__module__].Experts)

    @TRAINER_REGISTRY.register()
    class DasslDomainMix(VideoTrainerMixin, _dassl("DomainMix")):
        """Dassl's DomainMix on clips; its one network is VideoNetMixin's `model`."""
        dassl_node = "DOMAINMIX"

        @classmethod
        def requirements(cls, cfg) -> Requirements:
            return mix_requirements(cfg.TRAINER.DOMAINMIX.TYPE)

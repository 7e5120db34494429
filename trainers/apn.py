"""APN: the Adversarial Pyramid Network trained with video ADA (Algorithm 1 of the paper).

APN is the video ADA procedure of trainers/ada.py on the relational feature pyramid (MODEL.HEAD.NAME
apn_pyramid), with its own config node TRAINER.APN. Its levels are the pyramid's: II+III is the paper's
APN + ADA* (the default), III (= last_hidden for APN) is APN + ADA, and II, global give the ablations of
Section 5.3; none trains APN without ADA. Line 13 of Algorithm 1 trains the level-II adversarial batch on
h(R^II(X^II)) and line 14 the level-III batch on h(R^III(X^III)) (ADV_LOSS_LEVEL own).
"""
from defaults import config_defaults, search_space
from framework import TRAINER_REGISTRY
from trainers.ada import VideoADA, ada_node, ada_space, parse_levels  # noqa: F401  (parse_levels: public here too)


@config_defaults
def _apn_defaults(cfg) -> None:
    cfg.TRAINER.APN = ada_node("II+III")  # APN + ADA* by default


search_space("TRAINER.NAME=APN", ada_space("APN"))


@TRAINER_REGISTRY.register()
class APN(VideoADA):
    """VideoADA reading TRAINER.APN (node_name)."""

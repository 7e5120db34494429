"""VideoADA: the video ADA procedure of Algorithm 1 for any backbone + head (the paper's "+ ADA" baselines).

The transport cost sits on the features the head exposes: TRAINER.VIDEOADA.LEVELS last_hidden (the
classifier's input) is ADA, as in Volpi et al. 2018 but trained on the fly; a head with several feature
levels (apn_pyramid: II, III, global) gives ADA*. A new temporal head joins by exposing `forward_levels`.
Example: TSN + ADA is `--trainer VideoADA MODEL.HEAD.NAME tsn`.
"""
from defaults import config_defaults
from framework import TRAINER_REGISTRY
from trainers.apn import APN, ada_node


@config_defaults
def _videoada_defaults(cfg) -> None:
    cfg.TRAINER.VIDEOADA = ada_node("last_hidden")  # ADA for any backbone + head


@TRAINER_REGISTRY.register()
class VideoADA(APN):
    config_node = "VIDEOADA"

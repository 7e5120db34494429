"""VideoADA: the video ADA procedure of Algorithm 1 for any backbone + head (the paper's "+ ADA" baselines).

The transport cost sits on the features the head exposes: TRAINER.VIDEOADA.LEVELS last_hidden (the
classifier's input) is ADA, as in Volpi et al. 2018 but trained on the fly; a head with several feature
levels (apn_pyramid: II, III, global) gives ADA*. A new temporal head joins by exposing `forward_levels`.
Example: TSN + ADA is `--trainer VideoADA MODEL.HEAD.NAME tsn`.
"""
from framework import TRAINER_REGISTRY
from trainers.apn import APN


@TRAINER_REGISTRY.register()
class VideoADA(APN):
    config_node = "VIDEOADA"

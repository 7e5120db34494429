"""VideoTrainer: the base of this project's trainers. A method is one file:

    @TRAINER_REGISTRY.register()
    class MyMethod(VideoTrainer):
        def forward_backward(self, batch):   # batch["img"]: (B, M, C, H, W) clips
            ...

VideoTrainer is the engine's TrainerX with VideoTrainerMixin, which is made of one piece per concern:

- ClipDataMixin (trainers/clip_data.py): loaders of video clips with clip transforms;
- VideoNetMixin (trainers/video_models.py): VideoNet where Dassl builds SimpleNet, one optimiser per network;
- AutocastAndClippingMixin (trainers/precision.py): bf16 autocast, gradient clipping;
- ResultsTableMixin (trainers/results.py): the final test as a table of source-validation and per-target-domain
  accuracy and macro-F1, written to OUTPUT_DIR/results.{json,csv};
- DataParallelMixin (trainers/distributed.py): data-parallel training when torchrun starts the run;
- CheckpointMixin (framework): atomic saves, safe loads, exact resume, best-epoch selection;

plus what every method declares: `requirements(cfg)` (trainers/requirements.py). Dassl's own trainers run on
video with VideoTrainerMixin first in their bases (trainers/dassl_dg.py).
"""
from typing import Dict, Union

import torch

from framework import CheckpointMixin, TrainerX
from trainers.clip_data import ClipDataMixin
from trainers.distributed import DataParallelMixin
from trainers.precision import AutocastAndClippingMixin
from trainers.requirements import Requirements, check_requirements
from trainers.results import ResultsTableMixin
from trainers.video_models import VideoNetMixin


def accuracy(logits: torch.Tensor, label: torch.Tensor) -> float:
    return (logits.argmax(1) == label).float().mean().item() * 100.0


class VideoTrainerMixin(DataParallelMixin, ClipDataMixin, VideoNetMixin, AutocastAndClippingMixin, ResultsTableMixin,
                        CheckpointMixin):
    """Everything a Dassl trainer needs to train and evaluate on clips; put it first in the bases."""

    @classmethod
    def requirements(cls, cfg) -> Requirements:
        """What this method needs from the run (trainers/requirements.py): here one source domain, any sampler."""
        return Requirements()

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        check_requirements(type(self), cfg)
        if cfg.TEST.FINAL_MODEL == "best_val" and cfg.DATASET.VAL_RATIO <= 0:
            raise ValueError("TEST.FINAL_MODEL best_val needs a source validation split (DATASET.VAL_RATIO > 0); "
                             "without one Dassl would select the model on the target test set")


class VideoTrainer(VideoTrainerMixin, TrainerX):
    """The convenience base of a method: the engine's TrainerX on clips, and the ending of a training step."""

    def end_of_step(self, **log: Union[float, torch.Tensor]) -> Dict[str, float]:
        """Call at the end of forward_backward, after the optimiser steps: the LR schedulers step once the epoch's
        last minibatch is done, and the logged values come back as floats for the batch lines."""
        if self.batch_idx + 1 == self.num_batches:
            self.update_lr()
        return {name: value.item() if isinstance(value, torch.Tensor) else value for name, value in log.items()}

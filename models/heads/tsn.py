"""TSN's average consensus (Wang et al. 2016), registered as the Dassl head `tsn`.

TSN averages the class scores of the M segments. With one linear classifier after the consensus, averaging
the frame features first gives the same scores, so this head averages features: (B, M, D) -> (B, D).
"""
from typing import Dict, List

import torch
import torch.nn as nn

from framework import HEAD_REGISTRY


class AverageConsensus(nn.Module):

    def __init__(self, in_features: int):
        super().__init__()
        self.out_features = in_features

    def forward(self, frame_features: torch.Tensor) -> torch.Tensor:
        return frame_features.mean(dim=1)

    def forward_levels(self, frame_features: torch.Tensor) -> Dict[str, torch.Tensor]:
        return {"last_hidden": self.forward(frame_features)}

    @property
    def levels(self) -> List[str]:
        return ["last_hidden"]


@HEAD_REGISTRY.register()
def tsn(*, in_features: int, **kwargs) -> AverageConsensus:
    return AverageConsensus(in_features)

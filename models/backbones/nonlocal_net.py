"""Non-local networks (Wang et al. 2018): I3D plus 5 non-local blocks, registered as Dassl backbones.

A non-local block (embedded Gaussian) lets every space-time position attend to all others:

    theta, phi, g = 1x1x1 convs to C/2 channels (phi and g after a 1x2x2 max-pool, which quarters the keys)
    y = softmax(theta^T phi / sqrt(C/2)) g        over all T*H*W positions
    z = x + BN(conv_1x1x1(y))                     BN's scale starts at zero, so the block starts as identity

The blocks follow every other residual block of res3 and res4 (blocks 0 and 2 of res3, 0, 2 and 4 of res4:
2 + 3 = 5 blocks) of models/backbones/i3d.py's ResNet-50. The rest (weights, inflation, the pytorchvideo
i3d_r50 Kinetics layout, the small CPU variant) is I3D's: a checkpoint without non-local blocks loads and
leaves them at their identity start.
"""
from typing import Optional

import torch
import torch.nn as nn

from framework import BACKBONE_REGISTRY
from models.backbones.i3d import R50_STAGES, SMALL_STAGES, ClipEncoder3d, ResNet3d, build_clip_encoder

NONLOCAL_STAGES = (2, 3)  # res3 and res4


class NonLocalBlock3d(nn.Module):

    def __init__(self, channels: int, subsample: bool = True):
        super().__init__()
        inner = channels // 2
        self.theta = nn.Conv3d(channels, inner, 1)
        self.phi = nn.Conv3d(channels, inner, 1)
        self.g = nn.Conv3d(channels, inner, 1)
        self.pool = nn.MaxPool3d((1, 2, 2)) if subsample else nn.Identity()
        self.out = nn.Conv3d(inner, channels, 1)
        self.bn = nn.BatchNorm3d(channels)
        nn.init.zeros_(self.bn.weight)
        self.scale = inner ** -0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, T, H, W = x.shape
        query = self.theta(x).flatten(2)  # (B, C/2, N)
        pooled = self.pool(x)
        key = self.phi(pooled).flatten(2)  # (B, C/2, N')
        value = self.g(pooled).flatten(2)  # (B, C/2, N')
        attention = torch.softmax(query.transpose(1, 2) @ key * self.scale, dim=-1)  # (B, N, N')
        y = (attention @ value.transpose(1, 2)).transpose(1, 2).reshape(B, -1, T, H, W)
        return x + self.bn(self.out(y))


def every_other_in_res3_res4(stage: int, index: int, channels: int) -> Optional[nn.Module]:
    return NonLocalBlock3d(channels) if stage in NONLOCAL_STAGES and index % 2 == 0 else None


def _is_nonlocal(key: str) -> bool:
    return ".context." in key


@BACKBONE_REGISTRY.register()
def nonlocal_resnet50(pretrained: bool = True, feature_dim: int = 256, dropout: float = 0.5,
                      dropout_before_fc: bool = False, partial_bn: bool = False, weights: str = "",
                      **kwargs) -> ClipEncoder3d:
    net = ResNet3d(R50_STAGES, context=every_other_in_res3_res4)
    return build_clip_encoder(net, "nonlocal_resnet50", pretrained, weights, feature_dim, dropout,
                              dropout_before_fc, partial_bn, spatial_grid=1, new_ok=_is_nonlocal)


@BACKBONE_REGISTRY.register()
def nonlocal_resnet_small(pretrained: bool = False, feature_dim: int = 256, dropout: float = 0.5,
                          dropout_before_fc: bool = False, partial_bn: bool = False, weights: str = "",
                          **kwargs) -> ClipEncoder3d:
    """i3d_resnet_small with a non-local block after the one block of res3 and of res4."""
    net = ResNet3d(SMALL_STAGES, stem_width=16, context=every_other_in_res3_res4)
    return build_clip_encoder(net, "nonlocal_resnet_small", pretrained, weights, feature_dim, dropout,
                              dropout_before_fc, partial_bn, spatial_grid=4, new_ok=_is_nonlocal)

"""Temporal Shift Module (Lin et al. 2019, TSM), registered as Dassl backbones.

Inside the residual branch of every ResNet block, before its first convolution, 1/8 of the channels move one
segment back in time and another 1/8 one segment forward (zeros fill the ends); the rest stay. The shortcut
sees the unshifted input, so the block keeps its spatial features and gains temporal mixing at zero FLOPs.

- frame_resnet50_tsm: torchvision ResNet-50 (ImageNet weights through torchvision when `pretrained`, or a
  local file in MODEL.BACKBONE.WEIGHTS), a shift in each of its 16 bottleneck blocks.
- frame_smallres_tsm: the CPU-scale variant, a small residual CNN shaped like frame_smallcnn (two residual
  blocks, each with the shift, and the same 8x8 grid output).

Frames arrive as (B*M, C, H, W) with each clip's M segments adjacent (FrameEncoder flattens (B, M)), so the
shift needs M = INPUT.NUM_SEGMENTS at construction.
"""
import torch
import torch.nn as nn

from framework import BACKBONE_REGISTRY, load_checkpoint
from models.backbones.frame_encoders import FrameEncoder, _torchvision_resnet

SHIFT_DIV = 8  # 1/8 of the channels each way (TSM's default)


def temporal_shift(x: torch.Tensor, num_segments: int, shift_div: int = SHIFT_DIV) -> torch.Tensor:
    """(B*M, C, H, W) -> same shape; channels [0, C/8) come from the next segment, [C/8, 2C/8) from the
    previous one."""
    nm, c = x.shape[:2]
    if nm % num_segments:
        raise ValueError(f"Temporal shift: {nm} frames is not a multiple of M={num_segments} segments")
    clips = x.view(nm // num_segments, num_segments, *x.shape[1:])
    fold = c // shift_div
    pad = clips.new_zeros(clips.shape[0], 1, fold, *clips.shape[3:])
    from_next = torch.cat([clips[:, 1:, :fold], pad], dim=1)
    from_previous = torch.cat([pad, clips[:, :-1, fold:2 * fold]], dim=1)
    return torch.cat([from_next, from_previous, clips[:, :, 2 * fold:]], dim=2).view_as(x)


class ShiftThen(nn.Module):
    """Temporal shift, then the wrapped layer (the first convolution of a residual branch)."""

    def __init__(self, layer: nn.Module, num_segments: int, shift_div: int = SHIFT_DIV):
        super().__init__()
        self.layer = layer
        self.num_segments = num_segments
        self.shift_div = shift_div

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(temporal_shift(x, self.num_segments, self.shift_div))


def add_shift_to_torchvision_resnet(net: nn.Module, num_segments: int) -> int:
    """Put a shift at the start of the residual branch of every block of layer1-4; returns how many."""
    count = 0
    for stage in (net.layer1, net.layer2, net.layer3, net.layer4):
        for block in stage:
            block.conv1 = ShiftThen(block.conv1, num_segments)
            count += 1
    return count


@BACKBONE_REGISTRY.register()
def frame_resnet50_tsm(pretrained: bool = True, feature_dim: int = 256, dropout: float = 0.8,
                       dropout_before_fc: bool = False, partial_bn: bool = False, weights: str = "",
                       num_segments: int = 8, **kwargs) -> FrameEncoder:
    net = _torchvision_resnet("resnet50", pretrained, weights)  # weights load before the shift wrappers exist
    add_shift_to_torchvision_resnet(net, num_segments)
    return FrameEncoder(net, 2048, feature_dim, dropout, dropout_before_fc, partial_bn)


class ResidualBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus a (projected) shortcut, then ReLU; shift in front of the branch."""

    def __init__(self, c_in: int, c_out: int, num_segments: int):
        super().__init__()
        conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.branch = nn.Sequential(ShiftThen(conv1, num_segments), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                                    nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out))
        self.shortcut = (nn.Identity() if c_in == c_out else
                         nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.branch(x) + self.shortcut(x))


@BACKBONE_REGISTRY.register()
def frame_smallres_tsm(pretrained: bool = False, feature_dim: int = 256, dropout: float = 0.8,
                       dropout_before_fc: bool = False, partial_bn: bool = False, weights: str = "",
                       num_segments: int = 5, **kwargs) -> FrameEncoder:
    """A strided stem (32 channels), residual blocks 32->64 (then 2x2 max-pool) and 64->32, each shifting
    in time; the (H/4 x W/4) map is pooled to 8x8 and flattened. There are no pretrained weights."""
    if pretrained:
        raise ValueError("frame_smallres_tsm has no pretrained weights: set MODEL.BACKBONE.PRETRAINED False")
    cnn = nn.Sequential(
        nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
        ResidualBlock(32, 64, num_segments), nn.MaxPool2d(2),
        ResidualBlock(64, 32, num_segments), nn.AdaptiveAvgPool2d(8),
        nn.Flatten(),
    )
    if weights:
        cnn.load_state_dict(load_checkpoint(weights))
        print(f'Loaded frame_smallres_tsm weights from "{weights}"')
    return FrameEncoder(cnn, 32 * 8 * 8, feature_dim, dropout, dropout_before_fc, partial_bn)

"""Frame encoders (Section 4.1), registered as Dassl backbones.

Each applies a 2-D CNN to every sampled frame, then a D-dimensional fully-connected layer and Dropout:
(B, M, C, H, W) -> (B, M, D), the paper's F_M. `out_features` is D.

- frame_resnet50 / frame_resnet18: torchvision ResNet up to its last hidden layer (global pooled features),
  ImageNet weights through torchvision's weights API when `pretrained`, or a local file (`weights`).
- frame_smallcnn: a small CNN for CPU-scale runs. It keeps an 8x8 spatial grid instead of global pooling,
  because on the synthetic benchmark the class depends on where the object is in each frame.
"""
import os.path as osp

import torch
import torch.nn as nn
import torchvision

from framework import BACKBONE_REGISTRY, Backbone, load_checkpoint


class FrameEncoder(Backbone):

    def __init__(self, cnn: nn.Module, cnn_dim: int, feature_dim: int = 256, dropout: float = 0.8,
                 dropout_before_fc: bool = False, partial_bn: bool = False):
        super().__init__()
        self.cnn = cnn
        self.fc = nn.Linear(cnn_dim, feature_dim)
        self.dropout = nn.Dropout(dropout)
        self.dropout_before_fc = dropout_before_fc  # official APN code: Dropout then FC; paper: FC then Dropout
        self._out_features = feature_dim
        self.channels_last = False
        # Partial BN (TSN): every BatchNorm but the first keeps its ImageNet statistics and affine weights.
        batch_norms = [m for m in cnn.modules() if isinstance(m, nn.BatchNorm2d)]
        self.frozen_batch_norms = batch_norms[1:] if partial_bn else []
        for bn in self.frozen_batch_norms:
            bn.weight.requires_grad_(False)
            bn.bias.requires_grad_(False)

    def train(self, mode: bool = True) -> "FrameEncoder":
        super().train(mode)
        for bn in self.frozen_batch_norms:
            bn.eval()
        return self

    def use_channels_last(self) -> None:
        self.cnn.to(memory_format=torch.channels_last)
        self.channels_last = True

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        if clips.dim() != 5:
            raise ValueError(f"A frame encoder takes clips (B, M, C, H, W); got shape {tuple(clips.shape)}")
        B, M = clips.shape[:2]
        frames = clips.flatten(0, 1)
        if self.channels_last:
            frames = frames.contiguous(memory_format=torch.channels_last)
        f = self.cnn(frames)
        f = self.fc(self.dropout(f)) if self.dropout_before_fc else self.dropout(self.fc(f))
        return f.view(B, M, -1)


def _torchvision_resnet(arch: str, pretrained: bool, weights: str) -> nn.Module:
    """A torchvision ResNet without its classifier, with local, downloaded or random weights."""
    builder = getattr(torchvision.models, arch)
    if weights:
        if not osp.isfile(weights):
            raise FileNotFoundError(f'MODEL.BACKBONE.WEIGHTS: no file at "{weights}"')
        net = builder(weights=None)
        state = load_checkpoint(weights)
        state = state.get("state_dict", state)
        missing, unexpected = net.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("fc.")]
        if missing:
            raise ValueError(f'"{weights}" is not a torchvision {arch} state dict: {len(missing)} weights missing '
                             f"(e.g. {missing[:3]}); unexpected keys: {unexpected[:3]}")
        print(f'Loaded {arch} weights from "{weights}"')
    elif pretrained:
        imagenet = torchvision.models.get_model_weights(arch).IMAGENET1K_V1
        try:
            net = builder(weights=imagenet)
        except Exception as e:
            raise RuntimeError(
                f"Could not fetch the ImageNet weights of {arch} ({type(e).__name__}: {e}). Download {imagenet.url} "
                "on a machine with internet and set MODEL.BACKBONE.WEIGHTS to the file, or set "
                "MODEL.BACKBONE.PRETRAINED False to train from scratch.") from e
    else:
        net = builder(weights=None)
    net.fc = nn.Identity()
    return net


@BACKBONE_REGISTRY.register()
def frame_resnet50(pretrained: bool = True, feature_dim: int = 256, dropout: float = 0.8,
                   dropout_before_fc: bool = False, partial_bn: bool = False, weights: str = "",
                   **kwargs) -> FrameEncoder:
    return FrameEncoder(_torchvision_resnet("resnet50", pretrained, weights), 2048, feature_dim, dropout,
                        dropout_before_fc, partial_bn)


@BACKBONE_REGISTRY.register()
def frame_resnet18(pretrained: bool = True, feature_dim: int = 256, dropout: float = 0.8,
                   dropout_before_fc: bool = False, partial_bn: bool = False, weights: str = "",
                   **kwargs) -> FrameEncoder:
    return FrameEncoder(_torchvision_resnet("resnet18", pretrained, weights), 512, feature_dim, dropout,
                        dropout_before_fc, partial_bn)


def _conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


@BACKBONE_REGISTRY.register()
def frame_smallcnn(pretrained: bool = False, feature_dim: int = 256, dropout: float = 0.8,
                   dropout_before_fc: bool = False, partial_bn: bool = False, weights: str = "",
                   **kwargs) -> FrameEncoder:
    """Three conv blocks (32-64-32 channels, the first with stride 2, a 2x2 max-pool after the second), whose
    (H/4 x W/4) map is flattened: for 32x32 frames an 8x8 grid. There are no pretrained weights."""
    cnn = nn.Sequential(
        _conv_bn_relu(3, 32, stride=2),
        _conv_bn_relu(32, 64), nn.MaxPool2d(2),
        _conv_bn_relu(64, 32), nn.AdaptiveAvgPool2d(8),
        nn.Flatten(),
    )
    if weights:
        cnn.load_state_dict(load_checkpoint(weights))
        print(f'Loaded frame_smallcnn weights from "{weights}"')
    return FrameEncoder(cnn, 32 * 8 * 8, feature_dim, dropout, dropout_before_fc, partial_bn)

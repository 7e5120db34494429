"""I3D (Carreira & Zisserman 2017): a 3-D ResNet on densely sampled frames, registered as Dassl backbones.

The network is the ResNet-50 I3D of the Non-local paper (Wang et al. 2018), as pytorchvideo's `i3d_r50`:

    stem   conv 5x7x7 stride (1,2,2) -> BN -> ReLU -> max-pool 1x3x3 stride (1,2,2)
    res2   3 bottlenecks (width 64)     temporal kernels of their first conv: 3 3 3
           max-pool 2x1x1 in time (T -> T/2)
    res3   4 bottlenecks (width 128)    3 1 3 1     spatial stride 2 in the first block's 3x3 conv
    res4   6 bottlenecks (width 256)    3 1 3 1 3 1
    res5   3 bottlenecks (width 512)    1 3 1

A bottleneck is conv t x1x1 -> conv 1x3x3 (stride) -> conv 1x1x1 (x4 channels), each with BN, plus a
projected shortcut in the first block of a stage. The backbone averages the last map over space and keeps
time: (B, T, C, H, W) clips -> (B, T/2, 2048) -> FC + Dropout -> (B, T/2, D), so any temporal head applies
(the paper's I3D uses the `tsn` average).

Weights (MODEL.BACKBONE): PRETRAINED inflates torchvision's ImageNet ResNet-50 (each 2-D kernel repeated over
its t frames and divided by t). WEIGHTS reads a local file, either a torchvision ResNet-50 state dict
(inflated the same way) or a Kinetics-400 checkpoint in pytorchvideo's `i3d_r50` layout (`blocks.N...`,
optionally under `model_state`); a key that maps nowhere is an error that lists it.

`i3d_resnet_small` is the same code with one block per stage, a quarter of the width and less spatial
downsampling, for CPU runs; it keeps a 4x4 grid instead of the global average (as frame_smallcnn keeps 8x8).
"""
import os.path as osp
import re
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torchvision

from framework import BACKBONE_REGISTRY, Backbone, load_checkpoint
from models.backbones.frame_encoders import PartialBatchNorm, freeze_all_but_first

# (blocks, bottleneck width, first block's spatial stride, temporal kernel of each block's first conv)
Stage = Tuple[int, int, int, Sequence[int]]
R50_STAGES: List[Stage] = [(3, 64, 1, (3, 3, 3)), (4, 128, 2, (3, 1, 3, 1)), (6, 256, 2, (3, 1, 3, 1, 3, 1)),
                           (3, 512, 2, (1, 3, 1))]
SMALL_STAGES: List[Stage] = [(1, 16, 1, (3, )), (1, 32, 2, (3, )), (1, 64, 1, (3, )), (1, 64, 1, (1, ))]
EXPANSION = 4

# A hook that may add a module after a residual block: (stage 1..4, block index, channels) -> module or None.
ContextFactory = Callable[[int, int, int], Optional[nn.Module]]


class Bottleneck3d(nn.Module):

    def __init__(self, c_in: int, width: int, stride: int, t_kernel: int, context: Optional[nn.Module] = None):
        super().__init__()
        c_out = width * EXPANSION
        self.conv1 = nn.Conv3d(c_in, width, (t_kernel, 1, 1), padding=(t_kernel // 2, 0, 0), bias=False)
        self.bn1 = nn.BatchNorm3d(width)
        self.conv2 = nn.Conv3d(width, width, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False)
        self.bn2 = nn.BatchNorm3d(width)
        self.conv3 = nn.Conv3d(width, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv3d(c_in, c_out, 1, stride=(1, stride, stride), bias=False),
                                            nn.BatchNorm3d(c_out))
        self.context = context  # e.g. a non-local block, applied to the block's output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        y = self.relu(y + (x if self.downsample is None else self.downsample(x)))
        return y if self.context is None else self.context(y)


class ResNet3d(nn.Module):
    """Stem, res2, temporal pool, res3-res5; returns the last feature map (B, C, T/2, h, w)."""

    def __init__(self, stages: Sequence[Stage] = R50_STAGES, stem_width: int = 64, stem_stride: int = 2,
                 context: Optional[ContextFactory] = None):
        super().__init__()
        self.conv1 = nn.Conv3d(3, stem_width, (5, 7, 7), stride=(1, stem_stride, stem_stride), padding=(2, 3, 3),
                               bias=False)
        self.bn1 = nn.BatchNorm3d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        self.temporal_pool = nn.MaxPool3d((2, 1, 1), stride=(2, 1, 1))
        c_in = stem_width
        for s, (blocks, width, stride, t_kernels) in enumerate(stages, start=1):
            if len(t_kernels) != blocks:
                raise ValueError(f"Stage {s}: {blocks} blocks but {len(t_kernels)} temporal kernels")
            layer = []
            for i in range(blocks):
                extra = context(s, i, width * EXPANSION) if context is not None else None
                layer.append(Bottleneck3d(c_in, width, stride if i == 0 else 1, t_kernels[i], extra))
                c_in = width * EXPANSION
            setattr(self, f"layer{s}", nn.Sequential(*layer))
        self.out_channels = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.temporal_pool(self.layer1(x))
        return self.layer4(self.layer3(self.layer2(x)))


# ---------------------------------------------------------------------------------------------- weights
# pytorchvideo i3d_r50: blocks.0 stem, blocks.1/3/4/5 res2..res5 (blocks.2 is the parameter-free pool),
# blocks.6 the Kinetics classifier (not part of a backbone).
_PV_STAGE = {"1": "layer1", "3": "layer2", "4": "layer3", "5": "layer4"}
_PV_BLOCK_PARTS = {"branch1_conv": "downsample.0", "branch1_norm": "downsample.1", "branch2.conv_a": "conv1",
                   "branch2.norm_a": "bn1", "branch2.conv_b": "conv2", "branch2.norm_b": "bn2",
                   "branch2.conv_c": "conv3", "branch2.norm_c": "bn3"}
_PV_STEM = {"blocks.0.conv.": "conv1.", "blocks.0.norm.": "bn1."}
_PV_BLOCK_KEY = re.compile(r"blocks\.(\d)\.res_blocks\.(\d+)\.(branch1_conv|branch1_norm|branch2\.\w+?)\.(\w+)$")


def _pytorchvideo_key(key: str) -> Optional[str]:
    """Our parameter name for a key of pytorchvideo's i3d_r50, or None if it has none."""
    for prefix, ours in _PV_STEM.items():
        if key.startswith(prefix):
            return ours + key[len(prefix):]
    match = _PV_BLOCK_KEY.match(key)
    if match and match.group(1) in _PV_STAGE and match.group(3) in _PV_BLOCK_PARTS:
        return f"{_PV_STAGE[match.group(1)]}.{match.group(2)}.{_PV_BLOCK_PARTS[match.group(3)]}.{match.group(4)}"
    return None


def _unwrap(state: dict) -> dict:
    for key in ("model_state", "state_dict", "model"):
        if isinstance(state.get(key), dict):
            return state[key]
    return state


def _inflate(state_2d: Dict[str, torch.Tensor], target: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """torchvision ResNet weights -> our 3-D names: a k x k kernel becomes t x k x k, repeated and divided by t."""
    out = {}
    for key, value in state_2d.items():
        if key.startswith("fc.") or key not in target:
            continue
        if value.dim() == 4:
            t = target[key].shape[2]
            value = value.unsqueeze(2).repeat(1, 1, t, 1, 1) / t
        out[key] = value
    return out


def load_resnet3d_weights(net: ResNet3d, state: dict, source: str, new_ok: Callable[[str], bool]) -> None:
    """Load a pytorchvideo i3d_r50 (Kinetics) or torchvision ResNet-50 (ImageNet, inflated) state dict.

    Raises ValueError listing checkpoint keys that map to nothing here, or our weights the file lacks (except
    those `new_ok` accepts, e.g. non-local blocks the checkpoint predates)."""
    state = _unwrap(state)
    target = net.state_dict()
    if any(k.startswith("blocks.") for k in state):
        mapped, unmapped = {}, []
        for key, value in state.items():
            ours = _pytorchvideo_key(key)
            if ours is None:
                if not key.startswith("blocks.6."):  # the Kinetics classifier is dropped on purpose
                    unmapped.append(key)
            else:
                mapped[ours] = value
        layout = "pytorchvideo i3d_r50"
    elif "conv1.weight" in state and state["conv1.weight"].dim() == 4:
        mapped, unmapped = _inflate(state, target), [k for k in state if not k.startswith("fc.") and k not in target]
        layout = "torchvision ResNet (inflated)"
    else:
        raise ValueError(f'{source}: neither a pytorchvideo i3d_r50 checkpoint (keys "blocks.N...") nor a '
                         f'torchvision ResNet-50 state dict (keys "conv1.weight", "layer1..."); first keys: '
                         f"{list(state)[:5]}")
    missing = [k for k in target if k not in mapped and not k.endswith("num_batches_tracked") and not new_ok(k)]
    wrong_shape = [f"{k} {tuple(v.shape)} vs {tuple(target[k].shape)}" for k, v in mapped.items()
                   if k in target and v.shape != target[k].shape]
    unmapped += [k for k in mapped if k not in target]
    if unmapped or missing or wrong_shape:
        raise ValueError(f"{source} ({layout}) does not fit this 3-D ResNet: {len(unmapped)} unmapped checkpoint "
                         f"keys {unmapped[:20]}; {len(missing)} weights missing {missing[:20]}; "
                         f"{len(wrong_shape)} shape mismatches {wrong_shape[:10]}")
    net.load_state_dict({k: v for k, v in mapped.items() if k in target}, strict=False)
    print(f"Loaded {len(mapped)} tensors into the 3-D ResNet from {source} ({layout})")


def imagenet_resnet50_state(weights: str) -> Tuple[dict, str]:
    """The 2-D ResNet-50 ImageNet weights to inflate: torchvision's download (needs internet)."""
    imagenet = torchvision.models.ResNet50_Weights.IMAGENET1K_V1
    try:
        return imagenet.get_state_dict(progress=False), f"torchvision {imagenet}"
    except Exception as e:
        raise RuntimeError(
            f"Could not fetch the ImageNet weights of resnet50 to inflate ({type(e).__name__}: {e}). Download "
            f"{imagenet.url} on a machine with internet and set MODEL.BACKBONE.WEIGHTS to the file (or to a "
            "Kinetics-400 i3d_r50 checkpoint), or set MODEL.BACKBONE.PRETRAINED False.") from e


# ---------------------------------------------------------------------------------------------- backbone
class ClipEncoder3d(PartialBatchNorm, Backbone):
    """(B, T, C, H, W) clips -> 3-D ResNet -> pooled over space -> FC + Dropout -> (B, T', D)."""

    def __init__(self, net: ResNet3d, feature_dim: int = 256, dropout: float = 0.5, dropout_before_fc: bool = False,
                 partial_bn: bool = False, spatial_grid: int = 1):
        super().__init__()
        self.net = net
        self.pool = nn.AdaptiveAvgPool3d((None, spatial_grid, spatial_grid))
        self.fc = nn.Linear(net.out_channels * spatial_grid ** 2, feature_dim)
        self.dropout = nn.Dropout(dropout)
        self.dropout_before_fc = dropout_before_fc
        self._out_features = feature_dim
        self.channels_last = False
        # Partial BN as for the 2-D encoders: all BatchNorms but the first keep their pretrained statistics.
        # A non-local block's BN starts at zero scale and must learn, so blocks added by a context hook train.
        self.frozen_batch_norms = freeze_all_but_first(
            [m for name, m in net.named_modules() if isinstance(m, nn.BatchNorm3d) and ".context." not in name],
            partial_bn)

    def use_channels_last(self) -> None:
        self.net.to(memory_format=torch.channels_last_3d)
        self.channels_last = True

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        if clips.dim() != 5:
            raise ValueError(f"A 3-D encoder takes clips (B, T, C, H, W); got shape {tuple(clips.shape)}")
        x = clips.transpose(1, 2)  # (B, C, T, H, W)
        x = x.contiguous(memory_format=torch.channels_last_3d) if self.channels_last else x.contiguous()
        f = self.pool(self.net(x))  # (B, C', T', g, g)
        f = f.permute(0, 2, 1, 3, 4).flatten(2)  # (B, T', C' g g)
        return self.fc(self.dropout(f)) if self.dropout_before_fc else self.dropout(self.fc(f))


def build_clip_encoder(net: ResNet3d, name: str, pretrained: bool, weights: str, feature_dim: int, dropout: float,
                       dropout_before_fc: bool, partial_bn: bool, spatial_grid: int,
                       new_ok: Callable[[str], bool] = lambda key: False) -> ClipEncoder3d:
    """Load the requested weights into `net` (see the module docstring), then wrap it."""
    if weights:
        if not osp.isfile(weights):
            raise FileNotFoundError(f'MODEL.BACKBONE.WEIGHTS: no file at "{weights}"')
        load_resnet3d_weights(net, load_checkpoint(weights), f'"{weights}"', new_ok)
    elif pretrained:
        if name.endswith("_small"):
            raise ValueError(f"{name} has no pretrained weights: set MODEL.BACKBONE.PRETRAINED False")
        state, source = imagenet_resnet50_state(weights)
        load_resnet3d_weights(net, state, source, new_ok)
    return ClipEncoder3d(net, feature_dim, dropout, dropout_before_fc, partial_bn, spatial_grid)


@BACKBONE_REGISTRY.register()
def i3d_resnet50(pretrained: bool = True, feature_dim: int = 256, dropout: float = 0.5,
                 dropout_before_fc: bool = False, partial_bn: bool = False, weights: str = "",
                 **kwargs) -> ClipEncoder3d:
    return build_clip_encoder(ResNet3d(R50_STAGES), "i3d_resnet50", pretrained, weights, feature_dim, dropout,
                              dropout_before_fc, partial_bn, spatial_grid=1)


@BACKBONE_REGISTRY.register()
def i3d_resnet_small(pretrained: bool = False, feature_dim: int = 256, dropout: float = 0.5,
                     dropout_before_fc: bool = False, partial_bn: bool = False, weights: str = "",
                     **kwargs) -> ClipEncoder3d:
    """One block per stage, stem 16 channels, no stem stride: 32x32 frames end as a 4x4 grid of 256 channels."""
    net = ResNet3d(SMALL_STAGES, stem_width=16)
    return build_clip_encoder(net, "i3d_resnet_small", pretrained, weights, feature_dim, dropout,
                              dropout_before_fc, partial_bn, spatial_grid=4)

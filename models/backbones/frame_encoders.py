"""Frame encoders (Section 4.1), registered as Dassl backbones.

Each applies a 2-D CNN to every sampled frame, then a D-dimensional fully-connected layer and Dropout:
(B, M, C, H, W) -> (B, M, D), the paper's F_M. `out_features` is D.

- frame_resnet50 / frame_resnet18: torchvision ResNet up to its last hidden layer (global pooled features),
  ImageNet weights through torchvision's weights API when `pretrained`, or a local file (`weights`).
- frame_smallcnn: a small CNN for CPU-scale runs. It keeps an 8x8 spatial grid instead of global pooling,
  because on the synthetic benchmark the class depends on where the object is in each frame.

`feature_maps(clips)` gives the CNN's last spatial map instead, (B, M, C', h, w), before its pooling and the FC
layer, for heads that read maps (STDN, models/heads/stdn.py): ResNet layer4 (C' = 2048 for ResNet-50, 7x7 at
224 px), frame_smallcnn its 8x8 grid (C' = 32). `map_channels` is C'.

Any frame encoder can mix feature statistics with MixStyle (Zhou et al., ICLR 2021), MODEL.BACKBONE.MIXSTYLE:
after each named CNN stage, in training, a frame's channel-wise mean and standard deviation (over H x W) are
replaced by a convex mix with those of a partner clip. Mixing is consistent within a clip: every frame of clip
b takes the same partner clip and the same mixing weight, frame t mixing with the partner's frame t, so the
"style" of a clip changes as a whole and its frames do not flicker between styles.
"""
import os.path as osp
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
import torchvision

from defaults import CN, LogUniform, Uniform, config_defaults, search_space
from framework import BACKBONE_REGISTRY, Backbone, load_checkpoint


@config_defaults
def _mixstyle_defaults(cfg) -> None:
    cfg.MODEL.BACKBONE.MIXSTYLE = CN()  # MixStyle in the frame encoder, for any trainer
    # CNN stages after which statistics are mixed; [] = off. ResNet: layer1..layer4 (the paper: layer1-3);
    # frame_smallcnn: conv1, conv2, conv3; any name of the CNN's named_modules() works too.
    cfg.MODEL.BACKBONE.MIXSTYLE.LAYERS = []
    cfg.MODEL.BACKBONE.MIXSTYLE.P = 0.5  # probability that a training batch is mixed (at each stage)
    cfg.MODEL.BACKBONE.MIXSTYLE.ALPHA = 0.1  # mixing weight ~ Beta(ALPHA, ALPHA), one per clip
    # random: the partner clip comes from the shuffled batch; crossdomain: a clip in the first half of the batch
    # takes its partner from the second half and vice versa, which pairs different domains when batches are two
    # domain blocks (DATALOADER.TRAIN_X.SAMPLER RandomDomainSampler with TRAIN_X.N_DOMAIN 2).
    cfg.MODEL.BACKBONE.MIXSTYLE.MIX = "random"


# Runs with MixStyle on (any trainer): how often a batch is mixed, and how far (Beta(ALPHA, ALPHA); the paper's
# 0.1 mixes little, 1 gives a uniform weight). LAYERS names the variant, so it is not drawn.
search_space("MODEL.BACKBONE.MIXSTYLE.LAYERS!=[]", {"MODEL.BACKBONE.MIXSTYLE.P": Uniform(0.1, 0.9),
                                                     "MODEL.BACKBONE.MIXSTYLE.ALPHA": LogUniform(0.03, 1.0)})


class ClipMixStyle(nn.Module):
    """MixStyle on frame feature maps (B*M, C, H, W) of M-frame clips, with one partner and weight per clip."""

    def __init__(self, p: float = 0.5, alpha: float = 0.1, mix: str = "random", eps: float = 1e-6):
        super().__init__()
        if mix not in ("random", "crossdomain"):
            raise ValueError(f'MODEL.BACKBONE.MIXSTYLE.MIX must be "random" or "crossdomain", got "{mix}"')
        self.p, self.alpha, self.mix, self.eps = p, alpha, mix, eps
        self.clip_length = 1  # M, set by the frame encoder before each forward pass

    def extra_repr(self) -> str:
        return f"p={self.p}, alpha={self.alpha}, mix={self.mix}"

    def partners(self, num_clips: int, device) -> torch.Tensor:
        """The clip whose statistics each clip borrows."""
        if self.mix == "random":
            return torch.randperm(num_clips, device=device)
        half = num_clips // 2
        if half == 0:
            return torch.arange(num_clips, device=device)
        first = torch.arange(half, device=device)
        second = torch.arange(half, num_clips, device=device)
        return torch.cat([second[torch.randint(len(second), (half,), device=device)],
                          first[torch.randint(half, (num_clips - half,), device=device)]])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or torch.rand(1).item() > self.p:
            return x
        num_clips = x.shape[0] // self.clip_length
        shape = (num_clips, self.clip_length, x.shape[1], 1, 1)
        # The statistics are treated as constants, as in the paper: gradients flow through the normalised map.
        mu = x.mean(dim=(2, 3), keepdim=True).detach()
        sigma = (x.var(dim=(2, 3), keepdim=True) + self.eps).sqrt().detach()
        normalised = (x - mu) / sigma
        lam = torch.distributions.Beta(self.alpha, self.alpha).sample((num_clips, 1, 1, 1, 1)).to(x)
        partner = self.partners(num_clips, x.device)
        mu, sigma = mu.view(shape), sigma.view(shape)
        mu_mix = lam * mu + (1 - lam) * mu[partner]
        sigma_mix = lam * sigma + (1 - lam) * sigma[partner]
        return normalised * sigma_mix.flatten(0, 1) + mu_mix.flatten(0, 1)


class FrozenStatistics:
    """A BatchNorm layer frozen by partial BN: y = x * scale + shift with its running statistics and affine
    weights, as eval-mode BatchNorm computes it, but as one addcmul, for which autograd saves only the (C,)
    scale. Eval-mode BatchNorm saves its whole input for a weight gradient that a frozen layer never takes;
    leaving it out halves the activations a ResNet-50 keeps for backward (docs/performance.md)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        shape = (1, -1) + (1, ) * (x.dim() - 2)
        return torch.addcmul(shift.to(x.dtype).view(shape), x, scale.to(x.dtype).view(shape))


class FrozenBatchNorm2d(FrozenStatistics, nn.BatchNorm2d):
    pass


class FrozenBatchNorm3d(FrozenStatistics, nn.BatchNorm3d):
    pass


_FROZEN_CLASSES = {nn.BatchNorm2d: FrozenBatchNorm2d, nn.BatchNorm3d: FrozenBatchNorm3d}


def freeze_all_but_first(batch_norms: Sequence[nn.Module], partial_bn: bool) -> list:
    """Partial BN (TSN): every BatchNorm but the first keeps its pretrained statistics and affine weights.
    Returns the frozen layers; `PartialBatchNorm.train` keeps them in eval mode. A frozen layer changes class
    in place (FrozenStatistics: same parameters, buffers and state_dict keys, so checkpoints are unchanged)."""
    frozen = list(batch_norms[1:]) if partial_bn else []
    for bn in frozen:
        bn.weight.requires_grad_(False)
        bn.bias.requires_grad_(False)
        bn.__class__ = _FROZEN_CLASSES.get(type(bn), type(bn))
    return frozen


class PartialBatchNorm:
    """Mixin for an encoder with `frozen_batch_norms`: they stay in eval mode whatever mode the model is in."""
    frozen_batch_norms: list

    def train(self, mode: bool = True):
        super().train(mode)
        for bn in self.frozen_batch_norms:
            bn.eval()
        return self


class FrameEncoder(PartialBatchNorm, Backbone):

    def __init__(self, cnn: nn.Module, cnn_dim: int, feature_dim: int = 256, dropout: float = 0.8,
                 dropout_before_fc: bool = False, partial_bn: bool = False,
                 stage_names: Optional[Dict[str, str]] = None, map_stage: str = "", map_channels: int = 0):
        super().__init__()
        self.cnn = cnn
        self.map_stage = map_stage  # the top-level child of cnn whose output is the last spatial map
        self.map_channels = map_channels
        self.stage_names = dict(stage_names or {})  # MixStyle layer name -> module name inside cnn
        self.mixstyle = nn.ModuleList()
        self.fc = nn.Linear(cnn_dim, feature_dim)
        self.dropout = nn.Dropout(dropout)
        self.dropout_before_fc = dropout_before_fc  # official APN code: Dropout then FC; paper: FC then Dropout
        self._out_features = feature_dim
        self.channels_last = False
        self.frozen_batch_norms = freeze_all_but_first(
            [m for m in cnn.modules() if isinstance(m, nn.BatchNorm2d)], partial_bn)

    def add_mixstyle(self, layers: Sequence[str], p: float = 0.5, alpha: float = 0.1, mix: str = "random") -> None:
        """Mix statistics after each named CNN stage in training (forward hooks: the state dict is unchanged)."""
        modules = dict(self.cnn.named_modules())
        for layer in layers:
            name = self.stage_names.get(layer, layer)
            if not name or name not in modules:
                known = sorted(self.stage_names) or [n for n in modules if n and "." not in n]
                raise ValueError(f'MODEL.BACKBONE.MIXSTYLE.LAYERS: this frame encoder has no stage "{layer}"; '
                                 f"use some of {known}")
            mixstyle = ClipMixStyle(p, alpha, mix)
            self.mixstyle.append(mixstyle)
            modules[name].register_forward_hook(_apply_after(mixstyle))

    def use_channels_last(self) -> None:
        self.cnn.to(memory_format=torch.channels_last)
        self.channels_last = True

    def flatten_frames(self, clips: torch.Tensor) -> torch.Tensor:
        """Clips (B, M, C, H, W) -> frames (B*M, C, H, W), with MixStyle told the clip length M."""
        if clips.dim() != 5:
            raise ValueError(f"A frame encoder takes clips (B, M, C, H, W); got shape {tuple(clips.shape)}")
        for mixstyle in self.mixstyle:
            mixstyle.clip_length = clips.shape[1]
        frames = clips.flatten(0, 1)
        if self.channels_last:
            frames = frames.contiguous(memory_format=torch.channels_last)
        return frames

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        f = self.cnn(self.flatten_frames(clips))
        f = self.fc(self.dropout(f)) if self.dropout_before_fc else self.dropout(self.fc(f))
        return f.view(*clips.shape[:2], -1)

    def feature_maps(self, clips: torch.Tensor) -> torch.Tensor:
        """Clips (B, M, C, H, W) -> the CNN's last spatial map of every frame, (B, M, C', h, w). The CNN's
        top-level children run in order up to `map_stage` (ResNet's and a Sequential's forward is that order)."""
        if not self.map_stage:
            raise ValueError(f"{type(self.cnn).__name__} frame encoder names no spatial map stage; a head that reads "
                             "feature maps needs frame_resnet50, frame_resnet18 or frame_smallcnn")
        x = self.flatten_frames(clips)
        for name, stage in self.cnn.named_children():
            x = stage(x)
            if name == self.map_stage:
                return x.unflatten(0, clips.shape[:2])
        raise ValueError(f'The frame CNN has no top-level stage "{self.map_stage}"')


def _apply_after(module: nn.Module):
    def hook(_stage, _inputs, output):
        return module(output)
    return hook


RESNET_STAGES = {f"layer{i}": f"layer{i}" for i in range(1, 5)}


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
                        dropout_before_fc, partial_bn, stage_names=RESNET_STAGES, map_stage="layer4", map_channels=2048)


@BACKBONE_REGISTRY.register()
def frame_resnet18(pretrained: bool = True, feature_dim: int = 256, dropout: float = 0.8,
                   dropout_before_fc: bool = False, partial_bn: bool = False, weights: str = "",
                   **kwargs) -> FrameEncoder:
    return FrameEncoder(_torchvision_resnet("resnet18", pretrained, weights), 512, feature_dim, dropout,
                        dropout_before_fc, partial_bn, stage_names=RESNET_STAGES, map_stage="layer4", map_channels=512)


def _conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


@BACKBONE_REGISTRY.register()
def frame_smallcnn(pretrained: bool = False, feature_dim: int = 256, dropout: float = 0.8,
                   dropout_before_fc: bool = False, partial_bn: bool = False, weights: str = "",
                   **kwargs) -> FrameEncoder:
    """Three conv blocks (32-64-32 channels, the first with stride 2 and a 2x2 max-pool after it), whose
    (H/4 x W/4) map is flattened: for 32x32 frames an 8x8 grid. There are no pretrained weights.
    The pool comes before the widest block so that it runs at H/4 (2.3x fewer multiply-adds than at H/2, with
    the same accuracy on the synthetic benchmark: docs/performance.md, "Where the main job's time went")."""
    cnn = nn.Sequential(
        _conv_bn_relu(3, 32, stride=2), nn.MaxPool2d(2),
        _conv_bn_relu(32, 64),
        _conv_bn_relu(64, 32), nn.AdaptiveAvgPool2d(8),
        nn.Flatten(),
    )
    if weights:
        cnn.load_state_dict(load_checkpoint(weights))
        print(f'Loaded frame_smallcnn weights from "{weights}"')
    return FrameEncoder(cnn, 32 * 8 * 8, feature_dim, dropout, dropout_before_fc, partial_bn,
                        stage_names={"conv1": "0", "conv2": "2", "conv3": "3"}, map_stage="4", map_channels=32)

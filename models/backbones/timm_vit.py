"""Vision Transformer frame encoders built by timm, registered as backbones beside the ResNet ones.

Each runs a ViT on every sampled frame and keeps its pooled output (the class token after the final norm), then
the same D-dimensional FC + Dropout as frame_encoders.py: (B, M, C, H, W) -> (B, M, D).

- frame_vit_b16: ViT-B/16 (timm's vit_base_patch16_224.augreg2_in21k_ft_in1k: ImageNet-21k, tuned on 1k).
- frame_vit_b16_clip: the image tower of OpenAI's CLIP ViT-B/16 (timm's vit_base_patch16_clip_224.openai).
- frame_vit_tiny: a ViT at CPU scale for 32x32 frames (4x4 patches, width 64, 4 blocks, 2 heads, MLP width
  128), random init. It has no class token: the FC reads its whole 8x8 token grid, as frame_smallcnn reads its
  8x8 map, since on the synthetic benchmark the class depends on where the object is in each frame. It has no
  published weights, so MODEL.BACKBONE.PRETRAINED is ignored, as for frame_smallcnn.

Weights: MODEL.BACKBONE.WEIGHTS, a local state dict in any layout timm's ViT loader converts (timm's own
model.safetensors / pytorch_model.bin, OpenAI's CLIP file); else PRETRAINED True fetches the hub checkpoint
named above (needs internet). The ViT-B encoders accept any frame size (timm's dynamic_img_size resamples the
position embeddings), so INPUT.SIZE need not be 224; frame_vit_tiny takes 32x32 frames.

Normalisation: the clip transform normalises with INPUT.PIXEL_MEAN/STD (ImageNet's by default), but the ViT-B
checkpoints expect their own statistics (timm's pretrained config: 0.5/0.5 for ViT-B/16, CLIP's for CLIP). A
per-channel affine map is exact, so the encoder maps its input from the transform's normalisation to the
checkpoint's before the patch embedding and logs it; ADA's step size and the figures keep one input space
across encoders. Setting INPUT.PIXEL_MEAN/STD to the checkpoint's values makes the map the identity.

Fine-tuning (MODEL.VIT): the last N blocks or none train (TRAIN_LAST_BLOCKS), layer-wise learning-rate decay
(LR_DECAY, offered to the trainer's optimiser by `optimizer_groups`). TRAIN.BF16 autocasts the ViT as any
model. TRAIN.CHANNELS_LAST does nothing here (see `use_channels_last`); MODEL.BACKBONE.PARTIAL_BN and
MIXSTYLE are CNN choices and are refused with what to use instead.
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn

from defaults import CN, config_defaults
from framework import BACKBONE_REGISTRY
from models.backbones.frame_encoders import FrameEncoder
from models.video_net import reads_config
from video.transforms import IMAGENET_MEAN, IMAGENET_STD

# encoder -> (timm architecture, pretrained tag on the hub, architecture overrides)
VIT_ARCHS = {
    "frame_vit_b16": ("vit_base_patch16_224", "augreg2_in21k_ft_in1k", {}),
    "frame_vit_b16_clip": ("vit_base_patch16_clip_224", "openai", {}),
    # No class token and no pooling: the encoder reads the whole token grid (see ViTFrameEncoder).
    "frame_vit_tiny": ("vit_tiny_patch16_224", "", dict(img_size=32, patch_size=4, embed_dim=64, depth=4,
                                                         num_heads=2, mlp_ratio=2.0, class_token=False,
                                                         global_pool="", dynamic_img_size=False)),
}
INPUT_NORMS = ("checkpoint", "transform")
# Names before the first block: the embeddings, layer 0 of layer-wise decay.
EMBEDDING_PARAMS = ("patch_embed.", "cls_token", "reg_token", "pos_embed", "norm_pre.")


@config_defaults
def _vit_defaults(cfg) -> None:
    cfg.MODEL.VIT = CN()  # fine-tuning of the ViT frame encoders (frame_vit_*, models/backbones/timm_vit.py)
    # Transformer blocks that train, counted from the last, with the final norm: -1 all (full fine-tuning);
    # 0 none, a frozen encoder (only the FC projection, the temporal head and the classifier train); N the last N.
    # The patch and position embeddings train only with -1.
    cfg.MODEL.VIT.TRAIN_LAST_BLOCKS = -1
    # Layer-wise learning-rate decay: with L blocks, block i (1..L) learns at OPTIM.LR * LR_DECAY^(L + 1 - i),
    # the embeddings at OPTIM.LR * LR_DECAY^(L + 1); the final norm, FC projection, head and classifier at
    # OPTIM.LR. 1.0 = off (one learning rate); 0.65-0.75 is usual for ViT-B fine-tuning.
    cfg.MODEL.VIT.LR_DECAY = 1.0
    # The input of frame_vit_b16 / _clip with a checkpoint (PRETRAINED or WEIGHTS). checkpoint: mapped from
    # INPUT.PIXEL_MEAN/STD to the statistics of the published checkpoint (timm's pretrained config);
    # transform: as the clip transform normalises it (for WEIGHTS trained here with INPUT.PIXEL_MEAN/STD).
    cfg.MODEL.VIT.INPUT_NORM = "checkpoint"


def _timm():
    try:
        import timm
    except ImportError as e:
        raise ImportError("The ViT frame encoders (frame_vit_*) are built by timm, which is not installed: "
                          "pip install -r requirements.txt") from e
    return timm


class ViTFrameEncoder(FrameEncoder):
    """A timm ViT as a frame encoder: FrameEncoder's FC + Dropout on its pooled output (or, for a ViT built
    without pooling, on its whole token grid, flattened), an input map to the checkpoint's normalisation, frozen
    leading blocks and layer-wise learning rates."""

    def __init__(self, vit: nn.Module, feature_dim: int, dropout: float, dropout_before_fc: bool,
                 train_last_blocks: int = -1, lr_decay: float = 1.0):
        # The grid keeps where things are in the frame, as frame_smallcnn's 8x8 map does: a from-scratch ViT
        # whose class token must learn that did not leave chance level in 4 epochs of the synthetic benchmark.
        self.reads_grid = not vit.global_pool
        width = vit.patch_embed.num_patches * vit.num_features if self.reads_grid else vit.num_features
        super().__init__(vit, width, feature_dim, dropout, dropout_before_fc)
        depth = len(vit.blocks)
        if not -1 <= train_last_blocks <= depth:
            raise ValueError(f"MODEL.VIT.TRAIN_LAST_BLOCKS must be -1 (all), 0 (frozen) or 1..{depth} (this ViT "
                             f"has {depth} blocks), got {train_last_blocks}")
        if not 0 < lr_decay <= 1:
            raise ValueError(f"MODEL.VIT.LR_DECAY must be in (0, 1] (1 = off), got {lr_decay}")
        self.lr_decay = lr_decay
        if train_last_blocks >= 0:
            for name, p in vit.named_parameters():
                p.requires_grad_(train_last_blocks > 0 and self.layer_of(name) > depth - train_last_blocks)
        # (1, 1, C, 1, 1) scale and shift from the transform's normalisation to the checkpoint's (None: as is);
        # not in the state dict, since they follow the run's INPUT.PIXEL_MEAN/STD, not the weights
        self.register_buffer("input_scale", None, persistent=False)
        self.register_buffer("input_shift", None, persistent=False)

    @property
    def vit(self) -> nn.Module:
        return self.cnn

    def layer_of(self, vit_param: str) -> int:
        """Layer-wise decay's layer of a ViT parameter: 0 the embeddings, i for block i (1..L), L + 1 the rest."""
        if vit_param.startswith(EMBEDDING_PARAMS):
            return 0
        if vit_param.startswith("blocks."):
            return int(vit_param.split(".")[1]) + 1
        return len(self.vit.blocks) + 1

    def normalise_as(self, pipeline_mean: Sequence[float], pipeline_std: Sequence[float],
                     mean: Sequence[float], std: Sequence[float]) -> bool:
        """Map input normalised with the pipeline's mean/std to mean/std: x * std_in / std + (mean_in - mean) /
        std. Returns False when they are the same (then nothing is done)."""
        to_tensor = lambda v: torch.tensor([float(c) for c in v]).view(1, 1, -1, 1, 1)  # noqa: E731
        scale = to_tensor(pipeline_std) / to_tensor(std)
        shift = (to_tensor(pipeline_mean) - to_tensor(mean)) / to_tensor(std)
        if torch.allclose(scale, torch.ones_like(scale)) and torch.allclose(shift, torch.zeros_like(shift)):
            return False
        self.input_scale, self.input_shift = scale, shift
        return True

    def add_mixstyle(self, layers: Sequence[str], p: float = 0.5, alpha: float = 0.1, mix: str = "random") -> None:
        raise ValueError("MODEL.BACKBONE.MIXSTYLE mixes a CNN's channel statistics over its feature maps; a ViT "
                         "has token sequences, not maps. Leave MODEL.BACKBONE.MIXSTYLE.LAYERS empty with frame_vit_*.")

    def use_channels_last(self) -> None:
        """channels_last speeds up convolutions; a ViT's one convolution is its patch embedding, a strided conv
        that reads each pixel once, and its blocks multiply (tokens, width) matrices, which have no memory
        format. So nothing changes (the ResNet encoders do switch)."""
        print("TRAIN.CHANNELS_LAST: no effect on a ViT frame encoder (its blocks work on token matrices); "
              "the frames stay contiguous")

    def optimizer_groups(self, lr: float) -> Optional[List[dict]]:
        """Parameter groups for layer-wise learning-rate decay (MODEL.VIT.LR_DECAY), trainable parameters
        only; None when it is off. The FC projection learns at lr."""
        if self.lr_decay == 1.0:
            return None
        top = len(self.vit.blocks) + 1
        groups: Dict[int, dict] = {}
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            layer = self.layer_of(name[len("cnn."):]) if name.startswith("cnn.") else top
            group = groups.setdefault(layer, {"params": [], "lr": lr * self.lr_decay ** (top - layer),
                                              "name": f"vit_layer{layer}"})
            group["params"].append(p)
        return [groups[layer] for layer in sorted(groups)]

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        if clips.dim() != 5:
            raise ValueError(f"A frame encoder takes clips (B, M, C, H, W); got shape {tuple(clips.shape)}")
        B, M = clips.shape[:2]
        if self.input_scale is not None:
            clips = clips * self.input_scale + self.input_shift
        f = self.vit(clips.flatten(0, 1)).flatten(1)  # (B*M, width) pooled, or (B*M, tokens * width) grid
        f = self.fc(self.dropout(f)) if self.dropout_before_fc else self.dropout(self.fc(f))
        return f.view(B, M, -1)


def _check_weights_file(weights: str, name: str, hub_name: str) -> None:
    if osp.isfile(weights):
        return
    if hub_name:
        files = f'model.safetensors of the Hugging Face repository "timm/{hub_name}"'
        if "clip" in hub_name:
            files += ", or OpenAI's own ViT-B-16.pt"
        fix = f"Download the weights of {hub_name} ({files}) on a machine with internet and set " \
              "MODEL.BACKBONE.WEIGHTS to the file"
    else:
        fix = "Set MODEL.BACKBONE.WEIGHTS to a state dict of this ViT (e.g. one saved by torch.save)"
    raise FileNotFoundError(f'MODEL.BACKBONE.WEIGHTS: no file at "{weights}" (frame encoder {name}). {fix}, or set '
                            'MODEL.BACKBONE.WEIGHTS "" and MODEL.BACKBONE.PRETRAINED False to start from random '
                            "weights.")


def _load_local_weights(vit: nn.Module, weights: str, name: str, hub_name: str) -> None:
    """A ViT state dict from a file into `vit`, through timm's loader (safetensors or torch.save files, wrapped
    or not) and its ViT checkpoint converter (e.g. OpenAI's CLIP layout); every weight must be found."""
    from timm.models import load_state_dict
    from timm.models.vision_transformer import checkpoint_filter_fn

    try:
        state = checkpoint_filter_fn(load_state_dict(weights), vit)
    except Exception as e:
        raise ValueError(f'MODEL.BACKBONE.WEIGHTS: "{weights}" could not be read as a ViT state dict for {name} '
                         f"({type(e).__name__}: {e})") from e
    missing, unexpected = vit.load_state_dict(state, strict=False)
    unexpected = [k for k in unexpected if not k.startswith("head.")]  # a classifier or CLIP's projection
    if missing or unexpected:
        raise ValueError(f'MODEL.BACKBONE.WEIGHTS: "{weights}" is not a state dict of {name}\'s ViT: '
                         f"{len(missing)} weights missing (e.g. {missing[:3]}), {len(unexpected)} unexpected "
                         f"(e.g. {unexpected[:3]}). Use a checkpoint of {hub_name or 'the same architecture'}.")
    print(f'Loaded {name} weights from "{weights}"')


def build_vit(name: str, pretrained: bool, weights: str, **arch_overrides) -> nn.Module:
    """The timm ViT of encoder `name` without its classifier, with local, downloaded or random weights;
    `arch_overrides` change its size (tests)."""
    timm = _timm()
    arch, tag, size = VIT_ARCHS[name]
    hub_name = f"{arch}.{tag}" if tag else ""
    if weights:
        _check_weights_file(weights, name, hub_name)  # before building: a ViT-B takes seconds to initialise
    kwargs = dict(dict(num_classes=0, dynamic_img_size=True), **size, **arch_overrides)
    download = pretrained and bool(hub_name) and not weights
    try:
        vit = timm.create_model(hub_name or arch, pretrained=download, **kwargs)
    except Exception as e:
        if not download:
            raise
        raise RuntimeError(
            f"Could not fetch the weights of {hub_name} for {name} ({type(e).__name__}: {e}). On a machine with "
            f'internet, download model.safetensors of the Hugging Face repository "timm/{hub_name}" and set '
            "MODEL.BACKBONE.WEIGHTS to the file, or set MODEL.BACKBONE.PRETRAINED False to train from random "
            "weights.") from e
    if weights:
        _load_local_weights(vit, weights, name, hub_name)
    return vit


def vit_encoder(name: str, pretrained: bool = False, feature_dim: int = 256, dropout: float = 0.8,
                dropout_before_fc: bool = False, partial_bn: bool = False, weights: str = "",
                train_last_blocks: int = -1, lr_decay: float = 1.0, input_norm: str = "checkpoint",
                pixel_mean: Sequence[float] = IMAGENET_MEAN, pixel_std: Sequence[float] = IMAGENET_STD,
                arch_overrides: Optional[dict] = None, **kwargs) -> ViTFrameEncoder:
    """Frame encoder `name` (a key of VIT_ARCHS) from the keywords every backbone factory receives."""
    if partial_bn:
        raise ValueError(f"MODEL.BACKBONE.PARTIAL_BN freezes a CNN's BatchNorm layers; {name} has none (its "
                         "LayerNorms keep no running statistics). Set MODEL.BACKBONE.PARTIAL_BN False; to fine-tune "
                         "part of the ViT use MODEL.VIT.TRAIN_LAST_BLOCKS.")
    if input_norm not in INPUT_NORMS:
        raise ValueError(f"MODEL.VIT.INPUT_NORM must be one of {INPUT_NORMS}, got {input_norm!r}")
    vit = build_vit(name, pretrained, weights, **(arch_overrides or {}))
    encoder = ViTFrameEncoder(vit, feature_dim, dropout, dropout_before_fc, train_last_blocks, lr_decay)
    arch, tag, _ = VIT_ARCHS[name]
    transform = f"INPUT.PIXEL_MEAN {tuple(pixel_mean)} INPUT.PIXEL_STD {tuple(pixel_std)}"
    if not tag:
        print(f"{name}: no published checkpoint, so frames go in as the clip transform normalises them ({transform})")
        return encoder
    if not (weights or pretrained):
        print(f"{name}: random init (PRETRAINED False, no WEIGHTS); frames go in as the clip transform normalises "
              f"them ({transform})")
        return encoder
    mean, std = tuple(vit.pretrained_cfg["mean"]), tuple(vit.pretrained_cfg["std"])
    expects = f"{name}: the checkpoint {arch}.{tag} expects frames normalised with mean {mean} std {std}"
    if input_norm == "transform":
        print(f"{expects}; MODEL.VIT.INPUT_NORM transform: they go in as the clip transform normalises them "
              f"({transform})")
    elif encoder.normalise_as(pixel_mean, pixel_std, mean, std):
        print(f"{expects}; the clip transform normalises with {transform}, so the encoder maps its input to the "
              f"checkpoint's normalisation (exact: a per-channel affine map). To normalise once, in the "
              f"transform, set INPUT.PIXEL_MEAN {list(mean)} INPUT.PIXEL_STD {list(std)}.")
    else:
        print(f"{expects}, which are INPUT.PIXEL_MEAN/STD: frames go in as the clip transform normalises them")
    return encoder


@BACKBONE_REGISTRY.register()
@reads_config("VIT")
def frame_vit_b16(**kwargs) -> ViTFrameEncoder:
    """ViT-B/16, ImageNet-21k pre-trained and tuned on ImageNet-1k (timm's augreg2 weights)."""
    return vit_encoder("frame_vit_b16", **kwargs)


@BACKBONE_REGISTRY.register()
@reads_config("VIT")
def frame_vit_b16_clip(**kwargs) -> ViTFrameEncoder:
    """The image tower of OpenAI's CLIP ViT-B/16 (its final projection to the text space is dropped)."""
    return vit_encoder("frame_vit_b16_clip", **kwargs)


@BACKBONE_REGISTRY.register()
@reads_config("VIT")
def frame_vit_tiny(**kwargs) -> ViTFrameEncoder:
    """A CPU-scale ViT for 32x32 frames, random init: PRETRAINED is ignored, WEIGHTS loads a state dict."""
    return vit_encoder("frame_vit_tiny", **dict(kwargs, pretrained=False))

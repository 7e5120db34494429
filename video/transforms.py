"""Augmentation stage: clip-consistent transforms, uint8 frames (T, H, W, 3) -> float tensor (T, 3, H', W').

Every random parameter (crop size, crop position, flip) is drawn once per call with torch's RNG and applied to
all T frames at once on a (T, C, H, W) tensor, so a clip stays temporally consistent and DataLoader worker
seeding controls the draws.
"""
from typing import Sequence, Tuple

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = {
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "nearest": InterpolationMode.NEAREST,
}
# TSN's 13 fixed crop positions ("more fix crop") as (x, y) in quarters of the free space: the four corners, the
# centre, the four edge midpoints and the four quarter points.
FIXED_CROP_POSITIONS = ((0, 0), (4, 0), (0, 4), (4, 4), (2, 2), (0, 2), (4, 2), (2, 4), (2, 0), (1, 1), (3, 1),
                        (1, 3), (3, 3))


def _interpolation(name: str) -> InterpolationMode:
    if name not in INTERPOLATIONS:
        raise ValueError(f"Unknown interpolation {name!r} (INPUT.INTERPOLATION); use one of {list(INTERPOLATIONS)}")
    return INTERPOLATIONS[name]


def _check_size(size: Sequence[int]) -> Tuple[int, int]:
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f"size must be (height, width) with positive values, got {size} (INPUT.SIZE)")
    return int(size[0]), int(size[1])


def _to_tensor(clip: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 array -> (T, 3, H, W) uint8 tensor (a copy, so read-only arrays are fine)."""
    if not isinstance(clip, np.ndarray) or clip.dtype != np.uint8 or clip.ndim != 4 or clip.shape[-1] != 3:
        described = f"{clip.dtype} array of shape {clip.shape}" if isinstance(clip, np.ndarray) else type(clip)
        raise TypeError(f"A clip transform needs a uint8 array (T, H, W, 3), got {described}")
    return torch.tensor(clip).permute(0, 3, 1, 2)


def _normalize(frames: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    frames = F.to_dtype(frames, torch.float32, scale=True)  # uint8 [0, 255] -> float [0, 1]
    return F.normalize(frames, list(mean), list(std)).contiguous()


class TrainClipTransform:
    """TSN GroupMultiScaleCrop + horizontal flip of the whole clip, then normalisation.

    Crop sides are int(min(H, W) * s) for s in `scales`; a (width, height) pair is drawn uniformly among the
    pairs whose scale indices differ by at most `max_distort`, its position uniformly among
    FIXED_CROP_POSITIONS; the crop is resized to `size` = (height, width).
    """

    def __init__(self, size: Sequence[int], scales: Sequence[float] = (1.0, 0.875, 0.75, 0.66),
                 max_distort: int = 1, flip: bool = True, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, interpolation: str = "bilinear"):
        if not scales or not all(0 < s <= 1 for s in scales):
            raise ValueError(f"scales must be a non-empty list of values in (0, 1], got {scales} "
                             "(INPUT.MULTISCALE_CROP)")
        if max_distort < 0:
            raise ValueError(f"max_distort must be >= 0, got {max_distort} (INPUT.MAX_DISTORT)")
        self.size = _check_size(size)
        self.scales = tuple(float(s) for s in scales)
        self.max_distort = int(max_distort)
        self.flip = bool(flip)
        self.mean, self.std = tuple(mean), tuple(std)
        self.interpolation = interpolation
        self._mode = _interpolation(interpolation)

    def sample_crop(self, height: int, width: int) -> Tuple[int, int, int, int]:
        """One random (top, left, crop_height, crop_width) for frames of height x width."""
        sides = [int(min(height, width) * s) for s in self.scales]
        pairs = [(h, w) for i, h in enumerate(sides) for j, w in enumerate(sides) if abs(i - j) <= self.max_distort]
        crop_h, crop_w = pairs[int(torch.randint(len(pairs), (1, )))]
        qx, qy = FIXED_CROP_POSITIONS[int(torch.randint(len(FIXED_CROP_POSITIONS), (1, )))]
        # TSN's quarter steps are floored, so "right" and "bottom" may sit up to 3 pixels from the border.
        return qy * ((height - crop_h) // 4), qx * ((width - crop_w) // 4), crop_h, crop_w

    def __call__(self, clip: np.ndarray) -> torch.Tensor:
        frames = _to_tensor(clip)
        top, left, crop_h, crop_w = self.sample_crop(frames.shape[-2], frames.shape[-1])
        frames = F.resized_crop(frames, top, left, crop_h, crop_w, list(self.size), interpolation=self._mode,
                                antialias=True)
        if self.flip and torch.rand(1).item() < 0.5:
            frames = F.horizontal_flip(frames)
        return _normalize(frames, self.mean, self.std)

    def __repr__(self) -> str:
        return (f"TrainClipTransform(size={self.size}, scales={self.scales}, max_distort={self.max_distort}, "
                f"flip={self.flip}, interpolation={self.interpolation}, mean={self.mean}, std={self.std})")


class TestClipTransform:
    """Resize the shorter side to `scale_size` (aspect kept), centre-crop `size` = (height, width), normalise."""

    def __init__(self, size: Sequence[int], scale_size: int, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, interpolation: str = "bilinear"):
        self.size = _check_size(size)
        if scale_size < max(self.size):
            raise ValueError(f"scale_size {scale_size} is smaller than the crop {self.size} (INPUT.TEST_SCALE_SIZE)")
        self.scale_size = int(scale_size)
        self.mean, self.std = tuple(mean), tuple(std)
        self.interpolation = interpolation
        self._mode = _interpolation(interpolation)

    def __call__(self, clip: np.ndarray) -> torch.Tensor:
        frames = F.resize(_to_tensor(clip), [self.scale_size], interpolation=self._mode, antialias=True)
        frames = F.center_crop(frames, list(self.size))
        return _normalize(frames, self.mean, self.std)

    def __repr__(self) -> str:
        return (f"TestClipTransform(size={self.size}, scale_size={self.scale_size}, "
                f"interpolation={self.interpolation}, mean={self.mean}, std={self.std})")


def build_video_transform(cfg, is_train: bool):
    """The train or test clip transform from cfg.INPUT."""
    inp = cfg.INPUT
    if is_train:
        return TrainClipTransform(inp.SIZE, scales=inp.MULTISCALE_CROP, max_distort=inp.MAX_DISTORT,
                                  flip=inp.RANDOM_FLIP, mean=inp.PIXEL_MEAN, std=inp.PIXEL_STD,
                                  interpolation=inp.INTERPOLATION)
    # -1: the ImageNet convention of resizing to 256 before a 224 crop, scaled to SIZE.
    scale_size = inp.TEST_SCALE_SIZE if inp.TEST_SCALE_SIZE > 0 else round(max(inp.SIZE) * 256 / 224)
    return TestClipTransform(inp.SIZE, scale_size, mean=inp.PIXEL_MEAN, std=inp.PIXEL_STD,
                             interpolation=inp.INTERPOLATION)

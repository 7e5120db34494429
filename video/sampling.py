"""Sampling stage: which frames of a clip to decode (INPUT.SAMPLING: tsn, one frame per segment; dense, see
`sample_dense_indices`, for 3-D models).

A clip of n frames is cut into M segments at the integer boundaries floor(i * n / M), i = 0..M, so that every
frame belongs to exactly one segment and segment lengths differ by at most one. Training draws a uniformly
random frame inside each segment; testing takes each segment's centre frame start + len // 2 (TSN's centre when
M divides n), so evaluation is deterministic. All random draws use torch, so DataLoader worker seeding
(torch.manual_seed, or `generator`) controls them.

Clips shorter than M frames cannot give one distinct frame per segment; in BOTH modes they return
floor(i * n / M) for i = 0..M-1, i.e. every frame in order, each repeated about M / n times. (TSN instead
returns frame 0 M times in training; repeating frames in order keeps the temporal structure the relation head
models.)
"""
from typing import List, Optional

import torch


def sample_segment_indices(num_frames: int, num_segments: int, train: bool,
                           generator: Optional[torch.Generator] = None) -> List[int]:
    """M frame indices in [0, num_frames), non-decreasing, one per segment."""
    n, m = int(num_frames), int(num_segments)
    if n <= 0:
        raise ValueError(f"num_frames must be > 0, got {num_frames} (an empty or unreadable clip?)")
    if m <= 0:
        raise ValueError(f"num_segments must be > 0, got {num_segments} (INPUT.NUM_SEGMENTS)")
    if n < m:
        return [i * n // m for i in range(m)]
    bounds = [i * n // m for i in range(m + 1)]
    indices = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        if train:
            offset = int(torch.randint(stop - start, (1, ), generator=generator))
        else:
            offset = (stop - start) // 2
        indices.append(start + offset)
    return indices


SAMPLING_MODES = ("tsn", "dense")


def sample_dense_indices(num_frames: int, clip_length: int, stride: int, train: bool,
                         generator: Optional[torch.Generator] = None) -> List[int]:
    """Dense sampling for 3-D CNNs (I3D, Non-local): `clip_length` frames `stride` apart from one start,
    a random start in training and the centred one in testing.

    A video shorter than the window uses the largest stride that fits (at least 1); one shorter than
    `clip_length` falls back to the in-order repetition of `sample_segment_indices`.
    """
    n, m = int(num_frames), int(clip_length)
    if n <= 0 or m <= 0 or stride <= 0:
        raise ValueError(f"Dense sampling needs num_frames, clip length (INPUT.NUM_SEGMENTS) and stride "
                         f"(INPUT.DENSE_STRIDE) > 0; got {num_frames}, {clip_length}, {stride}")
    if n < m:
        return [i * n // m for i in range(m)]
    step = min(stride, (n - 1) // (m - 1)) if m > 1 else 1
    last_start = n - ((m - 1) * step + 1)
    start = int(torch.randint(last_start + 1, (1, ), generator=generator)) if train else last_start // 2
    return [start + i * step for i in range(m)]


def sample_clip_indices(num_frames: int, num_segments: int, train: bool, mode: str = "tsn", stride: int = 1,
                        generator: Optional[torch.Generator] = None) -> List[int]:
    """The frames of one clip under INPUT.SAMPLING `mode` (tsn or dense)."""
    if mode == "tsn":
        return sample_segment_indices(num_frames, num_segments, train, generator)
    if mode == "dense":
        return sample_dense_indices(num_frames, num_segments, stride, train, generator)
    raise ValueError(f"INPUT.SAMPLING must be one of {SAMPLING_MODES}, got {mode!r}")

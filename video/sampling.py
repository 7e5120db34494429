"""Sampling stage: which frames of a clip to decode (TSN segment sampling, one frame per segment).

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

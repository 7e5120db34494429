"""Dassl's dataset wrapper for clips: count frames -> sample M segment indices -> decode -> transform.

Pass it to DataManager / build_data_loader as `dataset_wrapper`. Items must be VideoDatum. Each item becomes
Dassl's batch dict, with `img` of shape (M, C, H, W) per clip, so default collate gives (B, M, C, H, W).
"""
import sys
from typing import Any, Dict, Tuple

import numpy as np
from torch.utils.data import Dataset

from video.datum import VideoDatum
from video.readers import VideoReadError, read_sampled_frames
from video.sampling import sample_clip_indices
from video.transforms import build_video_transform

_num_skipped = 0  # clips skipped by SKIP_CORRUPT in this process (each DataLoader worker counts its own)


class VideoDatasetWrapper(Dataset):
    """Same constructor and batch keys as Dassl's DatasetWrapper (label, domain, impath, index, img, and img2,
    img3, ... for a list of transforms, img0 with DATALOADER.RETURN_IMG0). All transforms of one item see the
    same sampled frames; training samples a random frame per segment, evaluation the centre frames."""

    def __init__(self, cfg, data_source, transform=None, is_train: bool = False):
        if transform is None:
            raise ValueError("VideoDatasetWrapper needs a transform: default collate cannot batch raw frames "
                             "(use video.transforms.build_video_transform)")
        for item in data_source:
            if not isinstance(item, VideoDatum):
                raise TypeError(f"VideoDatasetWrapper needs VideoDatum items, got {type(item).__name__}: {item!r}")
        self.cfg = cfg
        self.data_source = data_source
        self.transform = transform
        self.is_train = is_train
        self.num_segments = cfg.INPUT.NUM_SEGMENTS
        self.k_tfm = cfg.DATALOADER.K_TRANSFORMS if is_train else 1  # Dassl: K augmented copies, train only
        self.skip_corrupt = cfg.DATASET.SKIP_CORRUPT
        self.transform_img0 = build_video_transform(cfg, is_train=False) if cfg.DATALOADER.RETURN_IMG0 else None

    def __len__(self) -> int:
        return len(self.data_source)

    def __getitem__(self, idx: int) -> Dict[str, Any]:
        idx, frames = self._load(idx)  # idx changes when a corrupt clip is skipped
        item = self.data_source[idx]
        output = {"label": item.label, "domain": item.domain, "impath": item.impath, "index": idx}
        transforms = self.transform if isinstance(self.transform, (list, tuple)) else [self.transform]
        for i, tfm in enumerate(transforms):
            key = "img" if i == 0 else f"img{i + 1}"
            output[key] = [tfm(frames) for _ in range(self.k_tfm)] if self.k_tfm > 1 else tfm(frames)
        if self.transform_img0 is not None:
            output["img0"] = self.transform_img0(frames)
        return output

    def _read(self, item: VideoDatum) -> np.ndarray:
        return read_sampled_frames(
            item, lambda n: sample_clip_indices(n, self.num_segments, train=self.is_train,
                                                mode=self.cfg.INPUT.SAMPLING, stride=self.cfg.INPUT.DENSE_STRIDE))

    def _load(self, idx: int) -> Tuple[int, np.ndarray]:
        """(index, frames) of item idx or, with SKIP_CORRUPT, of the next readable item (wrapping around)."""
        if not self.skip_corrupt:
            return idx, self._read(self.data_source[idx])
        global _num_skipped
        n = len(self.data_source)
        for step in range(n):
            j = (idx + step) % n
            try:
                return j, self._read(self.data_source[j])
            except VideoReadError as e:
                _num_skipped += 1
                print(f"[skip] unreadable clip {self.data_source[j].impath}: {e.reason or e} "
                      f"({_num_skipped} skipped so far in this process)", file=sys.stderr)
        raise RuntimeError(f"None of the {n} clips can be read (DATASET.SKIP_CORRUPT is True); "
                           "see the [skip] lines above")

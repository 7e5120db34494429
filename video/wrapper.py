"""Dassl's dataset wrapper for clips: count frames -> sample M segment indices -> decode -> transform.

Pass it to DataManager / build_data_loader as `dataset_wrapper`. Items must be VideoDatum. Each item becomes
Dassl's batch dict, with `img` of shape (M, C, H, W) per clip, so default collate gives (B, M, C, H, W).

Unreadable clips (DATASET.SKIP_CORRUPT True): in training the next readable clip takes the place of a broken
one; in evaluation a broken clip is never replaced (that would count another clip, maybe of another domain,
twice): the item comes back with `skipped` True and a blank clip, and the consumers (the mixin's
parse_batch_test, trainers.results.collect_predictions) drop it, so n counts evaluated clips only.
"""
import os
import sys
from typing import Any, Dict, Optional, Tuple

import numpy as np
from torch.utils.data import Dataset, get_worker_info

from video.datum import VideoDatum
from video.readers import VideoReadError, read_sampled_frames, resolve_backend
from video.sampling import sample_clip_indices
from video.transforms import build_video_transform

_num_skipped = 0  # clips skipped by SKIP_CORRUPT in this process (each DataLoader worker counts its own)
_announced = set()  # (backend, setting) pairs already logged by this process


def log_skip(message: str) -> None:
    """A skip line on stdout, which the run's logger tees into log.txt."""
    if get_worker_info() is None:
        print(message, flush=True)
        return
    # In a DataLoader worker the tee and its file buffer are copies made at fork: flushing that buffer here
    # would write the main process's pending lines a second time. Write the line alone, unbuffered, to the
    # console and to the log's file descriptor (shared with the main process, offset included).
    tee = sys.stdout
    console = getattr(tee, "console", tee)
    console.write(message + "\n")
    console.flush()
    log_file = getattr(tee, "file", None)
    if log_file is not None and not log_file.closed:
        os.write(log_file.fileno(), (message + "\n").encode())


class DecodedClipCache:
    """Every decoded frame of a clip, kept in memory up to `budget_mb` (DATASET.DECODED_CACHE_MB).

    Made for small clips that are read every epoch (the synthetic benchmark): each is decoded once per
    process; segment sampling then picks frames from the cached array with the same random draws as a fresh
    read, so a run gives the same batches with or without the cache. Clips that do not fit are read from disk.
    """

    def __init__(self, budget_mb: float):
        self.budget = int(budget_mb * 2 ** 20)
        self.used = 0
        self.clips: Dict[int, np.ndarray] = {}

    def get(self, index: int) -> Optional[np.ndarray]:
        return self.clips.get(index)

    def put(self, index: int, frames: np.ndarray) -> None:
        if self.used + frames.nbytes <= self.budget:
            frames.setflags(write=False)  # shared by every later read: transforms must copy (they do)
            self.clips[index] = frames
            self.used += frames.nbytes


class VideoDatasetWrapper(Dataset):
    """Same constructor and batch keys as Dassl's DatasetWrapper (label, domain, impath, index, img, and img2,
    img3, ... for a list of transforms, img0 with DATALOADER.RETURN_IMG0), plus `skipped`. All transforms of
    one item see the same sampled frames; training samples a random frame per segment, evaluation the centre
    frames."""

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
        self.backend = resolve_backend(cfg.DATASET.VIDEO_BACKEND)
        self.cache = DecodedClipCache(cfg.DATASET.DECODED_CACHE_MB) if cfg.DATASET.DECODED_CACHE_MB > 0 else None
        self._announce()

    def _announce(self) -> None:
        """Say once per process which decoder reads the videos (the log is how a user learns it)."""
        if all(item.is_frame_folder or item.is_image for item in self.data_source):
            return
        key = (self.backend, self.cfg.DATASET.VIDEO_BACKEND)
        if key not in _announced:
            _announced.add(key)
            print(f"Video files are read with {self.backend} (DATASET.VIDEO_BACKEND {self.cfg.DATASET.VIDEO_BACKEND})")

    def __len__(self) -> int:
        return len(self.data_source)

    def __getitem__(self, idx: int) -> Dict[str, Any]:
        idx, frames = self._load(idx)  # idx changes when a corrupt training clip is replaced
        item = self.data_source[idx]
        skipped = frames is None
        if skipped:  # an evaluation clip that cannot be read: a blank stand-in, dropped by the consumer
            frames = np.zeros((self.num_segments, *self.cfg.INPUT.SIZE, 3), np.uint8)
        output = {"label": item.label, "domain": item.domain, "impath": item.impath, "index": idx,
                  "skipped": skipped}
        transforms = self.transform if isinstance(self.transform, (list, tuple)) else [self.transform]
        for i, tfm in enumerate(transforms):
            key = "img" if i == 0 else f"img{i + 1}"
            output[key] = [tfm(frames) for _ in range(self.k_tfm)] if self.k_tfm > 1 else tfm(frames)
        if self.transform_img0 is not None:
            output["img0"] = self.transform_img0(frames)
        return output

    def _choose(self, n: int):
        return sample_clip_indices(n, self.num_segments, train=self.is_train, mode=self.cfg.INPUT.SAMPLING,
                                   stride=self.cfg.INPUT.DENSE_STRIDE)

    def _read(self, idx: int) -> np.ndarray:
        item = self.data_source[idx]
        if self.cache is None:
            return read_sampled_frames(item, self._choose, self.backend)
        frames = self.cache.get(idx)
        if frames is None:
            frames = read_sampled_frames(item, lambda n: range(n), self.backend)  # the whole clip, once
            self.cache.put(idx, frames)
        return frames[self._choose(len(frames))]

    def _load(self, idx: int) -> Tuple[int, Optional[np.ndarray]]:
        """(index, frames) of item idx; with SKIP_CORRUPT, in training the next readable item (wrapping
        around), in evaluation (idx, None) for an unreadable item."""
        if not self.skip_corrupt:
            return idx, self._read(idx)
        global _num_skipped
        n = len(self.data_source)
        for step in range(n if self.is_train else 1):
            j = (idx + step) % n
            try:
                return j, self._read(j)
            except VideoReadError as e:
                _num_skipped += 1
                action = "replaced by the next readable clip" if self.is_train else "left out of the evaluation"
                log_skip(f"[skip] unreadable clip {self.data_source[j].impath}: {e.reason or e} ({action}; "
                         f"{_num_skipped} skipped so far in this process)")
        if not self.is_train:
            return idx, None
        raise RuntimeError(f"None of the {n} clips can be read (DATASET.SKIP_CORRUPT is True); "
                           "see the [skip] lines above")

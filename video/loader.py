"""Loader-side pieces of the video pipeline: DataLoader settings Dassl's builder does not expose, evaluation
batches without the clips that could not be read, and the pre-flight check of every file of a run.
"""
from typing import Dict, List, Sequence, Tuple

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from video.datum import VideoDatum
from video.readers import VideoReadError, check_frame_sizes, read_sampled_frames, resolve_backend
from video.sampling import sample_segment_indices


def tune_loader(loader: DataLoader, cfg) -> DataLoader:
    """Apply DATALOADER.PREFETCH_FACTOR and PERSISTENT_WORKERS to a loader built by Dassl's build_data_loader
    (which has no such options); everything else (sampler, seeding, collate) is kept as built."""
    if loader is None or loader.num_workers == 0:
        return loader  # both settings only concern worker processes
    persistent = bool(cfg.DATALOADER.PERSISTENT_WORKERS)
    if persistent == loader.persistent_workers:
        loader.prefetch_factor = int(cfg.DATALOADER.PREFETCH_FACTOR)  # read when an iterator starts
        return loader
    # persistent_workers cannot be changed on a built loader: rebuild it around the same parts.
    return DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=loader.sampler,
                      num_workers=loader.num_workers, collate_fn=loader.collate_fn, pin_memory=loader.pin_memory,
                      drop_last=loader.drop_last, timeout=loader.timeout, worker_init_fn=loader.worker_init_fn,
                      generator=loader.generator, prefetch_factor=int(cfg.DATALOADER.PREFETCH_FACTOR),
                      persistent_workers=persistent)


def drop_skipped(batch: Dict) -> Tuple[Dict, torch.Tensor]:
    """The batch without the clips the wrapper could not read (evaluation with DATASET.SKIP_CORRUPT), and the
    domain index of each dropped clip. Each dropped clip is logged (the main process writes log.txt)."""
    skipped = batch.get("skipped")
    if skipped is None or not bool(torch.as_tensor(skipped).any()):
        return batch, torch.zeros(0, dtype=torch.long)
    skipped = torch.as_tensor(skipped, dtype=torch.bool)
    keep = ~skipped
    for path in (p for p, s in zip(batch["impath"], skipped.tolist()) if s):
        print(f"[skip] evaluation leaves out unreadable clip {path}", flush=True)
    out = {}
    for key, value in batch.items():
        if torch.is_tensor(value) and value.shape[:1] == skipped.shape:
            out[key] = value[keep]
        elif isinstance(value, (list, tuple)) and len(value) == len(skipped):
            out[key] = [v for v, k in zip(value, keep.tolist()) if k]
        else:
            out[key] = value
    return out, torch.as_tensor(batch["domain"])[skipped]


def check_files(splits: Dict[str, Sequence[VideoDatum]], cfg) -> List[Tuple[str, str, str]]:
    """DATASET.CHECK_FILES: open every clip of the run's splits and decode its evaluation frames (and check that
    the frames of a folder have one size), before any training, so that a broken target file is found at minute
    0. Returns (split, path, reason) per broken clip; raises with the list unless DATASET.SKIP_CORRUPT is set
    (then each is logged and skipped when met)."""
    backend = resolve_backend(cfg.DATASET.VIDEO_BACKEND)
    m = cfg.INPUT.NUM_SEGMENTS
    broken = []
    total = sum(len(items) for items in splits.values())
    with tqdm(total=total, desc="checking files", disable=None) as bar:
        for split, items in splits.items():
            for item in items:
                try:
                    read_sampled_frames(item, lambda n: sample_segment_indices(n, m, train=False), backend)
                    if item.is_frame_folder:  # training samples other frames than these: all must stack
                        check_frame_sizes(item)
                except VideoReadError as e:
                    broken.append((split, item.impath, e.reason or str(e)))
                bar.update()
    print(f"DATASET.CHECK_FILES: opened {total:,} clips ({', '.join(f'{s} {len(i):,}' for s, i in splits.items())})"
          f" with {backend}: {len(broken)} unreadable")
    if broken and not cfg.DATASET.SKIP_CORRUPT:
        listing = "\n".join(f"  [{split}] {path}: {reason}" for split, path, reason in broken[:20])
        more = f"\n  ... and {len(broken) - 20} more" if len(broken) > 20 else ""
        raise RuntimeError(f"DATASET.CHECK_FILES found {len(broken)} unreadable clips:\n{listing}{more}\n"
                           "Re-encode or re-download them, remove them from the list files, or set "
                           "DATASET.SKIP_CORRUPT True (training then replaces them; evaluation leaves them out "
                           "and counts them per domain in the results table).")
    for split, path, reason in broken:
        print(f"[skip] unreadable clip {path} ({split}): {reason}", flush=True)
    return broken

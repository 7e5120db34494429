"""Decoding stage: frame counts and the frames at given indices, from a video file or a frame folder.

Indices are relative to the clip: with `datum.frame_range = (start, stop)` index i is frame start + i of the
underlying video (or frame file number first_frame + start + i of the folder). Any problem with the data on
disk (empty, corrupt or truncated file, missing frame file) raises VideoReadError naming the path, so that
DATASET.SKIP_CORRUPT can skip the clip; a wrong argument from the caller raises ValueError.
"""
import os
import os.path as osp
from typing import Callable, Dict, Sequence

import numpy as np
from PIL import Image

from video.datum import VideoDatum

_SKIP_HINT = "or set DATASET.SKIP_CORRUPT True to replace unreadable clips by the next readable one"


class VideoReadError(RuntimeError):
    """A clip on disk cannot be read. `path` and `reason` are kept for the skip log.

    The message is the only required argument so that the error keeps its type when a DataLoader worker
    re-raises it in the main process (torch rebuilds worker exceptions from their message).
    """

    def __init__(self, message: str, path: str = "", reason: str = ""):
        super().__init__(message)
        self.path = path
        self.reason = reason


def _video_error(path: str, reason: str) -> VideoReadError:
    return VideoReadError(f'Cannot read video "{path}": {reason}. Re-encode or re-download it '
                          f"(e.g. ffmpeg -i in.mp4 -c:v libx264 out.mp4), {_SKIP_HINT}.", path, reason)


def _folder_error(path: str, reason: str) -> VideoReadError:
    return VideoReadError(f'Cannot read frame folder "{path}": {reason}. Re-extract the frames, {_SKIP_HINT}.',
                          path, reason)


def _short(e: Exception) -> str:
    """First line of a decoder error: decord appends long C++ stack traces."""
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else ''}"[:300]


def _import_decord():
    try:
        import decord
    except ImportError as e:
        raise ImportError("Reading video files needs decord: pip install decord==0.6.0 "
                          "(or store the dataset as frame folders)") from e
    return decord


def _open_video(path: str):
    """A decord VideoReader on one CPU thread; every failure becomes VideoReadError."""
    if not osp.isfile(path):
        raise _video_error(path, "the file does not exist")
    if osp.getsize(path) == 0:
        raise _video_error(path, "the file is empty (0 bytes)")
    decord = _import_decord()
    try:
        # decord indexes every packet on open, so truncated and garbage files usually fail here.
        return decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
    except Exception as e:
        raise _video_error(path, f"decord cannot open it ({_short(e)})") from e


def _count_folder_frames(datum: VideoDatum) -> int:
    """Consecutive frame files first_frame, first_frame + 1, ... named by datum.frame_tmpl."""
    folder = datum.impath
    names = set(os.listdir(folder))
    n = 0
    while datum.frame_tmpl.format(datum.first_frame + n) in names:
        n += 1
    if n == 0:
        first = datum.frame_tmpl.format(datum.first_frame)
        raise _folder_error(folder, f'no frame file "{first}" (template "{datum.frame_tmpl}", first frame '
                            f"{datum.first_frame})")
    return n


def count_frames(datum: VideoDatum) -> int:
    """Frames in the clip: stop - start of frame_range, else decord's count for a video file (authoritative;
    list-file counts may be off), else datum.num_frames or the frame files found for a folder."""
    if datum.frame_range is not None:
        start, stop = datum.frame_range
        if not 0 <= start < stop:
            raise ValueError(f"{datum.impath}: frame_range must satisfy 0 <= start < stop, got {datum.frame_range}")
        return stop - start
    if datum.is_frame_folder:
        return datum.num_frames if datum.num_frames > 0 else _count_folder_frames(datum)
    n = len(_open_video(datum.impath))  # the reader is dropped at once
    if n <= 0:
        raise _video_error(datum.impath, "decord finds no frames in it")
    return n


def read_frames(datum: VideoDatum, indices: Sequence[int]) -> np.ndarray:
    """The frames at `indices` (relative to the clip) as uint8 RGB, shape (T, H, W, 3)."""
    indices = [int(i) for i in indices]
    if not indices:
        raise ValueError(f"{datum.impath}: no frame indices to read")
    if min(indices) < 0:
        raise ValueError(f"{datum.impath}: negative frame index in {indices}")
    start = 0
    if datum.frame_range is not None:
        start, stop = datum.frame_range
        if max(indices) >= stop - start:
            raise ValueError(f"{datum.impath}: index {max(indices)} is outside frame_range {datum.frame_range}")
    absolute = [start + i for i in indices]
    if datum.is_frame_folder:
        return _read_folder(datum, absolute)
    return _read_video(datum.impath, absolute)


def read_sampled_frames(datum: VideoDatum, choose_indices: Callable[[int], Sequence[int]]) -> np.ndarray:
    """count_frames, then read_frames at choose_indices(count), opening a video file once for both."""
    if datum.frame_range is not None or datum.is_frame_folder:
        return read_frames(datum, choose_indices(count_frames(datum)))
    reader = _open_video(datum.impath)
    n = len(reader)
    if n <= 0:
        raise _video_error(datum.impath, "decord finds no frames in it")
    return _read_video(datum.impath, [int(i) for i in choose_indices(n)], reader)


def _read_video(path: str, indices: Sequence[int], reader=None) -> np.ndarray:
    reader = reader if reader is not None else _open_video(path)
    n = len(reader)
    if max(indices) >= n:
        raise _video_error(path, f"frame {max(indices)} requested but decord finds only {n} frames")
    try:
        frames = reader.get_batch(list(indices)).asnumpy()
    except Exception as e:
        # The header can promise more frames than the stream holds (a cut-off download): report it as a
        # broken file rather than let decord's error escape.
        raise _video_error(path, f"decoding frames {list(indices)} of the {n} it reports failed ({_short(e)})") from e
    finally:
        del reader  # release the decoder now; readers are never kept between items
    if frames.shape[0] != len(indices) or frames.ndim != 4 or frames.shape[-1] != 3:
        raise _video_error(path, f"decord returned frames of shape {frames.shape} for {len(indices)} indices")
    return frames


def _read_folder(datum: VideoDatum, indices: Sequence[int]) -> np.ndarray:
    loaded: Dict[int, np.ndarray] = {}  # short clips repeat indices; read each file once
    for i in indices:
        if i in loaded:
            continue
        frame_path = osp.join(datum.impath, datum.frame_tmpl.format(datum.first_frame + i))
        if not osp.isfile(frame_path):
            raise _folder_error(datum.impath, f'frame file "{frame_path}" is missing')
        try:
            with Image.open(frame_path) as img:
                loaded[i] = np.asarray(img.convert("RGB"))
        except OSError as e:  # PIL's error for truncated or unidentifiable images
            raise _folder_error(datum.impath, f'frame file "{frame_path}" cannot be decoded ({_short(e)})') from e
    shapes = {frame.shape for frame in loaded.values()}
    if len(shapes) > 1:
        raise _folder_error(datum.impath, f"frames differ in size: {sorted(shapes)}")
    return np.stack([loaded[i] for i in indices])

"""Decoding stage: frame counts and the frames at given indices, from a video file, a frame folder or a still
image (a clip of one frame).

Indices are relative to the clip: with `datum.frame_range = (start, stop)` index i is frame start + i of the
underlying video (or frame file number first_frame + start + i of the folder). Any problem with the data on
disk (empty, corrupt or truncated file, missing frame file) raises VideoReadError naming the path, so that
DATASET.SKIP_CORRUPT can skip the clip; a wrong argument from the caller raises ValueError.
"""
import bisect
import os
import os.path as osp
import re
import string
from collections import Counter
from typing import Callable, Dict, List, Optional, Sequence

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


VIDEO_BACKENDS = ("auto", "decord", "pyav")


def decord_available() -> bool:
    try:
        import decord  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(backend: str = "auto") -> str:
    """The decoder that reads video files: decord or pyav. auto = decord where it is installed (it has no wheels
    for Linux aarch64 or macOS arm64), else PyAV; both give the same frames for the same indices."""
    if backend not in VIDEO_BACKENDS:
        raise ValueError(f"Unknown video backend {backend!r} (DATASET.VIDEO_BACKEND); use one of {list(VIDEO_BACKENDS)}")
    if backend == "auto":
        return "decord" if decord_available() else "pyav"
    return backend


def _import_decord():
    try:
        import decord
    except ImportError as e:
        raise ImportError("DATASET.VIDEO_BACKEND decord needs decord: pip install decord==0.6.0 (x86-64 Linux, "
                          "Windows, macOS x86-64 only); or set DATASET.VIDEO_BACKEND pyav (or auto)") from e
    return decord


class _DecordVideo:
    """One video file opened with decord: len() frames, get_batch(indices) -> uint8 (T, H, W, 3)."""

    name = "decord"

    def __init__(self, path: str):
        decord = _import_decord()
        # decord indexes every packet on open, so truncated and garbage files usually fail here.
        self._reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)

    def __len__(self) -> int:
        return len(self._reader)

    def get_batch(self, indices: Sequence[int]) -> np.ndarray:
        return self._reader.get_batch(list(indices)).asnumpy()

    def close(self) -> None:
        self._reader = None


class _PyAVVideo:
    """The same interface on PyAV (FFmpeg), with decord's frame numbering: frame i is the i-th frame in
    presentation order, and the count is the number of video packets (what decord's index counts).

    Opening demuxes the packets once (no decoding) to learn every frame's timestamp and the keyframes; a read
    then seeks to the keyframe before each wanted frame that cannot be reached by decoding forward, so a clip
    cut from a long untrimmed video does not decode the video from its start.
    """

    name = "pyav"

    def __init__(self, path: str):
        import av
        self._container = av.open(path)
        try:
            streams = self._container.streams.video
            if not streams:
                raise ValueError("no video stream")
            self._stream = streams[0]
            self._stream.thread_type = "SLICE"  # frame threads only add latency for a handful of frames
            self._stream.thread_count = 1  # one decoder thread per reader, like decord's num_threads=1
            pts, keys = [], []
            for packet in self._container.demux(self._stream):
                if packet.size == 0:  # the flush packet at the end of the stream
                    continue
                stamp = packet.pts if packet.pts is not None else packet.dts
                pts.append(stamp)
                keys.append(packet.is_keyframe)
            self._seekable = bool(pts) and all(p is not None for p in pts) and len(set(pts)) == len(pts)
            self._pts = sorted(pts) if self._seekable else [None] * len(pts)
            self._key_pts = sorted(p for p, k in zip(pts, keys) if k) if self._seekable else []
            self._refuse_if_cut_off()
        except Exception:
            self._container.close()
            raise

    def _refuse_if_cut_off(self) -> None:
        """A file whose end is missing (a cut-off download) demuxes fewer packets than its header declares;
        FFmpeg stops quietly at the cut, so without this check the file reads as a shorter clip with a damaged
        tail. decord refuses such files when it indexes them; this is the same refusal.

        A complete AVI may declare more frames than it has packets (dropped frames have no data), but its
        remaining packets still reach the declared duration, so the check needs both signs of a cut."""
        declared, found = self._stream.frames, len(self._pts)
        if not declared or found >= declared:
            return  # no count in the header (Matroska, WebM), or every declared frame is there
        if self._seekable and self._stream.duration and found > 1:
            step = (self._pts[-1] - self._pts[0]) / (found - 1)
            declared_end = (self._stream.start_time or 0) + self._stream.duration
            if self._pts[-1] + 1.5 * step >= declared_end:
                return  # the packets reach the declared end: frames were dropped, nothing is cut off
        raise EOFError(f"the file is cut off: its header declares {declared} frames, only {found} are in the file "
                       "(an interrupted download or copy?)")

    def __len__(self) -> int:
        return len(self._pts)

    def get_batch(self, indices: Sequence[int]) -> np.ndarray:
        wanted = sorted(set(int(i) for i in indices))
        if max(wanted) >= len(self._pts):
            raise IndexError(f"frame {max(wanted)} of {len(self._pts)}")
        frames = self._decode_by_seek(wanted) if self._seekable and self._key_pts else None
        if frames is None:  # no usable timestamps (or they did not match): decode in order from the start
            frames = self._decode_in_order(wanted)
        return np.stack([frames[i] for i in indices])

    def _rgb(self, frame) -> np.ndarray:
        return frame.to_ndarray(format="rgb24")

    def _decode_in_order(self, wanted: List[int]) -> Dict[int, np.ndarray]:
        self._container.seek(0, stream=self._stream) if self._seekable else self._reopen()
        targets, frames = set(wanted), {}
        for position, frame in enumerate(self._container.decode(self._stream)):
            if position in targets:
                frames[position] = self._rgb(frame)
                if len(frames) == len(targets):
                    break
        if len(frames) != len(targets):
            raise EOFError(f"the stream ended after fewer frames than the {len(self._pts)} packets promise")
        return frames

    def _reopen(self) -> None:
        import av
        path = self._container.name
        self._container.close()
        self._container = av.open(path)
        self._stream = self._container.streams.video[0]
        self._stream.thread_type, self._stream.thread_count = "SLICE", 1

    def _decode_by_seek(self, wanted: List[int]) -> Optional[Dict[int, np.ndarray]]:
        by_pts = {self._pts[i]: i for i in wanted}
        frames: Dict[int, np.ndarray] = {}
        decoder, last_pts = None, None
        for target in sorted(by_pts):
            if by_pts[target] in frames:
                continue
            key = self._key_pts[max(bisect.bisect_right(self._key_pts, target) - 1, 0)]
            # Decode forward from where we are unless a keyframe lies between here and the target.
            if decoder is None or last_pts is None or last_pts >= target or key > last_pts:
                self._container.seek(key, stream=self._stream, backward=True, any_frame=False)
                decoder = self._container.decode(self._stream)
            for frame in decoder:
                last_pts = frame.pts
                if frame.pts is None:
                    return None
                if frame.pts in by_pts:
                    frames[by_pts[frame.pts]] = self._rgb(frame)
                if frame.pts >= target:
                    break
            if by_pts[target] not in frames:
                return None  # timestamps of packets and frames disagree
        return frames

    def close(self) -> None:
        self._container.close()


def _open_video(path: str, backend: str = "auto"):
    """A reader (decord or PyAV) of one video file on one CPU thread; every failure becomes VideoReadError."""
    if not osp.isfile(path):
        raise _video_error(path, "the file does not exist")
    if osp.getsize(path) == 0:
        raise _video_error(path, "the file is empty (0 bytes)")
    name = resolve_backend(backend)
    if name == "decord":
        _import_decord()  # a missing decoder is the caller's setup, not a broken file: not a VideoReadError
    try:
        return (_DecordVideo if name == "decord" else _PyAVVideo)(path)
    except Exception as e:
        reason = f"{name} cannot open it ({_short(e)})"
        if name == "decord":
            reason += _codec_hint(path)
        raise _video_error(path, reason) from e


def _codec_hint(path: str) -> str:
    """When decord cannot open a file that PyAV can (a codec decord was built without, e.g. AV1), say so."""
    try:
        import av
        with av.open(path) as container:
            codec = container.streams.video[0].codec_context.name
    except Exception:  # noqa: BLE001 - PyAV missing or the file broken: no better hint than decord's error
        return ""
    return (f"; the video stream is {codec}, which this decord build cannot decode, while PyAV opens it: "
            "set DATASET.VIDEO_BACKEND pyav")


def _frame_numbers(datum: VideoDatum) -> List[int]:
    """Numbers of the files in the folder that datum.frame_tmpl names (e.g. img_00012.jpg -> 12), sorted."""
    parts = list(string.Formatter().parse(datum.frame_tmpl))
    if len(parts) < 1 or parts[0][1] is None:
        raise ValueError(f'Frame template "{datum.frame_tmpl}" has no {{}} field for the frame number '
                         "(DATASET.FRAME_TMPL, e.g. img_{:05d}.jpg)")
    prefix = parts[0][0]
    suffix = "".join(literal for literal, *_ in parts[1:])
    pattern = re.compile(re.escape(prefix) + r"(\d+)" + re.escape(suffix))
    numbers = []
    for name in os.listdir(datum.impath):
        match = pattern.fullmatch(name)
        if match and datum.frame_tmpl.format(int(match.group(1))) == name:
            numbers.append(int(match.group(1)))
    return sorted(numbers)


def _count_folder_frames(datum: VideoDatum) -> int:
    """Frame files first_frame, first_frame + 1, ... named by datum.frame_tmpl, with no gap in the numbering:
    a missing frame followed by later ones (a failed extraction or copy) is an error naming the missing file,
    and so is a folder with fewer frames than the list file's count."""
    folder = datum.impath
    numbers = [k for k in _frame_numbers(datum) if k >= datum.first_frame]
    if not numbers or numbers[0] != datum.first_frame:
        first = datum.frame_tmpl.format(datum.first_frame)
        raise _folder_error(folder, f'no frame file "{first}" (template "{datum.frame_tmpl}", first frame '
                            f"{datum.first_frame})")
    n = len(numbers)
    if numbers[-1] != datum.first_frame + n - 1:  # numbers are unique and sorted: a hole somewhere
        missing = next(datum.first_frame + i for i, k in enumerate(numbers) if k != datum.first_frame + i)
        raise _folder_error(folder, f'frame file "{osp.join(folder, datum.frame_tmpl.format(missing))}" is missing '
                            f"(a gap in the numbering: frames {datum.first_frame}..{numbers[-1]} are expected, "
                            f"{n} found)")
    if datum.num_frames > n:
        missing = datum.first_frame + n
        raise _folder_error(folder, f'frame file "{osp.join(folder, datum.frame_tmpl.format(missing))}" is missing '
                            f"(the list gives {datum.num_frames} frames, the folder has {n})")
    return n


def check_frame_sizes(datum: VideoDatum) -> None:
    """Every frame file of a folder has the size of the others (only the image headers are read). A read
    stacks the sampled frames, so a folder with one odd frame fails only in the epoch that samples it."""
    if datum.frame_range is None:
        numbers = _frame_numbers(datum)
    else:  # a clip cut from a long video's folder: its own frames only (no listing of the whole folder)
        numbers = range(datum.first_frame + datum.frame_range[0], datum.first_frame + datum.frame_range[1])
    sizes = {}
    for number in numbers:
        name = datum.frame_tmpl.format(number)
        try:
            with Image.open(osp.join(datum.impath, name)) as img:
                sizes[name] = img.size
        except OSError as e:  # a missing file too (FileNotFoundError)
            raise _folder_error(datum.impath, f'frame file "{name}" cannot be read ({_short(e)})') from e
    counts = Counter(sizes.values())
    if len(counts) > 1:
        common = counts.most_common(1)[0][0]
        odd = [(name, size) for name, size in sizes.items() if size != common]
        shown = ", ".join(f"{name} is {w}x{h}" for name, (w, h) in odd[:5])
        raise _folder_error(datum.impath, f"frames differ in size: {shown}{' ...' if len(odd) > 5 else ''}, the "
                            f"other {counts[common]} frames are {common[0]}x{common[1]}")


def count_frames(datum: VideoDatum, backend: str = "auto") -> int:
    """Frames in the clip: stop - start of frame_range, else the decoder's count for a video file (authoritative;
    list-file counts may be off), else datum.num_frames or the frame files found for a folder."""
    if datum.frame_range is not None:
        start, stop = datum.frame_range
        if not 0 <= start < stop:
            raise ValueError(f"{datum.impath}: frame_range must satisfy 0 <= start < stop, got {datum.frame_range}")
        return stop - start
    if datum.is_frame_folder:
        n = _count_folder_frames(datum)  # checks the numbering even when the list gives a count
        return datum.num_frames if datum.num_frames > 0 else n
    if datum.is_image:
        return 1
    reader = _open_video(datum.impath, backend)
    n = len(reader)
    reader.close()
    if n <= 0:
        raise _video_error(datum.impath, f"{reader.name} finds no frames in it")
    return n


def read_frames(datum: VideoDatum, indices: Sequence[int], backend: str = "auto") -> np.ndarray:
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
        if datum.frame_range is None:  # a clip cut from a long video's folder needs only its own frames
            _count_folder_frames(datum)  # a gap in the numbering is an error even where no sampled frame falls
        return _read_folder(datum, absolute)
    if datum.is_image:
        if max(absolute) > 0:
            raise ValueError(f"{datum.impath}: an image is a clip of one frame, index {max(absolute)} requested")
        return np.repeat(_read_image(datum.impath, _video_error)[None], len(indices), axis=0)
    return _read_video(datum.impath, absolute, backend=backend)


def read_sampled_frames(datum: VideoDatum, choose_indices: Callable[[int], Sequence[int]],
                        backend: str = "auto") -> np.ndarray:
    """count_frames, then read_frames at choose_indices(count), opening a video file once for both."""
    if datum.frame_range is not None or datum.is_frame_folder or datum.is_image:
        return read_frames(datum, choose_indices(count_frames(datum, backend)), backend)
    reader = _open_video(datum.impath, backend)
    n = len(reader)
    if n <= 0:
        reader.close()
        raise _video_error(datum.impath, f"{reader.name} finds no frames in it")
    return _read_video(datum.impath, [int(i) for i in choose_indices(n)], reader)


def _read_video(path: str, indices: Sequence[int], reader=None, backend: str = "auto") -> np.ndarray:
    reader = reader if reader is not None else _open_video(path, backend)
    try:
        n = len(reader)
        if max(indices) >= n:
            raise _video_error(path, f"frame {max(indices)} requested but {reader.name} finds only {n} frames")
        try:
            frames = reader.get_batch(list(indices))
        except Exception as e:
            # The header can promise more frames than the stream holds (a cut-off download): report it as a
            # broken file rather than let the decoder's error escape.
            raise _video_error(path, f"decoding frames {list(indices)} of the {n} it reports failed "
                               f"({reader.name}: {_short(e)})") from e
    finally:
        reader.close()  # release the decoder now; readers are never kept between items
    if frames.shape[0] != len(indices) or frames.ndim != 4 or frames.shape[-1] != 3:
        raise _video_error(path, f"{reader.name} returned frames of shape {frames.shape} for {len(indices)} indices")
    return frames


def _read_image(path: str, error: Callable[[str, str], VideoReadError], folder: str = "") -> np.ndarray:
    """One RGB image file; a missing or undecodable file raises `error(folder or path, reason)`."""
    where = folder or path
    if not osp.isfile(path):
        raise error(where, f'frame file "{path}" is missing' if folder else "the file does not exist")
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except OSError as e:  # PIL's error for truncated or unidentifiable images
        raise error(where, f'frame file "{path}" cannot be decoded ({_short(e)})' if folder
                    else f"it cannot be decoded as an image ({_short(e)})") from e


def _read_folder(datum: VideoDatum, indices: Sequence[int]) -> np.ndarray:
    loaded: Dict[int, np.ndarray] = {}  # short clips repeat indices; read each file once
    for i in indices:
        if i not in loaded:
            frame_path = osp.join(datum.impath, datum.frame_tmpl.format(datum.first_frame + i))
            loaded[i] = _read_image(frame_path, _folder_error, folder=datum.impath)
    shapes = {frame.shape for frame in loaded.values()}
    if len(shapes) > 1:
        raise _folder_error(datum.impath, f"frames differ in size: {sorted(shapes)}")
    return np.stack([loaded[i] for i in indices])

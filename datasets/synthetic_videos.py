"""Generator of the embedded synthetic video DG benchmark (numpy + PyAV + PIL; no torch, no downloads).

A clip shows one object moving on a torus (it wraps around the frame edges). Its class is the ORDER of two
perpendicular moves, e.g. `up_then_right`; every move is shared by four classes, so only the temporal
relation of the two sub-actions identifies the class:

- the start position is uniform on the torus, and every later position is the start plus a class-dependent
  offset (a translation of the torus), so the position in any single frame is uniform whatever the class;
- reversing time maps a class to another one, reverse(up_then_right) = left_then_down; with studio timing the
  reversed clip is exactly a clip of the reversed class (`time_reversed`), so the unordered set of frames
  cannot tell the two apart.

Domains differ by a spatial shift (shape, colours, background) and a temporal shift (speed, misalignment, a
partly absent sub-action); DOMAINS documents each. A clip is a deterministic function of (seed, domain,
class, index), so adding videos or domains never changes existing ones. `ensure_dataset` writes the files
(mp4 or PNG frame folders, one TSN list file per domain, a manifest) under a folder named after the
generator parameters, atomically.
"""
import json
import os
import os.path as osp
import shutil
import tempfile
import zlib
from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

import av
import numpy as np
from PIL import Image
from tqdm import tqdm

from framework.fileio import current_umask

GENERATOR_VERSION = 1  # bump when a change alters the rendered videos (it is part of the folder name)
FORMATS = ("video", "frames")
# decord 0.6.0 cannot decode mp4 files of these square sizes (all codecs; dmlc/decord#336), measured over
# even sizes 16-258: FORMAT "video" refuses them.
DECORD_UNREADABLE_SIZES = (16, 24, 48, 72)
FRAME_TMPL = "img_{:05d}.png"  # frame-folder file names, numbered from 1 (TSN)
FPS = 12
MANIFEST = "manifest.json"

# Image coordinates: x to the right, y downwards.
MOVES: Dict[str, Tuple[int, int]] = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}
OPPOSITE = {"up": "down", "down": "up", "left": "right", "right": "left"}
CLASS_MOVES: List[Tuple[str, str]] = [
    ("up", "right"), ("up", "left"), ("down", "right"), ("down", "left"),
    ("right", "up"), ("right", "down"), ("left", "up"), ("left", "down"),
]
CLASS_NAMES = [f"{first}_then_{second}" for first, second in CLASS_MOVES]

MOVE_LENGTH = 0.375  # displacement of one sub-action, in frame sides (12 px at 32 px; < 1/2 so no wrap ambiguity)
OBJECT_RADIUS = 0.12  # base half-size of the object, in frame sides
POSITION_NOISE = 0.01  # std of the per-frame position jitter, in frame sides


def reversed_class(label: int) -> int:
    """The class that time-reversal of `label` produces: A then B, played backwards, is -B then -A."""
    first, second = CLASS_MOVES[label]
    return CLASS_MOVES.index((OPPOSITE[second], OPPOSITE[first]))


# ---------------------------------------------------------------------------------------------- timing
@dataclass(frozen=True)
class Timing:
    """Action progress over the clip: 0 -> 1 is the first sub-action, 1 -> 2 the second.

    Progress rises linearly from `begin_progress` at clip time `begin_time` to `end_progress` at `end_time`
    (clip time: 0 = first frame, 1 = last frame) and is constant outside that window (the object rests).
    """
    begin_time: float
    end_time: float
    begin_progress: float
    end_progress: float

    def progress(self, num_frames: int) -> np.ndarray:
        clip_time = np.arange(num_frames) / (num_frames - 1)
        ramp = np.clip((clip_time - self.begin_time) / (self.end_time - self.begin_time), 0.0, 1.0)
        return self.begin_progress + (self.end_progress - self.begin_progress) * ramp

    @property
    def speed(self) -> float:
        """Progress per clip length; the canonical (studio) speed is 2."""
        return (self.end_progress - self.begin_progress) / (self.end_time - self.begin_time)


CANONICAL_TIMING = Timing(0.0, 1.0, 0.0, 2.0)  # both sub-actions exactly span the clip


def studio_timing(rng: np.random.Generator) -> Timing:
    return CANONICAL_TIMING


def street_timing(rng: np.random.Generator) -> Timing:
    """Faster: the action ends at 55-75% of the clip, then the object rests."""
    return Timing(0.0, rng.uniform(0.55, 0.75), 0.0, 2.0)


def sketch_timing(rng: np.random.Generator) -> Timing:
    """Idle for 5-15% of the clip, then 80-90% of studio speed, so the clip ends before the second move does."""
    delay, speed_ratio = rng.uniform(0.05, 0.15), rng.uniform(0.8, 0.9)
    return Timing(delay, 1.0, 0.0, 2.0 * speed_ratio * (1.0 - delay))


def glimpse_timing(rng: np.random.Generator) -> Timing:
    """The clip begins 30-60% into the first move and ends when the action ends (stretched over the clip)."""
    return Timing(0.0, 1.0, rng.uniform(0.3, 0.6), 2.0)


# ---------------------------------------------------------------------------------------------- appearance
@dataclass(frozen=True)
class Appearance:
    """What a clip looks like: one object over a static background (frame_size x frame_size x 3, floats 0-255)."""
    shape: str  # square, disk, ring or diamond
    radius: float  # half-size in pixels
    colour: np.ndarray  # (3,) RGB, 0-255
    background: np.ndarray


def _hsv_colour(rng: np.random.Generator, saturation: Tuple[float, float], value: Tuple[float, float]) -> np.ndarray:
    """A random-hue RGB colour (0-255) with saturation and value drawn from the given ranges."""
    hue, sat, val = rng.uniform(0, 1), rng.uniform(*saturation), rng.uniform(*value)
    channel_offsets = np.array([0.0, 2.0 / 3.0, 1.0 / 3.0])  # hue wheel phase of R, G, B
    wheel = np.clip(np.abs(((hue + channel_offsets) % 1.0) * 6.0 - 3.0) - 1.0, 0.0, 1.0)
    return 255.0 * val * (1.0 - sat + sat * wheel)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1]: a random cells x cells grid, bilinearly upsampled (periodic, like the torus)."""
    grid = rng.uniform(0, 1, (cells, cells))
    coords = (np.arange(size) + 0.5) * cells / size - 0.5
    low = np.floor(coords).astype(int)
    weight = coords - low
    rows = grid[low % cells] * (1 - weight)[:, None] + grid[(low + 1) % cells] * weight[:, None]
    return rows[:, low % cells] * (1 - weight) + rows[:, (low + 1) % cells] * weight


# Every domain draws a bright object over a darker background: that shared cue keeps a model trained on one
# domain above chance on the others, while shape, colour, texture and clutter supply the spatial shift.
def studio_appearance(rng: np.random.Generator, size: int) -> Appearance:
    """A near-white square on a plain dark background."""
    background = np.full((size, size, 3), rng.uniform(10, 60))
    colour = rng.uniform(210, 255) - rng.uniform(0, 30, 3)
    return Appearance("square", OBJECT_RADIUS * size * rng.uniform(0.85, 1.15), colour, background)


def street_appearance(rng: np.random.Generator, size: int) -> Appearance:
    """A saturated colour disk on a tinted, textured, noisy background with dimmer static distractor blobs."""
    tint = _hsv_colour(rng, (0.2, 0.5), (0.25, 0.4))
    texture = 0.6 + 0.8 * _smooth_noise(rng, size, cells=4)[..., None]
    background = np.clip(tint * texture + rng.normal(0, 10, (size, size, 3)), 0, 255)
    for _ in range(rng.integers(2, 5)):  # distractors: smaller than the object, static, any hue
        centre = rng.uniform(0, size, (1, 2))
        blob = _coverage("disk", _torus_offsets(size, centre), 0.07 * size * rng.uniform(0.8, 1.2))[0]
        background = _composite(background, _hsv_colour(rng, (0.3, 1.0), (0.3, 0.6)), blob)
    colour = _hsv_colour(rng, (0.5, 0.9), (0.85, 1.0))
    return Appearance("disk", 1.15 * OBJECT_RADIUS * size * rng.uniform(0.85, 1.15), colour, background)


def sketch_appearance(rng: np.random.Generator, size: int) -> Appearance:
    """A chalk-white ring outline on a grainy slate board (blue-green to gray)."""
    board = _hsv_colour(rng, (0.1, 0.4), (0.15, 0.3))
    grain = rng.normal(0, 6, (size, size, 1)) + rng.normal(0, 3, (size, size, 3))
    colour = rng.uniform(200, 250) - rng.uniform(0, 20, 3)
    return Appearance("ring", 1.25 * OBJECT_RADIUS * size * rng.uniform(0.85, 1.15), colour,
                      np.clip(board + grain, 0, 255))


def glimpse_appearance(rng: np.random.Generator, size: int) -> Appearance:
    """A diamond of random hue on a gray linear gradient in a random direction."""
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:size, 0:size] / (size - 1)
    ramp = xs * np.cos(angle) + ys * np.sin(angle)
    ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min())
    dark, light = rng.uniform(10, 40), rng.uniform(90, 130)
    background = np.repeat((dark + (light - dark) * ramp)[..., None], 3, axis=2)
    colour = _hsv_colour(rng, (0.4, 0.9), (0.85, 1.0))
    return Appearance("diamond", 1.3 * OBJECT_RADIUS * size * rng.uniform(0.85, 1.15), colour, background)


@dataclass(frozen=True)
class Domain:
    spatial: str  # the documented spatial shift (also written to the manifest)
    temporal: str  # the documented temporal shift
    appearance: Callable[[np.random.Generator, int], Appearance]
    timing: Callable[[np.random.Generator], Timing]


DOMAINS: Dict[str, Domain] = {
    "studio": Domain("near-white square, plain dark background",
                     "canonical: the two moves span the whole clip at constant speed, from frame 0 to the last",
                     studio_appearance, studio_timing),
    "street": Domain("colour disk, tinted textured noisy background with 2-4 dimmer static distractor blobs",
                     "faster (1.3-1.8x): the action ends at 55-75% of the clip, then the object rests",
                     street_appearance, street_timing),
    "sketch": Domain("chalk-white ring outline on a grainy slate board",
                     "misaligned and cut: idle for 5-15% of the clip, then 0.8-0.9x speed, so 29-64% of the "
                     "second move is missing",
                     sketch_appearance, sketch_timing),
    "glimpse": Domain("random-hue diamond on a gray gradient in a random direction",
                      "first move partly absent: the clip begins 30-60% into it; the rest is stretched over "
                      "the clip (0.7-0.85x speed)",
                      glimpse_appearance, glimpse_timing),
}


# ---------------------------------------------------------------------------------------------- clips
@dataclass(frozen=True)
class ClipLatents:
    """Everything that determines a clip; `render_clip` is a pure function of it."""
    label: int
    frame_size: int
    start: np.ndarray  # (2,) x, y of the object at progress 0, in pixels on the torus
    progress: np.ndarray  # (T,) action progress per frame (see Timing)
    jitter: np.ndarray  # (T, 2) per-frame position noise, pixels
    appearance: Appearance


def video_rng(seed: int, domain: str, label: int, index: int) -> np.random.Generator:
    """The random stream of one video; independent of how many other videos or domains exist."""
    return np.random.default_rng([seed, zlib.crc32(domain.encode()), label, index])


def sample_latents(domain: str, label: int, num_frames: int, frame_size: int,
                   rng: np.random.Generator) -> ClipLatents:
    spec = DOMAINS[domain]
    appearance = spec.appearance(rng, frame_size)
    progress = spec.timing(rng).progress(num_frames)
    start = rng.uniform(0, frame_size, 2)
    jitter = rng.normal(0, POSITION_NOISE * frame_size, (num_frames, 2))
    return ClipLatents(label, frame_size, start, progress, jitter, appearance)


def displacement(label: int, progress: np.ndarray, frame_size: int) -> np.ndarray:
    """(T, 2) offset from the start position after `progress` of the two moves of class `label`."""
    first, second = (np.array(MOVES[move], dtype=float) for move in CLASS_MOVES[label])
    first_part = np.clip(progress, 0.0, 1.0)[:, None]
    second_part = np.clip(progress - 1.0, 0.0, 1.0)[:, None]
    return MOVE_LENGTH * frame_size * (first_part * first + second_part * second)


def trajectory(latents: ClipLatents) -> np.ndarray:
    """(T, 2) object centre per frame, wrapped onto [0, frame_size)^2."""
    offset = displacement(latents.label, latents.progress, latents.frame_size) + latents.jitter
    return (latents.start + offset) % latents.frame_size


def time_reversed(latents: ClipLatents) -> ClipLatents:
    """The latents whose clip is this clip played backwards.

    Backwards, the object goes from the end point along -second, then -first: class reversed_class(label),
    starting at start + both moves, with progress 2 - progress (reversed in time). For studio the reversed
    progress equals the canonical one, so the result is itself a studio clip of the reversed class (and as
    likely, since starts are uniform and jitter is symmetric).
    """
    size = latents.frame_size
    end_point = latents.start + displacement(latents.label, np.array([2.0]), size)[0]
    return ClipLatents(reversed_class(latents.label), size, end_point % size, 2.0 - latents.progress[::-1],
                       latents.jitter[::-1], latents.appearance)


def _torus_offsets(size: int, centres: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Shortest signed x and y distances on the torus from each of N centres ((N, 2)) to every pixel centre.

    Returns two (N, size, size) arrays; the object is drawn through them, so it wraps around the edges.
    """
    pixel = np.arange(size) + 0.5
    dx = (pixel[None, None, :] - centres[:, 0, None, None] + size / 2) % size - size / 2
    dy = (pixel[None, :, None] - centres[:, 1, None, None] + size / 2) % size - size / 2
    return np.broadcast_arrays(dx, dy)


def _coverage(shape: str, offsets: Tuple[np.ndarray, np.ndarray], radius: float) -> np.ndarray:
    """Anti-aliased pixel coverage in [0, 1] (one-pixel soft edge), so sub-pixel motion stays visible."""
    dx, dy = offsets
    if shape == "square":
        return np.clip(radius + 0.5 - np.abs(dx), 0, 1) * np.clip(radius + 0.5 - np.abs(dy), 0, 1)
    if shape == "disk":
        return np.clip(radius + 0.5 - np.hypot(dx, dy), 0, 1)
    if shape == "ring":
        half_width = max(0.2 * radius, 0.5)  # line about 2 px wide at the default size
        return np.clip(half_width + 0.5 - np.abs(np.hypot(dx, dy) - radius), 0, 1)
    if shape == "diamond":
        return np.clip(radius + 0.5 - (np.abs(dx) + np.abs(dy)), 0, 1)
    raise ValueError(f"Unknown shape {shape!r}")


def _composite(background: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return background * (1 - alpha[..., None]) + colour * alpha[..., None]


def render_clip(latents: ClipLatents) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB frames."""
    look = latents.appearance
    alpha = _coverage(look.shape, _torus_offsets(latents.frame_size, trajectory(latents)), look.radius)
    return np.round(_composite(look.background[None], look.colour, alpha)).astype(np.uint8)


def render_video(seed: int, domain: str, label: int, index: int, num_frames: int, frame_size: int) -> np.ndarray:
    """The frames of video `index` of class `label` in `domain`, exactly as the dataset stores them."""
    return render_clip(sample_latents(domain, label, num_frames, frame_size, video_rng(seed, domain, label, index)))


# ---------------------------------------------------------------------------------------------- files
@dataclass(frozen=True)
class GeneratorParams:
    """The DATASET.SYNTHETIC settings; each combination is its own folder (see `variant_name`)."""
    seed: int = 0
    videos_per_class: int = 60
    num_frames: int = 24
    frame_size: int = 32
    format: str = "video"

    def validate(self) -> None:
        problems = []
        if self.format not in FORMATS:
            problems.append(f"FORMAT must be one of {FORMATS}, got {self.format!r}")
        if self.frame_size < 16 or self.frame_size % 2:
            problems.append(f"FRAME_SIZE must be even and >= 16 (H.264 needs even sizes), got {self.frame_size}")
        if self.format == "video" and self.frame_size in DECORD_UNREADABLE_SIZES:
            problems.append(f"decord cannot read {self.frame_size}x{self.frame_size} mp4 files (sizes "
                            f"{DECORD_UNREADABLE_SIZES}): choose another FRAME_SIZE or FORMAT frames")
        if self.num_frames < 8:
            problems.append(f"NUM_FRAMES must be >= 8 for the domains' timing to show, got {self.num_frames}")
        if self.videos_per_class < 1:
            problems.append(f"VIDEOS_PER_CLASS must be >= 1, got {self.videos_per_class}")
        if self.seed < 0:
            problems.append(f"SEED must be >= 0, got {self.seed}")
        if problems:
            raise ValueError("Invalid DATASET.SYNTHETIC settings: " + "; ".join(problems))

    def as_dict(self) -> Dict[str, object]:
        return {"seed": self.seed, "videos_per_class": self.videos_per_class, "num_frames": self.num_frames,
                "frame_size": self.frame_size, "format": self.format}


def variant_name(params: GeneratorParams) -> str:
    return (f"v{GENERATOR_VERSION}_seed{params.seed}_n{params.videos_per_class}_t{params.num_frames}"
            f"_s{params.frame_size}_{params.format}")


def video_relpath(params: GeneratorParams, domain: str, label: int, index: int) -> str:
    """Path of a clip inside the variant folder: an .mp4 file or a folder of PNG frames."""
    name = f"{domain}/{CLASS_NAMES[label]}/{domain}_{CLASS_NAMES[label]}_{index:03d}"
    return name + ".mp4" if params.format == "video" else name


def write_mp4(frames: np.ndarray, path: str) -> None:
    """Lossless H.264 in RGB (libx264rgb, qp 0): decord decodes exactly the rendered pixels.

    One encoder thread, because x264's bitstream depends on its thread count: same bytes on every machine.
    """
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264rgb", rate=FPS, options={"qp": "0", "threads": "1"})
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "rgb24"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())  # flush the encoder


def write_frame_folder(frames: np.ndarray, folder: str) -> None:
    os.makedirs(folder)
    for number, frame in enumerate(frames, start=1):
        Image.fromarray(frame).save(osp.join(folder, FRAME_TMPL.format(number)), compress_level=1)


def manifest_for(params: GeneratorParams) -> Dict[str, object]:
    return {
        "generator_version": GENERATOR_VERSION,
        "params": params.as_dict(),
        "classes": CLASS_NAMES,
        "domains": {name: {"videos": params.videos_per_class * len(CLASS_NAMES), "spatial": spec.spatial,
                           "temporal": spec.temporal} for name, spec in DOMAINS.items()},
        "frame_tmpl": FRAME_TMPL if params.format == "frames" else None,
        "fps": FPS,
    }


def _write_variant(folder: str, params: GeneratorParams, progress_bar: tqdm) -> None:
    """All domains' clips, one list file per domain and the manifest, into `folder`."""
    writer = write_mp4 if params.format == "video" else write_frame_folder
    for domain in DOMAINS:
        lines = []
        for label in range(len(CLASS_NAMES)):
            os.makedirs(osp.join(folder, domain, CLASS_NAMES[label]))
            for index in range(params.videos_per_class):
                frames = render_video(params.seed, domain, label, index, params.num_frames, params.frame_size)
                relpath = video_relpath(params, domain, label, index)
                writer(frames, osp.join(folder, relpath))
                lines.append(f"{relpath} {params.num_frames} {label}\n")
                progress_bar.update()
        with open(osp.join(folder, f"{domain}.txt"), "w") as f:
            f.writelines(lines)
    with open(osp.join(folder, MANIFEST), "w") as f:
        json.dump(manifest_for(params), f, indent=1)


def generate_dataset(parent_dir: str, params: GeneratorParams) -> str:
    """Write the variant folder under `parent_dir` and return its path.

    Writes into a hidden temporary folder and renames it into place at the end, so an interrupted run never
    leaves a partial dataset; if another process finished first, this copy is discarded and theirs is used.
    """
    params.validate()
    final_dir = osp.join(parent_dir, variant_name(params))
    tmp_dir = _make_temporary_folder(parent_dir, f".{variant_name(params)}.tmp-")
    total = len(DOMAINS) * len(CLASS_NAMES) * params.videos_per_class
    try:
        # mkdtemp makes an owner-only folder; give it the mode any other new folder gets (world-readable
        # with the usual umask 022), since it becomes the dataset folder
        os.chmod(tmp_dir, 0o777 & ~current_umask())
        with tqdm(total=total, desc=f"Generating {variant_name(params)}", unit="video",
                  disable=None) as progress_bar:  # disable=None: quiet when not a terminal
            _write_variant(tmp_dir, params, progress_bar)
        try:
            os.rename(tmp_dir, final_dir)
        except OSError:
            if not osp.isdir(final_dir):
                raise
            shutil.rmtree(tmp_dir)  # lost a race: another process renamed its copy into place first
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return final_dir


def _make_temporary_folder(parent_dir: str, prefix: str) -> str:
    """A fresh folder under parent_dir (made if missing); a root that cannot be written gets advice."""
    try:
        os.makedirs(parent_dir, exist_ok=True)
        return tempfile.mkdtemp(prefix=prefix, dir=parent_dir)
    except OSError as e:
        root = osp.dirname(osp.abspath(parent_dir))
        raise PermissionError(
            f'Cannot write the synthetic benchmark into "{parent_dir}" ({e.strerror}). Pass --root (DATASET.ROOT) a '
            f'folder you can write to, e.g. --root ~/data, or make "{root}" writable (chmod u+w). The first run '
            "generates the benchmark there; later runs only read it.") from None


def check_manifest(variant_dir: str, params: GeneratorParams) -> Dict[str, object]:
    """The manifest of an existing variant folder, after checking it was made by these settings."""
    path = osp.join(variant_dir, MANIFEST)
    remedy = f'delete "{variant_dir}" to generate it again'
    if not osp.isfile(path):
        raise ValueError(f'"{variant_dir}" has no {MANIFEST}, so it was not written by this generator; {remedy}')
    with open(path) as f:
        manifest = json.load(f)
    expected = manifest_for(params)
    for key in ("generator_version", "params", "classes"):
        if manifest.get(key) != expected[key]:
            raise ValueError(f'{path}: {key} is {manifest.get(key)!r}, expected {expected[key]!r}; {remedy}')
    missing = [domain for domain in DOMAINS if not osp.isfile(osp.join(variant_dir, f"{domain}.txt"))]
    if missing:
        raise ValueError(f"{variant_dir}: list files of {missing} are missing; {remedy}")
    return manifest


def ensure_dataset(parent_dir: str, params: GeneratorParams) -> Tuple[str, Dict[str, object]]:
    """(variant folder, manifest) for `params` under `parent_dir`: generated on first use, checked afterwards."""
    params.validate()
    variant_dir = osp.join(parent_dir, variant_name(params))
    if not osp.isdir(variant_dir):
        generate_dataset(parent_dir, params)
    return variant_dir, check_manifest(variant_dir, params)

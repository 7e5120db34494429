"""Throughput of the input pipeline (decode -> sample -> augment -> batch) on data this script generates, to
size a machine: clips/s and CPU milliseconds per clip, for video files (each decoder) and for JPEG frame
folders made by tools/extract_frames.py, with N DataLoader workers.

    python scripts/benchmark_input.py [--size 640x272] [--clips 24] [--frames 90] [--workers 0 2] [--repeat 2]

The videos are H.264 (a keyframe every 12 frames, B-frames), like most downloaded benchmarks; a clip is M
segment frames (--segments), augmented as in training (multi-scale crop to --crop). CPU time counts the main
process and its finished worker processes (getrusage), so it is the cost per clip whatever the worker count:
the cores needed to feed a GPU at R clips/s are about R * cpu_ms / 1000. Workers run one thread each; with 0
workers the main process's torch threads do the augmentation (more CPU time for the same work).
"""
import argparse
import os
import os.path as osp
import resource
import shutil
import sys
import tempfile
import time
from typing import List, Optional, Sequence

import av
import numpy as np
from tabulate import tabulate
from torch.utils.data import DataLoader

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from anywhere: import the project

from defaults import extend_cfg  # noqa: E402
from framework import get_cfg_default  # noqa: E402
from video.datum import VideoDatum  # noqa: E402
from video.readers import decord_available  # noqa: E402
from video.transforms import build_video_transform  # noqa: E402
from video.wrapper import VideoDatasetWrapper  # noqa: E402

FRAME_TMPL = "img_{:05d}.jpg"  # what tools/extract_frames.py writes


def write_video(path: str, width: int, height: int, num_frames: int, seed: int) -> None:
    """A moving colour gradient with a textured square and mild noise: compresses like camera footage, not
    like flat frames (too cheap to decode) or pure noise (far too expensive)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    texture = rng.integers(0, 256, (height // 4, width // 4, 3), np.uint8)
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"g": "12", "bf": "2", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for k in range(num_frames):
            base = np.stack([(xx + 4 * k) % 256, (yy + 2 * k) % 256, (xx + yy + 3 * k) % 256], -1).astype(np.uint8)
            top, left = (3 * k) % (height - height // 4), (5 * k) % (width - width // 4)
            base[top:top + height // 4, left:left + width // 4] = texture
            noisy = np.clip(base.astype(np.int16) + rng.integers(-6, 7, base.shape), 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(noisy, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def make_dataset(root: str, clips: int, width: int, height: int, num_frames: int, short_side: int) -> str:
    """A prepared-benchmark folder (classes.txt, bench.txt, videos/) and its frames/ via tools/extract_frames.py."""
    dataset_dir = osp.join(root, "input_bench")
    os.makedirs(osp.join(dataset_dir, "videos"), exist_ok=True)
    with open(osp.join(dataset_dir, "classes.txt"), "w") as f:
        f.write("a\nb\n")
    lines = []
    for i in range(clips):
        rel = f"videos/clip_{i:03d}.mp4"
        if not osp.isfile(osp.join(dataset_dir, rel)):
            write_video(osp.join(dataset_dir, rel), width, height, num_frames, seed=i)
        lines.append(f"{rel} {num_frames} {i % 2}\n")
    with open(osp.join(dataset_dir, "bench.txt"), "w") as f:
        f.writelines(lines)
    from tools import extract_frames  # the command users run (imports the project itself)
    code = extract_frames.main([dataset_dir, "--short-side", str(short_side)])
    if code:
        raise RuntimeError(f"tools/extract_frames.py failed with exit code {code}")
    return dataset_dir


def cpu_seconds() -> float:
    """User + system time of this process and its reaped children (finished DataLoader workers)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def measure(items: List[VideoDatum], cfg, workers: int, repeat: int, batch_size: int) -> dict:
    cfg.DATALOADER.NUM_WORKERS = workers
    wrapper = VideoDatasetWrapper(cfg, items * repeat, build_video_transform(cfg, is_train=True), is_train=True)
    loader = DataLoader(wrapper, batch_size=batch_size, shuffle=True, num_workers=workers)
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    count = sum(batch["img"].shape[0] for batch in loader)
    wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
    return {"clips/s": count / wall, "CPU ms/clip": 1000 * cpu / count, "clips": count}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="640x272", help="video WIDTHxHEIGHT (default 640x272)")
    parser.add_argument("--frames", type=int, default=90, help="frames per video")
    parser.add_argument("--clips", type=int, default=24, help="videos generated")
    parser.add_argument("--repeat", type=int, default=2, help="passes over the videos per measurement")
    parser.add_argument("--segments", type=int, default=5, help="M, frames sampled per clip")
    parser.add_argument("--crop", type=int, default=224, help="training crop side")
    parser.add_argument("--short-side", type=int, default=256, help="extract_frames.py --short-side")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader worker counts")
    parser.add_argument("--root", default="", help="folder for the generated data (default: a temporary one)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    root = args.root or tempfile.mkdtemp(prefix="benchmark_input_")
    try:
        dataset_dir = make_dataset(root, args.clips, width, height, args.frames, args.short_side)
        videos = [VideoDatum(osp.join(dataset_dir, f"videos/clip_{i:03d}.mp4"), label=i % 2)
                  for i in range(args.clips)]
        folders = [VideoDatum(osp.join(dataset_dir, "frames", f"videos/clip_{i:03d}"), label=i % 2,
                              num_frames=args.frames, frame_tmpl=FRAME_TMPL) for i in range(args.clips)]
        cfg = get_cfg_default()
        extend_cfg(cfg)
        cfg.INPUT.SIZE = (args.crop, args.crop)
        cfg.INPUT.NUM_SEGMENTS = args.segments
        sources = [("video files", "decord", videos)] if decord_available() else []
        sources += [("video files", "pyav", videos), (f"JPEG frames, short side {args.short_side}", "-", folders)]
        rows = []
        measure(folders[:2], cfg, 0, 1, args.batch_size)  # warm-up: imports, thread pools, file cache
        for source, backend, items in sources:
            cfg.DATASET.VIDEO_BACKEND = backend if backend != "-" else "auto"
            for workers in args.workers:
                result = measure(items, cfg, workers, args.repeat, args.batch_size)
                rows.append([source, backend, workers, f"{result['clips/s']:.1f}", f"{result['CPU ms/clip']:.1f}"])
                print(f"  {source} ({backend}), {workers} workers: {result['clips/s']:.1f} clips/s", flush=True)
        print(f"\nInput pipeline: {args.clips} H.264 videos of {width}x{height}, {args.frames} frames; M={args.segments}, "
              f"training augmentation to {args.crop}x{args.crop}; {os.cpu_count()} CPUs; load average "
              f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        print(tabulate(rows, headers=["source", "decoder", "workers", "clips/s", "CPU ms/clip"], tablefmt="github"))
    finally:
        if not args.root:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

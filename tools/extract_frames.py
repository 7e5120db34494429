"""Extract the frames of a prepared benchmark's videos into frame folders (optional: decord reads the videos).

    python tools/extract_frames.py data/ucf_hmdb [--short-side 256] [--quality 95] [--workers 4]

Reads the list files (<domain>.txt) of a dataset folder written by a tools/prepare_*.py script and decodes every
video they name into frames/<video path without extension>/img_00001.jpg, img_00002.jpg, ... Then train with
DATASET.FRAME_TMPL "img_{:05d}.jpg": list entries are read from those folders, with the same split files.
A folder appears only when complete, so an interrupted run resumes where it stopped.
"""
import argparse
import os
import os.path as osp
import shutil
import sys
from typing import List, Optional, Sequence, Tuple

import av
from PIL import Image

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from anywhere: import the project

from datasets.list_dataset import (CLASSES_FILE, DEFAULT_FRAME_TMPL, FRAMES_DIR, split_range,  # noqa: E402
                                   strip_video_extension)
from datasets.release_check import ReleaseError, head, map_with_progress, run_main  # noqa: E402
from video.listfile import parse_list_file  # noqa: E402


def listed_videos(dataset_dir: str) -> List[str]:
    """Video files (relative paths) named by the dataset's list files, each once."""
    list_files = sorted(name for name in os.listdir(dataset_dir) if name.endswith(".txt") and name != CLASSES_FILE)
    if not list_files:
        raise ReleaseError(f'No list files in "{dataset_dir}": prepare the benchmark first (tools/prepare_*.py).')
    videos = {split_range(entry.path)[0] for name in list_files
              for entry in parse_list_file(osp.join(dataset_dir, name))}
    return sorted(v for v in videos if not osp.isdir(osp.join(dataset_dir, v)))


def frame_folder(dataset_dir: str, relpath: str) -> str:
    return osp.join(dataset_dir, FRAMES_DIR, strip_video_extension(relpath))


def extract(task: Tuple[str, str, int, int]) -> Optional[str]:
    """Decode one video into its frame folder; return a report line if it fails."""
    video, folder, short_side, quality = task
    if osp.isdir(folder):
        return None
    tmp = folder + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        with av.open(video) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for number, frame in enumerate(container.decode(stream), start=1):
                image = frame.to_image()
                if short_side > 0:
                    scale = short_side / min(image.size)
                    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
                image.save(osp.join(tmp, DEFAULT_FRAME_TMPL.format(number)), quality=quality)
    except (av.FFmpegError, OSError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        return f"{video}: {type(e).__name__}: {e}"
    if not os.listdir(tmp):
        os.rmdir(tmp)
        return f"{video}: no frames decoded"
    os.replace(tmp, folder)
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset_dir", help="a prepared dataset folder, e.g. data/ucf_hmdb")
    parser.add_argument("--short-side", type=int, default=0, help="resize frames to this shorter side (0: keep)")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality")
    parser.add_argument("--workers", type=int, default=1, help="videos decoded in parallel")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    dataset_dir = osp.abspath(osp.expanduser(args.dataset_dir))
    videos = listed_videos(dataset_dir)
    tasks = [(osp.join(dataset_dir, v), frame_folder(dataset_dir, v), args.short_side, args.quality) for v in videos]
    for _, folder, _, _ in tasks:
        os.makedirs(osp.dirname(folder), exist_ok=True)
    failed = [r for r in map_with_progress(extract, tasks, args.workers, "extract frames") if r is not None]
    if failed:
        raise ReleaseError(f"{len(failed)} of {len(tasks)} videos could not be extracted:\n  " +
                           "\n  ".join(head(failed)))
    print(f"Frames of {len(tasks)} videos in {osp.join(dataset_dir, FRAMES_DIR)}; train with "
          f'DATASET.FRAME_TMPL "{DEFAULT_FRAME_TMPL}"')
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))

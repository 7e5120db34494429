"""Prepare NTU RGB+D 60 from its RGB release: sort the videos by camera, write camera1.txt .. camera3.txt.

    python tools/prepare_ntu.py --root data [--videos PATH]

Expects data/ntu_rgbd/nturgb+d_rgb/SsssCcccPpppRrrrAaaa_rgb.avi, the content of nturgbd_rgb_s001.zip ..
nturgbd_rgb_s017.zip (docs/datasets.md). NTU RGB+D 120 files (setups S018-S032, actions A061-A120) are ignored.
"""
import argparse
import os
import os.path as osp
import re
import sys
from collections import Counter
from typing import List, Optional, Sequence

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from anywhere: import the project

from datasets import ntu_rgbd  # noqa: E402
from datasets.release_check import (ListRow, check_counts, count_mismatches, link_release,  # noqa: E402
                                    require_dir, run_main, with_frame_counts, write_prepared)

SCRIPT = "tools/prepare_ntu.py"
VIDEO_DIR = "nturgb+d_rgb"
NAME = re.compile(r"^S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})_rgb\.avi$")
DOWNLOAD = ("Request NTU RGB+D at https://rose1.ntu.edu.sg/dataset/actionRecognition/ and download the RGB "
            "videos of NTU RGB+D 60 (nturgbd_rgb_s001.zip .. nturgbd_rgb_s017.zip), then:\n"
            "  for f in nturgbd_rgb_s0*.zip; do unzip -n \"$f\" -d {dir}; done   # -> {dir}/nturgb+d_rgb/")


def scan(video_dir: str) -> List[ListRow]:
    """List rows of the NTU-60 videos in the folder; other files (NTU-120 or other names) are counted, ignored."""
    rows, others = [], 0
    for name in sorted(os.listdir(video_dir)):
        match = NAME.match(name)
        if not match or int(match.group(1)) > ntu_rgbd.NUM_SETUPS or int(match.group(5)) > len(ntu_rgbd.ACTIONS):
            others += 1
            continue
        rows.append((f"{VIDEO_DIR}/{name}", 0, int(match.group(5)) - 1))
    if others:
        print(f"Ignored {others} files that are not NTU RGB+D 60 videos (NTU-120 setups/actions or other names)")
    return rows


def camera_of(path: str) -> str:
    return ntu_rgbd.CAMERAS[int(NAME.match(osp.basename(path)).group(2))]


def check_release(rows: List[ListRow], dataset_dir: str, allow_mismatch: bool) -> None:
    """Per camera against the expected third of the videos; name the setups (one zip each) that are absent."""
    found = Counter(camera_of(path) for path, _, _ in rows)
    expected = {camera: ntu_rgbd.EXPECTED_PER_CAMERA for camera in ntu_rgbd.CAMERAS.values()}
    setups = Counter(int(NAME.match(osp.basename(path)).group(1)) for path, _, _ in rows)
    problems = [f"setup S{s:03d}: no videos (nturgbd_rgb_s{s:03d}.zip not extracted)"
                for s in range(1, ntu_rgbd.NUM_SETUPS + 1) if not setups[s]]
    problems += count_mismatches(found, expected)
    check_counts(problems, f"{len(rows)} of the {ntu_rgbd.EXPECTED_VIDEOS} NTU RGB+D 60 videos found in "
                           f"{osp.join(dataset_dir, VIDEO_DIR)}.", "Fix: " + DOWNLOAD.format(dir=dataset_dir),
                 allow_mismatch)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, help="DATASET.ROOT; files go to ROOT/ntu_rgbd/")
    parser.add_argument("--videos", help=f"the extracted {VIDEO_DIR}/ folder, if elsewhere (linked in)")
    parser.add_argument("--count-frames", action="store_true", help="count every video's frames with decord")
    parser.add_argument("--allow-mismatch", action="store_true", help="prepare even if counts differ")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    dataset_dir = osp.join(osp.abspath(osp.expanduser(args.root)), ntu_rgbd.NTURGBD.dataset_dir)
    video_dir = link_release(dataset_dir, VIDEO_DIR, args.videos)
    require_dir(video_dir, "NTU RGB+D RGB videos", DOWNLOAD.format(dir=dataset_dir))
    rows = scan(video_dir)
    check_release(rows, dataset_dir, args.allow_mismatch)
    lists = {camera: [r for r in rows if camera_of(r[0]) == camera] for camera in ntu_rgbd.CAMERAS.values()}
    if args.count_frames:
        lists = with_frame_counts(dataset_dir, lists)
    write_prepared(dataset_dir, SCRIPT, ntu_rgbd.ACTIONS, lists, {"benchmark": "NTU RGB+D 60"}, ntu_rgbd.NTURGBD)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))

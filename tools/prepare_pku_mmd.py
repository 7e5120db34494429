"""Prepare PKU-MMD from the phase-1 release: one trimmed clip per annotated action, lists per camera view.

    python tools/prepare_pku_mmd.py --root data [--mode clips|ranges] [--categories daily|all] [--workers 4]

Expects data/pku_mmd/RGB_VIDEO/XXXX-V.avi and data/pku_mmd/Train_Label_PKU_final/XXXX-V.txt (docs/datasets.md).
Annotation lines are `label,start_frame,end_frame,confidence` with label 1..51; the frames are read as
0-based indices with both ends included. --mode clips (default) cuts each action once into
clips/<view>/XXXX-V_<line>.mp4, so training reads short files; --mode ranges writes entries
`RGB_VIDEO/XXXX-V.avi@start-stop` that are cut on the fly (no extra disk, slower reads). Lines outside their
video's frames are reported and skipped.
"""
import argparse
import os
import os.path as osp
import re
import sys
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import av
import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from anywhere: import the project

from datasets import pku_mmd  # noqa: E402
from datasets.list_dataset import VIDEO_EXTENSIONS  # noqa: E402
from datasets.release_check import (check_counts, count_video_frames, head, link_release,  # noqa: E402
                                    map_with_progress, require_dir, run_main, write_prepared)

SCRIPT = "tools/prepare_pku_mmd.py"
VIDEO_DIR, LABEL_DIR, CLIP_DIR = "RGB_VIDEO", "Train_Label_PKU_final", "clips"
NAME = re.compile(r"^(\d{4})-([LMR])$")  # sequence number and view of a file stem
DOWNLOAD = ("Download PKU-MMD phase 1 from https://www.icst.pku.edu.cn/struct/Projects/PKUMMD.html (RGB_VIDEO "
            "and the labels, Train_Label_PKU_final), then extract both into {dir}/ so that it holds "
            "RGB_VIDEO/0002-L.avi ... and Train_Label_PKU_final/0002-L.txt ...")


class Action(NamedTuple):
    stem: str  # video, e.g. 0002-L
    line: int  # line number in the annotation file (1-based): names the clip
    label: int  # PKU-MMD action id, 1..51
    start: int  # first frame
    stop: int  # one past the last frame


class CutJob(NamedTuple):
    source: str  # absolute path of the untrimmed video
    clips: List[Tuple[int, int, str]]  # (start, stop, absolute destination)
    short_side: int


# ---------------------------------------------------------------------------------------------- reading the release
def scan(folder: str, extensions: Sequence[str]) -> Dict[str, str]:
    """stem -> file name for files named XXXX-V with one of the extensions."""
    found = {}
    for name in os.listdir(folder):
        stem, ext = osp.splitext(name)
        if ext.lower() in extensions and NAME.match(stem):
            found[stem] = name
    return found


def read_annotations(path: str, stem: str) -> Tuple[List[Action], List[str]]:
    """The actions of one annotation file, and a report line for each line that cannot be parsed."""
    actions, bad = [], []
    with open(path, encoding="utf-8") as f:
        for number, text in enumerate(f, start=1):
            text = text.strip()
            if not text:
                continue
            try:
                label, start, end = (int(float(x)) for x in text.split(",")[:3])
                if not 1 <= label <= len(pku_mmd.ACTIONS):
                    raise ValueError(f"label {label} outside 1..{len(pku_mmd.ACTIONS)}")
            except ValueError as e:
                bad.append(f'{stem}.txt line {number}: "{text}" ({e})')
                continue
            actions.append(Action(stem, number, label, start, end + 1))
    return actions, bad


def in_range(action: Action, num_frames: int) -> bool:
    return 0 <= action.start < action.stop <= num_frames


# ---------------------------------------------------------------------------------------------- cutting clips
def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


def output_size(width: int, height: int, short_side: int) -> Tuple[int, int]:
    """Clip size: the source size, or scaled to the given shorter side; even, as yuv420p needs."""
    scale = short_side / min(width, height) if short_side > 0 else 1.0
    return _even(width * scale), _even(height * scale)


def cut_video(job: CutJob) -> List[str]:
    """Cut the clips of one video in one decoding pass; return a report line for each clip that failed.

    A clip is written to a temporary name and renamed when complete, so an interrupted run can resume.
    """
    todo = sorted((c for c in job.clips if not osp.isfile(c[2])), key=lambda c: c[0])
    if not todo:
        return []
    failed, open_clips = [], []
    try:
        with av.open(job.source) as source:
            stream = source.streams.video[0]
            stream.thread_type = "AUTO"
            rate = stream.average_rate or 30
            size = output_size(stream.codec_context.width, stream.codec_context.height, job.short_side)
            for index, frame in enumerate(source.decode(stream)):
                while todo and todo[0][0] == index:
                    open_clips.append(_ClipWriter(todo.pop(0), rate, size))
                if open_clips:
                    image = frame.to_ndarray(format="rgb24", width=size[0], height=size[1])
                for clip in list(open_clips):
                    clip.write(image)
                    if clip.stop == index + 1:
                        clip.finish()
                        open_clips.remove(clip)
                if not todo and not open_clips:
                    break
    except (av.FFmpegError, OSError) as e:
        failed.append(f"{osp.basename(job.source)}: cannot decode ({type(e).__name__}: {e})")
    for clip in open_clips:  # the video ended (or broke) before these clips did
        clip.abort()
        failed.append(f"{osp.basename(clip.path)}: the video has fewer decodable frames than its clip needs")
    return failed + [f"{osp.basename(c[2])}: starts after the last decodable frame" for c in todo]


class _ClipWriter:
    def __init__(self, clip: Tuple[int, int, str], rate, size: Tuple[int, int]):
        self.start, self.stop, self.path = clip
        os.makedirs(osp.dirname(self.path), exist_ok=True)
        self.tmp = self.path + ".tmp.mp4"
        self.container = av.open(self.tmp, "w")
        self.stream = self.container.add_stream("libx264", rate=rate, options={"crf": "18", "preset": "veryfast"})
        self.stream.width, self.stream.height = size
        self.stream.pix_fmt = "yuv420p"

    def write(self, image: np.ndarray) -> None:
        self.container.mux(self.stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))

    def finish(self) -> None:
        self.container.mux(self.stream.encode())  # flush the encoder
        self.container.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.container.close()
        os.remove(self.tmp)


# ---------------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, help="DATASET.ROOT; files go to ROOT/pku_mmd/")
    parser.add_argument("--videos", help=f"the extracted {VIDEO_DIR}/ folder, if elsewhere (linked in)")
    parser.add_argument("--labels", help=f"the extracted {LABEL_DIR}/ folder, if elsewhere (linked in)")
    parser.add_argument("--categories", choices=sorted(pku_mmd.CATEGORY_SETS), default="daily",
                        help="daily: the 41 single-person actions (default); all: the 51 classes")
    parser.add_argument("--mode", choices=("clips", "ranges"), default="clips",
                        help="clips: cut clip files once (default); ranges: cut on the fly while training")
    parser.add_argument("--short-side", type=int, default=0, help="clips: scale to this shorter side (0: keep)")
    parser.add_argument("--workers", type=int, default=1, help="clips: videos cut in parallel")
    parser.add_argument("--allow-mismatch", action="store_true", help="prepare even if counts differ")
    return parser


def check_release(videos: Dict[str, str], labels: Dict[str, str], n_actions: int, allow_mismatch: bool,
                  dataset_dir: str) -> None:
    """Every video needs its annotation file and vice versa; the totals must be the release's."""
    problems = []
    if len(videos) != pku_mmd.EXPECTED_VIDEOS:
        per_view = {domain: sum(1 for s in videos if s[-1] == v) for v, domain in pku_mmd.VIEWS.items()}
        problems.append(f"{VIDEO_DIR}: {len(videos)} of the {pku_mmd.EXPECTED_VIDEOS} videos (per view: {per_view})")
    if n_actions != pku_mmd.EXPECTED_ANNOTATIONS:
        problems.append(f"{LABEL_DIR}: {n_actions} annotated actions, {pku_mmd.EXPECTED_ANNOTATIONS} expected")
    problems += [f"{VIDEO_DIR}/{videos[s]}: no annotation file {LABEL_DIR}/{s}.txt"
                 for s in sorted(set(videos) - set(labels))]
    problems += [f"{LABEL_DIR}/{labels[s]}: no video {VIDEO_DIR}/{s}.avi" for s in sorted(set(labels) - set(videos))]
    check_counts(problems, "The PKU-MMD phase-1 release is incomplete.",
                 "Fix: " + DOWNLOAD.format(dir=dataset_dir), allow_mismatch)


def report(title: str, lines: List[str]) -> None:
    if lines:
        print(f"{title}: {len(lines)}\n  " + "\n  ".join(head(lines)))


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    dataset_dir = osp.join(osp.abspath(osp.expanduser(args.root)), pku_mmd.PKUMMD.dataset_dir)
    for name, source in ((VIDEO_DIR, args.videos), (LABEL_DIR, args.labels)):
        require_dir(link_release(dataset_dir, name, source), f"PKU-MMD {name}", DOWNLOAD.format(dir=dataset_dir))
    videos = scan(osp.join(dataset_dir, VIDEO_DIR), VIDEO_EXTENSIONS)
    labels = scan(osp.join(dataset_dir, LABEL_DIR), (".txt",))
    actions, malformed = [], []
    for stem in sorted(labels):
        found, bad = read_annotations(osp.join(dataset_dir, LABEL_DIR, labels[stem]), stem)
        actions += found
        malformed += bad
    report("Annotation lines that cannot be parsed (skipped)", malformed)
    check_release(videos, labels, len(actions), args.allow_mismatch, dataset_dir)

    # Frame counts as decord sees them: the reader indexes clips and ranges the same way.
    frames, unreadable = count_video_frames(dataset_dir, [f"{VIDEO_DIR}/{videos[s]}" for s in labels if s in videos],
                                            "count frames")
    report("Videos that cannot be read (their actions are skipped)", unreadable)
    usable, outside = [], []
    for action in actions:
        n = frames.get(f"{VIDEO_DIR}/{videos.get(action.stem, '')}")
        if n is None:
            continue
        if in_range(action, n):
            usable.append(action)
        else:
            outside.append(f"{action.stem}.txt line {action.line}: frames {action.start}-{action.stop - 1} "
                           f"outside the video's frames 0-{n - 1}")
    report("Annotation lines outside their video's frames (skipped)", outside)

    kept_ids = pku_mmd.CATEGORY_SETS[args.categories]
    label_of = {action_id: label for label, action_id in enumerate(kept_ids)}
    selected = [a for a in usable if a.label in label_of]
    print(f"{len(selected)} of {len(usable)} usable actions belong to the {args.categories} categories "
          f"({len(kept_ids)} classes)")
    jobs = cut_jobs(dataset_dir, videos, selected, args.short_side) if args.mode == "clips" else []
    failed = [line for lines in map_with_progress(cut_video, jobs, args.workers, "cut clips") for line in lines]
    report("Clips that could not be cut (skipped)", failed)
    lists = {domain: [] for domain in pku_mmd.VIEWS.values()}
    for a in selected:
        path = clip_relpath(a) if args.mode == "clips" else f"{VIDEO_DIR}/{videos[a.stem]}@{a.start}-{a.stop}"
        if args.mode == "ranges" or osp.isfile(osp.join(dataset_dir, path)):
            lists[pku_mmd.VIEWS[a.stem[-1]]].append((path, a.stop - a.start, label_of[a.label]))
    classes = [pku_mmd.ACTIONS[i - 1] for i in kept_ids]
    info = {"benchmark": "PKU-MMD phase 1", "categories": args.categories, "action_ids": kept_ids,
            "mode": args.mode, "short_side": args.short_side,
            "skipped": {"unparsable_lines": len(malformed), "outside_frames": len(outside),
                        "unreadable_videos": len(unreadable), "cut_failed": len(failed),
                        "other_categories": len(usable) - len(selected)}}
    write_prepared(dataset_dir, SCRIPT, classes, lists, info, pku_mmd.PKUMMD)
    return 0


def clip_relpath(a: Action) -> str:
    return f"{CLIP_DIR}/{pku_mmd.VIEWS[a.stem[-1]]}/{a.stem}_{a.line:03d}.mp4"


def cut_jobs(dataset_dir: str, videos: Dict[str, str], selected: List[Action], short_side: int) -> List[CutJob]:
    """One job per untrimmed video: all of its selected actions, cut in one decoding pass."""
    by_video: Dict[str, List[Action]] = {}
    for a in selected:
        by_video.setdefault(a.stem, []).append(a)
    return [CutJob(osp.join(dataset_dir, VIDEO_DIR, videos[stem]),
                   [(a.start, a.stop, osp.join(dataset_dir, clip_relpath(a))) for a in group], short_side)
            for stem, group in sorted(by_video.items())]


if __name__ == "__main__":
    sys.exit(run_main(main))

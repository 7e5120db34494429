"""PreparedVideoDGDataset: a benchmark whose preparation script wrote per-domain list files.

Each real benchmark (UCF-HMDB, Something-Something, PKU-MMD, NTU) has a script in tools/ that turns the raw
release into these files under <DATASET.ROOT>/<dataset_dir>/:

    classes.txt        class names, one per line, in label order
    <domain>.txt       TSN list of the domain: `relative/path num_frames label` (num_frames 0 = not counted);
                       a clip cut on the fly from a longer video is `relative/video.avi@start-stop` (half-open)
    prepared.json      what the script found: counts per domain and class, skipped items, options
    splits/            the saved source train/val splits (datasets/base.py)
    frames/            optional frame folders (tools/extract_frames.py): frames/<path without extension>/

Videos are read directly by decord. With DATASET.FRAME_TMPL set (e.g. img_{:05d}.jpg) each clip is read from
its frame folder instead. A clip's key in split files is its path without the extension and without the
frames/ prefix, so the video and frame-folder variants of a benchmark share one train/val split.
"""
import os.path as osp
import re
from collections import Counter
from typing import List, NamedTuple, Optional, Sequence, Tuple

from video.datum import VideoDatum
from video.listfile import ListEntry, parse_list_file, read_list_lines

from .base import DatasetNotFoundError, VideoDGDataset

CLASSES_FILE = "classes.txt"
MANIFEST_FILE = "prepared.json"
FRAMES_DIR = "frames"
DEFAULT_FRAME_TMPL = "img_{:05d}.jpg"  # what tools/extract_frames.py writes (TSN names, first frame 1)
_RANGE = re.compile(r"(.+)@(\d+)-(\d+)")  # a list path with a frame range
VIDEO_EXTENSIONS = (".avi", ".mp4", ".webm", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".ogv")


class Clip(NamedTuple):
    path: str  # absolute path of the video file or frame folder
    num_frames: int  # -1 = let the reader count
    frame_range: Optional[Tuple[int, int]]
    label: int


def split_range(path: str) -> Tuple[str, Optional[Tuple[int, int]]]:
    """'video.avi@120-245' -> ('video.avi', (120, 245)); a path without such a suffix has no range."""
    match = _RANGE.fullmatch(path)
    return (match.group(1), (int(match.group(2)), int(match.group(3)))) if match else (path, None)


def strip_video_extension(path: str) -> str:
    root, ext = osp.splitext(path)
    return root if ext.lower() in VIDEO_EXTENSIONS else path


def clip_key(relpath: str, frame_range: Optional[Tuple[int, int]] = None) -> str:
    """Storage-independent name of a clip: relative path without video extension and frames/ prefix."""
    path = relpath.replace(osp.sep, "/")
    if path.startswith(FRAMES_DIR + "/"):
        path = path[len(FRAMES_DIR) + 1:]
    key = strip_video_extension(path)
    return key if frame_range is None else f"{key}@{frame_range[0]}-{frame_range[1]}"


def read_classes(dataset_dir: str) -> List[str]:
    with open(osp.join(dataset_dir, CLASSES_FILE), encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def refuse_duplicates(list_file: str, paths: Sequence[str], keys: Sequence[str]) -> None:
    """Stop when one clip (same key) is listed twice: it would be trained on and evaluated twice, silently."""
    counts = Counter(keys)
    repeated = [key for key, n in counts.items() if n > 1]
    if not repeated:
        return
    line_numbers = [number for number, _ in read_list_lines(list_file)]
    shown = []
    for key in repeated[:5]:
        lines = [line_numbers[i] for i, k in enumerate(keys) if k == key]
        path = paths[keys.index(key)]
        shown.append(f'"{path}" on lines {", ".join(map(str, lines[:-1]))} and {lines[-1]}')
    more = f" (and {len(repeated) - 5} more)" if len(repeated) > 5 else ""
    raise ValueError(f"{list_file}: {len(repeated)} clips are listed more than once: {'; '.join(shown)}{more}. A "
                     "clip listed twice is trained on twice and counted twice in evaluation. Delete the repeated "
                     "lines, e.g. awk '!seen[$1]++' FILE > FILE.new (keeps the first of each path).")


class PreparedVideoDGDataset(VideoDGDataset):
    """Reads classes.txt and <domain>.txt as written by the benchmark's preparation script."""

    default_frame_tmpl = DEFAULT_FRAME_TMPL  # frame names of a folder when DATASET.FRAME_TMPL is empty

    def prepare(self) -> None:
        super().prepare()
        needed = [CLASSES_FILE] + [f"{d}.txt" for d in self.requested_domains()]
        missing = [name for name in needed if not osp.isfile(osp.join(self.dataset_dir, name))]
        if missing:
            raise DatasetNotFoundError(f'"{self.dataset_dir}" has no {", ".join(missing)}: the benchmark is not '
                                       f"prepared yet. {self.prepare_hint}")
        self.prepared_classes = read_classes(self.dataset_dir)
        self.frame_tmpl = self.cfg.DATASET.FRAME_TMPL

    def requested_domains(self) -> List[str]:
        names = list(self.cfg.DATASET.SOURCE_DOMAINS) + list(self.cfg.DATASET.TARGET_DOMAINS)
        return [self.domain_aliases.get(name, name) for name in names]

    def class_names(self) -> List[str]:
        return self.prepared_classes

    def read_domain(self, domain: str, domain_label: int) -> List[VideoDatum]:
        return self.read_list(osp.join(self.dataset_dir, f"{domain}.txt"), domain, domain_label)

    def parse_list(self, list_file: str) -> List[ListEntry]:
        """The entries of one list file (the preparation scripts write `path num_frames label`)."""
        return parse_list_file(list_file)

    def read_list(self, list_file: str, domain: str, domain_label: int) -> List[VideoDatum]:
        """The clips of one list file; an empty list and a clip listed twice are refused."""
        entries = self.parse_list(list_file)
        if not entries:
            raise ValueError(f'List file "{list_file}" has no clips (only blank or comment lines): a domain needs '
                             f"clips to train or test on. Write its clips, one per line, or leave domain \"{domain}\" "
                             "out of --source-domains / --target-domains.")
        clips = [self._clip(entry, list_file) for entry in entries]
        refuse_duplicates(list_file, [entry.path for entry in entries],
                          [clip_key(*split_range(entry.path)) for entry in entries])
        self._check_present(domain, [clip.path for clip in clips])
        tmpl = self.frame_tmpl or self.default_frame_tmpl
        return [VideoDatum(clip.path, label=clip.label, domain=domain_label, num_frames=clip.num_frames,
                           classname=self.prepared_classes[clip.label], frame_tmpl=tmpl, first_frame=1,
                           frame_range=clip.frame_range) for clip in clips]

    def _clip(self, entry: ListEntry, list_file: str) -> Clip:
        """Where one list entry is stored (video file or frame folder) and what the reader needs to know."""
        if not 0 <= entry.label < len(self.prepared_classes):
            raise ValueError(f'{list_file}: label {entry.label} of "{entry.path}" but {CLASSES_FILE} has only '
                             f"{len(self.prepared_classes)} classes. {self.prepare_hint}")
        relpath, frame_range = split_range(entry.path)
        path, num_frames = osp.join(self.dataset_dir, relpath), entry.num_frames
        if self.frame_tmpl and not osp.isdir(path):
            path = osp.join(self.dataset_dir, FRAMES_DIR, strip_video_extension(relpath))
            num_frames = 0  # the folder's files are the truth: the list counted the video's frames
        return Clip(path, num_frames if num_frames > 0 else -1, frame_range, entry.label)

    def _check_present(self, domain: str, paths: List[str]) -> None:
        missing = [path for path in paths if not osp.exists(path)]
        if not missing:
            return
        if self.frame_tmpl:
            fix = (f"Extract the frames with `python tools/extract_frames.py {self.dataset_dir}`, or leave "
                   "DATASET.FRAME_TMPL empty to read the videos.")
        else:
            fix = f"Restore the files or prepare the benchmark again. {self.prepare_hint}"
        raise DatasetNotFoundError(f'{len(missing)} of {len(paths)} clips of domain "{domain}" are missing '
                                   f'(e.g. "{missing[0]}"). {fix}')

    def item_key(self, item: VideoDatum) -> str:
        return clip_key(osp.relpath(item.impath, self.dataset_dir), item.frame_range)

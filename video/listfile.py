"""TSN-style list files: one clip per line, `path num_frames label` (and the free-form lists of your own data,
`parse_clip_list`: `path label`, `path num_frames label` or `path num_frames label group`).

Example (blank lines and lines starting with '#' are ignored; such a line that reads like a clip line is
warned about, since a clip path cannot begin with '#'):

    # path            num_frames  label
    v_ApplyEyeMakeup_g08_c01   121   0
    v_Archery_g01_c01          164   2

Relative paths are joined to `root` (normally DATASET.ROOT plus the dataset's folder). The frame count is a
hint: for video files the reader counts the frames itself (see video.readers.count_frames).
"""
import codecs
import os.path as osp
import warnings
from typing import List, NamedTuple, Optional, Tuple

EXPECTED_FORMAT = "'<path> <num_frames> <label>' (whitespace separated, no spaces inside path, integers >= 0)"


class ListEntry(NamedTuple):
    path: str
    num_frames: int
    label: int


def parse_list_file(path: str, root: str = "") -> List[ListEntry]:
    """Read a list file into ListEntry records, in file order."""
    return [_parse_line(text, path, line_no, root) for line_no, text in read_list_lines(path)]


def read_list_lines(path: str) -> List[Tuple[int, str]]:
    """(line number, stripped text) of every clip line of a list file: blank and '#' lines are left out."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'List file not found: "{path}"')
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ValueError(f'List file "{path}" starts with a byte-order mark (BOM); save it as UTF-8 without BOM '
                         "(e.g. sed -i '1s/^\\xEF\\xBB\\xBF//' FILE, or iconv -f UTF-16 -t UTF-8 for UTF-16)")
    try:
        content = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line_no = data[:e.start].count(b"\n") + 1
        raise ValueError(f'List file "{path}" is not UTF-8 (line {line_no}, byte {e.start}: '
                         f"{data[e.start:e.start + 1]!r}); convert it, e.g. iconv -f latin1 -t UTF-8") from None
    lines = []
    for line_no, line in enumerate(content.split("\n"), start=1):
        text = line.strip()
        if not text:
            continue
        if text.startswith("#"):
            if _looks_like_entry(text[1:]):
                # A clip whose path begins with '#' and a commented-out clip read the same: say so.
                warnings.warn(f'{path}, line {line_no}: "{text}" is read as a comment, but it looks like a clip '
                              "line; a path that begins with '#' is not supported (rename it), or delete the "
                              "line if it is meant to be commented out", ListFileWarning, stacklevel=3)
            continue
        lines.append((line_no, text))
    return lines


class ClipLine(NamedTuple):
    """A line of a free-form clip list: `path label`, `path num_frames label` or `path num_frames label group`."""
    path: str
    num_frames: int  # 0 = not given (the reader counts)
    label: int
    group: Optional[str]  # the recording the clip was cut from; None = not given


CLIP_LINE_FORMATS = ("'<path> <label>', '<path> <num_frames> <label>' or '<path> <num_frames> <label> <group>' "
                     "(whitespace separated, no spaces inside path or group, integers >= 0)")


def parse_clip_list(path: str) -> List[ClipLine]:
    """Read a list of 2, 3 or 4 fields per line (one format per file), in file order."""
    lines, width = [], None
    for line_no, text in read_list_lines(path):
        fields = text.split()
        try:
            if len(fields) not in (2, 3, 4):
                raise ValueError(f"{len(fields)} fields")
            if width is not None and len(fields) != width:
                raise ValueError(f"{len(fields)} fields where the lines above have {width}")
            numbers = [int(f) for f in fields[1:3]]
            if min(numbers) < 0:
                raise ValueError("a negative number")
        except ValueError as e:
            message = f'{path}, line {line_no}: cannot parse "{text}" ({e}); expected {CLIP_LINE_FORMATS}'
            raise ValueError(message) from None
        width = len(fields)
        num_frames, label = (0, numbers[0]) if width == 2 else numbers
        lines.append(ClipLine(fields[0], num_frames, label, fields[3] if width == 4 else None))
    return lines


class ListFileWarning(UserWarning):
    """A list-file line that is probably not what its author meant."""


def _looks_like_entry(text: str) -> bool:
    """`path num_frames label` with integer counts: a clip line rather than prose."""
    fields = text.split()
    return len(fields) == 3 and all(f.lstrip("-").isdigit() for f in fields[1:])


def _parse_line(text: str, path: str, line_no: int, root: str) -> ListEntry:
    fields = text.split()
    try:
        if len(fields) != 3:
            raise ValueError(f"{len(fields)} fields instead of 3")
        clip_path, num_frames, label = fields[0], int(fields[1]), int(fields[2])
        if num_frames < 0 or label < 0:
            raise ValueError("negative num_frames or label")
    except ValueError as e:
        raise ValueError(f'{path}, line {line_no}: cannot parse "{text}" ({e}); '
                         f"expected {EXPECTED_FORMAT}") from None
    if root and not osp.isabs(clip_path):
        clip_path = osp.join(root, clip_path)
    return ListEntry(clip_path, num_frames, label)

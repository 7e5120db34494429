"""TSN-style list files: one clip per line, `path num_frames label`.

Example (blank lines and lines starting with '#' are ignored):

    # path            num_frames  label
    v_ApplyEyeMakeup_g08_c01   121   0
    v_Archery_g01_c01          164   2

Relative paths are joined to `root` (normally DATASET.ROOT plus the dataset's folder). The frame count is a
hint: for video files the reader counts the frames itself (see video.readers.count_frames).
"""
import os.path as osp
from typing import List, NamedTuple

EXPECTED_FORMAT = "'<path> <num_frames> <label>' (whitespace separated, no spaces inside path, integers >= 0)"


class ListEntry(NamedTuple):
    path: str
    num_frames: int
    label: int


def parse_list_file(path: str, root: str = "") -> List[ListEntry]:
    """Read a list file into ListEntry records, in file order."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'List file not found: "{path}"')
    entries = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            entries.append(_parse_line(text, path, line_no, root))
    return entries


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

"""VideoDatum: Dassl's Datum for a clip stored as a video file or as a folder of frames."""
import os.path as osp
from typing import Optional, Tuple

from framework import Datum

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class VideoDatum(Datum):
    """A labelled clip (or a still image: a clip of one frame).

    Dassl's Datum asserts that `impath` is an existing *file*, which a frame folder is not. This subclass
    accepts a file or a folder (and names the path when it is missing), stores the same private fields that
    Datum's read-only properties return, and adds what a reader needs:

    - num_frames: frames in the clip (list files give it; -1 = ask the reader)
    - frame_tmpl: file-name template of a frame folder, e.g. "img_{:05d}.jpg"
    - first_frame: number of the first frame file in a folder (TSN folders start at 1)
    - frame_range: (start, stop), a half-open range of frame indices inside a longer video (a trimmed clip
      cut on the fly from an untrimmed video); None = the whole video
    """

    def __init__(self, impath: str, label: int = 0, domain: int = 0, classname: str = "", num_frames: int = -1,
                 frame_tmpl: str = "img_{:05d}.jpg", first_frame: int = 1,
                 frame_range: Optional[Tuple[int, int]] = None):
        if not isinstance(impath, str):
            raise TypeError(f"impath must be a str, got {type(impath).__name__}")
        if not osp.exists(impath):
            raise FileNotFoundError(f'Video not found: "{impath}" (no such file or frame folder)')
        # Same fields as Datum.__init__ sets; Datum's own __init__ is skipped because of its isfile assertion.
        self._impath = impath
        self._label = label
        self._domain = domain
        self._classname = classname
        self.num_frames = num_frames
        self.frame_tmpl = frame_tmpl
        self.first_frame = first_frame
        self.frame_range = frame_range

    @property
    def is_frame_folder(self) -> bool:
        return osp.isdir(self._impath)

    @property
    def is_image(self) -> bool:
        """A still image (image DG benchmarks): read as a clip of one frame."""
        return osp.splitext(self._impath)[1].lower() in IMAGE_EXTENSIONS

    def __repr__(self) -> str:
        return (f"VideoDatum({self._impath!r}, label={self._label}, domain={self._domain}, "
                f"num_frames={self.num_frames})")

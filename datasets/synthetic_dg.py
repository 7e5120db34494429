"""SyntheticVideoDG: the embedded video DG benchmark, generated on first use (see datasets/synthetic_videos.py).

Eight classes are ordered pairs of perpendicular moves (`up_then_right`, ...) of one object on a torus; the
four domains (studio, street, sketch, glimpse) differ by appearance and by timing. Files live under
<DATASET.ROOT>/synthetic_video_dg/<variant>/, one variant folder per DATASET.SYNTHETIC setting; that folder
is this dataset's `dataset_dir`, so the saved source train/val splits belong to one variant too.
"""
import os.path as osp
from typing import List

from defaults import CN, config_defaults
from framework import DATASET_REGISTRY
from video.datum import VideoDatum
from video.listfile import parse_list_file

from .base import VideoDGDataset
from .synthetic_videos import DOMAINS, FRAME_TMPL, MANIFEST, GeneratorParams, ensure_dataset


@config_defaults
def _synthetic_defaults(cfg) -> None:
    cfg.DATASET.SYNTHETIC = CN()  # the embedded benchmark (datasets/synthetic), generated on first use
    cfg.DATASET.SYNTHETIC.SEED = 0  # generator seed: same seed, same videos
    cfg.DATASET.SYNTHETIC.VIDEOS_PER_CLASS = 60  # per domain and class
    cfg.DATASET.SYNTHETIC.NUM_FRAMES = 24  # frames per video
    cfg.DATASET.SYNTHETIC.FRAME_SIZE = 32  # frame height = width, pixels
    cfg.DATASET.SYNTHETIC.FORMAT = "video"  # video (mp4 files) or frames (folders of PNG frames)


def generator_params(cfg) -> GeneratorParams:
    synthetic = cfg.DATASET.SYNTHETIC
    return GeneratorParams(seed=synthetic.SEED, videos_per_class=synthetic.VIDEOS_PER_CLASS,
                           num_frames=synthetic.NUM_FRAMES, frame_size=synthetic.FRAME_SIZE, format=synthetic.FORMAT)


@DATASET_REGISTRY.register()
class SyntheticVideoDG(VideoDGDataset):
    dataset_dir = "synthetic_video_dg"
    domains = list(DOMAINS)
    single_sources = ["studio"]  # the one single-source task: the plain studio -> the three shifted domains
    # Every clip has its own independently drawn generating parameters (video_rng(seed, domain, class, index)):
    # no two clips share a start, appearance or timing, so each clip is its own group.
    grouping = "each clip is its own group (its generating parameters are drawn independently)"
    prepare_hint = ("Nothing to download: the synthetic benchmark is generated under that folder on first use "
                    "(a few seconds), e.g. --root data.")

    def prepare(self) -> None:
        # From here on dataset_dir is the variant folder: list paths and split files are relative to it.
        self.dataset_dir, self.manifest = ensure_dataset(self.dataset_dir, generator_params(self.cfg))

    def class_names(self) -> List[str]:
        return list(self.manifest["classes"])

    def read_domain(self, domain: str, domain_label: int) -> List[VideoDatum]:
        classnames = self.manifest["classes"]
        list_file = osp.join(self.dataset_dir, f"{domain}.txt")
        entries = parse_list_file(list_file, root=self.dataset_dir)
        for entry in entries:  # the same report as a prepared benchmark's (datasets/list_dataset.py)
            if not 0 <= entry.label < len(classnames):
                raise ValueError(f'{list_file}: label {entry.label} of "{entry.path}" but {MANIFEST} has only '
                                 f'{len(classnames)} classes. Delete "{self.dataset_dir}" to generate it again.')
        # The frame template is the generator's, whatever DATASET.FRAME_TMPL says: these are its files.
        return [VideoDatum(entry.path, label=entry.label, domain=domain_label, classname=classnames[entry.label],
                           num_frames=entry.num_frames, frame_tmpl=FRAME_TMPL, first_frame=1)
                for entry in entries]

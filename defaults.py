"""The project's config: its keys, added to Dassl's defaults before any YAML is merged (CoOp's extend_cfg),
and config files with `_BASE_` inheritance.

This file holds the keys every video run shares (input pipeline, frame encoders, training extras). A
component (trainer, head, backbone, dataset) declares its own keys next to its code:

    from defaults import CN, config_defaults

    @config_defaults
    def _my_method_defaults(cfg):
        cfg.TRAINER.MYMETHOD = CN()
        cfg.TRAINER.MYMETHOD.WEIGHT = 1.0  # what it does

`extend_cfg` runs the declarations of the components imported so far, so an entry point (train.py,
ensemble.py, a tool that builds models) calls `components.register_all()` first; a key of a component that was
not imported is then unknown to yacs, which merge_config_file says. One key per line with its meaning. Where
the paper and the official APN code (thuml/VideoDG) disagree, the default follows the paper and the comment
names the official setting.

Search spaces live next to the keys too: a component names the keys worth tuning and how a random search
(sweep.py) draws them; the default of each key stays its config value, so it is never written twice:

    search_space("TRAINER.NAME=MYMETHOD", {"TRAINER.MYMETHOD.WEIGHT": LogUniform(0.01, 10.0)})
"""
import math
import os.path as osp
import random
import sys
from typing import Callable, Dict, List, NamedTuple, Sequence, Union

import yaml
from yacs.config import CfgNode as CN

import components

ConfigDefaults = Callable[[CN], None]
_COMPONENT_DEFAULTS: List[ConfigDefaults] = []
BASE_KEY = "_BASE_"


def config_defaults(declare: ConfigDefaults) -> ConfigDefaults:
    """Decorator: run `declare(cfg)` in every extend_cfg, after the shared keys. Returns `declare` unchanged."""
    if declare not in _COMPONENT_DEFAULTS:
        _COMPONENT_DEFAULTS.append(declare)
    return declare


# ---------------------------------------------------------------------------------------------- search spaces
# A distribution draws one value of a key from a random.Random; `default` is the key's value in the run's merged
# config (defaults.py, then the YAML files), which draw 0 of every sweep keeps.
class LogUniform(NamedTuple):
    """exp(U(log low, log high))."""
    low: float
    high: float

    def draw(self, rng: random.Random, default):
        return _round(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))


class Uniform(NamedTuple):
    low: float
    high: float

    def draw(self, rng: random.Random, default):
        return _round(rng.uniform(self.low, self.high))


class Choice(NamedTuple):
    values: Sequence

    def draw(self, rng: random.Random, default):
        return rng.choice(list(self.values))


class Scaled(NamedTuple):
    """The default times a log-uniform factor in [low, high]: one space for settings whose defaults differ
    (Adam at 2e-3 on CPU, SGD at 1e-3 at the paper's scale). integer: rounded, at least 1 (batch sizes)."""
    low: float
    high: float
    integer: bool = False

    def draw(self, rng: random.Random, default):
        value = default * math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return max(1, int(round(value))) if self.integer else _round(value)


Distribution = Union[LogUniform, Uniform, Choice, Scaled]
EVERY_RUN = "*"


class SearchSpace(NamedTuple):
    applies_to: str  # "*", "KEY=VALUE" or "KEY!=VALUE"
    space: Dict[str, Distribution]  # KEY -> how draw i > 0 draws it
    declared_in: str  # the module that declared it (sweep.py spaces names it)


SEARCH_SPACES: List[SearchSpace] = []  # in the order they were declared


def _round(value: float) -> float:
    return float(f"{value:.3g}")  # 3 significant digits: readable configs, and no draw differs by noise alone


def search_space(applies_to: str, space: Dict[str, Distribution]) -> None:
    """Declare how a random search draws some keys. applies_to: "*" (every run), "KEY=VALUE" (the runs whose
    merged config has KEY == VALUE, e.g. "TRAINER.NAME=APN" or "MODEL.HEAD.NAME=apn_pyramid") or "KEY!=VALUE"
    (the others, e.g. "MODEL.BACKBONE.MIXSTYLE.LAYERS!=[]": the runs with MixStyle on). VALUE is compared with
    str() of the config's value."""
    if applies_to != EVERY_RUN and "=" not in applies_to:
        raise ValueError(f'search_space("{applies_to}", ...): use "*", "KEY=VALUE" or "KEY!=VALUE", e.g. '
                         '"TRAINER.NAME=APN"')
    declared = SearchSpace(applies_to, space, sys._getframe(1).f_globals.get("__name__", "?"))
    if declared not in SEARCH_SPACES:
        SEARCH_SPACES.append(declared)


# The optimiser keys every method shares (DomainBed tunes the same three); factors of the setting's own
# values, so that one space serves the CPU and the paper settings. A batch of twice the default needs twice
# the memory: on a GPU that is full at the default, fix the key (sweep.py ... BATCH_SIZE=N).
search_space(EVERY_RUN, {
    "OPTIM.LR": Scaled(0.1, 3.0),
    "OPTIM.WEIGHT_DECAY": Scaled(0.1, 10.0),
    "DATALOADER.TRAIN_X.BATCH_SIZE": Scaled(0.5, 2.0, integer=True),
})


def extend_cfg(cfg: CN) -> None:
    """Add the project's keys to Dassl's defaults: the shared ones below, then each component's own."""
    # ------------------------------------------------------------------ video input pipeline (video/)
    cfg.INPUT.NUM_SEGMENTS = 5  # M: a clip is M segments, one frame each (paper: 5 UCF-HMDB/SSv2, 3 PKU/NTU)
    cfg.INPUT.SAMPLING = "tsn"  # tsn: one frame per segment (2D models); dense: M consecutive frames (I3D, Non-local)
    cfg.INPUT.DENSE_STRIDE = 2  # dense sampling: every DENSE_STRIDE-th frame (Non-local: 32 frames at stride 2)
    # Train: TSN multi-scale crop; side = scale * shorter side for scales drawn from this list, then resize to SIZE.
    cfg.INPUT.MULTISCALE_CROP = (1.0, 0.875, 0.75, 0.66)
    cfg.INPUT.MAX_DISTORT = 1  # width and height scales may differ by at most this many list steps (TSN)
    cfg.INPUT.RANDOM_FLIP = True  # train: flip the whole clip horizontally with p=0.5
    cfg.INPUT.TEST_SCALE_SIZE = -1  # test: resize the shorter side to this, then centre-crop SIZE (-1: SIZE*256/224)
    cfg.DATASET.VIDEO_BACKEND = "auto"  # decoder of video files: decord, pyav (same frames), auto = decord if installed
    cfg.DATASET.DECODED_CACHE_MB = 0.0  # > 0: keep decoded clips in memory, up to this many MB per split (small clips)
    cfg.DATASET.CHECK_FILES = False  # True: open every clip of the run's splits before training (find broken files first)
    cfg.DATALOADER.PREFETCH_FACTOR = 2  # batches each worker loads ahead (torch's default); only with NUM_WORKERS > 0
    cfg.DATALOADER.PERSISTENT_WORKERS = False  # keep workers across epochs (off: a resumed run re-seeds them exactly)

    # ------------------------------------------------------------------ video datasets (datasets/)
    cfg.DATASET.VAL_RATIO = 0.3  # source videos held out for validation, class-stratified by group (paper: 30%)
    cfg.DATASET.SPLIT_SEED = 1  # seed of that split; fixed so that every method and seed shares one split
    # > 0: hold out this share of each target domain (class-stratified, by group, with SPLIT_SEED) for the oracle
    # criterion of sweep.py collect (DomainBed's test-domain validation, 0.2): the last-epoch model is scored on
    # it, and those clips leave the reported target test. Never a DG result: its tables say oracle. 0 = off.
    cfg.DATASET.ORACLE_HOLDOUT = 0.0
    cfg.DATASET.SKIP_CORRUPT = False  # True: an unreadable clip is replaced by the next readable one and logged
    # Real benchmarks: "" reads the videos; a template (e.g. img_{:05d}.jpg) reads the frame folders under frames/
    cfg.DATASET.FRAME_TMPL = ""

    # ------------------------------------------------------------------ models (models/)
    cfg.MODEL.BACKBONE.WEIGHTS = ""  # local weights file for the frame encoder's CNN (instead of downloading)
    cfg.MODEL.BACKBONE.FEATURE_DIM = 256  # D: width of a frame feature f_i (paper: 256)
    cfg.MODEL.BACKBONE.DROPOUT = 0.8  # dropout on frame features (paper: 0.8)
    cfg.MODEL.BACKBONE.DROPOUT_BEFORE_FC = False  # paper: FC then Dropout; official code: Dropout then FC
    cfg.MODEL.BACKBONE.PARTIAL_BN = False  # freeze every BatchNorm but the first (TSN/TRN; official APN code: on)
    # std of a normal init of the frame encoder's last FC layer (bias 0); 0 keeps PyTorch's default init.
    # Official APN code: 0.001. A warm start (MODEL.INIT_WEIGHTS) overwrites it with the weights it holds.
    cfg.MODEL.BACKBONE.FC_INIT_STD = 0.0
    # The classifier h: one Linear layer (paper); True: ReLU, then Linear (official APN code). VideoNet builds it.
    cfg.MODEL.CLASSIFIER_RELU = False

    # ------------------------------------------------------------------ training extras (all video trainers)
    cfg.OPTIM.CLIP_GRAD_NORM = 0.0  # > 0: clip the gradient norm before each step (official APN code: 20)
    cfg.TRAIN.BF16 = False  # bf16 autocast for forward passes (a speed-up on CUDA; slower on most CPUs)
    cfg.TRAIN.CHANNELS_LAST = False  # channels_last memory format for the frame CNN (faster on CUDA; also on CPU)
    # torch.compile the frame encoder and the head, the maximisation's input-gradient passes included (weights and
    # checkpoints unchanged); the first steps pay the compilation (docs/performance.md says when it pays)
    cfg.TRAIN.COMPILE = False
    # torch.compile's backend: inductor generates kernels (Triton on CUDA, C++ on the CPU); aot_eager captures the
    # same graphs, forward and backward, and runs them eagerly (no code generated: the CPU tests use it)
    cfg.TRAIN.COMPILE_BACKEND = "inductor"
    cfg.OPTIM.IMPLEMENTATION = "auto"  # SGD/Adam kernel: auto (torch's default), foreach, fused (CUDA), for_loop
    cfg.TRAIN.CHECKPOINT_KEEP = 3  # regular checkpoints kept on disk (the newest K; model-best is kept too); 0 = all
    cfg.TEST.FIGURES = True  # end of run / --eval-only: confusion, per-class, showcase, curves in OUTPUT_DIR/figures

    # ------------------------------------------------------------------ each component's own keys
    for declare in _COMPONENT_DEFAULTS:  # those of the imported components (components.register_all)
        declare(cfg)


def _deep_update(base: dict, override: dict) -> dict:
    """base with override's values; nested dicts are merged key by key, everything else replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_update(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_config_file(path: str, _seen: tuple = ()) -> dict:
    """A config file as a nested dict, with its `_BASE_` files (a path or a list of paths, relative to the
    file) merged first; later files win. The result holds no `_BASE_` key."""
    path = osp.abspath(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'Config file not found: "{path}"' +
                                (f' (named by _BASE_ in "{_seen[-1]}")' if _seen else ""))
    if path in _seen:
        raise ValueError(f'Config file "{path}" inherits from itself through _BASE_: ' + " -> ".join(_seen))
    with open(path) as f:
        own = yaml.safe_load(f) or {}
    if not isinstance(own, dict):
        raise ValueError(f'Config file "{path}" must hold KEY: value pairs, not {type(own).__name__}')
    bases = own.pop(BASE_KEY, [])
    merged: dict = {}
    for base in [bases] if isinstance(bases, str) else bases:
        merged = _deep_update(merged, read_config_file(osp.join(osp.dirname(path), base), _seen + (path,)))
    return _deep_update(merged, own)


def merge_config_file(cfg: CN, path: str) -> None:
    """cfg.merge_from_file for files that may use `_BASE_`; unknown keys and wrong types are refused as by
    yacs (the error names the key)."""
    try:
        cfg.merge_from_other_cfg(CN(read_config_file(path)))
    except KeyError as e:
        if not components.registered():
            raise KeyError(f"{e.args[0]} (in {path}). No component is registered yet: call "
                           "components.register_all() before extend_cfg, as train.py does") from None
        raise

"""The project's config keys, added to Dassl's defaults before any YAML is merged (CoOp's extend_cfg).

One key per line with its meaning. Where the paper and the official APN code (thuml/VideoDG) disagree, the
default follows the paper and the comment names the official setting.
"""
from yacs.config import CfgNode as CN


def _ada_node(levels: str) -> CN:
    """Settings of the video ADA procedure (Algorithm 1); shared by the APN and VideoADA trainers."""
    node = CN()
    # Pyramid features that generate adversarial examples, joined by '+': II, III, global, last_hidden.
    # II+III = ADA* (the paper's APN + ADA*), last_hidden = ADA (for APN identical to III), none = ERM only.
    node.LEVELS = levels
    node.T_MAX = 5  # maximisation steps per minibatch (paper: 5)
    node.ETA = 1.0  # ascent step size on the input (paper: 1)
    node.GAMMA = 0.01  # weight of the transport cost c (paper: one model per 0.001, 0.01, 0.1, 1)
    # sequential: Algorithm 1 (a theta step on the source batch, then one per adversarial batch: 3 steps);
    # joint: official code (one theta step on source + all adversarial batches concatenated).
    node.UPDATE = "sequential"
    # Model mode during the maximisation. eval (default): no dropout, BN uses running statistics, so the
    # ascent follows one deterministic loss surface and adversarial inputs never touch BN statistics; the
    # reference R0 is then read, in the same mode, from the first ascent pass (where X^II = X^III = X).
    # train: official code (dropout and BN batch statistics active); R0 comes from line 4's forward pass.
    node.MAX_MODE = "eval"
    node.BATCH_CHAINS = True  # run the level chains of one ascent step as one batched forward/backward
    # sum: each clip ascends its own objective, as Eq. 4-5 define it per data point (paper);
    # mean: the gradient of the batch-mean objective, i.e. a step of eta / batch size per clip (official code).
    node.ASCENT_REDUCTION = "sum"
    return node


def extend_cfg(cfg: CN) -> None:
    # ------------------------------------------------------------------ video input pipeline (video/)
    cfg.INPUT.NUM_SEGMENTS = 5  # M: a clip is M segments, one frame each (paper: 5 UCF-HMDB/SSv2, 3 PKU/NTU)
    # Train: TSN multi-scale crop; side = scale * shorter side for scales drawn from this list, then resize to SIZE.
    cfg.INPUT.MULTISCALE_CROP = (1.0, 0.875, 0.75, 0.66)
    cfg.INPUT.MAX_DISTORT = 1  # width and height scales may differ by at most this many list steps (TSN)
    cfg.INPUT.RANDOM_FLIP = True  # train: flip the whole clip horizontally with p=0.5
    cfg.INPUT.TEST_SCALE_SIZE = -1  # test: resize the shorter side to this, then centre-crop SIZE (-1: SIZE*256/224)
    cfg.DATASET.VIDEO_BACKEND = "auto"  # decoder of video files: decord, pyav (same frames), auto = decord if installed
    cfg.DATASET.DECODED_CACHE_MB = 0.0  # > 0: keep decoded clips in memory up to this many MB per process (small clips)
    cfg.DATASET.CHECK_FILES = False  # True: open every clip of the run's splits before training (find broken files first)
    cfg.DATALOADER.PREFETCH_FACTOR = 2  # batches each worker loads ahead (torch's default); only with NUM_WORKERS > 0
    cfg.DATALOADER.PERSISTENT_WORKERS = False  # keep workers across epochs (off: a resumed run re-seeds them exactly)

    # ------------------------------------------------------------------ video datasets (datasets/)
    cfg.DATASET.VAL_RATIO = 0.3  # source videos held out for validation, class-stratified (paper: 30%)
    cfg.DATASET.SPLIT_SEED = 1  # seed of that split; fixed so that every method and seed shares one split
    cfg.DATASET.SKIP_CORRUPT = False  # True: an unreadable clip is replaced by the next readable one and logged
    # Real benchmarks: "" reads the videos; a template (e.g. img_{:05d}.jpg) reads the frame folders under frames/
    cfg.DATASET.FRAME_TMPL = ""
    cfg.DATASET.SYNTHETIC = CN()  # the embedded benchmark (datasets/synthetic), generated on first use
    cfg.DATASET.SYNTHETIC.SEED = 0  # generator seed: same seed, same videos
    cfg.DATASET.SYNTHETIC.VIDEOS_PER_CLASS = 60  # per domain and class
    cfg.DATASET.SYNTHETIC.NUM_FRAMES = 24  # frames per video
    cfg.DATASET.SYNTHETIC.FRAME_SIZE = 32  # frame height = width, pixels
    cfg.DATASET.SYNTHETIC.FORMAT = "video"  # video (mp4 files) or frames (folders of PNG frames)

    # ------------------------------------------------------------------ models (models/)
    cfg.MODEL.BACKBONE.WEIGHTS = ""  # local weights file for the frame encoder's CNN (instead of downloading)
    cfg.MODEL.BACKBONE.FEATURE_DIM = 256  # D: width of a frame feature f_i (paper: 256)
    cfg.MODEL.BACKBONE.DROPOUT = 0.8  # dropout on frame features (paper: 0.8)
    cfg.MODEL.BACKBONE.DROPOUT_BEFORE_FC = False  # paper: FC then Dropout; official code: Dropout then FC
    cfg.MODEL.BACKBONE.PARTIAL_BN = False  # freeze every BatchNorm but the first (TSN/TRN; official APN code: on)
    cfg.MODEL.PYRAMID = CN()  # the relational feature pyramid head (apn_pyramid)
    cfg.MODEL.PYRAMID.NUM_HEADS = 4  # attention heads (official code: 4)
    cfg.MODEL.PYRAMID.DROPOUT = 0.3  # attention-block dropout (official code: 0.3)
    cfg.MODEL.PYRAMID.FF_MULT = 4  # feed-forward width = FF_MULT * D (official code: 4)
    cfg.MODEL.PYRAMID.SNIPPETS = "consecutive"  # paper: m consecutive segments; official: combinations
    cfg.MODEL.PYRAMID.SHARE_BLOCKS = False  # paper: one block per pyramid position; official: one shared block
    cfg.MODEL.PYRAMID.KEY_FEEDFORWARD = False  # official code: a second feed-forward layer after the key self-attention
    cfg.MODEL.PYRAMID.CLASSIFIER_RELU = False  # official code: h = ReLU then Linear; paper: one Linear layer

    # ------------------------------------------------------------------ training extras (all video trainers)
    cfg.OPTIM.CLIP_GRAD_NORM = 0.0  # > 0: clip the gradient norm before each step (official APN code: 20)
    cfg.TRAIN.BF16 = False  # bf16 autocast for forward passes (a speed-up on CUDA; slower on most CPUs)
    cfg.TRAIN.CHANNELS_LAST = False  # channels_last memory format for the frame encoder's CNN (CUDA speed-up)

    # ------------------------------------------------------------------ trainers
    cfg.TRAINER.APN = _ada_node("II+III")  # APN + ADA* by default
    cfg.TRAINER.VIDEOADA = _ada_node("last_hidden")  # ADA for any backbone + head

"""Checks of a run's trainer/data pairing, made by train.py before anything is written to OUTPUT_DIR."""
from framework import DATASET_REGISTRY, ENGINE, TRAINER_REGISTRY
from trainers.dassl_dg import DASSL_ONLY_TRAINERS
from trainers.video_mixin import VideoDataMixin, check_source_domains


def video_trainers() -> list:
    return sorted(name for name in TRAINER_REGISTRY.registered_names()
                  if isinstance(TRAINER_REGISTRY.get(name), type) and issubclass(TRAINER_REGISTRY.get(name),
                                                                                 VideoDataMixin))


def check_run_config(cfg) -> None:
    """Raise ValueError saying what to change when the trainer is unknown, needs real Dassl, is an image trainer
    on video data, or needs more source domains than the run names."""
    from datasets.base import VideoDGDataset  # here: datasets import the framework and register themselves

    name = cfg.TRAINER.NAME
    if name not in TRAINER_REGISTRY.registered_names():
        if name in DASSL_ONLY_TRAINERS and ENGINE != "dassl":
            raise ValueError(f'Trainer "{name}" wraps Dassl\'s own trainer and needs real Dassl, but the engine is '
                             f'"{ENGINE}". Install Dassl (docs/engines.md, "Running on real Dassl") and run with '
                             f'VIDEODG_ENGINE=dassl, or use this project\'s "{name[len("Dassl"):]}", which runs on '
                             "both engines.")
        raise ValueError(f'Unknown trainer "{name}" (--trainer / TRAINER.NAME). Video trainers: '
                         f"{', '.join(video_trainers())}")
    trainer = TRAINER_REGISTRY.get(name)
    dataset = DATASET_REGISTRY.get(cfg.DATASET.NAME) if cfg.DATASET.NAME in DATASET_REGISTRY.registered_names() \
        else None
    video_data = isinstance(dataset, type) and issubclass(dataset, VideoDGDataset)
    if video_data and not (isinstance(trainer, type) and issubclass(trainer, VideoDataMixin)):
        raise ValueError(f'Trainer "{name}" is one of Dassl\'s image trainers: it cannot read the video clips of '
                         f"{cfg.DATASET.NAME}. Use a video trainer: {', '.join(video_trainers())} (Dassl's own "
                         "DG methods on video: DasslCrossGrad, DasslDDAIG, DasslDAELDG, DasslDomainMix).")
    check_source_domains(trainer, cfg)

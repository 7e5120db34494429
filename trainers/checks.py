"""Checks of a run's trainer/data pairing, made by train.py before anything is written to OUTPUT_DIR."""
from framework import DATASET_REGISTRY, ENGINE, TRAINER_REGISTRY
from trainers.dassl_dg import DASSL_ADAPTERS
from trainers.requirements import check_requirements
from trainers.video_trainer import VideoTrainerMixin


def video_trainers() -> list:
    return sorted(name for name in TRAINER_REGISTRY.registered_names()
                  if isinstance(TRAINER_REGISTRY.get(name), type) and issubclass(TRAINER_REGISTRY.get(name),
                                                                                 VideoTrainerMixin))


def check_run_config(cfg) -> None:
    """Raise ValueError saying what to change when the trainer is unknown, needs real Dassl, is an image trainer
    on video data, or the run lacks what the trainer's requirements(cfg) ask (trainers/requirements.py)."""
    from datasets.base import VideoDGDataset  # here: datasets import the framework and register themselves

    name = cfg.TRAINER.NAME
    if name not in TRAINER_REGISTRY.registered_names():
        if name in DASSL_ADAPTERS and ENGINE != "dassl":
            raise ValueError(f'Trainer "{name}" runs Dassl\'s own {name[len("Dassl"):]} and needs real Dassl, but the '
                             f'engine is "{ENGINE}". Install Dassl (docs/engines.md, "Running on real Dassl") and run '
                             f'with VIDEODG_ENGINE=dassl, or use this project\'s "Video{name[len("Dassl"):]}", which '
                             "runs on both engines.")
        raise ValueError(f'Unknown trainer "{name}" (--trainer / TRAINER.NAME). Video trainers: '
                         f"{', '.join(video_trainers())}")
    trainer = TRAINER_REGISTRY.get(name)
    dataset = DATASET_REGISTRY.get(cfg.DATASET.NAME) if cfg.DATASET.NAME in DATASET_REGISTRY.registered_names() \
        else None
    video_data = isinstance(dataset, type) and issubclass(dataset, VideoDGDataset)
    if video_data and not (isinstance(trainer, type) and issubclass(trainer, VideoTrainerMixin)):
        counterparts = {f"Video{name}": f"this project's {name}", f"Dassl{name}": f"Dassl's {name} on clips"}
        on_video = [f"{other} ({what})" for other, what in counterparts.items() if other in video_trainers()]
        instead = (f"Use {' or '.join(on_video)}" if on_video else
                   f"Use a video trainer: {', '.join(video_trainers())}")
        raise ValueError(f'Trainer "{name}" is one of Dassl\'s image trainers: it cannot read the video clips of '
                         f"{cfg.DATASET.NAME}. {instead}.")
    check_requirements(trainer, cfg)

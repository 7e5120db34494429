"""Old names, kept while README.md and the branches written against them move to trainers/video_trainer.py
(delete this file then): VideoDataMixin is VideoTrainerMixin, so `class MyMethod(VideoDataMixin, TrainerX)`
is `class MyMethod(VideoTrainer)`."""
from trainers.video_trainer import VideoTrainerMixin as VideoDataMixin  # noqa: F401
from trainers.video_trainer import accuracy  # noqa: F401

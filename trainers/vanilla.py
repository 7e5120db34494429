"""VideoVanilla: empirical risk minimisation on video clips (the paper's "without ADA" for any model).

Named so as not to clash with Dassl's image trainer `Vanilla` in the shared registry.
"""
import torch.nn.functional as F

from framework import TRAINER_REGISTRY
from trainers.video_trainer import VideoTrainer, accuracy


@TRAINER_REGISTRY.register()
class VideoVanilla(VideoTrainer):

    def forward_backward(self, batch):
        clips, y, _ = self.parse_batch_train(batch)
        with self.autocast():
            scores = self.model(clips)
            risk = F.cross_entropy(scores, y)  # the empirical risk of the minibatch
        self.model_backward_and_update(risk)
        return self.end_of_step(loss=risk, acc=accuracy(scores, y))

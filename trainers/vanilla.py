"""VideoVanilla: empirical risk minimisation on video clips (the paper's "without ADA" for any model).

Named so as not to clash with Dassl's image trainer `Vanilla` in the shared registry.
"""
import torch.nn.functional as F

from framework import TRAINER_REGISTRY, TrainerX
from trainers.video_mixin import VideoDataMixin, accuracy


@TRAINER_REGISTRY.register()
class VideoVanilla(VideoDataMixin, TrainerX):

    def forward_backward(self, batch):
        clips, label, _ = self.parse_batch_train(batch)
        with self.autocast():
            output = self.model(clips)
            loss = F.cross_entropy(output, label)
        self.model_backward_and_update(loss)
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return {"loss": loss.item(), "acc": accuracy(output, label)}

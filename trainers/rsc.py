"""VideoRSC: RSC, Representation Self-Challenging (Huang et al., ECCV 2020), on frame features; works with one
source.

Each minibatch, on the frame features f (B, M, D) of the clips:

1. the gradient of the true-class logit w.r.t. f says which feature dimensions the prediction leans on most;
   in every frame the DROP_PERCENT largest-gradient dimensions are muted (set to 0): the dominant features;
2. only the BATCH_PERCENT of clips whose true-class probability falls most under that muting are challenged;
   the other clips keep all their features;
3. the model is trained with CE on the (partly) muted frame features through the head and classifier, so it
   has to find other evidence for the label.

Muting is per frame (channel-wise on each frame feature), before the temporal head, so any head works.
"""
import math

import torch
import torch.nn.functional as F

from defaults import CN, Uniform, config_defaults, search_space
from framework import TRAINER_REGISTRY
from trainers.video_trainer import VideoTrainer, accuracy


@config_defaults
def _rsc_defaults(cfg) -> None:
    cfg.TRAINER.VIDEORSC = CN()
    cfg.TRAINER.VIDEORSC.DROP_PERCENT = 1 / 3  # share of each frame's feature dimensions muted (paper: 1/3)
    cfg.TRAINER.VIDEORSC.BATCH_PERCENT = 1 / 3  # share of the clips challenged per batch (paper: 1/3)


# DomainBed draws both shares from U(0, 0.5); from 0.05, so that a draw never turns RSC into ERM.
search_space("TRAINER.NAME=VideoRSC", {"TRAINER.VIDEORSC.DROP_PERCENT": Uniform(0.05, 0.5),
                                       "TRAINER.VIDEORSC.BATCH_PERCENT": Uniform(0.05, 0.5)})


def challenge_mask(model, frames: torch.Tensor, label: torch.Tensor, drop: float, batch: float) -> torch.Tensor:
    """A (B, M, D) mask of 0/1: the muted dominant dimensions of the challenged clips are 0."""
    frames = frames.detach().requires_grad_(True)
    logits = model.logits_from_frame_features(frames)
    true_logit = logits.gather(1, label[:, None]).sum()
    grad = torch.autograd.grad(true_logit, frames)[0]
    D = frames.shape[-1]
    k = min(D, max(1, int(round(drop * D))))
    kth_largest = grad.topk(k, dim=-1).values[..., -1:]
    mask = (grad < kth_largest).to(frames.dtype)
    with torch.no_grad():
        before = logits.softmax(1).gather(1, label[:, None]).squeeze(1)
        after = model.logits_from_frame_features(frames * mask).softmax(1).gather(1, label[:, None]).squeeze(1)
        n_challenged = min(len(label), math.ceil(batch * len(label)))
        challenged = torch.zeros(len(label), dtype=torch.bool, device=frames.device)
        challenged[(before - after).topk(n_challenged).indices] = True
    mask[~challenged] = 1
    return mask


@TRAINER_REGISTRY.register()
class VideoRSC(VideoTrainer):

    def forward_backward(self, batch):
        opts = self.cfg.TRAINER.VIDEORSC
        clips, label, _ = self.parse_batch_train(batch)
        with self.autocast():
            frames = self.model.frame_features(clips)
            mask = challenge_mask(self.model, frames, label, opts.DROP_PERCENT, opts.BATCH_PERCENT)
            logits = self.model.logits_from_frame_features(frames * mask)
            loss = F.cross_entropy(logits, label)
        self.model_backward_and_update(loss)
        return self.end_of_step(loss=loss, acc=accuracy(logits, label), muted=1 - mask.mean().item())

"""VideoDAELDG: DAEL for DG (Zhou et al., "Domain Adaptive Ensemble Learning", IEEE TIP 2021; its DG
variant) on clips.

A shared feature net F (frame encoder + head, no classifier) and one expert classifier per source domain.
Batches hold one block per source domain (DATALOADER.TRAIN_X.SAMPLER RandomDomainSampler, Dassl's
domain-balanced sampler); each clip comes as a weakly augmented view (`img`, the usual clip transform) and a
strongly augmented view (`img2`: the same sampled frames, with photometric changes drawn once per clip, so all
frames of a clip change alike). For each source domain i of the batch:

- expert i learns its own domain: CE(E_i(F(weak)), y) (loss_x);
- the other experts, on the strong view, must agree with expert i's (detached) prediction on the weak view:
  || mean_{j != i} softmax(E_j(F(strong))) - softmax(E_i(F(weak))) ||^2 summed over classes (loss_cr);

both averaged over the domains of the batch; loss = loss_x + loss_cr. F runs once per domain block (batch
statistics per source domain, as in Dassl). At test the experts' probabilities are averaged. Needs 2+ source
domains (an expert needs other experts to be consistent with).
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from defaults import CN, LogUniform, Uniform, config_defaults, search_space
from framework import TRAINER_REGISTRY
from trainers.requirements import Requirements
from trainers.video_trainer import VideoTrainer, accuracy
from video.transforms import build_video_transform

STRONG_CHOICES = ("colorjitter", "randomgrayscale", "gaussian_noise")


def add_strong_view_keys(node: CN) -> None:
    """The keys of the strong clip view (StrongClipTransform), for VideoDAELDG's node and DasslDAELDG's."""
    # any of colorjitter (brightness/contrast/saturation/hue), randomgrayscale, gaussian_noise
    node.STRONG_TRANSFORMS = ["colorjitter", "randomgrayscale", "gaussian_noise"]
    node.JITTER = (0.4, 0.4, 0.4, 0.1)  # colorjitter ranges: brightness, contrast, saturation, hue
    node.GRAYSCALE_P = 0.2  # probability that randomgrayscale turns a whole clip grey
    node.NOISE_STD = 0.15  # gaussian_noise: std of noise added to the normalised clip


def strong_view_space(node: str) -> dict:
    """How strong the strong view is: its noise and its grey share (the jitter ranges stay Dassl's)."""
    return {f"TRAINER.{node}.NOISE_STD": LogUniform(0.05, 0.5), f"TRAINER.{node}.GRAYSCALE_P": Uniform(0.0, 0.5)}


@config_defaults
def _daeldg_defaults(cfg) -> None:
    cfg.TRAINER.VIDEODAELDG = CN()  # the strong augmentation is a clip transform (Dassl's are image transforms)
    add_strong_view_keys(cfg.TRAINER.VIDEODAELDG)


search_space("TRAINER.NAME=VideoDAELDG", strong_view_space("VIDEODAELDG"))


class StrongClipTransform:
    """Photometric changes drawn once per clip on the uint8 frames, then the weak clip transform, then noise."""

    def __init__(self, weak, choices, jitter=(0.4, 0.4, 0.4, 0.1), grayscale_p: float = 0.2,
                 noise_std: float = 0.15):
        unknown = [c for c in choices if c not in STRONG_CHOICES]
        if unknown or not choices:
            raise ValueError(f"STRONG_TRANSFORMS (TRAINER.VIDEODAELDG; TRAINER.DAELDG for DasslDAELDG): "
                             f"{list(choices)} must name some of {STRONG_CHOICES}")
        self.weak, self.choices = weak, tuple(choices)
        self.jitter, self.grayscale_p, self.noise_std = tuple(jitter), grayscale_p, noise_std

    @staticmethod
    def _factor(spread: float) -> float:
        return float(torch.empty(1).uniform_(max(0.0, 1 - spread), 1 + spread))

    def __call__(self, clip: np.ndarray) -> torch.Tensor:
        frames = torch.from_numpy(np.ascontiguousarray(clip)).permute(0, 3, 1, 2)  # (T, 3, H, W) uint8
        if "colorjitter" in self.choices:
            brightness, contrast, saturation, hue = self.jitter
            frames = TF.adjust_brightness(frames, self._factor(brightness))
            frames = TF.adjust_contrast(frames, self._factor(contrast))
            frames = TF.adjust_saturation(frames, self._factor(saturation))
            if hue > 0:
                frames = TF.adjust_hue(frames, float(torch.empty(1).uniform_(-hue, hue)))
        if "randomgrayscale" in self.choices and torch.rand(1).item() < self.grayscale_p:
            frames = TF.rgb_to_grayscale(frames, num_output_channels=3)
        out = self.weak(frames.permute(0, 2, 3, 1).contiguous().numpy())
        if "gaussian_noise" in self.choices:
            out = out + self.noise_std * torch.randn_like(out)
        return out

    def __repr__(self) -> str:
        return f"StrongClipTransform({', '.join(self.choices)}, then {self.weak!r})"


def weak_and_strong_transforms(cfg, node: CN) -> list:
    """[weak, strong] training clip transforms: batch keys img and img2 (both see the same sampled frames); the
    strong view's keys are those of add_strong_view_keys in `node`."""
    weak = build_video_transform(cfg, is_train=True)
    return [weak, StrongClipTransform(weak, node.STRONG_TRANSFORMS, node.JITTER, node.GRAYSCALE_P, node.NOISE_STD)]


class DomainExperts(nn.Module):
    """One linear classifier per source domain on the shared feature."""

    def __init__(self, num_domains: int, in_features: int, num_classes: int):
        super().__init__()
        self.experts = nn.ModuleList(nn.Linear(in_features, num_classes) for _ in range(num_domains))

    def forward(self, i: int, feature: torch.Tensor) -> torch.Tensor:
        return self.experts[i](feature)


def build_feature_net_and_experts(trainer, experts: type) -> None:
    """trainer.F (a VideoNet without classifier) and trainer.E = experts(domains, F's width, classes), each with
    its optimiser (VideoDAELDG: DomainExperts; DasslDAELDG: Dassl's experts)."""
    print("Building F (shared feature net)")
    trainer.F = trainer.register_video_model("F", trainer.video_net(0))
    print(f"Building E ({trainer.num_source_domains} domain experts)")
    trainer.E = trainer.register_video_model("E", experts(trainer.num_source_domains, trainer.F.fdim,
                                                          trainer.num_classes))


@TRAINER_REGISTRY.register()
class VideoDAELDG(VideoTrainer):

    @classmethod
    def requirements(cls, cfg) -> Requirements:
        return Requirements(source_domains=2, sampler="RandomDomainSampler",
                            why="one expert per source domain, each trained on its domain's block of the batch")

    def build_train_transform(self):
        return weak_and_strong_transforms(self.cfg, self.cfg.TRAINER.VIDEODAELDG)

    def build_model(self):
        build_feature_net_and_experts(self, DomainExperts)

    def forward_backward(self, batch):
        clips, label, domain = self.parse_batch_train(batch)
        strong = batch["img2"].to(self.device)
        # the sampler's domain blocks, in order, read from the loader's host copy (no device sync)
        present, sizes = (t.tolist() for t in torch.unique_consecutive(batch["domain"], return_counts=True))
        if len(set(present)) != len(present):
            raise RuntimeError("VideoDAELDG expects one contiguous block per domain (RandomDomainSampler)")
        starts = [sum(sizes[:k]) for k in range(len(sizes))]
        loss_x, loss_cr, acc = 0.0, 0.0, 0.0
        with self.autocast():
            for i, start, size in zip(present, starts, sizes):
                rows = slice(start, start + size)
                feature = self.F(clips[rows])
                logits_i = self.E(i, feature)
                loss_x = loss_x + F.cross_entropy(logits_i, label[rows])
                acc += accuracy(logits_i, label[rows])
                target = logits_i.softmax(dim=1).detach()
                feature_strong = self.F(strong[rows])
                others = [self.E(j, feature_strong).softmax(dim=1) for j in present if j != i]
                consensus = torch.stack(others).mean(dim=0)
                loss_cr = loss_cr + (consensus - target).pow(2).sum(dim=1).mean()
            loss_x, loss_cr = loss_x / len(present), loss_cr / len(present)
        self.model_backward_and_update(loss_x + loss_cr)
        return self.end_of_step(loss_x=loss_x, acc=acc / len(present), loss_cr=loss_cr)

    def model_inference(self, input):
        """log of the experts' mean probability (the results table applies softmax, which gives it back)."""
        with self.autocast():
            feature = self.F(input)
            probs = torch.stack([self.E(k, feature).softmax(dim=1) for k in range(self.num_source_domains)])
        return probs.mean(dim=0).clamp_min(1e-12).log()

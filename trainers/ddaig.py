"""VideoDDAIG: DDAIG (Zhou et al., "Deep Domain-Adversarial Image Generation for Domain Generalisation",
AAAI 2020) on clips.

Three networks: the label net F, the domain net D (any frame encoder + head each) and a perturbation generator
G. Each minibatch:

1. G is updated so that the perturbed clips G(x) = x + LMDA * p(x) keep F's label loss low and push D's
   domain loss up: min_G CE(F(G(x)), y) - CE(D(G(x)), d);
2. F is updated on clean and (after WARMUP epochs) freshly perturbed clips:
   (1 - ALPHA) * CE(F(x), y) + ALPHA * CE(F(G(x)), y);
3. D is updated on clean clips: CE(D(x), d).

The generator (`clip_fcn_gctx`, registered here as a Dassl network) perturbs each frame: one model with shared
weights and ONE clip-level global context for all frames of a clip (the mean of its features over every frame
and position), so the perturbation of frame t depends on frame t's content and on the whole clip. Needs 2+
source domains (the domain net). F alone is used at test.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from defaults import CN, LogUniform, Uniform, config_defaults, search_space
from framework import NETWORK_REGISTRY, TRAINER_REGISTRY, build_network
from trainers.requirements import Requirements
from trainers.video_trainer import VideoTrainer, accuracy


@config_defaults
def _ddaig_defaults(cfg) -> None:
    # The keys and defaults of Dassl's TRAINER.DDAIG (which DasslDDAIG reads), but a generator that takes clips.
    cfg.TRAINER.VIDEODDAIG = CN()
    cfg.TRAINER.VIDEODDAIG.G_ARCH = "clip_fcn_gctx"  # the generator, a NETWORK_REGISTRY name taking (B,M,C,H,W)
    cfg.TRAINER.VIDEODDAIG.LMDA = 0.3  # perturbation strength: G(x) = x + LMDA * p(x), p in [-1, 1]
    cfg.TRAINER.VIDEODDAIG.CLAMP = False  # clamp perturbed clips to [CLAMP_MIN, CLAMP_MAX] (normalised pixels)
    cfg.TRAINER.VIDEODDAIG.CLAMP_MIN = -1.0
    cfg.TRAINER.VIDEODDAIG.CLAMP_MAX = 1.0
    cfg.TRAINER.VIDEODDAIG.WARMUP = 0  # epochs during which F trains on clean clips only
    cfg.TRAINER.VIDEODDAIG.ALPHA = 0.5  # weight of F's loss on perturbed clips


def ddaig_space(node: str) -> dict:
    """The perturbation strength (log scale around 0.3) and the weight of F's loss on perturbed clips."""
    return {f"TRAINER.{node}.LMDA": LogUniform(0.05, 1.0), f"TRAINER.{node}.ALPHA": Uniform(0.1, 0.9)}


search_space("TRAINER.NAME=VideoDDAIG", ddaig_space("VIDEODDAIG"))


class ClipPerturbationFCN(nn.Module):
    """Fully convolutional frame perturbation with a clip-level global context; forward(x, lmda) -> x + lmda*p."""

    def __init__(self, in_channels: int = 3, width: int = 32, depth: int = 3, global_context: bool = True):
        super().__init__()
        layers, channels = [], in_channels
        for _ in range(depth):
            layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True)]
            channels = width
        self.body = nn.Sequential(*layers)
        self.global_context = global_context
        self.to_perturbation = nn.Conv2d(2 * width if global_context else width, in_channels, 1)

    def forward(self, x: torch.Tensor, lmda: float = 1.0) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError(f"The clip generator takes clips (B, M, C, H, W); got shape {tuple(x.shape)}")
        B, M = x.shape[:2]
        h = self.body(x.flatten(0, 1))  # (B*M, width, H, W)
        if self.global_context:
            clip_h = h.view(B, M, *h.shape[1:])
            context = clip_h.mean(dim=(1, 3, 4), keepdim=True).expand_as(clip_h)  # one vector per clip
            h = torch.cat([h, context.flatten(0, 1)], dim=1)
        p = torch.tanh(self.to_perturbation(h)).view_as(x)
        return x + lmda * p


@NETWORK_REGISTRY.register()
def clip_fcn_gctx(**kwargs) -> ClipPerturbationFCN:
    """3 conv layers of width 32 per frame + the clip's global context (for DDAIG on video)."""
    return ClipPerturbationFCN(**kwargs)


def build_ddaig_networks(trainer, g_arch: str) -> None:
    """trainer.F, trainer.D (VideoNet) and the generator trainer.G, each with its optimiser (VideoDDAIG, DasslDDAIG)."""
    trainer.build_label_and_domain_nets()
    print(f"Building G (generator {g_arch})")
    trainer.G = trainer.register_video_model("G", build_network(g_arch, verbose=trainer.cfg.VERBOSE))


@TRAINER_REGISTRY.register()
class VideoDDAIG(VideoTrainer):

    @classmethod
    def requirements(cls, cfg) -> Requirements:
        return Requirements(source_domains=2, why="its domain net D classifies the source domains")

    def build_model(self):
        build_ddaig_networks(self, self.cfg.TRAINER.VIDEODDAIG.G_ARCH)

    def generate(self, clips: torch.Tensor) -> torch.Tensor:
        opts = self.cfg.TRAINER.VIDEODDAIG
        perturbed = self.G(clips, lmda=opts.LMDA)
        return perturbed.clamp(opts.CLAMP_MIN, opts.CLAMP_MAX) if opts.CLAMP else perturbed

    def forward_backward(self, batch):
        opts = self.cfg.TRAINER.VIDEODDAIG
        clips, label, domain = self.parse_batch_train(batch)
        with self.autocast():
            perturbed = self.generate(clips)
            loss_g = F.cross_entropy(self.F(perturbed), label) - F.cross_entropy(self.D(perturbed), domain)
        self.model_backward_and_update(loss_g, "G")  # only G steps; F's and D's gradients are cleared before use

        with self.autocast():
            with torch.no_grad():
                perturbed = self.generate(clips)  # with the updated generator
            logits = self.F(clips)
            loss_f = F.cross_entropy(logits, label)
            if self.epoch + 1 > opts.WARMUP:
                loss_f = (1 - opts.ALPHA) * loss_f + opts.ALPHA * F.cross_entropy(self.F(perturbed), label)
        self.model_backward_and_update(loss_f, "F")

        with self.autocast():
            loss_d = F.cross_entropy(self.D(clips), domain)
        self.model_backward_and_update(loss_d, "D")
        return self.end_of_step(loss_g=loss_g, loss_f=loss_f, loss_d=loss_d, acc=accuracy(logits, label))

    def model_inference(self, input):
        with self.autocast():
            return self.F(input)

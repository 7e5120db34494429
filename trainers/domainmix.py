"""VideoDomainMix: DomainMix (Dassl's DG trainer from "Dynamic Domain Generalization", Sun et al., IJCAI 2022) on clips.

Mixup between clips of a batch: one weight lam ~ Beta(ALPHA, BETA) per batch (lam = 1 when ALPHA <= 0),
mixed = lam * x + (1 - lam) * x[partner], loss = lam * CE(out, y) + (1 - lam) * CE(out, y[partner]). Whole
clips are mixed, so every frame of a clip blends with the same frame index of the same partner clip.

TYPE random: partners are a random permutation of the batch (works with one source domain).
TYPE crossdomain: each clip's partner is drawn uniformly among the clips of the batch from other domains
(needs 2+ source domains; a batch that happens to hold one domain falls back to random pairing).
"""
from typing import NamedTuple

import torch
import torch.nn.functional as F

from defaults import CN, LogUniform, config_defaults, search_space
from framework import TRAINER_REGISTRY
from trainers.requirements import Requirements
from trainers.video_trainer import VideoTrainer, accuracy

MIX_TYPES = ("random", "crossdomain")


@config_defaults
def _domainmix_defaults(cfg) -> None:
    cfg.TRAINER.VIDEODOMAINMIX = CN()  # the keys and defaults of Dassl's TRAINER.DOMAINMIX (DasslDomainMix's)
    cfg.TRAINER.VIDEODOMAINMIX.TYPE = "crossdomain"  # partners: random (any sources) or crossdomain (2+ sources)
    cfg.TRAINER.VIDEODOMAINMIX.ALPHA = 1.0  # lam ~ Beta(ALPHA, BETA); ALPHA <= 0: no mixing
    cfg.TRAINER.VIDEODOMAINMIX.BETA = 1.0


def mix_space(node: str) -> dict:
    """The Beta distribution of the mixing weight, each parameter on a log scale around 1 (uniform lam); TYPE
    names the method's variant (random or cross-domain partners), so it is not drawn."""
    return {f"TRAINER.{node}.ALPHA": LogUniform(0.1, 10.0), f"TRAINER.{node}.BETA": LogUniform(0.1, 10.0)}


search_space("TRAINER.NAME=VideoDomainMix", mix_space("VIDEODOMAINMIX"))


def cross_domain_partners(domain: torch.Tensor, generator=None) -> torch.Tensor:
    """For each item, the index of a random item of another domain (itself where the batch has one domain)."""
    partner = torch.arange(len(domain), device=domain.device)
    for d in torch.unique(domain):
        own = (domain == d).nonzero().squeeze(1)
        other = (domain != d).nonzero().squeeze(1)
        if len(other):
            partner[own] = other[torch.randint(len(other), (len(own),), generator=generator).to(domain.device)]
    return partner


class Mixup(NamedTuple):
    """A mixed minibatch: clips lam * x + (1 - lam) * x[partner], whose target is the same mix of y, y[partner]."""
    clips: torch.Tensor
    partner: torch.Tensor  # (B,) each clip's partner in the batch
    lam: torch.Tensor  # (1,) the mixing weight

    def loss(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """lam * CE(logits, y) + (1 - lam) * CE(logits, y[partner]), a scalar."""
        partner_label = label[self.partner]
        return (self.lam * F.cross_entropy(logits, label) + (1 - self.lam) * F.cross_entropy(logits, partner_label)
                ).squeeze()


def mix_requirements(mix_type: str) -> Requirements:
    """What a run needs for TYPE mix_type (VideoDomainMix and DasslDomainMix)."""
    if mix_type == "crossdomain":
        return Requirements(source_domains=2, why="TYPE crossdomain pairs clips of different domains; TYPE random "
                            "pairs any two clips and runs on one")
    return Requirements()


@TRAINER_REGISTRY.register()
class VideoDomainMix(VideoTrainer):

    @classmethod
    def requirements(cls, cfg) -> Requirements:
        return mix_requirements(cfg.TRAINER.VIDEODOMAINMIX.TYPE)

    def check_cfg(self, cfg):
        if cfg.TRAINER.VIDEODOMAINMIX.TYPE not in MIX_TYPES:
            raise ValueError(f"TRAINER.VIDEODOMAINMIX.TYPE must be one of {MIX_TYPES}, got "
                             f'"{cfg.TRAINER.VIDEODOMAINMIX.TYPE}"')
        super().check_cfg(cfg)

    def mix(self, clips: torch.Tensor, domain: torch.Tensor) -> "Mixup":
        """The minibatch's mix. Draw order: lam, then the random permutation (as Dassl's DomainMix). `domain` is
        the loader's host copy: the cross-domain partners are found on the host (no device sync)."""
        opts = self.cfg.TRAINER.VIDEODOMAINMIX
        if opts.ALPHA > 0:
            lam = torch.distributions.Beta(opts.ALPHA, opts.BETA).sample((1,)).to(clips.device)
        else:
            lam = torch.ones(1, device=clips.device)
        partner = torch.randperm(len(clips), device=clips.device)
        if opts.TYPE == "crossdomain" and len(torch.unique(domain)) > 1:
            partner = cross_domain_partners(domain).to(clips.device)
        return Mixup(lam * clips + (1 - lam) * clips[partner], partner, lam)

    def forward_backward(self, batch):
        clips, label, _ = self.parse_batch_train(batch)
        mixup = self.mix(clips, batch["domain"])
        with self.autocast():
            logits = self.model(mixup.clips)
            loss = mixup.loss(logits, label)
        self.model_backward_and_update(loss)
        return self.end_of_step(loss=loss, acc=accuracy(logits, label))

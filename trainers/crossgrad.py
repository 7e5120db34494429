"""VideoCrossGrad: CrossGrad (Shankar et al., "Generalizing Across Domains via Cross-Gradient Training",
ICLR 2018) on clips.

Two networks of the same architecture (any frame encoder + head): the label net F (K classes) and the domain
net D (one output per source domain). Each minibatch:

1. perturb the clips along the input gradient of D's domain loss, x_d = x + EPS_F * g_d, and along the input
   gradient of F's label loss, x_l = x + EPS_D * g_l (gradients clamped elementwise to +-GRAD_CLAMP, as in
   Dassl's implementation; the paper uses the raw gradient);
2. F minimises (1 - ALPHA_F) * CE(F(x), y) + ALPHA_F * CE(F(x_d), y): labels that survive a domain shift;
3. D minimises (1 - ALPHA_D) * CE(D(x), d) + ALPHA_D * CE(D(x_l), d).

The gradients are taken on whole (B, M, C, H, W) clips, so each frame gets its own perturbation. Needs 2+
source domains (a domain classifier of one domain has nothing to learn). F alone is used at test.
"""
import torch
import torch.nn.functional as F

from defaults import CN, LogUniform, Uniform, config_defaults, search_space
from framework import TRAINER_REGISTRY
from trainers.requirements import Requirements
from trainers.video_trainer import VideoTrainer, accuracy


@config_defaults
def _crossgrad_defaults(cfg) -> None:
    # The keys and defaults of Dassl's TRAINER.CROSSGRAD (which DasslCrossGrad reads), plus GRAD_CLAMP.
    cfg.TRAINER.VIDEOCROSSGRAD = CN()
    cfg.TRAINER.VIDEOCROSSGRAD.EPS_F = 1.0  # step along D's loss gradient: the domain-perturbed clips F trains on
    cfg.TRAINER.VIDEOCROSSGRAD.EPS_D = 1.0  # step along F's loss gradient: the label-perturbed clips D trains on
    cfg.TRAINER.VIDEOCROSSGRAD.ALPHA_F = 0.5  # weight of F's loss on domain-perturbed clips
    cfg.TRAINER.VIDEOCROSSGRAD.ALPHA_D = 0.5  # weight of D's loss on label-perturbed clips
    cfg.TRAINER.VIDEOCROSSGRAD.GRAD_CLAMP = 0.1  # clamp input gradients to +-this before stepping (<= 0: no clamp)


def crossgrad_space(node: str) -> dict:
    """The perturbation steps (log scale around Dassl's 1.0) and the weights of the perturbed-clip losses;
    GRAD_CLAMP stays: with the step it sets one perturbation size, which EPS already spans."""
    return {f"TRAINER.{node}.EPS_F": LogUniform(0.1, 10.0), f"TRAINER.{node}.EPS_D": LogUniform(0.1, 10.0),
            f"TRAINER.{node}.ALPHA_F": Uniform(0.1, 0.9), f"TRAINER.{node}.ALPHA_D": Uniform(0.1, 0.9)}


search_space("TRAINER.NAME=VideoCrossGrad", crossgrad_space("VIDEOCROSSGRAD"))


def input_gradient(net, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """d CE(net(x), target) / dx, without touching the gradients of net's parameters."""
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(net(x), target)
    return torch.autograd.grad(loss, x)[0]


@TRAINER_REGISTRY.register()
class VideoCrossGrad(VideoTrainer):

    @classmethod
    def requirements(cls, cfg) -> Requirements:
        return Requirements(source_domains=2, why="its domain net D classifies the source domains")

    def build_model(self):
        self.build_label_and_domain_nets()

    def perturb(self, net, x: torch.Tensor, target: torch.Tensor, eps: float) -> torch.Tensor:
        grad = input_gradient(net, x, target)
        bound = self.cfg.TRAINER.VIDEOCROSSGRAD.GRAD_CLAMP
        if bound > 0:
            grad = grad.clamp(-bound, bound)
        return (x + eps * grad).detach()

    def forward_backward(self, batch):
        opts = self.cfg.TRAINER.VIDEOCROSSGRAD
        clips, label, domain = self.parse_batch_train(batch)
        with self.autocast():
            clips_d = self.perturb(self.D, clips, domain, opts.EPS_F)
            clips_l = self.perturb(self.F, clips, label, opts.EPS_D)

            logits = self.F(clips)
            loss_f = (1 - opts.ALPHA_F) * F.cross_entropy(logits, label) + \
                opts.ALPHA_F * F.cross_entropy(self.F(clips_d), label)
        self.model_backward_and_update(loss_f, "F")
        with self.autocast():
            loss_d = (1 - opts.ALPHA_D) * F.cross_entropy(self.D(clips), domain) + \
                opts.ALPHA_D * F.cross_entropy(self.D(clips_l), domain)
        self.model_backward_and_update(loss_d, "D")
        return self.end_of_step(loss_f=loss_f, loss_d=loss_d, acc=accuracy(logits, label))

    def model_inference(self, input):
        with self.autocast():
            return self.F(input)

"""VideoNetMixin: a trainer's networks are VideoNets (frame encoder -> temporal head -> classifier h), built
where Dassl builds SimpleNet, each registered with its own optimiser and LR scheduler (cfg.OPTIM)."""
import torch.nn as nn

from framework import build_lr_scheduler, build_optimizer, count_num_param, load_pretrained_weights
from models.video_net import VideoNet


class VideoNetMixin:

    def video_net(self, num_outputs: int) -> VideoNet:
        """The run's model (MODEL.BACKBONE, MODEL.HEAD) with `num_outputs` outputs; 0: its features."""
        return VideoNet(self.cfg, self.cfg.MODEL, num_outputs)

    def build_model(self):
        """One network, `model`, with one output per class; MODEL.INIT_WEIGHTS names its warm start."""
        print(f"Building model ({self.cfg.MODEL.BACKBONE.NAME} + {self.cfg.MODEL.HEAD.NAME}, "
              f"{self.num_classes} classes)")
        self.model = self.register_video_model("model", self.video_net(self.num_classes),
                                               warm_start=self.cfg.MODEL.INIT_WEIGHTS)
        self.optim, self.sched = self._optims["model"], self._scheds["model"]  # Dassl's names for them

    def register_video_model(self, name: str, module: nn.Module, warm_start: str = "") -> nn.Module:
        """Load `warm_start` (a checkpoint file) if given, move the network to the device (a VideoNet's frame CNN
        to channels_last with TRAIN.CHANNELS_LAST, its encoder and head compiled with TRAIN.COMPILE) and register
        it with an optimiser and scheduler of its own, as Dassl's multi-network trainers do; it is checkpointed
        under OUTPUT_DIR/<name>/."""
        if warm_start:
            load_pretrained_weights(module, warm_start)
        module.to(self.device)
        if self.cfg.TRAIN.CHANNELS_LAST and isinstance(module, VideoNet):
            module.backbone.use_channels_last()
        if self.cfg.TRAIN.COMPILE and isinstance(module, VideoNet):
            module.compile_parts(self.cfg.TRAIN.COMPILE_BACKEND)
        print(f"# params of {name}: {count_num_param(module):,}")
        # a frame encoder may give its parameters their own learning rates (a ViT's layer-wise decay)
        groups = module.optimizer_groups(self.cfg.OPTIM.LR) if isinstance(module, VideoNet) else None
        optim = build_optimizer(module, self.cfg.OPTIM, groups)
        self.register_model(name, module, optim, build_lr_scheduler(optim, self.cfg.OPTIM))
        return module

    def build_label_and_domain_nets(self) -> None:
        """self.F (one output per class) and self.D (one per source domain), for the methods that train a domain
        classifier beside the label classifier (VideoCrossGrad, VideoDDAIG and their Dassl* adapters)."""
        print("Building F (label net)")
        self.F = self.register_video_model("F", self.video_net(self.num_classes))
        print("Building D (domain net)")
        self.D = self.register_video_model("D", self.video_net(self.num_source_domains))

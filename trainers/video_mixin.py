"""VideoDataMixin: what a Dassl trainer needs to train and evaluate on video clips.

Put it first in the bases, `class MyMethod(VideoDataMixin, TrainerX)`, and write forward_backward as for
images; batches are then dicts whose `img` is a (B, M, C, H, W) clip tensor. The mixin

- builds the loaders with the video wrapper and clip transforms (Dassl's DataManager, custom transforms);
- builds VideoNet (frame encoder -> temporal head -> classifier) where Dassl builds SimpleNet;
- clips gradients (OPTIM.CLIP_GRAD_NORM) and offers bf16 autocast and channels_last (TRAIN.BF16 / CHANNELS_LAST);
- replaces the final test with a table of source-validation and per-target-domain accuracy and macro-F1,
  written to OUTPUT_DIR/results.{json,csv}; per-epoch validation stays Dassl's;
- brings CheckpointMixin (atomic saves, safe loads, working --load-epoch) to any Dassl trainer;
- trains data-parallel when started by torchrun (DataParallelMixin, trainers/distributed.py).
"""
import contextlib

import torch
import torch.nn as nn

from framework import CheckpointMixin, DataManager, count_num_param, load_pretrained_weights
from framework import build_lr_scheduler, build_optimizer
from framework.distributed import is_main_process, main_process_first
from models.video_net import VideoNet
from trainers.distributed import DataParallelMixin
from trainers.results import collect_predictions, print_and_save, split_rows
from video.loader import check_files, drop_skipped, tune_loader
from video.transforms import build_video_transform
from video.wrapper import VideoDatasetWrapper


def accuracy(logits: torch.Tensor, label: torch.Tensor) -> float:
    return (logits.argmax(1) == label).float().mean().item() * 100.0


def check_source_domains(trainer_cls: type, cfg) -> None:
    """Stop with what to do when the method needs more source domains than the run names."""
    need = trainer_cls.required_source_domains(cfg) if hasattr(trainer_cls, "required_source_domains") else 1
    have = list(cfg.DATASET.SOURCE_DOMAINS)
    if len(have) < need:
        raise ValueError(
            f"{cfg.TRAINER.NAME} needs at least {need} source domains (it learns from the differences between "
            f"domains), but the run has {len(have)}: {have}. Name more with --source-domains (e.g. the "
            "leave-one-domain-out protocol: bash scripts/paper_tasks.sh BENCHMARK:lodo ...), or pick a "
            "single-source method (VideoVanilla, APN, VideoADA, RSC, DomainMix with TYPE random).")


class VideoDataMixin(DataParallelMixin, CheckpointMixin):
    # Source domains the method needs; a trainer that classifies or indexes domains sets 2. train.py checks this
    # (required_source_domains) before anything is written to OUTPUT_DIR.
    min_source_domains = 1

    @classmethod
    def required_source_domains(cls, cfg) -> int:
        """How many source domains this method needs with this config (a mode may need more)."""
        return cls.min_source_domains

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        check_source_domains(type(self), cfg)
        if cfg.TEST.FINAL_MODEL == "best_val" and cfg.DATASET.VAL_RATIO <= 0:
            raise ValueError("TEST.FINAL_MODEL best_val needs a source validation split (DATASET.VAL_RATIO > 0); "
                             "without one Dassl would select the model on the target test set")

    # ------------------------------------------------------------------ data
    def build_train_transform(self):
        """The training clip transform, or a list of them (batch keys img, img2, ...: all see the same frames)."""
        return build_video_transform(self.cfg, is_train=True)

    def build_data_loader(self):
        cfg = self.cfg
        with main_process_first():  # torchrun: data generated or prepared on first use by rank 0 alone
            dm = DataManager(cfg, custom_tfm_train=self.build_train_transform(),
                             custom_tfm_test=build_video_transform(cfg, is_train=False),
                             dataset_wrapper=VideoDatasetWrapper)
        if cfg.DATASET.CHECK_FILES:  # before any training: a broken target file is found at minute 0
            check_files({"train": dm.dataset.train_x, "val": dm.dataset.val or [], "test": dm.dataset.test}, cfg)
        self.train_loader_x = tune_loader(dm.train_loader_x, cfg)
        self.train_loader_u = tune_loader(dm.train_loader_u, cfg)
        self.val_loader = tune_loader(dm.val_loader, cfg)
        self.test_loader = tune_loader(dm.test_loader, cfg)
        self.num_classes = dm.num_classes
        self.num_source_domains = dm.num_source_domains
        self.lab2cname = dm.lab2cname
        self.dm = dm
        self.distribute_loaders()  # torchrun: each process reads its shard

    # ------------------------------------------------------------------ model
    def build_model(self):
        cfg = self.cfg
        print("Building model")
        self.model = VideoNet(cfg, cfg.MODEL, self.num_classes)
        if cfg.MODEL.INIT_WEIGHTS:
            load_pretrained_weights(self.model, cfg.MODEL.INIT_WEIGHTS)
        self.model.to(self.device)
        if cfg.TRAIN.CHANNELS_LAST:
            self.model.backbone.use_channels_last()
        print(f"# params: {count_num_param(self.model):,}")
        self.optim = build_optimizer(self.model, cfg.OPTIM, self.model.optimizer_groups(cfg.OPTIM.LR))
        self.sched = build_lr_scheduler(self.optim, cfg.OPTIM)
        self.register_model("model", self.model, self.optim, self.sched)

    def register_video_model(self, name: str, module: nn.Module) -> nn.Module:
        """Move a network to the device and register it with its own optimiser and scheduler (cfg.OPTIM), as
        Dassl's multi-network trainers do; it is checkpointed under OUTPUT_DIR/<name>/."""
        module.to(self.device)
        print(f"# params of {name}: {count_num_param(module):,}")
        groups = module.optimizer_groups(self.cfg.OPTIM.LR) if isinstance(module, VideoNet) else None
        optim = build_optimizer(module, self.cfg.OPTIM, groups)
        sched = build_lr_scheduler(optim, self.cfg.OPTIM)
        self.register_model(name, module, optim, sched)
        return module

    def build_label_and_domain_nets(self) -> None:
        """self.F (K classes) and self.D (one output per source domain), both VideoNet, for the methods that
        train a domain classifier beside the label classifier (CrossGrad, DDAIG)."""
        cfg = self.cfg
        print("Building F (label net)")
        self.F = self.register_video_model("F", VideoNet(cfg, cfg.MODEL, self.num_classes))
        print("Building D (domain net)")
        self.D = self.register_video_model("D", VideoNet(cfg, cfg.MODEL, self.num_source_domains))

    def autocast(self):
        """bf16 autocast when TRAIN.BF16 is set (meant for CUDA; CPU autocast works too); else a no-op."""
        if self.cfg.TRAIN.BF16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def model_update(self, names=None):
        self.average_gradients(names)  # torchrun: DDP's gradient mean, before clipping
        max_norm = self.cfg.OPTIM.CLIP_GRAD_NORM
        if max_norm > 0:
            for name in self.get_model_names(names):
                nn.utils.clip_grad_norm_(self._models[name].parameters(), max_norm)
        super().model_update(names)

    def parse_batch_test(self, batch):
        batch, _ = drop_skipped(batch)  # SKIP_CORRUPT: unreadable evaluation clips are left out, never replaced
        return super().parse_batch_test(batch)

    def model_inference(self, input):
        if input.shape[0] == 0:  # every clip of the batch was unreadable and left out (SKIP_CORRUPT)
            return input.new_zeros((0, self.num_classes))
        with self.autocast():
            return super().model_inference(input)

    # ------------------------------------------------------------------ evaluation
    def test(self, split=None):
        if (split or self.cfg.TEST.SPLIT) == "val":
            return super().test(split="val")  # per-epoch model selection on the source validation split
        return self.report_results()

    @torch.no_grad()
    def report_results(self) -> float:
        """Evaluate the deployed model on source val and every target domain; return pooled target accuracy."""
        self.set_model_mode("eval")
        cfg = self.cfg
        print("Evaluate on the *test* set")
        test = collect_predictions(self.model_inference, self.test_loader, self.device, desc="test")
        self.evaluator.reset()
        self.evaluator.process(torch.from_numpy(test.probs), torch.from_numpy(test.labels))
        summary = self.evaluator.evaluate()  # Dassl's `=> result` block, on all target videos
        for k, v in summary.items():
            self.write_scalar(f"test/{k}", v, self.epoch)
        val = None
        if self.val_loader is not None:
            val = collect_predictions(self.model_inference, self.val_loader, self.device, desc="val")
        if not is_main_process():  # torchrun: every rank has the gathered predictions; rank 0 writes them
            return list(summary.values())[0]
        rows = []
        if val is not None:
            rows += split_rows("source val", cfg.DATASET.SOURCE_DOMAINS, val)
        rows += split_rows("target", cfg.DATASET.TARGET_DOMAINS, test)
        print_and_save(rows, cfg.OUTPUT_DIR, title=f"{cfg.TRAINER.NAME} on {cfg.DATASET.NAME}")
        warn_if_one_class(test.probs, test.labels)
        if cfg.TEST.FIGURES:  # OUTPUT_DIR/figures/; a failure to draw is a warning (analysis/figures.py)
            from analysis.figures import draw_run_figures  # imports matplotlib only when drawing
            draw_run_figures(self, test, val)
        return list(summary.values())[0]


def warn_if_one_class(probs, labels) -> None:
    """A model that gives every clip the same class has usually stopped using its input (e.g. dead ReLUs after
    a too-large learning rate); its accuracy is the share of that class, which can look like a result."""
    predicted = set(probs.argmax(axis=1).tolist()) if len(probs) else set()
    if len(predicted) == 1 and len(set(labels.tolist())) > 1:
        print(f"WARNING: the model predicts class {predicted.pop()} for every target clip: it has collapsed to a "
              f"constant output. Lower OPTIM.LR (or clip gradients, OPTIM.CLIP_GRAD_NORM) and train again.")

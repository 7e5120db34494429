"""DataParallelMixin: what a video trainer does differently when torchrun starts it on N processes.

    torchrun --nproc_per_node N train.py ...    (see docs/multi_gpu.md)

Each process trains on its shard of every split (DistributedSampler) at DATALOADER.TRAIN_X.BATCH_SIZE clips
per step, so the global batch is BATCH_SIZE x N. Gradients (and BatchNorm running statistics) are averaged over
the processes at every optimiser step (framework.distributed.average_gradients; the module docstring there says
why this is not torch's DDP wrapper), so `self.model` stays the plain VideoNet and every method of it works as
in a single process. The maximisation of video ADA takes input gradients only and never steps an optimiser, so
it stays local to each process. Rank 0 alone logs and writes checkpoints, tensorboard and results; evaluation
gathers every rank's predictions, each clip once. Without torchrun every hook here does nothing.
"""
import os.path as osp

import torch

from defaults import config_defaults
from framework import CheckpointError, load_checkpoint
from framework.distributed import (average_buffers, average_gradients, barrier, broadcast_module, broadcast_object,
                                   convert_sync_batchnorm, gather_objects, get_rank, get_world_size,
                                   is_distributed, is_main_process, shard_loader)


@config_defaults
def _distributed_defaults(cfg) -> None:
    # Under torchrun: BatchNorm layers in training mode normalise with the statistics of the global batch
    # (all processes) instead of each process's share. Off by default: the paper's partial BN freezes all but
    # the first BN of the frame encoder, and per-process statistics are what its 8-GPU runs used.
    cfg.TRAIN.SYNC_BN = False


def _capture_rng():
    from framework.builtin.utils import capture_rng_state  # the random state format of the checkpoints

    return capture_rng_state()


def _restore_rng(state) -> None:
    from framework.builtin.utils import restore_rng_state

    restore_rng_state(state)


class DataParallelMixin:
    """Hooks for torchrun runs; first in the bases of VideoTrainerMixin (trainers/video_trainer.py)."""

    # ------------------------------------------------------------------ data
    def distribute_loaders(self) -> None:
        """Swap every loader's sampler for its DistributedSampler shard (call at the end of build_data_loader)."""
        if not is_distributed():
            return
        cfg = self.cfg
        sampler = cfg.DATALOADER.TRAIN_X.SAMPLER
        if sampler not in ("RandomSampler", "SequentialSampler"):
            raise ValueError(f"DATALOADER.TRAIN_X.SAMPLER {sampler} cannot be sharded across torchrun processes "
                             "yet; use RandomSampler or SequentialSampler, or run on one process")
        # every rank must draw the same permutation: the seed comes from rank 0
        seed = broadcast_object(cfg.SEED if cfg.SEED >= 0 else int(torch.randint(2**31 - 1, (1, ))))
        self.train_loader_x = shard_loader(self.train_loader_x, shuffle=sampler == "RandomSampler", seed=seed,
                                           train=True)
        for name in ("val_loader", "test_loader", "oracle_loader"):
            loader = getattr(self, name, None)
            if loader is not None:
                setattr(self, name, shard_loader(loader, shuffle=False, seed=0, train=False))
        batch = cfg.DATALOADER.TRAIN_X.BATCH_SIZE
        world = get_world_size()
        print(f"Data parallel over {world} processes: {batch} clips per process and step, global batch "
              f"{batch * world}; {len(self.train_loader_x)} steps per epoch")

    def before_epoch(self):
        super().before_epoch()
        sampler = getattr(self.train_loader_x, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.epoch)  # a new, shared permutation per epoch

    # ------------------------------------------------------------------ model
    def before_train(self):
        super().before_train()  # builds the writer and resumes
        if not is_distributed():
            return
        for name, model in self._models.items():
            if self.cfg.TRAIN.SYNC_BN:
                print(f"TRAIN.SYNC_BN: {convert_sync_batchnorm(model)} BatchNorm layers of {name} use "
                      "global-batch statistics")
            broadcast_module(model)  # rank 0's weights (or the resumed ones) on every rank

    def model_update(self, names=None):
        self.average_gradients(names)  # DDP's gradient mean, before any clipping and the step
        super().model_update(names)

    def average_gradients(self, names=None) -> None:
        """Average the named models' gradients and BN statistics over the processes (before clipping and the step)."""
        if not is_distributed():
            return
        models = [self._models[n] for n in self.get_model_names(names)]
        average_gradients(p for m in models for p in m.parameters())
        average_buffers(models)

    # ------------------------------------------------------------------ files: rank 0 writes
    def init_writer(self, log_dir):
        if is_main_process():
            super().init_writer(log_dir)

    def save_model(self, epoch, directory, is_best=False, val_result=None, model_name="", extra=None):
        if is_distributed() and not model_name:
            # each rank's random state, so that a resumed run goes on with every rank's own stream
            extra = dict(extra or {}, rng_state_ranks=gather_objects(_capture_rng()))
        if is_main_process():
            super().save_model(epoch, directory, is_best=is_best, val_result=val_result, model_name=model_name,
                               extra=extra)

    def load_model(self, directory, epoch=None):
        barrier()  # rank 0 may still be writing the checkpoint the others are about to read
        super().load_model(directory, epoch=epoch)

    def resume_model_if_exist(self, directory):
        start_epoch = super().resume_model_if_exist(directory)  # restores rank 0's random state on every rank
        if is_distributed() and start_epoch > 0:
            self._restore_rank_rng(directory, start_epoch)
        return start_epoch

    def _restore_rank_rng(self, directory: str, epoch: int) -> None:
        path = osp.join(directory, self.get_model_names()[0], f"model.pth.tar-{epoch}")
        try:
            states = load_checkpoint(path).get("rng_state_ranks")
        except (CheckpointError, FileNotFoundError):
            states = None
        if states is not None and len(states) == get_world_size():
            _restore_rng(states[get_rank()])
        else:  # saved by a single-process run or another world size: keep going, each rank on its own stream
            torch.manual_seed(int(torch.randint(2**31 - 1, (1, ))) + get_rank())
            print("The checkpoint holds no random state for this number of processes; each rank reseeds")

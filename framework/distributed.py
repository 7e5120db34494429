"""Data-parallel training across processes started by torchrun (torch.distributed.run).

torchrun starts N copies of train.py and gives each RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT;
`init_from_env` joins them into one process group (NCCL on GPUs, gloo on CPU). Without those variables every
helper here is a no-op and a run is the ordinary single-process run.

Why gradients are averaged explicitly rather than by wrapping the model in DistributedDataParallel: the video
trainers reach the model through several methods (`features`, `classify`, `frame_features`, `__call__`), often
two of them before one backward, and the maximisation of video ADA runs extra forward passes whose gradient is
taken with respect to the input only. DDP's reducer expects one wrapped forward per backward over a fixed set
of parameters, which these trainers do not have. Averaging the gradients at each optimiser step
(`average_gradients`, called by the trainer's model_update) gives DDP's arithmetic whichever path the forward
took, and the maximisation, which never reaches an optimiser step, stays local to each rank with no
communication at all. Gradients go in buckets of about 25 MB, one all-reduce per bucket.

Evaluation shards each split without padding (EvalShard: rank r scores items r, r + N, ...) and
`gather_shards` collects every rank's outputs, so every clip is counted once; with the items' dataset indices
the predictions come back in the split's order.
"""
import contextlib
import os
import sys
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import DataLoader, DistributedSampler, Sampler

_BUCKET_BYTES = 25 * 1024 * 1024


# --------------------------------------------------------------------------- who am I
def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    """True on rank 0 and in a single-process run: the process that logs and writes files."""
    return get_rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


@contextlib.contextmanager
def main_process_first():
    """Rank 0 runs the block first (e.g. generates or prepares data on first use), the other ranks after it."""
    if is_distributed() and not is_main_process():
        dist.barrier()
    try:
        yield
    finally:
        if is_distributed() and is_main_process():
            dist.barrier()


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ


# --------------------------------------------------------------------------- start and stop
def init_from_env(use_cuda: bool) -> bool:
    """Join the process group that torchrun describes in the environment; False when not launched by torchrun.

    NCCL when CUDA is used (each process on GPU LOCAL_RANK), gloo otherwise."""
    if not launched_by_torchrun() or (dist.is_available() and dist.is_initialized()):
        return dist.is_available() and dist.is_initialized()
    if not dist.is_available():
        raise RuntimeError("torchrun started this run, but this PyTorch build has no torch.distributed")
    cuda = use_cuda and torch.cuda.is_available()
    local_rank = int(os.environ["LOCAL_RANK"])
    if cuda:
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPU(s) are visible: "
                               "pass --nproc_per_node <= the number of GPUs of this node")
        torch.cuda.set_device(local_rank)  # the trainers' device "cuda" then means this process's GPU
    dist.init_process_group(backend="nccl" if cuda else "gloo", init_method="env://")
    return True


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def quiet_unless_main() -> None:
    """Send stdout of ranks > 0 to the void, so that the console and log.txt hold rank 0's lines only
    (errors still reach stderr, with the rank in torchrun's report)."""
    if not is_main_process():
        sys.stdout = open(os.devnull, "w")


# --------------------------------------------------------------------------- collectives
def _device() -> torch.device:
    """Where collective tensors must live: the current GPU for NCCL, CPU for gloo."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def gather_objects(obj: Any) -> List[Any]:
    """Every rank's `obj`, in rank order, on every rank ([obj] in a single process)."""
    if not is_distributed():
        return [obj]
    out: List[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any) -> Any:
    """Rank 0's `obj` on every rank."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_shards(arrays: Sequence[np.ndarray], loader, index: Optional[np.ndarray] = None) -> List[np.ndarray]:
    """Every rank's arrays of an evaluation loader sharded by `shard_loader`, concatenated on every rank.

    `arrays` share their first dimension (this rank's items). With `index` (the items' dataset indices) the
    result is in dataset order, as a single process would give it. A loader that is not sharded, or a single
    process, returns `arrays` unchanged."""
    if not is_distributed() or not isinstance(getattr(loader, "sampler", None), EvalShard):
        return list(arrays)
    parts = gather_objects(list(arrays) + ([] if index is None else [index]))
    merged = []
    for k in range(len(parts[0])):
        pieces = [rank_arrays[k] for rank_arrays in parts]
        non_empty = [p for p in pieces if len(p)] or pieces[:1]  # a rank may have read no clip (SKIP_CORRUPT)
        merged.append(np.concatenate(non_empty))
    if index is None:
        return merged
    order = np.argsort(merged.pop(), kind="stable")
    return [a[order] for a in merged]


def _buckets(tensors: List[torch.Tensor]) -> Iterable[List[torch.Tensor]]:
    """Consecutive groups of tensors of one dtype and device, each up to about _BUCKET_BYTES."""
    group: List[torch.Tensor] = []
    size = 0
    for t in tensors:
        if group and (t.dtype != group[0].dtype or t.device != group[0].device
                      or size + t.numel() * t.element_size() > _BUCKET_BYTES):
            yield group
            group, size = [], 0
        group.append(t)
        size += t.numel() * t.element_size()
    if group:
        yield group


def _all_reduce_mean(tensors: List[torch.Tensor]) -> None:
    """In-place mean over ranks of each tensor, one flattened all-reduce per bucket."""
    world = dist.get_world_size()
    pending = []
    for group in _buckets(tensors):
        flat = torch.cat([t.reshape(-1) for t in group])
        pending.append((group, flat, dist.all_reduce(flat, async_op=True)))
    for group, flat, work in pending:
        work.wait()
        flat.div_(world)
        for t, part in zip(group, flat.split([t.numel() for t in group])):
            t.copy_(part.view_as(t))


def average_gradients(params: Iterable[nn.Parameter]) -> None:
    """Average .grad over ranks (DDP's arithmetic). A parameter that received no gradient on some rank counts
    as zero there; one that received none on any rank keeps grad None, as in a single-process run."""
    if not is_distributed():
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    has_grad = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=_device())
    dist.all_reduce(has_grad)
    grads = []
    for p, count in zip(params, has_grad.tolist()):
        if count == 0:
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        grads.append(p.grad)
    _all_reduce_mean(grads)


def average_buffers(modules: Iterable[nn.Module]) -> None:
    """Average the floating-point buffers (BatchNorm running statistics) over ranks, so that every rank
    evaluates, and runs an eval-mode maximisation, with the same statistics."""
    if not is_distributed():
        return
    buffers = [b for m in modules for b in m.buffers() if b.is_floating_point()]
    if buffers:
        _all_reduce_mean(buffers)


def broadcast_module(module: nn.Module) -> None:
    """Rank 0's parameters and buffers on every rank (identical replicas before the first step)."""
    if not is_distributed():
        return
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)


# --------------------------------------------------------------------------- data
class EvalShard(Sampler):
    """Items rank, rank + N, rank + 2N, ... of an evaluation split: every item on exactly one rank.

    DistributedSampler would pad the split to a multiple of N by repeating its first items; evaluation has no
    collective inside its forward passes, so ranks may hold one item more or less, and nothing is counted twice."""

    def __init__(self, size: int, rank: int, world_size: int):
        self.indices = list(range(rank, size, world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def shard_loader(loader: DataLoader, shuffle: bool, seed: int, train: bool) -> DataLoader:
    """The same loader over this rank's shard, batch size per process unchanged.

    Training: DistributedSampler, dropping the tail that does not divide among the ranks (every rank has as many
    batches, so as many optimiser steps and collectives; no clip twice in an epoch). Evaluation: EvalShard."""
    if train:
        sampler = DistributedSampler(loader.dataset, num_replicas=dist.get_world_size(), rank=dist.get_rank(),
                                     shuffle=shuffle, seed=seed, drop_last=True)
    else:
        sampler = EvalShard(len(loader.dataset), dist.get_rank(), dist.get_world_size())
    options: Dict[str, Any] = dict(batch_size=loader.batch_size, sampler=sampler, num_workers=loader.num_workers,
                                   collate_fn=loader.collate_fn, pin_memory=loader.pin_memory,
                                   drop_last=loader.drop_last, timeout=loader.timeout,
                                   worker_init_fn=loader.worker_init_fn, generator=loader.generator)
    if loader.num_workers > 0:
        options.update(prefetch_factor=loader.prefetch_factor, persistent_workers=loader.persistent_workers)
    return DataLoader(loader.dataset, **options)


# --------------------------------------------------------------------------- synchronised batch norm
class _SumOverRanks(torch.autograd.Function):
    """All-reduce (sum) whose backward sums the incoming gradients over ranks as well: every rank's loss depends
    on every rank's statistics."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        total = grad.clone()
        dist.all_reduce(total)
        return total


def _synced_forward(self, input: torch.Tensor) -> torch.Tensor:
    """Batch norm with the statistics of the global batch (all ranks), differentiable through the all-reduce.

    torch.nn.SyncBatchNorm runs on GPUs only; this one runs on every backend (gloo on CPU too), so the CPU test
    checks the same code that a GPU run uses."""
    if not (self.training and is_distributed()):
        return super(type(self), self).forward(input)  # the plain BatchNorm
    x = input.float()
    dims = [d for d in range(x.dim()) if d != 1]
    count = torch.full((1, ), x.numel() / x.shape[1], dtype=torch.float32, device=x.device)
    stats = _SumOverRanks.apply(torch.cat([x.sum(dims), (x * x).sum(dims), count]))
    channels = x.shape[1]
    n = stats[-1]
    mean = stats[:channels] / n
    var = (stats[channels:2 * channels] / n - mean * mean).clamp_min(0)
    if self.track_running_stats:
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            factor = (1.0 / float(self.num_batches_tracked)) if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
            self.running_var.mul_(1 - factor).add_(var.detach() * n / (n - 1).clamp_min(1), alpha=factor)
    shape = [1, channels] + [1] * (x.dim() - 2)
    y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
    if self.affine:
        y = y * self.weight.view(shape) + self.bias.view(shape)
    return y.to(input.dtype)


_SYNCED_CLASSES: Dict[type, type] = {}


def convert_sync_batchnorm(module: nn.Module) -> int:
    """Make every BatchNorm1d/2d/3d of `module` normalise with global-batch statistics; returns how many.

    The layers change class in place (same parameters, buffers, state_dict keys and identity), so checkpoints
    stay interchangeable with non-synchronised runs and modules that hold references to their batch norms
    (partial BN) keep working. Layers in eval mode (frozen by partial BN) are unaffected."""
    converted = 0
    for layer in module.modules():
        base = type(layer)
        if base in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d):
            if base not in _SYNCED_CLASSES:
                _SYNCED_CLASSES[base] = type(f"Synced{base.__name__}", (base, ), {"forward": _synced_forward})
            layer.__class__ = _SYNCED_CLASSES[base]
            converted += 1
    return converted

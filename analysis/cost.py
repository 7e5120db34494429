"""What one training step of a trainer costs, counted on the trainer itself while it runs.

    from analysis.cost import step_cost
    cost = step_cost(trainer, batch)             # runs trainer.forward_backward(batch) once
    cost["forward_passes"], cost["backward_passes"], cost["theta_steps"]  # e.g. 13, 13, 3 for APN + ADA*

What is counted, and how:

- **Clip-batch passes.** The frame encoder of every VideoNet the trainer registered is watched where the
  network calls it, `VideoNet.frame_features` (features, or spatial maps for a head that reads maps): its
  calls and the clips each call takes (`clips_forward`) are counted; `forward_passes` is
  clips_forward / B for a minibatch of B clips, so a batched call on 2B clips counts 2. A pass without an
  autograd graph (`torch.no_grad`, e.g. R0 of Algorithm 1) counts too and is also in `no_grad_clips_forward`.
  Each forward that builds a graph puts a gradient hook on the encoder's output: it fires when a backward
  pass (`loss.backward()` or `torch.autograd.grad`, input gradients only included) carries a gradient into
  the frame encoder, and counts the clips of that output (`clips_backward`, `backward_passes` = / B).
- **theta steps**: `optimizer.step()` calls of every optimizer the trainer registered (a post-step hook);
  `optimizer_steps` gives them per registered model name, `theta_steps` is their sum.
- **FLOPs** (flops=True): `torch.utils.flop_counter.FlopCounterMode` over the whole step, forward and backward
  (2 FLOPs per multiply-add of matmuls and convolutions; elementwise operations are not counted). Exact from
  shapes, so the same on any device, the `meta` device included.
- **Saved activations** (saved_memory=True): `torch.autograd.graph.saved_tensors_hooks` sees every tensor
  that autograd saves for a backward pass. The meter counts each storage once (a ReLU output that is also
  the next convolution's input is one tensor), holds it while any graph still references it (a handle freed
  with the graph), and reports the peak of the live total in bytes. Parameters and buffers are left out:
  they are memory the model holds anyway. The input clips are counted where a layer saves them.

All counts come from one call of `trainer.forward_backward(batch)` in training mode; it is a real training
step (the weights change). The scheduler is not stepped. Counting needs eager execution (TRAIN.COMPILE off).
"""
import contextlib
import math
from typing import Any, Dict, Iterator, List, Tuple

import torch
from torch.utils.flop_counter import FlopCounterMode

from models.video_net import VideoNet

Batch = Dict[str, Any]


def video_nets(trainer) -> Dict[str, VideoNet]:
    """{"<model name>[.<path>]": net} for every VideoNet among the trainer's registered models."""
    found = {}
    for name, model in trainer._models.items():
        for path, module in model.named_modules():
            if isinstance(module, VideoNet):
                found[".".join(p for p in (name, path) if p)] = module
    if not found:
        raise ValueError(f"{type(trainer).__name__} registers no VideoNet, so there is no frame encoder to count")
    return found


class _PassCounter:
    """Forward calls and clips through the frame encoders, and the clips that backward passes reach."""

    def __init__(self):
        self.forward_calls = self.clips_forward = self.no_grad_clips = 0
        self.backward_calls = self.clips_backward = 0

    def watch(self, net: VideoNet):
        """Count every call of net.frame_features until the returned function is called."""
        frame_features = net.frame_features

        def counted(x: torch.Tensor) -> torch.Tensor:
            output = frame_features(x)
            self.forward(x.shape[0], output)
            return output

        net.frame_features = counted
        return lambda: delattr(net, "frame_features")

    def forward(self, clips: int, output) -> None:
        self.forward_calls += 1
        self.clips_forward += clips
        if isinstance(output, torch.Tensor) and output.requires_grad:
            output.register_hook(lambda grad: self._backward(grad.shape[0]))
        else:
            self.no_grad_clips += clips

    def _backward(self, clips: int) -> None:
        self.backward_calls += 1
        self.clips_backward += clips


class _SavedHandle:
    """What autograd stores instead of a saved tensor: the tensor (detached, so that a saved output does not
    hold its own graph) and the meter to tell when the graph lets it go."""
    __slots__ = ("tensor", "key", "meter")

    def __init__(self, tensor: torch.Tensor, key: int, meter: "SavedTensorMeter"):
        self.tensor, self.key, self.meter = tensor, key, meter

    def __del__(self):
        self.meter.release(self.key)


class SavedTensorMeter:
    """Peak bytes of the distinct storages autograd holds for backward passes (parameters excluded)."""

    def __init__(self, exclude: Iterator[torch.Tensor] = ()):
        self.excluded = {t.untyped_storage()._cdata for t in exclude}
        self.live: Dict[int, List[int]] = {}  # storage -> [handles, bytes]
        self.bytes = self.peak = 0

    def pack(self, tensor: torch.Tensor):
        storage = tensor.untyped_storage()
        key = storage._cdata  # the storage itself, so views of one tensor count once (also on `meta`)
        if key in self.excluded:
            return tensor
        entry = self.live.get(key)
        if entry is None:
            self.live[key] = [1, storage.nbytes()]
            self.bytes += storage.nbytes()
            self.peak = max(self.peak, self.bytes)
        else:
            entry[0] += 1
        return _SavedHandle(tensor.detach(), key, self)

    @staticmethod
    def unpack(packed):
        return packed.tensor if isinstance(packed, _SavedHandle) else packed

    def release(self, key: int) -> None:
        entry = self.live.get(key)
        if entry is None:
            return
        entry[0] -= 1
        if entry[0] == 0:
            self.bytes -= entry[1]
            del self.live[key]

    @contextlib.contextmanager
    def watch(self) -> Iterator["SavedTensorMeter"]:
        with torch.autograd.graph.saved_tensors_hooks(self.pack, self.unpack):
            yield self


@contextlib.contextmanager
def _counting(trainer) -> Iterator[Tuple[_PassCounter, Dict[str, int]]]:
    counter, steps, undo = _PassCounter(), {name: 0 for name in trainer._optims}, []
    try:
        for net in video_nets(trainer).values():
            undo.append(counter.watch(net))
        for name, optim in trainer._optims.items():
            if optim is not None:
                undo.append(optim.register_step_post_hook(_step_counter(steps, name)).remove)
        yield counter, steps
    finally:
        for step_back in reversed(undo):
            step_back()


def _step_counter(steps: Dict[str, int], name: str):
    def hook(_optimizer, _args, _kwargs):
        steps[name] += 1
    return hook


class _GlobalScopeOnly:
    """Stands in for FlopCounterMode's module tracker, whose backward hooks on module inputs make
    torch.autograd.grad with respect to a leaf input fail (the ascent of video ADA takes exactly that): the
    counts are then kept for the whole step only ("Global"), which is all a step's total needs."""
    parents = ("Global", )

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        return False


def flop_counter() -> FlopCounterMode:
    """A FlopCounterMode that counts through input-gradient passes; read get_total_flops() after the block."""
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _GlobalScopeOnly()
    return counter


def _per_batch(clips: int, batch_size: int):
    passes = clips / batch_size
    return int(passes) if passes == int(passes) else passes


def step_cost(trainer, batch: Batch, flops: bool = False, saved_memory: bool = False) -> Dict[str, Any]:
    """Run one `trainer.forward_backward(batch)` in training mode and return what it cost:

    batch_size              B, the clips of batch["img"]
    forward_passes          clips through the frame encoder(s) / B (a batched call on 2B clips counts 2)
    backward_passes         clips whose encoder output received a gradient / B
    theta_steps             optimizer.step() calls, all registered optimizers together
    optimizer_steps         {registered model name: optimizer.step() calls}
    clips_forward           clips through the frame encoder(s), with or without an autograd graph
    clips_backward          clips reached by backward passes
    no_grad_clips_forward   the part of clips_forward run without a graph (e.g. reference features)
    encoder_forward_calls   calls of the frame encoder(s)
    encoder_backward_calls  encoder outputs that received a gradient
    losses                  what forward_backward returned
    gflops                  (flops=True) forward + backward GFLOPs of the step
    saved_peak_bytes        (saved_memory=True) peak bytes of tensors saved for backward, parameters excluded

    The batch must already be on the trainer's device or be movable there by its parse_batch_train (as a
    loader batch is). Works on any device, `meta` included (wrap the call in `meta_log_values()` there)."""
    B = batch["img"].shape[0]
    saved_batch = (getattr(trainer, "batch_idx", None), getattr(trainer, "num_batches", None))
    trainer.batch_idx, trainer.num_batches = 0, 2  # not the last batch: no scheduler step inside
    meter = SavedTensorMeter(p for m in trainer._models.values() for p in [*m.parameters(), *m.buffers()])
    flops_mode = flop_counter() if flops else contextlib.nullcontext()
    trainer.set_model_mode("train")
    try:
        with _counting(trainer) as (counter, steps), flops_mode:
            with meter.watch() if saved_memory else contextlib.nullcontext():
                losses = trainer.forward_backward(batch)
    finally:
        trainer.batch_idx, trainer.num_batches = saved_batch
    cost = {
        "batch_size": B,
        "forward_passes": _per_batch(counter.clips_forward, B),
        "backward_passes": _per_batch(counter.clips_backward, B),
        "theta_steps": sum(steps.values()),
        "optimizer_steps": steps,
        "clips_forward": counter.clips_forward,
        "clips_backward": counter.clips_backward,
        "no_grad_clips_forward": counter.no_grad_clips,
        "encoder_forward_calls": counter.forward_calls,
        "encoder_backward_calls": counter.backward_calls,
        "losses": losses,
    }
    if flops:
        cost["gflops"] = flops_mode.get_total_flops() / 1e9
    if saved_memory:
        cost["saved_peak_bytes"] = meter.peak
    return cost


# ---------------------------------------------------------------------------------------------- the meta device
META = torch.device("meta")


def move_trainer(trainer, device) -> None:
    """Move every registered model (and any optimizer state) to `device` and make it the trainer's device:
    a trainer built on the CPU then runs its steps on `device` (e.g. `meta`, shapes only)."""
    device = torch.device(device)
    for model in trainer._models.values():
        model.to(device)
    for optim in trainer._optims.values():
        for state in (optim.state.values() if optim is not None else ()):
            for key, value in state.items():
                if torch.is_tensor(value) and key != "step":
                    state[key] = value.to(device)
    trainer.device = device


def batch_to(batch: Batch, device) -> Batch:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


_HOST_READS = ("item", "tolist", "__bool__")


def _meta_value(name: str, tensor: torch.Tensor):
    if name == "__bool__":
        return True
    return math.nan if name == "item" or tensor.dim() == 0 else torch.full(tensor.shape, math.nan).tolist()


@contextlib.contextmanager
def meta_log_values() -> Iterator[None]:
    """Inside the block, host reads of a meta tensor (which has no values) answer instead of raising:
    `.item()` / `.tolist()` give NaN, so a trainer's log values read as NaN, and `bool()` gives True, so a
    check on values (the engine's finite-loss check) passes. Every other tensor reads as usual."""
    originals = {name: getattr(torch.Tensor, name) for name in _HOST_READS}

    def nan_if_meta(name):
        read = originals[name]

        def wrapped(self, *args, **kwargs):
            return _meta_value(name, self) if self.is_meta else read(self, *args, **kwargs)
        return wrapped

    try:
        for name in _HOST_READS:
            setattr(torch.Tensor, name, nan_if_meta(name))
        yield
    finally:
        for name, read in originals.items():
            setattr(torch.Tensor, name, read)


__all__ = ["step_cost", "video_nets", "flop_counter", "SavedTensorMeter", "move_trainer", "batch_to", "meta_log_values",
           "META"]

"""The relational feature pyramid of APN (Section 4.2), registered as the Dassl head `apn_pyramid`.

Input: frame features F_M of shape (B, M, D). With Block = AttentionBlock(query, key):

    Level I    r_global = Block(F_M, F_M)                      (B, M, D)
               r1[m]    = Block(F_m, F_m)   for m = 2..M-1       (B, m, D), F_m = a snippet of m segments
    Level II   r2[m]    = Block(r_global, r1[m])  (global as queries)  (B, M, D)
               r2       = sum_m r2[m]                              (B, M, D)
    Level III  r3       = r2 + r_global                            (B, M, D)

The classifier h (built by VideoNet) is one linear layer on the flattened (M*D) feature and is shared by
all levels, so `out_features = M * D` and every level is returned flattened.

Snippets: `consecutive` (paper) takes m consecutive segments from a random start in training;
`combinations` (official code) takes a random m-subset of the segments; SNIPPET_DRAW says whether each clip
gets its own draw (`clip`) or the whole batch shares one (`batch`, official code). In eval mode all use the
centred consecutive snippet, start (M - m) // 2, so evaluation is deterministic. `draw_snippets` and
`fixed_snippets` let video ADA hold one training-mode draw fixed over the T_max steps of its ascent.
"""
import contextlib
from typing import Dict, Iterator, List, NamedTuple, Optional

import torch
import torch.nn as nn

from defaults import CN, Uniform, config_defaults, search_space
from framework import HEAD_REGISTRY
from models.attention import AttentionBlock
from models.video_net import reads_config

SNIPPET_MODES = ("consecutive", "combinations")


@config_defaults
def _pyramid_defaults(cfg) -> None:
    cfg.MODEL.PYRAMID = CN()  # the relational feature pyramid head (apn_pyramid)
    cfg.MODEL.PYRAMID.NUM_HEADS = 4  # attention heads (official code: 4)
    cfg.MODEL.PYRAMID.DROPOUT = 0.3  # attention-block dropout (official code: 0.3)
    cfg.MODEL.PYRAMID.FF_MULT = 4  # feed-forward width = FF_MULT * D (official code: 4)
    cfg.MODEL.PYRAMID.SNIPPETS = "consecutive"  # paper: m consecutive segments; official: combinations
    cfg.MODEL.PYRAMID.SHARE_BLOCKS = False  # paper: one block per pyramid position; official: one shared block
    cfg.MODEL.PYRAMID.KEY_FEEDFORWARD = False  # official code: a second feed-forward layer after the key self-attention
    cfg.MODEL.PYRAMID.SNIPPET_DRAW = "clip"  # clip: a snippet draw per clip; batch: one per batch (official code)
    # Attention-block internals (models/attention.py); the defaults are Vaswani et al.'s block, which the paper cites.
    cfg.MODEL.PYRAMID.PROJECTIONS = "linear"  # official code: "relu" (Q/K/V = ReLU(Linear), no output projection)
    cfg.MODEL.PYRAMID.CAUSAL_QUERY = False  # official code: True (causal mask on the query self-attention)
    cfg.MODEL.PYRAMID.RESIDUAL_DROPOUT = True  # official code: False (dropout on attention weights only)
    cfg.MODEL.PYRAMID.OUTPUT_DROPOUT = 0.0  # official code: 0.3 (dropout on each block's output)


# The attention blocks' dropout, for every method on this head (ERM, RSC, ... and APN). Widths and the number of
# heads are not drawn: they set the model's size and cost, which a comparison keeps fixed.
search_space("MODEL.HEAD.NAME=apn_pyramid", {"MODEL.PYRAMID.DROPOUT": Uniform(0.0, 0.5)})


class Pyramid(NamedTuple):
    r_global: torch.Tensor  # (B, M, D)
    r1: Dict[int, torch.Tensor]  # m -> (B, m, D)
    r2_per_scale: Dict[int, torch.Tensor]  # m -> (B, M, D)
    r2: torch.Tensor  # (B, M, D)
    r3: torch.Tensor  # (B, M, D)


class RelationalFeaturePyramid(nn.Module):
    """`attention` holds the keywords of every AttentionBlock of the pyramid (num_heads, dropout, ...)."""

    def __init__(self, in_features: int, num_segments: int, *, snippets: str = "consecutive",
                 snippet_draw: str = "clip", share_blocks: bool = False, **attention):
        super().__init__()
        if num_segments < 3:
            raise ValueError(f"The pyramid needs M >= 3 segments (local snippets of 2..M-1); got M={num_segments}")
        if snippets not in SNIPPET_MODES:
            raise ValueError(f"MODEL.PYRAMID.SNIPPETS must be one of {SNIPPET_MODES}, got {snippets!r}")
        if snippet_draw not in ("clip", "batch"):
            raise ValueError(f"MODEL.PYRAMID.SNIPPET_DRAW must be clip or batch, got {snippet_draw!r}")
        self.num_segments = num_segments
        self.scales = list(range(2, num_segments))  # m = 2..M-1
        self.snippets = snippets
        self.snippet_draw = snippet_draw
        self._fixed: Optional[Dict[int, torch.Tensor]] = None  # set by fixed_snippets()
        self.out_features = num_segments * in_features

        def new_block():
            return AttentionBlock(in_features, **attention)

        # The official code runs every position through one shared block; the paper draws a block per position.
        shared = new_block() if share_blocks else None
        block = (lambda: shared) if share_blocks else new_block
        self.global_block = block()
        self.local_blocks = nn.ModuleList(block() for _ in self.scales)
        self.cross_blocks = nn.ModuleList(block() for _ in self.scales)

    def snippet_indices(self, batch_size: int, m: int, device: torch.device) -> torch.Tensor:
        """(B, m) increasing segment indices of the snippet of length m for each clip."""
        if self._fixed is not None:
            fixed = self._fixed[m]
            if batch_size % len(fixed):
                raise ValueError(f"fixed_snippets holds a draw for {len(fixed)} clips; got a batch of {batch_size}")
            return fixed.repeat(batch_size // len(fixed), 1)  # batched ADA chains: the same draw per chain
        if not self.training:
            start = torch.full((batch_size, 1), (self.num_segments - m) // 2, device=device)
            return start + torch.arange(m, device=device)
        return self._random_indices(batch_size, m, device)

    def _random_indices(self, batch_size: int, m: int, device: torch.device) -> torch.Tensor:
        M = self.num_segments
        draws = 1 if self.snippet_draw == "batch" else batch_size
        if self.snippets == "consecutive":
            start = torch.randint(0, M - m + 1, (draws, 1), device=device)
            idx = start + torch.arange(m, device=device)
        else:  # a uniformly random m-subset: the m smallest of M random keys, kept in temporal order
            idx = torch.rand(draws, M, device=device).argsort(dim=1)[:, :m].sort(dim=1).values
        return idx.expand(batch_size, m)

    def draw_snippets(self, batch_size: int, device: torch.device) -> Dict[int, torch.Tensor]:
        """One training-mode draw {m: (B, m)} for every scale, whatever the module's mode."""
        return {m: self._random_indices(batch_size, m, device) for m in self.scales}

    @contextlib.contextmanager
    def fixed_snippets(self, draw: Dict[int, torch.Tensor]) -> Iterator[None]:
        """Every forward pass inside uses `draw` (from draw_snippets), in train and eval mode alike."""
        previous, self._fixed = self._fixed, draw
        try:
            yield
        finally:
            self._fixed = previous

    def forward_pyramid(self, frame_features: torch.Tensor) -> Pyramid:
        B, M, D = frame_features.shape
        if M != self.num_segments:
            raise ValueError(f"Expected {self.num_segments} segments, got input of shape {tuple(frame_features.shape)}")
        r_global = self.global_block(frame_features, frame_features)
        r1, r2_per_scale = {}, {}
        for m, local_block, cross_block in zip(self.scales, self.local_blocks, self.cross_blocks):
            idx = self.snippet_indices(B, m, frame_features.device)
            f_m = frame_features.gather(1, idx.unsqueeze(-1).expand(B, m, D))
            r1[m] = local_block(f_m, f_m)
            r2_per_scale[m] = cross_block(r_global, r1[m])
        r2 = torch.stack(list(r2_per_scale.values())).sum(dim=0)
        r3 = r2 + r_global
        return Pyramid(r_global, r1, r2_per_scale, r2, r3)

    def forward_levels(self, frame_features: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Flattened features of each level; `last_hidden` (the classifier's input) is r3."""
        p = self.forward_pyramid(frame_features)
        return {"global": p.r_global.flatten(1), "II": p.r2.flatten(1), "III": p.r3.flatten(1),
                "last_hidden": p.r3.flatten(1)}

    def forward(self, frame_features: torch.Tensor) -> torch.Tensor:
        return self.forward_pyramid(frame_features).r3.flatten(1)

    @property
    def levels(self) -> List[str]:
        return ["global", "II", "III", "last_hidden"]


@HEAD_REGISTRY.register()
@reads_config("PYRAMID")
def apn_pyramid(*, in_features: int, num_segments: int, **pyramid) -> RelationalFeaturePyramid:
    """`pyramid`: the keys of MODEL.PYRAMID in lower case."""
    return RelationalFeaturePyramid(in_features, num_segments, **pyramid)

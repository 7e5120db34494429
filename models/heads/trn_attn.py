"""TRN-ATTN (paper Section 5.3, Table 2), registered as the Dassl head `trn_attn`.

TRN (models/heads/trn.py) with APN's attention block (models/attention.py) applied *within* relations, to
TRN's g and h features, and no cross-relation operation:

    G_k = g_k(relations of scale k)            (B, n_k, bottleneck)
    G_k <- Block_k(G_k, G_k)                    self-attention among the scale's relations
    H   = [h_k(sum G_k) for every scale k]      (B, M - 1, bottleneck)
    H   <- Block_h(H, H)                        self-attention among the scale features

The head's output (`last_hidden`) is the sum of the rows of H; each row is a level (`scale2` ... `scaleM`)
for ADA*, as in TRN. The attention width is the bottleneck.
"""
import torch
import torch.nn as nn

from defaults import CN, Uniform, config_defaults, search_space
from framework import HEAD_REGISTRY
from models.attention import AttentionBlock
from models.heads.trn import MultiScaleTRN
from models.video_net import reads_config


@config_defaults
def _trn_attn_defaults(cfg) -> None:
    cfg.MODEL.TRN_ATTN = CN()  # TRN with within-relation attention (trn_attn)
    cfg.MODEL.TRN_ATTN.BOTTLENECK = 256  # width of g, h and the attention blocks (TRN: 256)
    cfg.MODEL.TRN_ATTN.RELATIONS_PER_SCALE = 3  # relations scored per scale (TRN: 3)
    cfg.MODEL.TRN_ATTN.NUM_HEADS = 4  # attention heads (as APN)
    cfg.MODEL.TRN_ATTN.DROPOUT = 0.3  # attention-block dropout (as APN)
    cfg.MODEL.TRN_ATTN.FF_MULT = 4  # feed-forward width = FF_MULT * bottleneck (as APN)


search_space("MODEL.HEAD.NAME=trn_attn", {"MODEL.TRN_ATTN.DROPOUT": Uniform(0.0, 0.5)})  # as APN's (apn_pyramid.py)


class AttentiveTRN(MultiScaleTRN):
    """`attention` holds the keywords of the attention blocks (num_heads, dropout, ff_mult)."""

    def __init__(self, in_features: int, num_segments: int, *, bottleneck: int = 256, relations_per_scale: int = 3,
                 **attention):
        super().__init__(in_features, num_segments, bottleneck=bottleneck, relations_per_scale=relations_per_scale)
        self.g_attention = nn.ModuleList(AttentionBlock(bottleneck, **attention) for _ in self.scales)
        self.h_attention = AttentionBlock(bottleneck, **attention)

    def scale_features(self, frame_features: torch.Tensor) -> torch.Tensor:
        per_scale = []
        for i in range(len(self.scales)):
            g = self.relation_features(frame_features, i)
            per_scale.append(self.h[i](self.g_attention[i](g, g).sum(dim=1)))
        h = torch.stack(per_scale, dim=1)
        return self.h_attention(h, h)


@HEAD_REGISTRY.register()
@reads_config("TRN_ATTN")
def trn_attn(*, in_features: int, num_segments: int, **options) -> AttentiveTRN:
    """`options`: the keys of MODEL.TRN_ATTN in lower case."""
    return AttentiveTRN(in_features, num_segments, **options)

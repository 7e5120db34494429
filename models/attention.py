"""The Transformer attention block of APN (Section 4.1): AttentionBlock(query, key).

Three multi-head attention layers: self-attention over the keys, self-attention over the queries, and
cross-attention from the queries to the keys (keys double as values); then two fully-connected layers.
Each sub-layer is residual and followed by layer normalisation (post-norm, as in Vaswani et al.).
The output has the query's length: (B, Lq, D) for query (B, Lq, D) and key (B, Lk, D).

Attention runs on torch's fused `scaled_dot_product_attention`. The parameters keep nn.MultiheadAttention's
names (in_proj_weight, in_proj_bias, out_proj), so checkpoints written before the switch still load.

Options that reproduce the official APN code (thuml/VideoDG), all off by default:
  projections="relu"      Q, K, V = ReLU(Linear(.)) and no output projection (default "linear": Vaswani et al.)
  causal_query=True       the query self-attention is masked causally (a position sees only earlier ones)
  residual_dropout=False  dropout only on the attention weights, none on the sub-layer outputs
  output_dropout=0.3      dropout on the block's output
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

PROJECTIONS = ("linear", "relu")


class MultiHeadAttention(nn.Module):
    """Multi-head attention with keys as values, on scaled_dot_product_attention; (B, L, D) tensors."""

    def __init__(self, dim: int, *, num_heads: int, dropout: float, projections: str = "linear"):
        super().__init__()
        if projections not in PROJECTIONS:
            raise ValueError(f"MODEL.PYRAMID.PROJECTIONS must be one of {PROJECTIONS}, got {projections!r}")
        self.num_heads = num_heads
        self.dropout = dropout
        self.relu = projections == "relu"
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))  # Q, K, V stacked
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = None if self.relu else nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        if self.out_proj is not None:
            nn.init.zeros_(self.out_proj.bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, H, L, D/H)
        B, L, D = x.shape
        return x.view(B, L, self.num_heads, D // self.num_heads).transpose(1, 2)

    def forward(self, query: torch.Tensor, key: torch.Tensor, causal: bool = False) -> torch.Tensor:
        if query is key:  # self-attention: one matmul for Q, K and V
            q, k, v = F.linear(query, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        else:
            w_q, w_kv = self.in_proj_weight.split([query.shape[-1], 2 * query.shape[-1]])
            b_q, b_kv = self.in_proj_bias.split([query.shape[-1], 2 * query.shape[-1]])
            q = F.linear(query, w_q, b_q)
            k, v = F.linear(key, w_kv, b_kv).chunk(2, dim=-1)
        if self.relu:
            q, k, v = q.relu(), k.relu(), v.relu()
        out = F.scaled_dot_product_attention(self._heads(q), self._heads(k), self._heads(v), is_causal=causal,
                                             dropout_p=self.dropout if self.training else 0.0)
        out = out.transpose(1, 2).flatten(2)
        return out if self.out_proj is None else self.out_proj(out)


class FeedForward(nn.Module):
    """Two fully-connected layers with a residual connection and layer normalisation."""

    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.dropout(self.fc2(torch.relu(self.fc1(x)))))


class ResidualAttention(nn.Module):
    """Multi-head attention + dropout + residual (to the queries) + layer normalisation."""

    def __init__(self, dim: int, *, num_heads: int, dropout: float, projections: str = "linear",
                 residual_dropout: bool = True, causal: bool = False):
        super().__init__()
        self.attn = MultiHeadAttention(dim, num_heads=num_heads, dropout=dropout, projections=projections)
        self.dropout = nn.Dropout(dropout if residual_dropout else 0.0)
        self.norm = nn.LayerNorm(dim)
        self.causal = causal

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        return self.norm(query + self.dropout(self.attn(query, key, causal=self.causal)))


class AttentionBlock(nn.Module):
    """The block's options are keywords (the keys of MODEL.PYRAMID, lower case, hold the same names), so a head
    forwards them as one mapping: AttentionBlock(dim, **options)."""

    def __init__(self, dim: int, *, num_heads: int = 4, dropout: float = 0.3, ff_mult: int = 4,
                 key_feedforward: bool = False, projections: str = "linear", causal_query: bool = False,
                 residual_dropout: bool = True, output_dropout: float = 0.0):
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"Attention width {dim} is not divisible by {num_heads} heads")
        sublayer = dict(num_heads=num_heads, dropout=dropout, projections=projections,
                        residual_dropout=residual_dropout)
        self.key_self_attn = ResidualAttention(dim, **sublayer)
        # The official code refines the keys with their own feed-forward layer; the paper counts two FC layers.
        ff_dropout = dropout if residual_dropout else 0.0
        self.key_feedforward = FeedForward(dim, ff_mult * dim, ff_dropout) if key_feedforward else None
        self.query_self_attn = ResidualAttention(dim, causal=causal_query, **sublayer)
        self.cross_attn = ResidualAttention(dim, **sublayer)
        self.feedforward = FeedForward(dim, ff_mult * dim, ff_dropout)
        self.output_dropout = nn.Dropout(output_dropout) if output_dropout > 0 else nn.Identity()

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        key = self.key_self_attn(key, key)
        if self.key_feedforward is not None:
            key = self.key_feedforward(key)
        query = self.query_self_attn(query, query)
        return self.output_dropout(self.feedforward(self.cross_attn(query, key)))

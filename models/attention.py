"""The Transformer attention block of APN (Section 4.1): AttentionBlock(query, key).

Three multi-head attention layers: self-attention over the keys, self-attention over the queries, and
cross-attention from the queries to the keys (keys double as values); then two fully-connected layers.
Each sub-layer is residual and followed by layer normalisation (post-norm, as in Vaswani et al.).
The output has the query's length: (B, Lq, D) for query (B, Lq, D) and key (B, Lk, D).
"""
import torch
import torch.nn as nn


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

    def __init__(self, dim: int, num_heads: int, dropout: float):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        out, _ = self.attn(query, key, key, need_weights=False)
        return self.norm(query + self.dropout(out))


class AttentionBlock(nn.Module):

    def __init__(self, dim: int, num_heads: int = 4, dropout: float = 0.3, ff_mult: int = 4,
                 key_feedforward: bool = False):
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"Attention width {dim} is not divisible by {num_heads} heads")
        self.key_self_attn = ResidualAttention(dim, num_heads, dropout)
        # The official code refines the keys with their own feed-forward layer; the paper counts two FC layers.
        self.key_feedforward = FeedForward(dim, ff_mult * dim, dropout) if key_feedforward else None
        self.query_self_attn = ResidualAttention(dim, num_heads, dropout)
        self.cross_attn = ResidualAttention(dim, num_heads, dropout)
        self.feedforward = FeedForward(dim, ff_mult * dim, dropout)

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        key = self.key_self_attn(key, key)
        if self.key_feedforward is not None:
            key = self.key_feedforward(key)
        query = self.query_self_attn(query, query)
        return self.feedforward(self.cross_attn(query, key))

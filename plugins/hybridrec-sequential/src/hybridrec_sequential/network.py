"""The SASRec network (Kang & McAuley 2018): causal self-attention over an item sequence.

Sequences are left-padded item codes shifted by one (0 is padding, code ``c`` is ``c + 1``), so
the newest item always sits in the last column and positions count back from it. Item
embeddings are shared between input and output, as in the paper: the score of item ``i`` after
a prefix is the dot product of the prefix's last hidden state with item ``i``'s embedding.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class _Block(nn.Module):
    """Pre-norm transformer block: causal multi-head attention, then a position-wise FFN."""

    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm_attn = nn.LayerNorm(hidden, eps=1e-8)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.norm_ffn = nn.LayerNorm(hidden, eps=1e-8)
        self.ffn = nn.Sequential(
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
        )
        self.dropout = nn.Dropout(dropout)
        self.attn_dropout = dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = x.shape
        q, k, v = self.qkv(self.norm_attn(x)).chunk(3, dim=-1)

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, self.heads, hidden // self.heads).transpose(1, 2)

        attn = F.scaled_dot_product_attention(
            split(q),
            split(k),
            split(v),
            attn_mask=mask,
            dropout_p=self.attn_dropout if self.training else 0.0,
        )
        x = x + self.dropout(self.out(attn.transpose(1, 2).reshape(batch, length, hidden)))
        return x + self.dropout(self.ffn(self.norm_ffn(x)))


class SASRecNet(nn.Module):
    """Item embedding + learned positional embedding, ``blocks`` causal blocks, final layer norm.

    Args:
        n_items: catalogue size (the embedding has one more row, for padding).
        max_len: longest sequence (number of positional embeddings).
        hidden: embedding and hidden size (divisible by ``heads``).
        blocks: number of self-attention blocks.
        heads: attention heads per block.
        dropout: dropout on embeddings, attention weights and block outputs.

    Example:
        >>> net = SASRecNet(n_items=5, max_len=4, hidden=8, blocks=1, heads=2, dropout=0.0)
        >>> net.score_last(torch.tensor([[0, 1, 2]])).shape
        torch.Size([1, 5])
    """

    def __init__(
        self, n_items: int, max_len: int, hidden: int, blocks: int, heads: int, dropout: float
    ) -> None:
        super().__init__()
        self.max_len = max_len
        self.hidden = hidden
        self.item_emb = nn.Embedding(n_items + 1, hidden, padding_idx=0)
        self.pos_emb = nn.Embedding(max_len, hidden)
        self.emb_dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(_Block(hidden, heads, dropout) for _ in range(blocks))
        self.norm = nn.LayerNorm(hidden, eps=1e-8)
        nn.init.normal_(self.item_emb.weight, std=1.0 / math.sqrt(hidden))
        nn.init.normal_(self.pos_emb.weight, std=1.0 / math.sqrt(hidden))
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """Hidden states ``(batch, length, hidden)`` of left-padded sequences ``(batch, length)``.

        Position ``t`` sees items ``<= t`` only; padding sees only itself (its output is unused).
        """
        _, length = seq.shape
        if length > self.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len {self.max_len}")
        positions = torch.arange(self.max_len - length, self.max_len, device=seq.device)
        x = self.item_emb(seq) * math.sqrt(self.hidden) + self.pos_emb(positions)[None]
        x = self.emb_dropout(x) * (seq > 0).unsqueeze(-1)
        causal = torch.ones(length, length, dtype=torch.bool, device=seq.device).tril()
        eye = torch.eye(length, dtype=torch.bool, device=seq.device)
        # keys: earlier real items, or the query itself (so a padded query is never empty)
        mask = (causal & (seq > 0)[:, None, :]) | eye  # (batch, query, key)
        mask = mask[:, None]  # broadcast over heads
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x)

    def item_weights(self) -> torch.Tensor:
        """Output embeddings ``(n_items, hidden)`` in item-code order (padding row left out)."""
        return self.item_emb.weight[1:]

    def score_last(self, seq: torch.Tensor) -> torch.Tensor:
        """Scores ``(batch, n_items)`` of every item as the next one after each sequence."""
        return self.forward(seq)[:, -1] @ self.item_weights().T

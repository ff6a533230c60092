"""The streaming state of the transformer: a ring buffer of keys and values per layer, bounded by the
context, and the per-step plan that all layers of one step share.

A stream writes its step p into slot p % context, so it runs forever in constant memory; each stream keeps
its own position, so one stream of a batch can be reset without touching the others.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .config import DSMConfig


class KVCache:
    """Ring buffer of keys and values for B streams, bounded by the context.

    Stream b writes its step p into slot p % context. `positions[b, s]` is the absolute step held in
    slot s of stream b (-1: empty), which is all attention needs to build its mask; a stream is reset by
    emptying its row, without touching the others.
    """

    def __init__(self, cfg: DSMConfig, batch_size: int, device=None, dtype=torch.float32):
        shape = (cfg.num_layers, batch_size, cfg.num_heads, cfg.context, cfg.head_dim)
        self.keys = torch.zeros(shape, device=device, dtype=dtype)
        self.values = torch.zeros(shape, device=device, dtype=dtype)
        self.positions = torch.full((batch_size, cfg.context), -1, dtype=torch.long, device=device)
        self.next_pos = torch.zeros(batch_size, dtype=torch.long, device=device)  # step each stream is at
        self.context = cfg.context

    @property
    def batch_size(self) -> int:
        return self.next_pos.shape[0]

    def reset(self, index: int | None = None):
        """Empty the cache of stream `index` (all streams if None)."""
        rows = slice(None) if index is None else index
        self.positions[rows] = -1
        self.next_pos[rows] = 0

    def rows(self, lo: int, hi: int) -> KVCache:
        """The cache of streams lo..hi-1 as views of this one: what a step writes there, it writes here."""
        view = KVCache.__new__(KVCache)
        view.keys, view.values = self.keys[:, lo:hi], self.values[:, lo:hi]
        view.positions, view.next_pos, view.context = self.positions[lo:hi], self.next_pos[lo:hi], self.context
        return view

    def nbytes(self) -> int:
        return self.keys.nbytes + self.values.nbytes + self.positions.nbytes

    def __repr__(self):
        _, B, H, C, hd = self.keys.shape
        return (f"KVCache(batch={B}, layers={self.keys.shape[0]}, heads={H}, context={C}, head_dim={hd}, "
                f"next_pos={self.next_pos.tolist()}, {self.nbytes() / 2**20:.1f} MiB)")


class StepPlan:
    """What every layer of one `DSM.step` shares, computed once per step rather than once per layer (the
    step of a small model is mostly per-operation overhead): the ring slot each stream writes, the rows that
    write (None: all of them), the RoPE rotation for each stream's position and the mask of valid keys.
    Building it also records the new positions in the ring, which all layers share."""

    def __init__(self, cfg: DSMConfig, cache: KVCache, active: torch.Tensor | None):
        pos = cache.next_pos  # (B,)
        B, C, hd = pos.shape[0], cache.context, cfg.head_dim
        self.slot = pos % C
        self.all_rows = torch.arange(B, device=pos.device)
        self.rows = None if active is None else self.all_rows[active]
        if self.rows is None:
            cache.positions[self.all_rows, self.slot] = pos
        else:
            cache.positions[self.rows, self.slot[self.rows]] = pos[self.rows]
        key_pos = cache.positions  # (B, C)
        valid = (key_pos >= 0) & (key_pos <= pos[:, None]) & (pos[:, None] - key_pos < C)
        self.valid = valid[:, None, None, :]  # (B, 1, 1, C), broadcast over heads and the query
        # RoPE as a matrix: pairs (x0, x1) rotate by angle pos * freq_i, i.e. x @ [[cos, sin], [-sin, cos]]
        # on each 2x2 block of the diagonal. Same angles as `apply_rope` (which `forward` uses).
        freqs = torch.exp(torch.arange(hd // 2, device=pos.device, dtype=torch.float32)
                          * (-math.log(cfg.max_period) * 2 / hd))
        angles = pos.float()[:, None] * freqs  # (B, hd/2)
        cos, sin = angles.cos(), angles.sin()
        even = torch.arange(0, hd, 2, device=pos.device)
        self.rope = torch.zeros(B, hd, hd, device=pos.device)
        self.rope[:, even, even] = cos
        self.rope[:, even + 1, even + 1] = cos
        self.rope[:, even, even + 1] = sin
        self.rope[:, even + 1, even] = -sin

"""Token orderings for the 2-D codebook grid (paper Sec. 3.2: "column-major" spectrogram tokens).

A codebook index grid has shape (H, W) = (mel rows / 16, time columns / 16), e.g. (5, 53) for 10 s.
The quantizer returns it flattened row-major (index ``h * W + w``). The GPT reads it column by
column so that time runs left to right: all H frequency rows of column 0, then column 1, ...
Token ``t`` of the permuted sequence is cell ``(row = t % H, col = t // H)``.
"""
from __future__ import annotations

import torch
import torch.nn as nn


def column_major_index(H: int, W: int) -> torch.Tensor:
    """(H*W,) int64 gather index: ``rowmajor[:, idx]`` is the column-major sequence."""
    return torch.arange(H * W, dtype=torch.long).view(H, W).t().reshape(-1)


class AbstractPermuter(nn.Module):
    """``forward(x, reverse=False)`` maps (B, L) sequences to (B, L) sequences."""

    def forward(self, x: torch.Tensor, reverse: bool = False) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


class Identity(AbstractPermuter):
    """Keeps the row-major order."""

    def forward(self, x: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        return x


class ColumnMajor(AbstractPermuter):
    """Row-major (B, H*W) <-> column-major (B, H*W).

    Buffers ``forward_shuffle_idx`` / ``backward_shuffle_idx`` (int64, H*W) are persistent, as in the
    reference checkpoints. A sequence longer than H*W by an integer factor s (long generation, the
    reference's "temporal scale") is permuted as an (H, s*W) grid.
    """

    def __init__(self, H: int, W: int):
        super().__init__()
        self.H, self.W = int(H), int(W)
        idx = column_major_index(self.H, self.W)
        self.register_buffer('forward_shuffle_idx', idx)
        self.register_buffer('backward_shuffle_idx', torch.argsort(idx))

    def forward(self, x: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        """x: (B, L) with L = s * H * W for an integer s >= 1. Returns (B, L)."""
        L = x.shape[1]
        n = self.forward_shuffle_idx.numel()
        if L == n:
            idx = self.backward_shuffle_idx if reverse else self.forward_shuffle_idx
        else:
            if L % self.H != 0 or L < n:
                raise ValueError(f'ColumnMajor(H={self.H}, W={self.W}): sequence length {L} is not '
                                 f'H * W_long with W_long >= {self.W}')
            idx = column_major_index(self.H, L // self.H).to(x.device)
            if reverse:
                idx = torch.argsort(idx)
        return x[:, idx]

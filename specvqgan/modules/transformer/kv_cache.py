"""Preallocated key/value cache for incremental GPT decoding.

Sampling prefills the condition (and any priming tokens) once and then feeds one token per step;
each layer appends its new keys/values here instead of recomputing the whole sequence
(the reference re-ran the full forward for every token).
"""
from __future__ import annotations

import torch


class KVCache:
    """Per-layer key/value buffers of shape (B, n_head, max_len, head_dim).

    Args:
        n_layer, batch_size, n_head, head_dim, max_len: buffer geometry.
        dtype, device: of the buffers (match the model's activations).
    Attributes:
        length: number of valid positions (the next token's position inside the window).
    """

    def __init__(self, n_layer: int, batch_size: int, n_head: int, head_dim: int, max_len: int,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = 'cpu'):
        shape = (batch_size, n_head, max_len, head_dim)
        self.k = [torch.empty(shape, dtype=dtype, device=device) for _ in range(n_layer)]
        self.v = [torch.empty(shape, dtype=dtype, device=device) for _ in range(n_layer)]
        self.max_len = max_len
        self.length = 0

    @property
    def batch_size(self) -> int:
        return self.k[0].shape[0]

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k, v (B, nh, T, hs) at positions [length, length+T) of ``layer``.

        Returns the valid keys/values (B, nh, length+T, hs) as views. ``advance`` moves ``length``
        after all layers have appended.
        """
        start, end = self.length, self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(f'KV cache overflow: {end} positions > max_len {self.max_len} '
                             f'(the GPT block size)')
        self.k[layer][:, :, start:end] = k
        self.v[layer][:, :, start:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]

    def advance(self, n: int) -> None:
        self.length += n

    def truncate(self, length: int) -> None:
        """Forget every position >= ``length`` (e.g. keep the condition, drop a slid window)."""
        if not 0 <= length <= self.length:
            raise ValueError(f'cannot truncate a cache of length {self.length} to {length}')
        self.length = length

    def repeat_interleave(self, repeats: int) -> 'KVCache':
        """A cache with every batch row repeated ``repeats`` times (B*repeats rows), condition-major:
        rows ``b*repeats .. b*repeats+repeats-1`` copy row b. Used to prefill a condition once and
        draw several samples from it."""
        if repeats == 1:
            return self
        out = KVCache.__new__(KVCache)
        out.k = [t.repeat_interleave(repeats, dim=0) for t in self.k]
        out.v = [t.repeat_interleave(repeats, dim=0) for t in self.v]
        out.max_len, out.length = self.max_len, self.length
        return out

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
        prefix_k / prefix_v / prefix_len / group: a shared prefix (see :meth:`repeat_interleave`):
            positions < prefix_len live once per condition, (B / group, n_head, prefix_len, head_dim).
    """

    def __init__(self, n_layer: int, batch_size: int, n_head: int, head_dim: int, max_len: int,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = 'cpu'):
        shape = (batch_size, n_head, max_len, head_dim)
        self.k = [torch.empty(shape, dtype=dtype, device=device) for _ in range(n_layer)]
        self.v = [torch.empty(shape, dtype=dtype, device=device) for _ in range(n_layer)]
        self.max_len = max_len
        self.length = 0
        self.prefix_k: list[torch.Tensor] | None = None
        self.prefix_v: list[torch.Tensor] | None = None
        self.prefix_len, self.group = 0, 1

    @classmethod
    def for_decoder(cls, decoder, batch_size: int, max_len: int | None = None, dtype: torch.dtype | None = None,
                    device: torch.device | str | None = None) -> 'KVCache':
        """An empty cache for an :class:`~specvqgan.modules.transformer.decoder.IncrementalDecoder` (its
        ``config`` geometry): ``max_len`` defaults to its block size, ``dtype`` to its
        ``cache_dtype_for(batch_size)`` (else its activation dtype), ``device`` to its ``pos_emb``'s."""
        c, ref = decoder.config, decoder.pos_emb
        return cls(c.n_layer, batch_size, c.n_head, c.n_embd // c.n_head, max_len or decoder.get_block_size(),
                   dtype or decoder.cache_dtype_for(batch_size) or ref.dtype, device or ref.device)

    @property
    def batch_size(self) -> int:
        return self.k[0].shape[0]

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k, v (B, nh, T, hs) at positions [length, length+T) of ``layer``.

        Returns this cache's own valid keys/values as views: positions [prefix_len, length+T)
        (B, nh, length+T-prefix_len, hs); the shared prefix is in :meth:`prefix`. ``advance`` moves
        ``length`` after all layers have appended.
        """
        start, end = self.length, self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(f'KV cache overflow: {end} positions > max_len {self.max_len} '
                             f'(the GPT block size)')
        self.k[layer][:, :, start:end] = k
        self.v[layer][:, :, start:end] = v
        return self.k[layer][:, :, self.prefix_len:end], self.v[layer][:, :, self.prefix_len:end]

    def prefix(self, layer: int):
        """(keys, values, group) of the shared prefix of ``layer``, or None without one."""
        if self.prefix_k is None:
            return None
        return self.prefix_k[layer], self.prefix_v[layer], self.group

    def advance(self, n: int) -> None:
        self.length += n

    def truncate(self, length: int) -> None:
        """Forget every position >= ``length`` (e.g. keep the condition, drop a slid window)."""
        if not self.prefix_len <= length <= self.length:
            raise ValueError(f'cannot truncate a cache of length {self.length} (shared prefix '
                             f'{self.prefix_len}) to {length}')
        self.length = length

    def repeat_interleave(self, repeats: int) -> 'KVCache':
        """A cache for B*repeats rows, condition-major (rows ``b*repeats ..`` continue row b).

        The positions filled so far (the condition, any priming tokens) are shared, not copied:
        they are stored once per condition and every sample attends to them (this halves the
        memory traffic of a decoding step at paper size with 10 samples per condition)."""
        if repeats == 1:
            return self
        if self.prefix_k is not None:
            raise ValueError('this cache already shares a prefix; repeat it only once')
        out = KVCache.__new__(KVCache)
        ref = self.k[0]
        shape = (ref.shape[0] * repeats, *ref.shape[1:])
        out.k = [torch.empty(shape, dtype=ref.dtype, device=ref.device) for _ in self.k]
        out.v = [torch.empty(shape, dtype=ref.dtype, device=ref.device) for _ in self.v]
        out.prefix_k = [t[:, :, :self.length] for t in self.k]
        out.prefix_v = [t[:, :, :self.length] for t in self.v]
        out.max_len, out.length = self.max_len, self.length
        out.prefix_len, out.group = self.length, repeats
        return out

"""The incremental-decoder interface the samplers of :mod:`specvqgan.sampling` run on, and the guided view.

:class:`IncrementalDecoder` is implemented by :class:`~specvqgan.modules.transformer.mingpt.GPT` (and its
feature/class variants), by the reduced-precision copy
:class:`~specvqgan.modules.transformer.fast_decode.FastGPT` and by :class:`GuidedGPT`, which runs a
conditional and an unconditional stream of another decoder in one batch (classifier-free guidance).
"""
from __future__ import annotations

from typing import Any, Optional, Protocol, runtime_checkable

import torch

from specvqgan.modules.transformer.kv_cache import KVCache


@runtime_checkable
class IncrementalDecoder(Protocol):
    """What the samplers need from a GPT. Shapes: B rows, T new positions, C width, V vocabulary.

    Attributes:
        config: ``vocab_size``, ``n_layer``, ``n_head``, ``n_embd`` (a ``GPTConfig``).
        pos_emb: (1, block_size, C) learned positions (their device and dtype are the model's).
    """

    config: Any
    pos_emb: torch.Tensor

    def get_block_size(self) -> int:
        """Most positions (condition + tokens) the decoder attends over."""

    def cond_length(self, c: Any) -> int:
        """Positions the condition ``c`` occupies in the prefix."""

    def embed_condition(self, c: Any) -> torch.Tensor:
        """Condition -> (B, Tc, C) prefix embeddings (without positions)."""

    def embed_tokens(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) codebook indices -> (B, T, C) token embeddings."""

    @property
    def has_null_condition(self) -> bool:
        """Whether :meth:`null_condition` exists (trained with ``p_uncond > 0``)."""

    def null_condition(self, c: Any) -> torch.Tensor:
        """The unconditional prefix (B, Tc, C) in place of ``embed_condition(c)`` (guidance)."""

    def cache_dtype_for(self, rows: int) -> Optional[torch.dtype]:
        """Key/value cache dtype when ``rows`` rows are decoded together (None: the activation dtype)."""

    def new_cache(self, batch_size: int, max_len: Optional[int] = None, dtype: Optional[torch.dtype] = None,
                  device: Any = None) -> KVCache:
        """An empty cache (:meth:`KVCache.for_decoder`)."""

    def forward_cached(self, emb: torch.Tensor, cache: KVCache, last_only: bool = True,
                       need_weights: bool = False) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Append emb (B, T, C) at positions [cache.length, cache.length+T) -> (logits (B, 1 or T, V),
        last-layer attention (B, nh, T, L) if ``need_weights``)."""

    def forward_embeddings(self, emb: torch.Tensor, targets: Optional[torch.Tensor] = None,
                           return_attention: bool = False) -> tuple:
        """Whole sequence (B, T, C) -> (logits (B, T, V), loss or None, last-layer attention or None)."""

    def eval(self) -> Any:
        """Inference mode (no dropout); returns the decoder."""


class GuidedGPT:
    """A decoder view for classifier-free guidance: rows ``[0, R)`` of its cache and forward batch are the
    conditional stream, rows ``[R, 2R)`` the unconditional one (null condition, same tokens), so one forward
    serves both and the KV cache holds both prefixes (with samples sharing a prefix, as
    ``KVCache.repeat_interleave`` lays it out, the 2B condition rows each keep their own). The returned
    logits are the guided ones, (R, T, V) float32: ``uncond + scale * (cond - uncond)``.

    Works over any :class:`IncrementalDecoder` (a GPT variant or a ``prepare_gpt`` copy, the native
    decoding kernel included); the samplers wrap the GPT with :func:`guided` and are otherwise unchanged.
    """

    def __init__(self, gpt: IncrementalDecoder, scale: float):
        if not getattr(gpt, 'has_null_condition', False):
            raise ValueError(f'guidance_scale={scale} needs a model trained with p_uncond > 0 '
                             '(this one has no null condition)')
        self.gpt, self.scale = gpt, float(scale)

    @property
    def config(self):
        return self.gpt.config

    @property
    def pos_emb(self) -> torch.Tensor:
        return self.gpt.pos_emb

    @property
    def has_null_condition(self) -> bool:
        return False  # a guided view is not guided again

    def null_condition(self, c: Any) -> torch.Tensor:
        raise ValueError('a guided decoder view has no null condition of its own')

    def get_block_size(self) -> int:
        return self.gpt.get_block_size()

    def cond_length(self, c: Any) -> int:
        return self.gpt.cond_length(c)

    def embed_condition(self, c: Any) -> torch.Tensor:
        """(2B, Tc, C): the condition's embeddings, then the null condition's."""
        emb = self.gpt.embed_condition(c)
        return torch.cat([emb, self.gpt.null_condition(c).to(emb.dtype)])

    def embed_tokens(self, idx: torch.Tensor) -> torch.Tensor:
        """(R, T) tokens -> (2R, T, C): the same tokens in both streams."""
        emb = self.gpt.embed_tokens(idx)
        return torch.cat([emb, emb])

    def cache_dtype_for(self, rows: int) -> Optional[torch.dtype]:
        return self.gpt.cache_dtype_for(2 * rows)

    def new_cache(self, batch_size: int, max_len: Optional[int] = None, dtype: Optional[torch.dtype] = None,
                  device: Any = None) -> KVCache:
        return self.gpt.new_cache(2 * batch_size, max_len, dtype, device)

    def combine(self, logits: torch.Tensor) -> torch.Tensor:
        """(2R, T, V) [cond ; uncond] -> (R, T, V) float32 guided logits."""
        cond, unc = logits.float().chunk(2)
        return unc + self.scale * (cond - unc)

    def forward_cached(self, emb: torch.Tensor, cache: KVCache, last_only: bool = True, need_weights: bool = False):
        """As ``GPT.forward_cached`` on both streams; the attention returned is the conditional stream's."""
        logits, att = self.gpt.forward_cached(emb, cache, last_only=last_only, need_weights=need_weights)
        return self.combine(logits), (None if att is None else att.chunk(2)[0])

    def forward_embeddings(self, emb: torch.Tensor, targets: Optional[torch.Tensor] = None,
                           return_attention: bool = False):
        logits, _, att = self.gpt.forward_embeddings(emb, return_attention=return_attention)
        return self.combine(logits), None, (None if att is None else att.chunk(2)[0])

    def eval(self) -> 'GuidedGPT':
        self.gpt.eval()
        return self


def guided(gpt: IncrementalDecoder, guidance_scale: float = 1.0) -> IncrementalDecoder:
    """``gpt`` itself for ``guidance_scale == 1`` (no second stream), else a :class:`GuidedGPT` view.
    Raises TypeError when ``gpt`` does not implement :class:`IncrementalDecoder`."""
    if not isinstance(gpt, IncrementalDecoder):
        members = set(IncrementalDecoder.__annotations__) | {m for m in vars(IncrementalDecoder) if not m.startswith('_')}
        missing = sorted(m for m in members if not hasattr(gpt, m))
        raise TypeError(f'{type(gpt).__name__} is not an IncrementalDecoder (missing {missing})')
    if float(guidance_scale) == 1.0:
        return gpt
    if not float(guidance_scale) >= 0:
        raise ValueError(f'guidance_scale must be >= 0, got {guidance_scale}')
    return GuidedGPT(gpt, guidance_scale)

"""minGPT-style decoder with conditioning prefixes and a KV cache (paper Sec. 3.2, Fig. 2).

The sequence is ``[condition ; audio tokens]``: the condition is a prefix of embeddings (visual
features through a 1x1 Conv1d, a class token, both, or codebook indices) and the GPT predicts the
column-major codebook tokens of the spectrogram. Pre-LN blocks, causal self-attention, learned
absolute positions, as in the reference (github.com/v-iashin/SpecVQGAN, after karpathy/minGPT).

State-dict keys equal the reference's except the causal-mask buffers ``blocks.N.attn.mask``: the
mask is implied (``scaled_dot_product_attention(is_causal=True)`` / an index mask), so it is not
stored; a load hook drops it from reference checkpoints after checking it is the causal mask.

Two ways to run the model:
* ``forward(idx, cond)``: the whole sequence at once (training, the reference-style sampler);
* ``forward_cached(emb, cache)``: append positions to a :class:`KVCache` (incremental sampling).

Classifier-free guidance: with ``p_uncond > 0`` the model owns a learned "no condition" embedding
``null_cond`` (absent otherwise, so the reference keys are unchanged) and, in training, replaces the
condition of each example by it with probability ``p_uncond``; :meth:`GPT.null_condition` gives the
unconditional prefix the guided samplers of :mod:`specvqgan.sampling` run beside the conditional one.
"""
from __future__ import annotations

import logging
from typing import Any, Optional

import torch
import torch.nn as nn
from torch.nn import functional as F

from specvqgan.modules.transformer.attention import attend, attention_mask, decode_attention
from specvqgan.modules.transformer.kv_cache import KVCache

logger = logging.getLogger(__name__)


class GPTConfig:
    """Hyper-parameters (attributes as in the reference's ``GPTConfig``)."""

    def __init__(self, vocab_size: int, block_size: int, n_layer: int = 12, n_head: int = 8,
                 n_embd: int = 256, embd_pdrop: float = 0., resid_pdrop: float = 0.,
                 attn_pdrop: float = 0., n_unmasked: int = 0, p_uncond: float = 0.):
        if n_embd % n_head != 0:
            raise ValueError(f'GPT: n_embd={n_embd} is not divisible by n_head={n_head}')
        if not 0.0 <= float(p_uncond) < 1.0:
            raise ValueError(f'GPT: p_uncond must be in [0, 1), got {p_uncond}')
        self.vocab_size, self.block_size = int(vocab_size), int(block_size)
        self.n_layer, self.n_head, self.n_embd = int(n_layer), int(n_head), int(n_embd)
        self.embd_pdrop, self.resid_pdrop, self.attn_pdrop = embd_pdrop, resid_pdrop, attn_pdrop
        self.n_unmasked = int(n_unmasked)
        self.p_uncond = float(p_uncond)


class CausalSelfAttention(nn.Module):
    """Multi-head masked self-attention with separate key/query/value projections (reference layout)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        C = config.n_embd
        self.key, self.query, self.value = nn.Linear(C, C), nn.Linear(C, C), nn.Linear(C, C)
        self.attn_drop = nn.Dropout(config.attn_pdrop)
        self.resid_drop = nn.Dropout(config.resid_pdrop)
        self.proj = nn.Linear(C, C)
        self.n_head, self.n_unmasked, self.block_size = config.n_head, config.n_unmasked, config.block_size
        self.register_load_state_dict_pre_hook(_drop_reference_mask)

    def forward(self, x: torch.Tensor, cache: Optional[KVCache] = None, layer: int = 0,
                need_weights: bool = False) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """x: (B, T, C). With ``cache``, x holds positions [cache.length, cache.length+T) and attends to
        the cached keys too. Returns y (B, T, C) and, if ``need_weights``, attention (B, nh, T, L)."""
        B, T, C = x.shape
        nh = self.n_head
        q = self.query(x).view(B, T, nh, C // nh).transpose(1, 2)
        k = self.key(x).view(B, T, nh, C // nh).transpose(1, 2)
        v = self.value(x).view(B, T, nh, C // nh).transpose(1, 2)
        offset, shared = 0, None
        if cache is not None:
            offset = cache.length
            k, v = cache.append(layer, k, v)
            shared = cache.prefix(layer)
        att = None
        if shared is not None and T == 1 and not need_weights:  # a decoding step after a shared prefix
            y = decode_attention(q, k, v, shared)
        else:
            y, att = attend(q, k, v, offset=offset, n_unmasked=self.n_unmasked, shared=shared,
                            need_weights=need_weights, dropout_p=self.attn_drop.p if self.training else 0.0)
        return self.resid_drop(self.proj(y.transpose(1, 2).reshape(B, T, C))), att


def _drop_reference_mask(module: CausalSelfAttention, state_dict: dict, prefix: str, *args: Any) -> None:
    """Load hook: remove the reference's persistent ``attn.mask`` buffer (1, 1, block, block) after
    checking it is the causal mask this module implies (anything else would change the model)."""
    mask = state_dict.pop(prefix + 'mask', None)
    if mask is None:
        return
    n = mask.shape[-1]
    expected = attention_mask(0, n, n, module.n_unmasked).to(mask.dtype)
    if mask.dim() != 4 or not torch.equal(mask.reshape(n, n), expected):
        raise ValueError(f'{prefix}mask in the checkpoint is not the causal mask (n_unmasked='
                         f'{module.n_unmasked}); refusing to drop it silently')


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(ln1(x)), then x + mlp(ln2(x))."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.ln2 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.mlp = nn.Sequential(
            nn.Linear(config.n_embd, 4 * config.n_embd),
            nn.GELU(),
            nn.Linear(4 * config.n_embd, config.n_embd),
            nn.Dropout(config.resid_pdrop),
        )

    def forward(self, x, cache=None, layer=0, need_weights=False):
        y, att = self.attn(self.ln1(x), cache, layer, need_weights)
        x = x + y
        return x + self.mlp(self.ln2(x)), att


class GPT(nn.Module):
    """The GPT over ``[condition ; tokens]``; the plain variant takes codebook indices as condition.

    Args:
        vocab_size: codebook size. block_size: maximal sequence length (condition + tokens).
        n_layer, n_head, n_embd: depth, heads, width. *_pdrop: dropouts (reference defaults 0).
        n_unmasked: first positions that attend bidirectionally (reference option, 0 in all configs).
        p_uncond: condition dropout for classifier-free guidance: in training each example's whole
            condition is replaced by the learned ``null_cond`` embedding with this probability
            (0: off, no ``null_cond`` parameter: the reference model).
    """

    null_rows = 1  # learned null vectors: one, broadcast over the condition's positions

    def __init__(self, vocab_size: int, block_size: int, n_layer: int = 12, n_head: int = 8,
                 n_embd: int = 256, embd_pdrop: float = 0., resid_pdrop: float = 0.,
                 attn_pdrop: float = 0., n_unmasked: int = 0, p_uncond: float = 0.):
        super().__init__()
        config = GPTConfig(vocab_size, block_size, n_layer, n_head, n_embd, embd_pdrop,
                           resid_pdrop, attn_pdrop, n_unmasked, p_uncond)
        self.p_uncond = config.p_uncond
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.pos_emb = nn.Parameter(torch.zeros(1, config.block_size, config.n_embd))
        self.drop = nn.Dropout(config.embd_pdrop)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.block_size = config.block_size
        self.config = config
        self.apply(self._init_weights)
        if self.p_uncond > 0:  # after the other weights: their initialisation does not change
            self.null_cond = nn.Parameter(torch.randn(1, self.null_rows, config.n_embd) * 0.02)
        logger.info('GPT parameters: %.3e', sum(p.numel() for p in self.parameters()))

    def get_block_size(self) -> int:
        return self.block_size

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """minGPT init: N(0, 0.02) for Linear/Embedding weights, zero biases, unit LayerNorms."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)

    # --- conditioning (overridden by the subclasses) ---
    def embed_condition(self, c: Any) -> torch.Tensor:
        """Condition -> (B, Tc, C) prefix embeddings. Plain GPT: c are token indices (B, Tc)."""
        return self.tok_emb(c)

    @staticmethod
    def cond_length(c: Any) -> int:
        """Number of prefix positions a condition occupies (``c.size(-1)`` as in the reference)."""
        return c.size(-1)

    @property
    def has_null_condition(self) -> bool:
        """True when the model was built with ``p_uncond > 0`` (it can be sampled with guidance)."""
        return hasattr(self, 'null_cond')

    def _null_parts(self, c: Any) -> list[tuple[int, int]]:
        """(null row, positions) spans of the unconditional prefix of condition ``c``."""
        return [(0, self.cond_length(c))]

    def null_condition(self, c: Any) -> torch.Tensor:
        """The unconditional prefix (B, Tc, C) in place of ``embed_condition(c)``: the learned null
        vector(s) repeated over the condition's positions (positions still come from ``pos_emb``)."""
        if not self.has_null_condition:
            raise ValueError('this GPT has no null condition (it was trained with p_uncond = 0): '
                             'classifier-free guidance needs a model trained with p_uncond > 0')
        B = c[next(iter(c))].shape[0] if isinstance(c, dict) else c.shape[0]
        parts = [self.null_cond[:, r:r + 1].expand(B, n, -1) for r, n in self._null_parts(c)]
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]

    def training_condition(self, c: Any) -> torch.Tensor:
        """``embed_condition(c)`` (B, Tc, C); in training with ``p_uncond > 0`` each row is replaced
        by :meth:`null_condition` with probability ``p_uncond`` (condition dropout)."""
        emb = self.embed_condition(c)
        if self.training and self.p_uncond > 0:
            drop = torch.rand(emb.shape[0], 1, 1, device=emb.device) < self.p_uncond
            emb = torch.where(drop, self.null_condition(c).to(emb.dtype), emb)
        return emb

    # --- full-sequence path ---
    def forward_embeddings(self, emb: torch.Tensor, targets: Optional[torch.Tensor] = None,
                           return_attention: bool = False):
        """emb: (B, T, C) without positions. Returns (logits (B, T, V), loss, last-layer attention)."""
        t = emb.shape[1]
        if t > self.block_size:
            raise ValueError(f'cannot forward {t} positions: the GPT block size is {self.block_size}')
        x = self.drop(emb + self.pos_emb[:, :t, :])
        att = None
        for i, block in enumerate(self.blocks):
            x, att = block(x, need_weights=return_attention and i == len(self.blocks) - 1)
        logits = self.head(self.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss, att

    def forward(self, idx: torch.Tensor, embeddings: Optional[torch.Tensor] = None,
                targets: Optional[torch.Tensor] = None, return_attention: bool = False):
        """idx: (B, T) token indices, prepended by ``embeddings`` (B, Tc, C) if given.
        Returns (logits (B, Tc+T, V), loss or None, last-layer attention (B, nh, T', T') or None)."""
        emb = self.tok_emb(idx)
        if embeddings is not None:
            emb = torch.cat((embeddings.to(emb.dtype), emb), dim=1)
        return self.forward_embeddings(emb, targets, return_attention)

    # --- incremental path ---
    def cache_dtype_for(self, rows: int) -> Optional[torch.dtype]:
        """Key/value cache dtype for ``rows`` rows decoded together: None, the model's own dtype."""
        return None

    def new_cache(self, batch_size: int, max_len: Optional[int] = None, dtype=None, device=None) -> KVCache:
        """An empty :class:`KVCache` for this model (``max_len`` defaults to the block size)."""
        return KVCache.for_decoder(self, batch_size, max_len, dtype, device)

    def forward_cached(self, emb: torch.Tensor, cache: KVCache, last_only: bool = True,
                       need_weights: bool = False):
        """Append positions to the cache. emb: (B, T, C) embeddings without positions, placed at
        positions [cache.length, cache.length+T) of the window.

        Returns logits (B, 1, V) for the last position (all T if ``last_only`` is False) and, if
        ``need_weights``, the last layer's attention (B, nh, T, cache.length) of these queries."""
        start, t = cache.length, emb.shape[1]
        if start + t > self.block_size:
            raise ValueError(f'cannot place {t} positions after {start}: GPT block size is {self.block_size}')
        x = self.drop(emb + self.pos_emb[:, start:start + t, :].to(emb.dtype))
        att = None
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x, att = block(x, cache, i, need_weights and i == last)
        cache.advance(t)
        if last_only:
            x = x[:, -1:]
        return self.head(self.ln_f(x)), att

    def embed_tokens(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) indices -> (B, T, C) token embeddings."""
        return self.tok_emb(idx)


def _build_embedder(config: Any) -> nn.Module:
    """Instantiate a feature embedder; LSTM/GRU configs drop the Conv1d-only keys (reference rule)."""
    from omegaconf import OmegaConf

    from specvqgan.config import instantiate_from_config
    if isinstance(config, nn.Module):
        return config
    config = OmegaConf.create(OmegaConf.to_container(OmegaConf.create(config), resolve=True))
    if str(config.target).split('.')[-1] in ('LSTM', 'GRU') and config.get('params') is not None:
        for p in ('in_channels', 'out_channels', 'padding', 'kernel_size'):
            config.params.pop(p, None)
    return instantiate_from_config(config)


def embed_features(embedder: nn.Module, feats: torch.Tensor) -> torch.Tensor:
    """Visual features (B, D, Tf) -> (B, Tf, n_embd) through a Conv1d/Identity/Linear/LSTM/GRU."""
    if isinstance(embedder, (nn.Conv1d, nn.Identity)):
        return embedder(feats).permute(0, 2, 1)
    if isinstance(embedder, nn.Linear):
        return embedder(feats.permute(0, 2, 1))
    if isinstance(embedder, (nn.LSTM, nn.GRU)):
        return embedder(feats.permute(0, 2, 1))[0]
    raise NotImplementedError(f'unsupported feature embedder {type(embedder).__name__}')


class GPTFeats(GPT):
    """GPT conditioned on visual features (B, D, Tf) embedded by ``feat_embedding_config``
    (paper: Conv1d, kernel 1, feat_depth -> n_embd)."""

    def __init__(self, feat_embedding_config: Any, GPT_config: Any):
        super().__init__(**dict(GPT_config))
        self.embedder = _build_embedder(feat_embedding_config)

    def embed_condition(self, feats: torch.Tensor) -> torch.Tensor:
        return embed_features(self.embedder, feats.to(self.pos_emb.dtype))

    def forward(self, idx, feats, targets=None, return_attention=False):
        return super().forward(idx, self.training_condition(feats), targets, return_attention)


class GPTClass(GPT):
    """GPT conditioned on a class token (B, 1) through ``token_embedding_config`` (nn.Embedding)."""

    def __init__(self, token_embedding_config: Any, GPT_config: Any):
        super().__init__(**dict(GPT_config))
        self.embedder = _build_embedder(token_embedding_config)

    def embed_condition(self, token: torch.Tensor) -> torch.Tensor:
        return self.embedder(token)

    def forward(self, idx, token, targets=None, return_attention=False):
        return super().forward(idx, self.training_condition(token), targets, return_attention)


class GPTFeatsClass(GPT):
    """GPT conditioned on ``{'feature': (B, D, Tf), 'target': (B, 1)}``: features, then the class.
    Its null condition has two learned vectors, one repeated over the feature positions, one for the
    class; condition dropout replaces both together (the unconditional model guidance needs)."""

    null_rows = 2

    def __init__(self, feat_embedding_config: Any, token_embedding_config: Any, GPT_config: Any):
        super().__init__(**dict(GPT_config))
        self.feat_embedder = _build_embedder(feat_embedding_config)
        self.cls_embedder = _build_embedder(token_embedding_config)

    def embed_condition(self, c: dict) -> torch.Tensor:
        feats = embed_features(self.feat_embedder, c['feature'].to(self.pos_emb.dtype))
        return torch.cat([feats, self.cls_embedder(c['target'])], dim=1)

    @staticmethod
    def cond_length(c: dict) -> int:
        return c['feature'].size(-1) + c['target'].size(-1)

    def _null_parts(self, c: dict) -> list[tuple[int, int]]:
        return [(0, c['feature'].size(-1)), (1, c['target'].size(-1))]

    def forward(self, idx, feats_token_dict, targets=None, return_attention=False):
        return super().forward(idx, self.training_condition(feats_token_dict), targets, return_attention)

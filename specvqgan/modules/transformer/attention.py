"""The GPT's attention, written once for the module path (:class:`~specvqgan.modules.transformer.mingpt.GPT`)
and the reduced-precision decoding copy (:class:`~specvqgan.modules.transformer.fast_decode.FastGPT`).

Keys/values come from a :class:`~specvqgan.modules.transformer.kv_cache.KVCache`: a row's own positions
(B, nh, Ls, hs) and, optionally, a prefix shared by groups of ``g`` consecutive rows ``(pk, pv, g)`` with
pk, pv (B/g, nh, Lp, hs) (the condition, stored once for the samples of one condition).

* :func:`attend`: T new queries (training, prefill, window rebuild) or the attention weights;
* :func:`decode_attention`: one new query per row (a decoding step), reading the shared prefix once per
  condition instead of once per sample.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

Shared = Optional[tuple]  # None or (pk, pv, g)


def attention_mask(q_start: int, T: int, L: int, n_unmasked: int = 0, device=None) -> torch.Tensor:
    """(T, L) bool mask, True = may attend: query at absolute position ``q_start + i`` sees keys
    ``<= q_start + i``; the first ``n_unmasked`` positions also see each other (reference option)."""
    q = torch.arange(q_start, q_start + T, device=device)[:, None]
    k = torch.arange(L, device=device)[None, :]
    mask = k <= q
    if n_unmasked > 0:
        mask = mask | ((q < n_unmasked) & (k < n_unmasked))
    return mask


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, offset: int = 0, n_unmasked: int = 0,
           shared: Shared = None, need_weights: bool = False, dropout_p: float = 0.0):
    """Causal attention of the T queries q (B, nh, T, hs) at positions [offset, offset+T) over
    [shared prefix ; own keys] k, v (B, nh, Ls, hs) (the current positions included).

    Returns y (B, nh, T, hs) and, if ``need_weights``, the attention (B, nh, T, L) (else None).
    ``dropout_p``: attention dropout (training)."""
    if shared is not None:  # materialise the prefix for every row
        pk, pv, g = shared
        k = torch.cat([pk.repeat_interleave(g, dim=0), k], dim=2)
        v = torch.cat([pv.repeat_interleave(g, dim=0), v], dim=2)
    T, L = q.shape[2], k.shape[2]
    if need_weights:
        mask = attention_mask(offset, T, L, n_unmasked, q.device)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = F.softmax(att.masked_fill(~mask, float('-inf')), dim=-1)
        return F.dropout(att, dropout_p, training=dropout_p > 0) @ v, att
    mask, is_causal = None, False
    if n_unmasked > 0 or (offset > 0 and T > 1):
        mask = attention_mask(offset, T, L, n_unmasked, q.device)
    elif T > 1:
        is_causal = True
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal), None


def decode_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, shared: Shared) -> torch.Tensor:
    """One new query per row. q: (B, nh, 1, hs); k, v: the row's own cached keys/values (B, nh, Ls, hs)
    (current position included); shared: None or (pk, pv, g), a prefix (B/g, nh, Lp, hs) common to
    groups of g consecutive rows. Two batched matrix-vector products over the cache in its dtype, the
    softmax in fp32. Returns (B, nh, 1, hs) in the cache dtype."""
    B, nh, _, hs = q.shape
    scale = 1.0 / math.sqrt(hs)
    qc = q.to(k.dtype)
    s = torch.matmul(k, qc.transpose(-2, -1)).squeeze(-1)                 # (B, nh, Ls)  K q
    if shared is None:
        p = torch.softmax(s.float() * scale, dim=-1).to(v.dtype)
        return torch.matmul(p.unsqueeze(-2), v)                            # (B, nh, 1, hs)
    pk, pv, g = shared
    Bc, Lp = pk.shape[0], pk.shape[2]
    qg = qc.view(Bc, g, nh, hs).transpose(1, 2)                            # (Bc, nh, g, hs)
    sp = torch.matmul(qg, pk.transpose(-2, -1)).transpose(1, 2).reshape(B, nh, Lp)
    p = torch.softmax(torch.cat([sp, s], dim=-1).float() * scale, dim=-1).to(v.dtype)
    pp, po = p.split([Lp, s.shape[-1]], dim=-1)
    yp = torch.matmul(pp.view(Bc, g, nh, Lp).transpose(1, 2), pv)          # (Bc, nh, g, hs)
    y = torch.matmul(po.unsqueeze(-2), v)                                  # (B, nh, 1, hs)
    return y + yp.transpose(1, 2).reshape(B, nh, 1, hs)

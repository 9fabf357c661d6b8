"""Token sampling for the conditional GPT (paper Sec. 3.2 and 4.3) with a KV cache.

One code path serves training-time logging, the dataset sampler and the video CLI:

* :func:`sample_tokens`: condition (+ optional priming tokens) -> ``steps`` new tokens. The condition
  and priming tokens are prefilled once, then one token is fed per step (never the whole sequence);
  ``num_samples`` samples per condition share that prefill and run as one batch.
* :func:`sample_long`: audio longer than the trained length (the reference's "temporal scale"): a
  window of W time columns slides over the grid as in the reference's ``sample_conditionally``; the
  condition's keys/values are reused across windows and inside a window tokens are appended.
* ``*_uncached`` twins re-run the full forward every step, exactly as the reference loop did; they are
  the baseline of ``scripts/benchmark_sampling.py`` and the oracle of the tests.
* :func:`prepare_gpt`: an inference copy in fp32, bf16 or int8 (per-channel int8 weights, fused
  key/query/value, bf16 cache; ``fast_decode.FastGPT``), an explicit speed/accuracy trade-off
  measured by the benchmark.

Sampling options: ``temperature``, ``top_k``, ``top_p`` (nucleus), ``greedy``; ``seed``: per-row seeded
sampling (:class:`TokenPicker`): every output row draws from its own random stream (the Gumbel-max trick,
an exact draw from the filtered softmax), so a sample does not depend on the batch it is drawn in, and the
cached, uncached and long samplers, the pipeline and the dataset sampler give the same tokens for one seed.
Without a seed, torch's global RNG (a multinomial draw, as the reference).

The samplers run on any :class:`~specvqgan.modules.transformer.decoder.IncrementalDecoder` (GPT, FastGPT).
Classifier-free guidance (``guidance_scale`` s, models trained with ``p_uncond > 0``, docs/guidance.md):
every sampler runs through :class:`GuidedGPT`, which puts an unconditional stream (the GPT's null
condition, the same audio tokens) beside the conditional one in the same batch and returns
``uncond + s * (cond - uncond)`` as the logits. ``s = 1`` (the default) computes no second stream.
"""
from __future__ import annotations

import hashlib
from typing import Any, Callable, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from specvqgan.modules.transformer.decoder import GuidedGPT, IncrementalDecoder, guided

Cond = Union[torch.Tensor, dict]
CondFn = Callable[[int], Cond]
Seed = Union[None, int, Sequence[int]]
__all__ = ['GuidedGPT', 'IncrementalDecoder', 'TokenPicker', 'filter_logits', 'guided', 'pick_tokens', 'prepare_gpt',
           'row_seeds', 'sample_long', 'sample_long_uncached', 'sample_seed', 'sample_tokens', 'sample_tokens_uncached']


# ----------------------------------------------------------------------------- token choice
def filter_logits(logits: torch.Tensor, top_k: Optional[int] = None, top_p: Optional[float] = None) -> torch.Tensor:
    """Set logits outside the top-k / nucleus (top-p) to -inf. logits: (B, V)."""
    if top_k is not None and top_k > 0:
        k = min(int(top_k), logits.size(-1))
        kth = torch.topk(logits, k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float('-inf'))
    if top_p is not None and 0.0 < top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cum = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1)
        drop = cum - F.softmax(sorted_logits, dim=-1) >= top_p  # keep the smallest set reaching top_p
        drop = drop.scatter(-1, order, drop)
        logits = logits.masked_fill(drop, float('-inf'))
    return logits


def pick_tokens(logits: torch.Tensor, temperature: float = 1.0, top_k: Optional[int] = None,
                top_p: Optional[float] = None, greedy: bool = False, noise: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Next tokens (B, 1) from last-position logits (B, V): temperature, top-k/top-p, then a draw: the
    argmax of the filtered logits plus Gumbel ``noise`` (B, V) (an exact draw from their softmax), or
    without noise a multinomial draw from torch's global RNG (the reference); ``greedy``: the argmax."""
    logits = logits.float()
    if greedy:
        return torch.argmax(logits, dim=-1, keepdim=True)
    if temperature <= 0:
        raise ValueError(f'temperature must be > 0, got {temperature}')
    logits = filter_logits(logits / temperature, top_k, top_p)
    if noise is not None:
        return torch.argmax(logits + noise, dim=-1, keepdim=True)
    return torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)


def sample_seed(seed: int, key: str, k: Any) -> int:
    """A 63-bit seed for sample ``k`` of the condition named ``key`` (stable across processes and machines)."""
    digest = hashlib.sha256(f"{int(seed)}:{key}:{k}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2 ** 63 - 1)


def row_seeds(seed: int, num_samples: int, keys: Sequence[str] = ('',)) -> list[int]:
    """Per-row seeds of a sampler call, condition-major: sample k of condition b -> ``sample_seed(seed,
    keys[b], k)``. The pipeline keys a video by its file stem, the dataset sampler by its video id (the
    same for a dataset's clip), so one seed gives one clip the same samples through both."""
    return [sample_seed(seed, key, k) for key in keys for k in range(num_samples)]


class TokenPicker:
    """Token choice of one sampler call (see :func:`pick_tokens`).

    Args:
        temperature, top_k, top_p, greedy: as :func:`pick_tokens`.
        seeds: one seed per output row (per-row seeded sampling) or None (torch's global RNG). Row r's noise
            for the token at sequence position t (the audio token index, priming tokens counted) is the t-th
            (V,) draw of ``torch.Generator().manual_seed(seeds[r])`` (CPU, float64 uniform -> Gumbel),
            drawn ``chunk`` positions at a time: positions must be asked for in increasing order.
    """

    def __init__(self, temperature: float = 1.0, top_k: Optional[int] = None, top_p: Optional[float] = None,
                 greedy: bool = False, seeds: Optional[Sequence[int]] = None, chunk: int = 64):
        self.temperature, self.top_k, self.top_p, self.greedy = temperature, top_k, top_p, greedy
        self.gens = None if seeds is None or greedy else [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.chunk, self.start, self.noise = int(chunk), 0, None    # noise (B, chunk, V) of positions [start, +chunk)

    def _noise(self, t: int, vocab: int, device) -> torch.Tensor:
        if t < self.start:
            raise ValueError(f'per-row noise is drawn in order: position {t} after {self.start}')
        while self.noise is None or t >= self.start + self.chunk:
            if self.noise is not None:
                self.start += self.chunk
            u = torch.stack([torch.rand(self.chunk, vocab, generator=g, dtype=torch.float64) for g in self.gens])
            self.noise = (-torch.log(-torch.log(u.clamp_min(1e-300)))).float().to(device)
        return self.noise[:, t - self.start]

    def __call__(self, logits: torch.Tensor, t: int) -> torch.Tensor:
        """logits (B, V) of the token at position ``t`` -> tokens (B, 1)."""
        noise = None
        if self.gens is not None:
            if len(self.gens) != logits.shape[0]:
                raise ValueError(f'{len(self.gens)} row seeds for {logits.shape[0]} rows')
            noise = self._noise(t, logits.shape[-1], logits.device)
        return pick_tokens(logits, self.temperature, self.top_k, self.top_p, self.greedy, noise)


def _picker(seed: Seed, rows: int, num_samples: int, **options) -> TokenPicker:
    """The :class:`TokenPicker` of a call over ``rows`` conditions: an int seed gives every condition
    :func:`row_seeds` with key '' (sample k of any condition: seed (seed, '', k)); a sequence is per output row."""
    seeds = None if seed is None else row_seeds(seed, num_samples, [''] * rows) if isinstance(seed, int) else list(seed)
    if seeds is not None and len(seeds) != rows * num_samples:
        raise ValueError(f'{len(seeds)} seeds for {rows} condition(s) x {num_samples} sample(s)')
    return TokenPicker(seeds=seeds, **options)


def _progress(n: int, enabled: bool, desc: str):
    if not enabled:
        return range(n)
    from tqdm.auto import tqdm
    return tqdm(range(n), desc=desc, leave=False)


# ----------------------------------------------------------------------------- condition helpers
def repeat_cond(c: Cond, n: int) -> Cond:
    """Repeat every condition row ``n`` times (condition-major), tensors or dicts of tensors."""
    if n == 1:
        return c
    if isinstance(c, dict):
        return {k: v.repeat_interleave(n, dim=0) for k, v in c.items()}
    return c.repeat_interleave(n, dim=0)


def _batch(c: Cond) -> int:
    return next(iter(c.values())).shape[0] if isinstance(c, dict) else c.shape[0]


def _device(gpt: IncrementalDecoder) -> torch.device:
    return gpt.pos_emb.device


def _to(c: Cond, device) -> Cond:
    return {k: v.to(device) for k, v in c.items()} if isinstance(c, dict) else c.to(device)


def full_logits(gpt, x: torch.Tensor, c: Cond, return_attention: bool = False):
    """Whole-sequence forward of ``[cond ; x]`` for any GPT variant: (logits (B, Tc+T, V), attention)."""
    emb = gpt.embed_condition(c)
    emb = torch.cat([emb, gpt.embed_tokens(x).to(emb.dtype)], dim=1)
    logits, _, att = gpt.forward_embeddings(emb, return_attention=return_attention)
    return logits, att


def _prefill(gpt, c: Cond, prefix: Optional[torch.Tensor], num_samples: int, need_weights: bool = False):
    """Prefill condition (+ prefix) at the condition batch size, then expand to B*num_samples.
    Returns (cache, logits of the last position (B*n, 1, V), attention or None)."""
    emb = gpt.embed_condition(c)
    if prefix is not None and prefix.shape[1] > 0:
        emb = torch.cat([emb, gpt.embed_tokens(prefix).to(emb.dtype)], dim=1)
    if emb.shape[1] == 0:
        raise ValueError('nothing to condition on: empty condition and no priming tokens')
    # the cache dtype may depend on the number of rows decoded together (a reduced-precision copy)
    cache = gpt.new_cache(_batch(c), dtype=gpt.cache_dtype_for(_batch(c) * num_samples))
    logits, att = gpt.forward_cached(emb, cache, need_weights=need_weights)
    if att is not None:
        att = att[:, :, -1:].repeat_interleave(num_samples, dim=0)
    return cache.repeat_interleave(num_samples), logits.repeat_interleave(num_samples, dim=0), att


# ----------------------------------------------------------------------------- trained length
@torch.inference_mode()
def sample_tokens(gpt: IncrementalDecoder, cond: Cond, steps: int, *, prefix: Optional[torch.Tensor] = None,
                  num_samples: int = 1, temperature: float = 1.0, top_k: Optional[int] = None,
                  top_p: Optional[float] = None, greedy: bool = False, seed: Seed = None, progress: bool = False,
                  return_attention: bool = False, callback: Optional[Callable[[int], Any]] = None,
                  guidance_scale: float = 1.0):
    """Sample ``steps`` tokens after ``[cond ; prefix]`` with a KV cache.

    Args:
        gpt: a GPT / GPTFeats / GPTClass / GPTFeatsClass (eval mode), or a :func:`prepare_gpt` copy.
        cond: the condition as the GPT takes it: feats (B, D, Tf), class (B, 1), a dict of both, or
            codebook indices (B, Tc) for the plain GPT.
        steps: tokens to generate. prefix: (B, P) priming tokens (e.g. the first k ground-truth columns).
        num_samples: samples per condition, drawn in one batch (rows ordered condition-major).
        temperature, top_k, top_p, greedy: token choice (see :func:`pick_tokens`).
        seed: per-row seeded sampling (:class:`TokenPicker`): an int (sample k of each condition seeded
            by ``sample_seed(seed, '', k)``) or one seed per output row (:func:`row_seeds`); None: torch's
            global RNG (as the reference).
        progress: show a progress bar. callback: called with the step index before each step.
        return_attention: also return the last layer's attention of the final step's query,
            (B*n, n_head, 1, cond+P+steps-1) (a row of the reference's returned attention).
        guidance_scale: classifier-free guidance (see :class:`GuidedGPT`; 1: off).
    Returns:
        tokens (B*n, P+steps) (prefix included), and the attention if requested.
    """
    gpt = guided(gpt, guidance_scale)
    device = _device(gpt)
    cond = _to(cond, device)
    B = _batch(cond)
    prefix = torch.zeros(B, 0, dtype=torch.long, device=device) if prefix is None else prefix.to(device)
    if prefix.shape[0] != B:
        raise ValueError(f'prefix batch {prefix.shape[0]} != condition batch {B}')
    total = gpt.cond_length(cond) + prefix.shape[1] + steps - 1
    if total > gpt.get_block_size():
        raise ValueError(f'condition + prefix + steps - 1 = {total} exceeds the block size '
                         f'{gpt.get_block_size()}; use sample_long for longer audio')
    pick = _picker(seed, B, num_samples, temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy)
    P = prefix.shape[1]
    want_att = return_attention and steps == 1
    cache, logits, att = _prefill(gpt, cond, prefix, num_samples, need_weights=want_att)
    out = [prefix.repeat_interleave(num_samples, dim=0)]
    for k in _progress(steps, progress, 'sampling'):
        if callback is not None:
            callback(k)
        tok = pick(logits[:, -1], P + k)
        out.append(tok)
        if k + 1 < steps:
            want_att = return_attention and k + 2 == steps
            logits, att = gpt.forward_cached(gpt.embed_tokens(tok), cache, need_weights=want_att)
    tokens = torch.cat(out, dim=1)
    return (tokens, att) if return_attention else tokens


@torch.inference_mode()
def sample_tokens_uncached(gpt: IncrementalDecoder, cond: Cond, steps: int, *, prefix: Optional[torch.Tensor] = None,
                           num_samples: int = 1, temperature: float = 1.0, top_k: Optional[int] = None,
                           top_p: Optional[float] = None, greedy: bool = False, seed: Seed = None, progress: bool = False,
                           return_attention: bool = False, guidance_scale: float = 1.0):
    """The reference loop: the whole ``[cond ; tokens]`` sequence is recomputed for every token.
    Same arguments and results as :func:`sample_tokens` (the baseline of the benchmark)."""
    gpt = guided(gpt, guidance_scale)
    device = _device(gpt)
    cond = repeat_cond(_to(cond, device), num_samples)
    B = _batch(cond) // num_samples
    x = torch.zeros(B, 0, dtype=torch.long, device=device) if prefix is None else prefix.to(device)
    x = x.repeat_interleave(num_samples, dim=0)
    pick = _picker(seed, B, num_samples, temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy)
    att = None
    for k in _progress(steps, progress, 'sampling (uncached)'):
        logits, att = full_logits(gpt, x, cond, return_attention and k + 1 == steps)
        x = torch.cat([x, pick(logits[:, -1], x.shape[1])], dim=1)
    if return_attention:
        return x, (att[:, :, -1:] if att is not None else None)
    return x


# ----------------------------------------------------------------------------- long audio
def window_start(col: int, W: int, total_cols: int, context_cols: Optional[int] = None, hop: int = 1) -> int:
    """First column of the W-column window used to predict column ``col`` of a ``total_cols`` grid.

    Reference rule (``hop=1``): ``clamp(col - W // 2, 0, total_cols - W)``: the window starts at 0,
    then keeps the current column at ``context_cols`` (= W // 2) and slides one column per column;
    at the end it stops at the last W columns. ``hop > 1`` slides by ``hop`` columns at a time (fewer
    window rebuilds), keeping at least ``context_cols`` columns of left context.
    """
    ctx = W // 2 if context_cols is None else int(context_cols)
    if not 1 <= hop <= W - ctx:
        raise ValueError(f'window hop must be in [1, W - context_cols] = [1, {W - ctx}], got {hop}')
    start = (col - ctx) // hop * hop
    return min(max(start, 0), total_cols - W)


def _check_long(gpt, H: int, W: int, total_cols: int, c0: Cond) -> None:
    need = gpt.cond_length(c0) + H * W - 1
    if need > gpt.get_block_size():
        raise ValueError(f'a window of {W} columns x {H} rows after a condition of {gpt.cond_length(c0)} '
                         f'positions needs {need + 1} positions > block size {gpt.get_block_size()}')
    if total_cols < W:
        raise ValueError(f'total_cols={total_cols} is shorter than the window W={W}; use sample_tokens')


def _long_setup(gpt, cond, H: int, W: int, total_cols: int, prefix, num_samples: int, seed: Seed, options: dict):
    """Shared start of the long samplers: the condition (fixed or a function of the window start),
    the (B * num_samples, H * total_cols) token buffer with the priming prefix, and the token picker."""
    device = _device(gpt)
    cond_fn = cond if callable(cond) else None
    c0 = _to(cond_fn(0) if cond_fn else cond, device)
    _check_long(gpt, H, W, total_cols, c0)
    seq = torch.zeros(_batch(c0) * num_samples, H * total_cols, dtype=torch.long, device=device)
    P = 0 if prefix is None else prefix.shape[1]
    if P:
        seq[:, :P] = prefix.to(device).repeat_interleave(num_samples, dim=0)
    return device, cond_fn, c0, seq, P, _picker(seed, _batch(c0), num_samples, **options)


@torch.inference_mode()
def sample_long(gpt: IncrementalDecoder, cond: Union[Cond, CondFn], *, H: int, W: int, total_cols: int,
                prefix: Optional[torch.Tensor] = None, window_hop: int = 1, context_cols: Optional[int] = None,
                num_samples: int = 1, temperature: float = 1.0, top_k: Optional[int] = None,
                top_p: Optional[float] = None, greedy: bool = False, seed: Seed = None, progress: bool = False,
                guidance_scale: float = 1.0) -> torch.Tensor:
    """Generate an (H, total_cols) token grid (column-major, (B*n, H*total_cols)) with a sliding window.

    Args:
        cond: the trained-length condition, reused for every window (the reference behaviour), or a
            callable ``window_start_col -> condition`` (e.g. the features under the window).
        H, W: latent rows and trained columns (5, 53 for 10 s); total_cols: columns to generate.
        prefix: (B, P) priming tokens, column-major. window_hop / context_cols: see :func:`window_start`.
        Other arguments as :func:`sample_tokens`.
    The condition's keys/values are computed once (fixed condition) and kept when the window moves;
    each move re-encodes only the window's earlier columns; within a window one token per step.
    """
    gpt = guided(gpt, guidance_scale)
    options = dict(temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy)
    device, cond_fn, c0, seq, P, pick = _long_setup(gpt, cond, H, W, total_cols, prefix, num_samples, seed, options)
    n_tok = seq.shape[1]
    base = None if cond_fn else _prefill(gpt, c0, None, num_samples)
    n_cond = gpt.cond_length(c0)
    cache, cur, logits = None, None, None
    for t in _progress(n_tok - P, progress, 'sampling (long)'):
        t += P
        s = window_start(t // H, W, total_cols, context_cols, window_hop)
        if s != cur:  # (re)build the window: condition, then its earlier columns
            if cond_fn is None:
                cache = base[0] if cache is None else cache
                cache.truncate(n_cond)
                logits = base[1]
            else:
                cache, logits, _ = _prefill(gpt, _to(cond_fn(s), device), None, num_samples)
            if t > s * H:
                logits, _ = gpt.forward_cached(gpt.embed_tokens(seq[:, s * H:t]), cache)
            cur = s
        tok = pick(logits[:, -1], t)
        seq[:, t:t + 1] = tok
        if t + 1 < n_tok and window_start((t + 1) // H, W, total_cols, context_cols, window_hop) == cur:
            logits, _ = gpt.forward_cached(gpt.embed_tokens(tok), cache)
    return seq


@torch.inference_mode()
def sample_long_uncached(gpt: IncrementalDecoder, cond: Union[Cond, CondFn], *, H: int, W: int, total_cols: int,
                         prefix: Optional[torch.Tensor] = None, window_hop: int = 1,
                         context_cols: Optional[int] = None, num_samples: int = 1, temperature: float = 1.0,
                         top_k: Optional[int] = None, top_p: Optional[float] = None, greedy: bool = False,
                         seed: Seed = None, progress: bool = False, guidance_scale: float = 1.0) -> torch.Tensor:
    """The reference's windowed loop (``sample_visualization.sample_conditionally``): for every token
    the whole W-column window (future cells zero) is run through the GPT and the logit at the token's
    local position is used. Same arguments and results as :func:`sample_long`."""
    gpt = guided(gpt, guidance_scale)
    options = dict(temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy)
    device, cond_fn, c0, seq, P, pick = _long_setup(gpt, cond, H, W, total_cols, prefix, num_samples, seed, options)
    n_tok = seq.shape[1]
    for t in _progress(n_tok - P, progress, 'sampling (long, uncached)'):
        t += P
        s = window_start(t // H, W, total_cols, context_cols, window_hop)
        c = repeat_cond(_to(cond_fn(s), device) if cond_fn else c0, num_samples)
        patch = seq[:, s * H:(s + W) * H]
        logits = full_logits(gpt, patch[:, :-1], c)[0][:, -H * W:]
        seq[:, t:t + 1] = pick(logits[:, t - s * H], t)
    return seq


# ----------------------------------------------------------------------------- inference precision
def prepare_gpt(gpt: nn.Module, precision: str = 'fp32', native: bool = True) -> IncrementalDecoder:
    """An eval-mode inference copy of ``gpt``.

    precision: ``'fp32'`` (the module itself, unchanged: sampling stays exact), or a reduced-precision
    :class:`~specvqgan.modules.transformer.fast_decode.FastGPT` copy with fused key/query/value, a
    bfloat16 key/value cache and a lean decoding step: ``'bf16'`` (weights and activations in
    bfloat16) or ``'int8'`` (per-channel int8 weights with dynamically quantized activations, the
    head included; CPU only). Reduced precision changes the logits slightly; the benchmark reports
    the max logit difference and the greedy-token agreement against fp32.
    native: (reduced precision only) run the one-query attention of each decoding step in the C++ kernel
    of :class:`~specvqgan.modules.transformer.fast_decode.NativeDecodeAttention` (compiled on first use;
    plain torch where no compiler is found or ``SPECVQGAN_NATIVE=0``).
    """
    if precision == 'fp32':
        return gpt.eval()
    if precision in ('bf16', 'int8'):
        from specvqgan.modules.transformer.fast_decode import FastGPT
        return FastGPT(gpt, precision, native=native)
    raise ValueError(f"precision must be 'fp32', 'bf16' or 'int8', got {precision!r}")

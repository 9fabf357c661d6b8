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

Sampling options: ``temperature``, ``top_k``, ``top_p`` (nucleus), ``greedy``; ``seed`` (or a
``generator``) makes runs reproducible: the cached and uncached paths draw the same random numbers.

Classifier-free guidance (``guidance_scale`` s, models trained with ``p_uncond > 0``, docs/guidance.md):
every sampler runs through :class:`GuidedGPT`, which puts an unconditional stream (the GPT's null
condition, the same audio tokens) beside the conditional one in the same batch and returns
``uncond + s * (cond - uncond)`` as the logits. ``s = 1`` (the default) computes no second stream.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

Cond = Union[torch.Tensor, dict]
CondFn = Callable[[int], Cond]


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
                top_p: Optional[float] = None, greedy: bool = False,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Next tokens (B, 1) from last-position logits (B, V): temperature, top-k/top-p, then a
    multinomial draw (or argmax if ``greedy``), as the reference ``Net2NetTransformer.sample``."""
    logits = logits.float()
    if greedy:
        return torch.argmax(logits, dim=-1, keepdim=True)
    if temperature <= 0:
        raise ValueError(f'temperature must be > 0, got {temperature}')
    logits = filter_logits(logits / temperature, top_k, top_p)
    return torch.multinomial(F.softmax(logits, dim=-1), num_samples=1, generator=generator)


def make_generator(seed: Optional[int], device: torch.device | str) -> Optional[torch.Generator]:
    """A seeded generator, or None (use torch's global RNG) when ``seed`` is None."""
    return None if seed is None else torch.Generator(device=device).manual_seed(int(seed))


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


def _device(gpt: nn.Module) -> torch.device:
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
    # a reduced-precision copy picks its cache dtype from the number of rows decoded together
    dtype = gpt.cache_dtype_for(_batch(c) * num_samples) if hasattr(gpt, 'cache_dtype_for') else None
    cache = gpt.new_cache(_batch(c), dtype=dtype)
    logits, att = gpt.forward_cached(emb, cache, need_weights=need_weights)
    if att is not None:
        att = att[:, :, -1:].repeat_interleave(num_samples, dim=0)
    return cache.repeat_interleave(num_samples), logits.repeat_interleave(num_samples, dim=0), att


# ----------------------------------------------------------------------------- guidance
class GuidedGPT:
    """A GPT view for classifier-free guidance: rows ``[0, R)`` of its cache and forward batch are the
    conditional stream, rows ``[R, 2R)`` the unconditional one (null condition, same tokens), so one forward
    serves both and the KV cache holds both prefixes (with samples sharing a prefix, as
    ``KVCache.repeat_interleave`` lays it out, the 2B condition rows each keep their own). The returned
    logits are the guided ones, (R, T, V) float32: ``uncond + scale * (cond - uncond)``.

    Works over a GPT variant or a :func:`prepare_gpt` copy (the native decoding kernel included); the
    samplers wrap the GPT with :func:`guided` and are otherwise unchanged.
    """

    def __init__(self, gpt: nn.Module, scale: float):
        if not getattr(gpt, 'has_null_condition', False):
            raise ValueError(f'guidance_scale={scale} needs a model trained with p_uncond > 0 '
                             '(this one has no null condition)')
        self.gpt, self.scale = gpt, float(scale)

    def __getattr__(self, name):  # block size, config, pos_emb, cond_length, ...
        return getattr(self.gpt, name)

    def embed_condition(self, c: Cond) -> torch.Tensor:
        """(2B, Tc, C): the condition's embeddings, then the null condition's."""
        emb = self.gpt.embed_condition(c)
        return torch.cat([emb, self.gpt.null_condition(c).to(emb.dtype)])

    def embed_tokens(self, idx: torch.Tensor) -> torch.Tensor:
        """(R, T) tokens -> (2R, T, C): the same tokens in both streams."""
        emb = self.gpt.embed_tokens(idx)
        return torch.cat([emb, emb])

    def cache_dtype_for(self, rows: int):
        fn = getattr(self.gpt, 'cache_dtype_for', None)
        return None if fn is None else fn(2 * rows)

    def new_cache(self, batch_size: int, *args, **kwargs):
        return self.gpt.new_cache(2 * batch_size, *args, **kwargs)

    def combine(self, logits: torch.Tensor) -> torch.Tensor:
        """(2R, T, V) [cond ; uncond] -> (R, T, V) float32 guided logits."""
        cond, unc = logits.float().chunk(2)
        return unc + self.scale * (cond - unc)

    def forward_cached(self, emb: torch.Tensor, cache, last_only: bool = True, need_weights: bool = False):
        """As ``GPT.forward_cached`` on both streams; the attention returned is the conditional stream's."""
        logits, att = self.gpt.forward_cached(emb, cache, last_only=last_only, need_weights=need_weights)
        return self.combine(logits), (None if att is None else att.chunk(2)[0])

    def forward_embeddings(self, emb: torch.Tensor, targets=None, return_attention: bool = False):
        logits, _, att = self.gpt.forward_embeddings(emb, return_attention=return_attention)
        return self.combine(logits), None, (None if att is None else att.chunk(2)[0])

    def eval(self):
        self.gpt.eval()
        return self


def guided(gpt, guidance_scale: float = 1.0):
    """``gpt`` itself for ``guidance_scale == 1`` (no second stream), else a :class:`GuidedGPT` view."""
    if float(guidance_scale) == 1.0:
        return gpt
    if not float(guidance_scale) >= 0:
        raise ValueError(f'guidance_scale must be >= 0, got {guidance_scale}')
    return GuidedGPT(gpt, guidance_scale)


# ----------------------------------------------------------------------------- trained length
@torch.inference_mode()
def sample_tokens(gpt: nn.Module, cond: Cond, steps: int, *, prefix: Optional[torch.Tensor] = None,
                  num_samples: int = 1, temperature: float = 1.0, top_k: Optional[int] = None,
                  top_p: Optional[float] = None, greedy: bool = False, seed: Optional[int] = None,
                  generator: Optional[torch.Generator] = None, progress: bool = False,
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
        seed / generator: reproducibility; neither -> torch's global RNG (as the reference).
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
    gen = generator if generator is not None else make_generator(seed, device)
    want_att = return_attention and steps == 1
    cache, logits, att = _prefill(gpt, cond, prefix, num_samples, need_weights=want_att)
    out = [prefix.repeat_interleave(num_samples, dim=0)]
    for k in _progress(steps, progress, 'sampling'):
        if callback is not None:
            callback(k)
        tok = pick_tokens(logits[:, -1], temperature, top_k, top_p, greedy, gen)
        out.append(tok)
        if k + 1 < steps:
            want_att = return_attention and k + 2 == steps
            logits, att = gpt.forward_cached(gpt.embed_tokens(tok), cache, need_weights=want_att)
    tokens = torch.cat(out, dim=1)
    return (tokens, att) if return_attention else tokens


@torch.inference_mode()
def sample_tokens_uncached(gpt: nn.Module, cond: Cond, steps: int, *, prefix: Optional[torch.Tensor] = None,
                           num_samples: int = 1, temperature: float = 1.0, top_k: Optional[int] = None,
                           top_p: Optional[float] = None, greedy: bool = False, seed: Optional[int] = None,
                           generator: Optional[torch.Generator] = None, progress: bool = False,
                           return_attention: bool = False, guidance_scale: float = 1.0):
    """The reference loop: the whole ``[cond ; tokens]`` sequence is recomputed for every token.
    Same arguments and results as :func:`sample_tokens` (the baseline of the benchmark)."""
    gpt = guided(gpt, guidance_scale)
    device = _device(gpt)
    cond = repeat_cond(_to(cond, device), num_samples)
    B = _batch(cond) // num_samples
    x = torch.zeros(B, 0, dtype=torch.long, device=device) if prefix is None else prefix.to(device)
    x = x.repeat_interleave(num_samples, dim=0)
    gen = generator if generator is not None else make_generator(seed, device)
    att = None
    for k in _progress(steps, progress, 'sampling (uncached)'):
        logits, att = full_logits(gpt, x, cond, return_attention and k + 1 == steps)
        x = torch.cat([x, pick_tokens(logits[:, -1], temperature, top_k, top_p, greedy, gen)], dim=1)
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


def _long_setup(gpt, cond, H: int, W: int, total_cols: int, prefix, num_samples: int, seed, generator):
    """Shared start of the long samplers: the condition (fixed or a function of the window start),
    the (B * num_samples, H * total_cols) token buffer with the priming prefix, and the generator."""
    device = _device(gpt)
    cond_fn = cond if callable(cond) else None
    c0 = _to(cond_fn(0) if cond_fn else cond, device)
    _check_long(gpt, H, W, total_cols, c0)
    seq = torch.zeros(_batch(c0) * num_samples, H * total_cols, dtype=torch.long, device=device)
    P = 0 if prefix is None else prefix.shape[1]
    if P:
        seq[:, :P] = prefix.to(device).repeat_interleave(num_samples, dim=0)
    gen = generator if generator is not None else make_generator(seed, device)
    return device, cond_fn, c0, seq, P, gen


@torch.inference_mode()
def sample_long(gpt: nn.Module, cond: Union[Cond, CondFn], *, H: int, W: int, total_cols: int,
                prefix: Optional[torch.Tensor] = None, window_hop: int = 1, context_cols: Optional[int] = None,
                num_samples: int = 1, temperature: float = 1.0, top_k: Optional[int] = None,
                top_p: Optional[float] = None, greedy: bool = False, seed: Optional[int] = None,
                generator: Optional[torch.Generator] = None, progress: bool = False,
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
    device, cond_fn, c0, seq, P, gen = _long_setup(gpt, cond, H, W, total_cols, prefix, num_samples, seed, generator)
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
        tok = pick_tokens(logits[:, -1], temperature, top_k, top_p, greedy, gen)
        seq[:, t:t + 1] = tok
        if t + 1 < n_tok and window_start((t + 1) // H, W, total_cols, context_cols, window_hop) == cur:
            logits, _ = gpt.forward_cached(gpt.embed_tokens(tok), cache)
    return seq


@torch.inference_mode()
def sample_long_uncached(gpt: nn.Module, cond: Union[Cond, CondFn], *, H: int, W: int, total_cols: int,
                         prefix: Optional[torch.Tensor] = None, window_hop: int = 1,
                         context_cols: Optional[int] = None, num_samples: int = 1, temperature: float = 1.0,
                         top_k: Optional[int] = None, top_p: Optional[float] = None, greedy: bool = False,
                         seed: Optional[int] = None, generator: Optional[torch.Generator] = None,
                         progress: bool = False, guidance_scale: float = 1.0) -> torch.Tensor:
    """The reference's windowed loop (``sample_visualization.sample_conditionally``): for every token
    the whole W-column window (future cells zero) is run through the GPT and the logit at the token's
    local position is used. Same arguments and results as :func:`sample_long`."""
    gpt = guided(gpt, guidance_scale)
    device, cond_fn, c0, seq, P, gen = _long_setup(gpt, cond, H, W, total_cols, prefix, num_samples, seed, generator)
    n_tok = seq.shape[1]
    for t in _progress(n_tok - P, progress, 'sampling (long, uncached)'):
        t += P
        s = window_start(t // H, W, total_cols, context_cols, window_hop)
        c = repeat_cond(_to(cond_fn(s), device) if cond_fn else c0, num_samples)
        patch = seq[:, s * H:(s + W) * H]
        logits = full_logits(gpt, patch[:, :-1], c)[0][:, -H * W:]
        seq[:, t:t + 1] = pick_tokens(logits[:, t - s * H], temperature, top_k, top_p, greedy, gen)
    return seq


# ----------------------------------------------------------------------------- inference precision
def prepare_gpt(gpt: nn.Module, precision: str = 'fp32', compile: bool = False, native: bool = True) -> nn.Module:
    """An eval-mode inference copy of ``gpt``.

    precision: ``'fp32'`` (the module itself, unchanged: sampling stays exact), or a reduced-precision
    :class:`~specvqgan.modules.transformer.fast_decode.FastGPT` copy with fused key/query/value, a
    bfloat16 key/value cache and a lean decoding step: ``'bf16'`` (weights and activations in
    bfloat16) or ``'int8'`` (per-channel int8 weights with dynamically quantized activations, the
    head included; CPU only). Reduced precision changes the logits slightly; the benchmark reports
    the max logit difference and the greedy-token agreement against fp32.
    compile: (reduced precision only) run the one-query attention through ``torch.compile``; the
    first step then compiles (seconds to tens of seconds on CPU).
    native: (reduced precision only) run the one-query attention of each decoding step in the C++ kernel
    of :class:`~specvqgan.modules.transformer.fast_decode.NativeDecodeAttention` (compiled on first use;
    plain torch where no compiler is found or ``SPECVQGAN_NATIVE=0``).
    """
    if precision == 'fp32':
        return gpt.eval()
    if precision in ('bf16', 'int8'):
        from specvqgan.modules.transformer.fast_decode import FastGPT
        return FastGPT(gpt, precision, compile=compile, native=native)
    raise ValueError(f"precision must be 'fp32', 'bf16' or 'int8', got {precision!r}")

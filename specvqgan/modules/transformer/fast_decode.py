"""Reduced-precision inference copy of the GPT for fast incremental decoding on CPU.

:func:`specvqgan.sampling.prepare_gpt` returns a :class:`FastGPT` for ``'int8'`` and ``'bf16'``.
It implements the samplers' :class:`~specvqgan.modules.transformer.decoder.IncrementalDecoder` interface as
the GPT does, with the same attention (:mod:`specvqgan.modules.transformer.attention`), but runs a
functional decoding step that cuts the per-step overhead of the module path:

* key/query/value are fused into one Linear (one int8 GEMM instead of three; only in this copy, the
  model's own state dict is unchanged);
* int8: dynamic quantization with **per-channel** int8 weights (activations quantized per step),
  the LM head included (:mod:`~specvqgan.modules.transformer.int8_linear`: a C++ kernel on the weights'
  own storage, nothing packed at load; fbgemm without a compiler); bf16: weights and activations in bfloat16;
* one new query per step: a small C++ kernel (:class:`NativeDecodeAttention`, ``csrc/decode_attention.cpp``,
  compiled on first use by :mod:`specvqgan.native`) writes the new key/value into a bfloat16 cache and
  attends over [condition prefix shared by the samples of one condition ; own positions] in one
  OpenMP pass, fp32 accumulation, each cached byte read once. Per layer (2 threads, 212 + 132
  positions, L3-resident cache): batch 10 0.68 ms with torch ops (bf16 matrix-vector products, softmax,
  casts) -> 0.14 ms; batch 1 0.11 -> 0.03 ms. Without a compiler: two batched matrix-vector products over the cache
  (``K @ q``, ``p @ V``), bf16 cache when several rows are decoded (fp32 for one int8 row);
* no nn.Module calls, dropout or mask construction inside the step.

The fp32 model is never changed; fp32 sampling does not use this class (it stays exact).
"""
from __future__ import annotations

import copy
import ctypes
import math
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from specvqgan.modules.transformer.attention import attend, decode_attention
from specvqgan.modules.transformer.int8_linear import (NativeInt8Linear, int8_linear,  # noqa: F401
                                                       quantize_int8)        # (quantize_int8: re-exported)
from specvqgan.modules.transformer.kv_cache import KVCache

PRECISIONS = ('bf16', 'int8')


def _float_linear(weight: torch.Tensor, bias: Optional[torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: F.linear(x, weight, bias)


_LINEARS = ('qkv', 'proj', 'fc1', 'fc2')
_SPLIT = ('blocks.', 'head.', 'ln_f.')   # GPT keys the layer tensors replace; the other keys form the body


def prepared_state(gpt: nn.Module, precision: str) -> dict:
    """The tensors a :class:`FastGPT` of ``gpt`` runs on, as a flat ``{name: Tensor}`` (what the inference
    bundle stores): ``body.<GPT key>`` (embeddings, condition embedders, null condition) in the activation
    dtype; ``layers.<i>.{ln1,ln2}.{weight,bias}``, ``ln_f.*``; ``layers.<i>.{qkv,proj,fc1,fc2}.{weight,bias}``
    and ``head.weight`` (+ ``head.bias`` if any): qint8 weights (:func:`quantize_int8`) with fp32 biases for
    ``'int8'``, bfloat16 for ``'bf16'``; layer norms in the activation dtype. qkv is the fused
    [query ; key ; value] Linear."""
    if precision not in PRECISIONS:
        raise ValueError(f'FastGPT precision must be one of {PRECISIONS}, got {precision!r}')
    act = torch.bfloat16 if precision == 'bf16' else torch.float32
    vec = lambda t: t.detach().to(act, copy=True).contiguous()  # noqa: E731  (own copy)
    out = {f'body.{k}': vec(v) if v.is_floating_point() else v
           for k, v in gpt.state_dict().items() if not k.startswith(_SPLIT)}

    def linear(name: str, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> None:
        out[f'{name}.weight'] = (quantize_int8(weight) if precision == 'int8'
                                 else weight.detach().to(act).contiguous())
        if bias is not None:
            out[f'{name}.bias'] = bias.detach().to(torch.float32 if precision == 'int8' else act)

    for i, blk in enumerate(gpt.blocks):
        for ln in ('ln1', 'ln2'):
            out[f'layers.{i}.{ln}.weight'], out[f'layers.{i}.{ln}.bias'] = (vec(getattr(blk, ln).weight),
                                                                            vec(getattr(blk, ln).bias))
        qkv = (blk.attn.query, blk.attn.key, blk.attn.value)       # fused: one GEMM C -> 3C
        linear(f'layers.{i}.qkv', torch.cat([m.weight.detach() for m in qkv]),
               torch.cat([m.bias.detach() for m in qkv]))
        for name, lin in zip(_LINEARS[1:], (blk.attn.proj, blk.mlp[0], blk.mlp[2])):
            linear(f'layers.{i}.{name}', lin.weight, lin.bias)
    out['ln_f.weight'], out['ln_f.bias'] = vec(gpt.ln_f.weight), vec(gpt.ln_f.bias)
    linear('head', gpt.head.weight, gpt.head.bias)
    return out


class FastGPT(nn.Module):
    """Inference copy of a GPT / GPTFeats / GPTClass / GPTFeatsClass in ``'int8'`` or ``'bf16'``.

    Args:
        gpt: the (fp32) GPT; it is deep-copied, never modified.
        state: the prepared tensors (:func:`prepared_state`, e.g. from an inference bundle) instead of
            preparing them from ``gpt``, which then only gives the structure (its weights may be on the
            meta device); a state that does not match ``gpt`` exactly raises ValueError.
        precision: ``'int8'`` (per-channel int8 weights, fp32 activations, CPU) or ``'bf16'``.
        cache_dtype: dtype of the key/value cache; None: :meth:`cache_dtype_for` (bf16, or fp32 for
            a single row in int8).
        native: run the one-query attention of a decoding step in :class:`NativeDecodeAttention` and the int8
            Linears in :class:`~specvqgan.modules.transformer.int8_linear.NativeInt8Linear` (plain torch,
            :func:`~specvqgan.modules.transformer.attention.decode_attention`, and fbgemm where they cannot be built).
        pack_in_background: (int8 on fbgemm only) pack the int8 weights for fbgemm on background threads (one per
            intra-op thread), layer by layer in the order the forward pass needs them: the constructor returns at
            once and the first forward waits only for what is not packed yet (the pipeline extracts the features
            meanwhile). The native kernel packs nothing.
    """

    def __init__(self, gpt: nn.Module, precision: str = 'int8', cache_dtype: Optional[torch.dtype] = None,
                 native: bool = True, state: Optional[dict] = None,
                 pack_in_background: bool = False):
        super().__init__()
        if precision not in PRECISIONS:
            raise ValueError(f'FastGPT precision must be one of {PRECISIONS}, got {precision!r}')
        self.precision = precision
        self.act_dtype = torch.bfloat16 if precision == 'bf16' else torch.float32
        self.cache_dtype = cache_dtype
        self._native = native_decode_attention() if native else None
        state = prepared_state(gpt, precision) if state is None else state
        _check_state(gpt, state, precision)
        # the condition embedders, token/position embeddings: a body without blocks, head and final norm
        # (not deep-copied: the memo maps them to None, so no transient copy of the whole stack is made)
        blocks, head, ln_f = gpt.blocks, gpt.head, gpt.ln_f
        body = copy.deepcopy(gpt, {id(blocks): None, id(head): None, id(ln_f): None}).eval()
        del body.blocks, body.head, body.ln_f
        body.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith('body.')}, assign=True)
        self.gpt = body.requires_grad_(False)
        self.config, self.block_size = gpt.config, gpt.block_size
        self.n_head, self.n_unmasked = gpt.config.n_head, gpt.config.n_unmasked
        packer = None
        native_int8 = native and precision == 'int8' and NativeInt8Linear.kernel() is not None
        if precision == 'int8' and pack_in_background and not native_int8:
            from concurrent.futures import ThreadPoolExecutor
            # one packer per intra-op thread (fbgemm's packing releases the GIL and is single-threaded)
            packer = ThreadPoolExecutor(max(1, torch.get_num_threads()), thread_name_prefix='int8-pack')
        if precision == 'int8':
            lin = lambda n: int8_linear(state[f'{n}.weight'], state.get(f'{n}.bias'), packer,  # noqa: E731
                                        native=native_int8)
        else:
            lin = lambda n: _float_linear(state[f'{n}.weight'], state.get(f'{n}.bias'))  # noqa: E731
        pair = lambda n: (state[f'{n}.weight'], state[f'{n}.bias'])  # noqa: E731
        self.layers = []
        for i, blk in enumerate(blocks):
            p = f'layers.{i}'
            self.layers.append(dict(ln1=(*pair(f'{p}.ln1'), blk.ln1.eps), ln2=(*pair(f'{p}.ln2'), blk.ln2.eps),
                                    **{n: lin(f'{p}.{n}') for n in _LINEARS}, gelu=blk.mlp[1].approximate))
        self.ln_f = (*pair('ln_f'), ln_f.eps)
        self.head = lin('head')
        if packer is not None:
            packer.shutdown(wait=False)      # the thread ends when the last weight is packed
        self.eval()

    # --- the GPT interface used by the samplers ---
    @property
    def pos_emb(self) -> torch.Tensor:
        return self.gpt.pos_emb

    def get_block_size(self) -> int:
        return self.block_size

    def cond_length(self, c: Any) -> int:
        return self.gpt.cond_length(c)

    def embed_condition(self, c: Any) -> torch.Tensor:
        return self.gpt.embed_condition(c).to(self.act_dtype)

    def embed_tokens(self, idx: torch.Tensor) -> torch.Tensor:
        return self.gpt.tok_emb(idx)

    @property
    def has_null_condition(self) -> bool:
        return self.gpt.has_null_condition

    def null_condition(self, c: Any) -> torch.Tensor:
        """The unconditional prefix (classifier-free guidance), as ``GPT.null_condition``."""
        return self.gpt.null_condition(c).to(self.act_dtype)

    def cache_dtype_for(self, rows: int) -> torch.dtype:
        """Cache dtype when ``rows`` sequences are decoded together (a measured choice, see the module docstring)."""
        if self.cache_dtype is not None:
            return self.cache_dtype
        if self._native is not None:
            return torch.bfloat16
        return torch.float32 if rows == 1 and self.precision == 'int8' else torch.bfloat16

    def new_cache(self, batch_size: int, max_len: Optional[int] = None, dtype=None, device=None) -> KVCache:
        return KVCache.for_decoder(self, batch_size, max_len, dtype, device)

    def forward_embeddings(self, emb: torch.Tensor, targets: Optional[torch.Tensor] = None,
                           return_attention: bool = False):
        """Whole sequence (B, T, C) -> (logits (B, T, V), loss, last-layer attention), as the GPT."""
        logits, att = self.forward_cached(emb, self.new_cache(emb.shape[0]), last_only=False,
                                          need_weights=return_attention)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1))
        return logits, loss, att

    @torch.inference_mode()
    def forward_cached(self, emb: torch.Tensor, cache: KVCache, last_only: bool = True,
                       need_weights: bool = False):
        """As :meth:`GPT.forward_cached`: emb (B, T, C) at positions [cache.length, cache.length+T).
        Returns logits (B, 1 or T, V) and the last layer's attention (B, nh, T, L) if ``need_weights``."""
        start, T = cache.length, emb.shape[1]
        if start + T > self.block_size:
            raise ValueError(f'cannot place {T} positions after {start}: GPT block size is {self.block_size}')
        x = emb.to(self.act_dtype) + self.pos_emb[:, start:start + T]
        B, _, C = x.shape
        nh = self.n_head
        att, last = None, len(self.layers) - 1
        native = self._native if T == 1 else None
        if native is not None and (start + 1 > cache.max_len or not native.supports(cache)):
            native = None  # overflow: cache.append raises the error
        for i, L in enumerate(self.layers):
            h = F.layer_norm(x, (C,), *L['ln1'])
            qkv = L['qkv'](h)
            if native is not None and not (need_weights and i == last):
                y = native(qkv.view(B, 3 * C).float(), cache, i, nh)              # (B, C), cache written
                x = x + L['proj'](y.view(B, 1, C).to(self.act_dtype))
            else:
                q, k, v = qkv.view(B, T, 3, nh, C // nh).permute(2, 0, 3, 1, 4)  # 3 x (B, nh, T, hs)
                k, v = cache.append(i, k, v)
                shared = cache.prefix(i)
                if T == 1 and not (need_weights and i == last):
                    y = decode_attention(q, k, v, shared)
                else:  # several new positions (prefill, window rebuild) or the weights: fp32
                    if shared is not None:
                        shared = (shared[0].float(), shared[1].float(), shared[2])
                    y, a = attend(q.float(), k.float(), v.float(), offset=start, n_unmasked=self.n_unmasked,
                                  shared=shared, need_weights=need_weights and i == last)
                    att = a if a is not None else att
                x = x + L['proj'](y.transpose(1, 2).reshape(B, T, C).to(self.act_dtype))
            h = F.gelu(L['fc1'](F.layer_norm(x, (C,), *L['ln2'])), approximate=L['gelu'])
            x = x + L['fc2'](h)
        cache.advance(T)
        if last_only:
            x = x[:, -1:]
        return self.head(F.layer_norm(x, (C,), *self.ln_f)), att


def _check_state(gpt: nn.Module, state: dict, precision: str) -> None:
    """ValueError unless ``state`` has exactly the keys, shapes and dtypes :func:`prepared_state` gives for
    ``gpt`` (whose own tensors may be on the meta device: only its structure is read)."""
    act = torch.bfloat16 if precision == 'bf16' else torch.float32
    want = {f'body.{k}': (tuple(v.shape), act if v.is_floating_point() else v.dtype)
            for k, v in gpt.state_dict().items() if not k.startswith(_SPLIT)}

    def linear(name: str, out_in: tuple, bias: bool) -> None:
        want[f'{name}.weight'] = (out_in, torch.qint8 if precision == 'int8' else act)
        if bias:
            want[f'{name}.bias'] = (out_in[:1], torch.float32 if precision == 'int8' else act)

    for i, blk in enumerate(gpt.blocks):
        for ln in ('ln1', 'ln2'):
            for w in ('weight', 'bias'):
                want[f'layers.{i}.{ln}.{w}'] = (tuple(getattr(getattr(blk, ln), w).shape), act)
        q = blk.attn.query
        linear(f'layers.{i}.qkv', (3 * q.out_features, q.in_features), True)
        for n, m in zip(_LINEARS[1:], (blk.attn.proj, blk.mlp[0], blk.mlp[2])):
            linear(f'layers.{i}.{n}', tuple(m.weight.shape), m.bias is not None)
    want['ln_f.weight'], want['ln_f.bias'] = [(tuple(gpt.ln_f.weight.shape), act)] * 2
    linear('head', tuple(gpt.head.weight.shape), gpt.head.bias is not None)
    missing, extra = sorted(set(want) - set(state)), sorted(set(state) - set(want))
    wrong = [f'{k} {tuple(state[k].shape)} {state[k].dtype} != {want[k][0]} {want[k][1]}' for k in want
             if k in state and (tuple(state[k].shape), state[k].dtype) != want[k]]
    if missing or extra or wrong:
        raise ValueError(f'prepared {precision} GPT weights do not match the GPT: missing {missing[:4]}, '
                         f'unexpected {extra[:4]}, wrong {wrong[:2]}')


_NATIVE_SOURCE = Path(__file__).parent / 'csrc' / 'decode_attention.cpp'
_I64, _PTR = ctypes.c_int64, ctypes.c_void_p


class NativeDecodeAttention:
    """The one-query decoding step of one layer in C++ (``csrc/decode_attention.cpp``): writes the new
    key/value into the cache and attends over [shared prefix ; own positions] in one pass that reads each
    cached byte once (fp32 accumulation; fp32 or bf16 cache). :meth:`load` returns None where the kernel
    cannot be compiled (callers then use :func:`~specvqgan.modules.transformer.attention.decode_attention`)."""

    FUNCTIONS = {torch.float32: 'decode_attention_f32', torch.bfloat16: 'decode_attention_bf16'}
    # B, nh, hs, qkv, qkv_stride, kc, vc, c_sb, c_sh, own_start, pos, pk, pv, p_sb, p_sh, Lp, group, y, y_stride, scale
    ARGTYPES = [_I64, _I64, _I64, _PTR, _I64, _PTR, _PTR, _I64, _I64, _I64, _I64, _PTR, _PTR, _I64, _I64, _I64, _I64,
                _PTR, _I64, ctypes.c_float]

    def __init__(self, lib):
        self.fns = {dtype: getattr(lib, name) for dtype, name in self.FUNCTIONS.items()}

    @classmethod
    def load(cls) -> Optional['NativeDecodeAttention']:
        from specvqgan import native
        lib = native.load_library('decode_attention', _NATIVE_SOURCE,
                                  {name: (None, cls.ARGTYPES) for name in cls.FUNCTIONS.values()})
        return None if lib is None else cls(lib)

    def supports(self, cache: KVCache) -> bool:
        k = cache.k[0]
        return k.device.type == 'cpu' and k.dtype in self.fns and k.is_contiguous()

    def __call__(self, qkv: torch.Tensor, cache: KVCache, layer: int, n_head: int) -> torch.Tensor:
        """qkv (B, 3C) fp32 contiguous ([q ; k ; v], heads of C // n_head) for the token at position
        ``cache.length`` -> y (B, C) fp32; the new key/value are written into ``cache`` (layer ``layer``)."""
        B, C3 = qkv.shape
        C = C3 // 3
        hs = C // n_head
        kc, vc = cache.k[layer], cache.v[layer]
        y = torch.empty(B, C, dtype=torch.float32)
        pre = cache.prefix(layer)
        if pre is None:
            pk = pv = kc
            p_sb = p_sh = Lp = 0
            group = 1
        else:
            pk, pv, group = pre
            p_sb, p_sh, Lp = pk.stride(0), pk.stride(1), pk.shape[2]
        self.fns[kc.dtype](B, n_head, hs, qkv.data_ptr(), C3, kc.data_ptr(), vc.data_ptr(), kc.stride(0),
                           kc.stride(1), cache.prefix_len, cache.length, pk.data_ptr(), pv.data_ptr(), p_sb,
                           p_sh, Lp, group, y.data_ptr(), C, 1.0 / math.sqrt(hs))
        return y


def native_decode_attention() -> Optional[NativeDecodeAttention]:
    """The :class:`NativeDecodeAttention` (its library compiled on first use, loaded once per process), or None."""
    return NativeDecodeAttention.load()

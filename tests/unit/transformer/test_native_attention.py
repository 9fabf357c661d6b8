"""The C++ one-query decoding attention (csrc/decode_attention.cpp) against plain torch, and its fallbacks."""
import math
import warnings

import pytest
import torch

from specvqgan import native
from specvqgan.modules.transformer import fast_decode
from specvqgan.modules.transformer.fast_decode import FastGPT, native_decode_attention
from specvqgan.modules.transformer.kv_cache import KVCache
from specvqgan.sampling import sample_tokens

kernel = native_decode_attention()
needs_kernel = pytest.mark.skipif(kernel is None, reason='no C++ compiler: the pure-torch path is used')


def _reference(qkv, cache_k, cache_v, prefix, group, own_start, pos, n_head):
    """Materialised fp32 attention of the new query over [prefix ; own positions own_start..pos]."""
    B, C3 = qkv.shape
    C = C3 // 3
    hs = C // n_head
    q = qkv[:, :C].view(B, n_head, 1, hs)
    K, V = cache_k[:, :, own_start:pos + 1].float(), cache_v[:, :, own_start:pos + 1].float()
    if prefix is not None:
        pk, pv = prefix
        K = torch.cat([pk.float().repeat_interleave(group, 0), K], 2)
        V = torch.cat([pv.float().repeat_interleave(group, 0), V], 2)
    att = torch.softmax((q @ K.transpose(-2, -1)) / math.sqrt(hs), -1)
    return (att @ V).reshape(B, C)


@needs_kernel
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
@pytest.mark.parametrize('head_size', [64, 8])  # the vectorised paper head size and the generic loop
@pytest.mark.parametrize('conds, group', [(1, 1), (1, 10), (2, 3)])
def test_kernel_equals_materialised_attention(dtype, head_size, conds, group):
    torch.manual_seed(0)
    n_head, n_prefix, max_len = 4, 13, 40
    C = n_head * head_size
    cache = KVCache(1, conds, n_head, head_size, max_len, dtype)
    k0 = torch.randn(conds, n_head, n_prefix, head_size)
    cache.append(0, k0, -k0)
    cache.advance(n_prefix)
    cache = cache.repeat_interleave(group)
    B = conds * group
    for step in range(7):  # own positions 0..6 after the (shared) prefix
        qkv = torch.randn(B, 3 * C) * 2
        pos = cache.length
        y = kernel(qkv, cache, 0, n_head)
        new_k = qkv[:, C:2 * C].view(B, n_head, head_size)
        new_v = qkv[:, 2 * C:].view(B, n_head, head_size)
        # the new key/value are stored, rounded like torch rounds to the cache dtype
        assert torch.equal(cache.k[0][:, :, pos], new_k.to(dtype))
        assert torch.equal(cache.v[0][:, :, pos], new_v.to(dtype))
        pre = None if cache.prefix(0) is None else cache.prefix(0)[:2]
        ref = _reference(qkv, cache.k[0], cache.v[0], pre, group, cache.prefix_len, pos, n_head)
        assert y.shape == (B, C) and y.dtype == torch.float32
        torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-4)  # fp32 sums in another order
        cache.advance(1)


@needs_kernel
def test_extreme_scores_stay_finite():
    """Large logits (softmax in fp32 after the max is subtracted) and -87-clamped exponents."""
    n_head, hs = 2, 64
    cache = KVCache(1, 1, n_head, hs, 8, torch.float32)
    cache.append(0, torch.randn(1, n_head, 5, hs) * 30, torch.randn(1, n_head, 5, hs))
    cache.advance(5)
    qkv = torch.randn(1, 3 * n_head * hs) * 30
    y = kernel(qkv, cache, 0, n_head)
    ref = _reference(qkv, cache.k[0], cache.v[0], None, 1, 0, 5, n_head)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-4)


@needs_kernel
@pytest.mark.parametrize('precision', ['int8', 'bf16'])
def test_fast_gpt_with_and_without_the_kernel(gpt_factory, precision):
    """The decoding step through the kernel follows the pure-torch step of the same copy."""
    gpt, c = gpt_factory('feats')
    fast, slow = FastGPT(gpt, precision), FastGPT(gpt, precision, native=False)
    assert fast._native is not None and slow._native is None
    x = sample_tokens(gpt, c, 8, seed=0)
    with torch.inference_mode():
        out = []
        for m in (fast, slow):
            cache = m.new_cache(2, dtype=torch.bfloat16)
            logits = [m.forward_cached(m.embed_condition(c), cache)[0]]
            logits += [m.forward_cached(m.embed_tokens(x[:, t:t + 1]), cache)[0] for t in range(8)]
            out.append(torch.cat(logits, 1).float())
    # the torch path rounds the query and the attention weights to bf16, the kernel keeps them in fp32
    torch.testing.assert_close(out[0], out[1], atol=0.05, rtol=0.02)
    # several samples per condition (shared prefix) through the kernel: greedy rows of one condition agree
    a = sample_tokens(fast, c, 8, greedy=True, num_samples=3)
    assert torch.equal(a[::3], a[1::3]) and torch.equal(a[::3], a[2::3])


def test_disabled_or_broken_builds_fall_back(monkeypatch, tmp_path, gpt_factory):
    monkeypatch.setenv('SPECVQGAN_NATIVE', '0')
    monkeypatch.setattr(native, '_LOADED', {})
    assert native.load_library('decode_attention', fast_decode._NATIVE_SOURCE) is None
    gpt, c = gpt_factory('feats')
    low = FastGPT(gpt, 'int8')
    assert low._native is None
    assert sample_tokens(low, c, 5, seed=0).shape == (2, 5)
    # a source that does not compile: one warning naming the kernel, then None
    monkeypatch.setenv('SPECVQGAN_NATIVE', '1')
    monkeypatch.setenv('SPECVQGAN_CACHE', str(tmp_path))
    bad = tmp_path / 'bad.cpp'
    bad.write_text('this is not C++')
    if native._compiler() is None:
        pytest.skip('no C++ compiler')
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        assert native.load_library('bad_kernel', bad) is None
    assert any('bad_kernel' in str(x.message) and 'bad.cpp' in str(x.message) for x in w)

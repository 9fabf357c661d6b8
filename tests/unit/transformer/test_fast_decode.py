"""The reduced-precision inference copy (FastGPT): fused key/query/value, bf16 cache, lean decode step."""
import pytest
import torch
import torch.nn.functional as F

from specvqgan import sampling
from specvqgan.modules.transformer.attention import decode_attention
from specvqgan.modules.transformer.fast_decode import FastGPT
from specvqgan.sampling import prepare_gpt, sample_tokens, sample_tokens_uncached


@pytest.mark.parametrize('precision', ['int8', 'bf16'])
def test_fast_gpt_follows_fp32_and_its_own_full_forward(any_gpt, precision):
    gpt, c = any_gpt
    steps = gpt.block_size - gpt.cond_length(c)
    low = prepare_gpt(gpt, precision)
    assert isinstance(low, FastGPT)
    x = sample_tokens(gpt, c, steps, seed=0)[:, :-1]
    with torch.inference_mode():
        ref, _ = sampling.full_logits(gpt, x, c)
        out, _ = sampling.full_logits(low, x, c)
        assert out.shape == ref.shape
        assert (out.float() - ref).abs().max() < 0.5
        # the one-token decoding step equals the whole-sequence path of the same copy
        n = gpt.cond_length(c)
        cache = low.new_cache(2)
        step_logits = [low.forward_cached(low.embed_condition(c), cache)[0]]
        for t in range(x.shape[1]):
            step_logits.append(low.forward_cached(low.embed_tokens(x[:, t:t + 1]), cache)[0])
        torch.testing.assert_close(torch.cat(step_logits, 1).float(), out[:, n - 1:].float(),
                                   atol=0.05, rtol=0.02)
    # several samples per condition share the condition's cache; greedy = the full-forward loop
    # (bf16; int8 quantizes activations per tensor, so its logits depend on the rows and positions
    # that go through a GEMM together: close, as checked above, but not bitwise equal)
    kw = dict(greedy=True, num_samples=3)
    a = sample_tokens(low, c, steps, **kw)
    assert a.shape == (6, steps)
    assert torch.equal(a[::3], a[2::3])
    if precision == 'bf16':
        assert torch.equal(a, sample_tokens_uncached(low, c, steps, **kw))


def test_the_model_itself_is_unchanged(gpt_factory):
    gpt, c = gpt_factory('feats_class')
    before = {k: v.clone() for k, v in gpt.state_dict().items()}
    low = prepare_gpt(gpt, 'int8')
    with torch.inference_mode():
        sample_tokens(low, c, 5, seed=1, num_samples=2)
        low.pos_emb.add_(1.0)  # the copy owns its tensors
    after = gpt.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(k.endswith('qkv.weight') for k in after)


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_one_query_attention_equals_sdpa(dtype):
    """With and without a prefix shared by groups of rows (g = 3), against materialised SDPA."""
    torch.manual_seed(0)
    attend = decode_attention
    q = torch.randn(6, 4, 1, 16)
    k, v = torch.randn(2, 6, 4, 5, 16).to(dtype)
    pk, pv = torch.randn(2, 2, 4, 7, 16).to(dtype)
    for shared in (None, (pk, pv, 3)):
        K, V = (k, v) if shared is None else (torch.cat([pk.repeat_interleave(3, 0), k], 2),
                                              torch.cat([pv.repeat_interleave(3, 0), v], 2))
        ref = F.scaled_dot_product_attention(q, K.float(), V.float())
        out = attend(q, k, v, shared)
        assert out.shape == (6, 4, 1, 16)
        tol = 1e-5 if dtype == torch.float32 else 3e-2
        torch.testing.assert_close(out.float(), ref, atol=tol, rtol=tol)


def test_long_generation_with_the_fast_copy(gpt_factory):
    """3x the trained length through window rebuilds (several new positions after the shared
    condition) equals the reference's windowed loop run with the same copy (bf16: exact tokens)."""
    gpt, c = gpt_factory('feats')
    low = prepare_gpt(gpt, 'bf16')
    kw = dict(H=2, W=6, total_cols=18, window_hop=2, greedy=True, num_samples=2)
    a = sampling.sample_long(low, c, **kw)
    assert a.shape == (4, 36)
    assert torch.equal(a, sampling.sample_long_uncached(low, c, **kw))

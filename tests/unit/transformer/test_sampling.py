"""KV-cached sampling equals the reference-style loop (full forward every token), token for token."""
import pytest
import torch

from specvqgan import sampling
from specvqgan.sampling import (filter_logits, prepare_gpt, sample_long, sample_long_uncached,
                                sample_tokens, sample_tokens_uncached, window_start)

H, W = 2, 6  # the tiny grid of conftest


@pytest.mark.parametrize('greedy', [True, False])
def test_cached_equals_uncached(any_gpt, greedy):
    gpt, c = any_gpt
    steps = gpt.block_size - gpt.cond_length(c)
    kw = dict(greedy=greedy, seed=123, temperature=0.9, top_k=8, num_samples=3)
    a = sample_tokens(gpt, c, steps, **kw)
    b = sample_tokens_uncached(gpt, c, steps, **kw)
    assert a.shape == (6, steps)
    assert torch.equal(a, b)
    if not greedy:  # the seed makes it deterministic, and the samples of one condition differ
        assert torch.equal(a, sample_tokens(gpt, c, steps, **kw))
        assert not torch.equal(a[0], a[1])


def test_priming_keeps_the_prefix(gpt_factory):
    gpt, c = gpt_factory('feats')
    prefix = torch.randint(0, 16, (2, 4))
    a = sample_tokens(gpt, c, 8, prefix=prefix, seed=0, top_p=0.9)
    b = sample_tokens_uncached(gpt, c, 8, prefix=prefix, seed=0, top_p=0.9)
    assert torch.equal(a, b) and torch.equal(a[:, :4], prefix)
    with pytest.raises(ValueError, match='block size'):
        sample_tokens(gpt, c, 10, prefix=prefix)


def test_attention_of_the_last_step(gpt_factory):
    gpt, c = gpt_factory('feats')
    tok, att = sample_tokens(gpt, c, 7, greedy=True, return_attention=True)
    tok2, att2 = sample_tokens_uncached(gpt, c, 7, greedy=True, return_attention=True)
    assert att.shape == (2, 2, 1, 4 + 6)
    torch.testing.assert_close(att, att2)
    torch.testing.assert_close(att.sum(-1), torch.ones(2, 2, 1))


def test_filter_logits():
    logits = torch.tensor([[3.0, 1.0, 2.0, 0.0]])
    assert torch.isinf(filter_logits(logits, top_k=2)).tolist() == [[False, True, False, True]]
    # probabilities ~[0.64, 0.09, 0.24, 0.03]: top_p 0.7 keeps the two most likely tokens
    assert torch.isinf(filter_logits(logits, top_p=0.7)).tolist() == [[False, True, False, True]]
    assert torch.isinf(filter_logits(logits, top_p=0.5)).tolist() == [[False, True, True, True]]
    assert torch.equal(filter_logits(logits), logits)


def test_window_start_reference_rule():
    # 3x the trained width (W=53, total 159): reference clamp(j - 26, 0, 159 - 53)
    starts = [window_start(j, 53, 159) for j in range(159)]
    assert starts == [min(max(j - 26, 0), 106) for j in range(159)]
    assert [window_start(j, 6, 12, hop=2) for j in range(12)] == [0, 0, 0, 0, 0, 2, 2, 4, 4, 6, 6, 6]
    with pytest.raises(ValueError):
        window_start(0, 6, 12, hop=4)


@pytest.mark.parametrize('hop', [1, 2])
@pytest.mark.parametrize('kind', ['feats', 'class'])
def test_long_generation_cached_equals_windowed_uncached(gpt_factory, hop, kind):
    """3x the trained length: shapes, and the cache path equals the reference's windowed loop."""
    gpt, c = gpt_factory(kind)
    kw = dict(H=H, W=W, total_cols=3 * W, window_hop=hop, seed=7, top_k=6, num_samples=2)
    a = sample_long(gpt, c, **kw)
    b = sample_long_uncached(gpt, c, **kw)
    assert a.shape == (4, H * 3 * W)
    assert torch.equal(a, b)


def test_long_generation_with_priming_and_moving_condition(gpt_factory):
    gpt, c = gpt_factory('feats')
    feats_long = torch.randn(2, c.shape[1], 3 * c.shape[2])
    cond_fn = lambda s: feats_long[:, :, s * 4 // W: s * 4 // W + 4]  # noqa: E731 (features under the window)
    prefix = torch.randint(0, 16, (2, 5))
    kw = dict(H=H, W=W, total_cols=2 * W + 1, prefix=prefix, greedy=True)
    a = sample_long(gpt, cond_fn, **kw)
    assert torch.equal(a, sample_long_uncached(gpt, cond_fn, **kw))
    assert torch.equal(a[:, :5], prefix)


def test_long_generation_at_trained_length_is_plain_sampling(gpt_factory):
    gpt, c = gpt_factory('feats')
    a = sample_long(gpt, c, H=H, W=W, total_cols=W, seed=3)
    assert torch.equal(a, sample_tokens(gpt, c, H * W, seed=3))


def test_reduced_precision(gpt_factory):
    gpt, c = gpt_factory('feats')
    x = torch.randint(0, 16, (2, 8))
    with torch.no_grad():
        ref, _ = sampling.full_logits(gpt, x, c)
        for precision, tol in (('bf16', 0.5), ('int8', 0.5)):
            low = prepare_gpt(gpt, precision)
            out, _ = sampling.full_logits(low, x, c)
            assert (out.float() - ref).abs().max() < tol
            tokens = sample_tokens(low, c, 8, greedy=True)
            assert tokens.shape == (2, 8)
            assert torch.equal(tokens, sample_tokens_uncached(low, c, 8, greedy=True))
    assert prepare_gpt(gpt, 'fp32') is gpt
    with pytest.raises(ValueError):
        prepare_gpt(gpt, 'fp8')

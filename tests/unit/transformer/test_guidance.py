"""Classifier-free guidance: condition dropout in training, and guided sampling (both streams in one
batch and one KV cache) equal to a plain reference loop that runs the two streams separately."""
import pytest
import torch

from specvqgan.sampling import (GuidedGPT, TokenPicker, _prefill, full_logits, prepare_gpt, repeat_cond, row_seeds, sample_long,
                                sample_long_uncached, sample_tokens, sample_tokens_uncached)

H, W = 2, 6  # the tiny grid of conftest
KINDS = ['feats', 'class', 'feats_class', 'plain']


def reference_guided(gpt, c, steps, scale, *, num_samples=1, prefix=None, seed=None, greedy=False, **kw):
    """Guided sampling written out: two separate full forwards (condition, null condition) per token."""
    cond = repeat_cond(c, num_samples)
    n_rows = num_samples * (next(iter(c.values())) if isinstance(c, dict) else c).shape[0]
    x = torch.zeros(n_rows, 0, dtype=torch.long) if prefix is None else prefix.repeat_interleave(num_samples, 0)
    n_cond = n_rows // num_samples
    pick = TokenPicker(greedy=greedy, seeds=None if seed is None else row_seeds(seed, num_samples, [''] * n_cond), **kw)
    with torch.no_grad():
        for _ in range(steps):
            tok = gpt.embed_tokens(x)
            lc = gpt.forward_embeddings(torch.cat([gpt.embed_condition(cond), tok.to(torch.float32)], 1))[0]
            lu = gpt.forward_embeddings(torch.cat([gpt.null_condition(cond), tok.to(torch.float32)], 1))[0]
            lc, lu = lc[:, -1].float(), lu[:, -1].float()
            x = torch.cat([x, pick(lu + scale * (lc - lu), x.shape[1])], 1)
    return x


@pytest.mark.parametrize('kind', KINDS)
def test_null_condition_exists_only_with_p_uncond(gpt_factory, kind):
    plain, c = gpt_factory(kind)
    gpt, _ = gpt_factory(kind, p_uncond=0.2)
    assert not plain.has_null_condition and 'null_cond' not in plain.state_dict()
    assert set(gpt.state_dict()) - set(plain.state_dict()) == {'null_cond'}
    null, emb = gpt.null_condition(c), gpt.embed_condition(c)
    assert null.shape == emb.shape and torch.equal(null[0], null[1])  # no information about the condition
    with pytest.raises(ValueError, match='p_uncond'):
        plain.null_condition(c)
    with pytest.raises(ValueError, match='p_uncond'):
        sample_tokens(plain, c, 3, guidance_scale=2.0)


def test_condition_dropout_only_in_training(gpt_factory):
    gpt, c = gpt_factory('feats_class', p_uncond=0.5)
    c = {k: v.repeat(16, *[1] * (v.dim() - 1)) for k, v in c.items()}  # 32 rows
    emb, null = gpt.embed_condition(c), gpt.null_condition(c)
    assert torch.equal(gpt.training_condition(c), emb)  # eval: never dropped
    gpt.train()
    torch.manual_seed(0)
    out = gpt.training_condition(c)
    dropped = [bool(torch.equal(o, n)) for o, n in zip(out, null)]
    kept = [bool(torch.equal(o, e)) for o, e in zip(out, emb)]
    assert all(d != k for d, k in zip(dropped, kept))  # each row whole: condition or null (features + class)
    assert 4 < sum(dropped) < 28
    plain, c1 = gpt_factory('feats')
    plain.train()
    assert torch.equal(plain.training_condition(c1), plain.embed_condition(c1))


@pytest.mark.parametrize('kind', KINDS)
def test_scale_one_is_the_unguided_sampler(gpt_factory, kind):
    gpt, c = gpt_factory(kind, p_uncond=0.2)
    steps = gpt.block_size - gpt.cond_length(c)
    kw = dict(seed=5, top_k=8, num_samples=3)
    assert torch.equal(sample_tokens(gpt, c, steps, guidance_scale=1.0, **kw), sample_tokens(gpt, c, steps, **kw))
    assert not torch.equal(sample_tokens(gpt, c, steps, guidance_scale=8.0, **kw), sample_tokens(gpt, c, steps, **kw))


@pytest.mark.parametrize('kind, greedy', [('feats', False), ('class', True), ('feats_class', False), ('plain', True)])
def test_guided_cached_equals_reference_loop(gpt_factory, kind, greedy):
    gpt, c = gpt_factory(kind, p_uncond=0.2)
    steps = gpt.block_size - gpt.cond_length(c)
    kw = dict(greedy=greedy, seed=11, temperature=0.9, top_k=8, num_samples=3)
    a = sample_tokens(gpt, c, steps, guidance_scale=2.5, **kw)
    assert a.shape == (6, steps)
    assert torch.equal(a, reference_guided(gpt, c, steps, 2.5, **kw))
    assert torch.equal(a, sample_tokens_uncached(gpt, c, steps, guidance_scale=2.5, **kw))


def test_guided_priming_top_p_and_attention(gpt_factory):
    gpt, c = gpt_factory('feats', p_uncond=0.2)
    prefix = torch.randint(0, 16, (2, 4))
    kw = dict(prefix=prefix, seed=0, top_p=0.9, num_samples=2)
    a = sample_tokens(gpt, c, 8, guidance_scale=3.0, **kw)
    assert torch.equal(a, reference_guided(gpt, c, 8, 3.0, **kw)) and torch.equal(a[::2, :4], prefix)
    tok, att = sample_tokens(gpt, c, 8, guidance_scale=3.0, return_attention=True, **kw)
    tok2, att2 = sample_tokens_uncached(gpt, c, 8, guidance_scale=3.0, return_attention=True, **kw)
    assert torch.equal(tok, a) and torch.equal(tok, tok2) and att.shape == (4, 2, 1, 4 + 11)
    torch.testing.assert_close(att, att2)  # the conditional stream's attention


@pytest.mark.parametrize('kind, hop', [('feats', 1), ('feats_class', 2)])
def test_guided_long_generation(gpt_factory, hop, kind):
    """3x the trained length with the sliding window: cache path == windowed reference loop."""
    gpt, c = gpt_factory(kind, p_uncond=0.2)
    kw = dict(H=H, W=W, total_cols=3 * W, window_hop=hop, seed=7, top_k=6, num_samples=2, guidance_scale=2.0)
    a = sample_long(gpt, c, **kw)
    assert a.shape == (4, H * 3 * W)
    assert torch.equal(a, sample_long_uncached(gpt, c, **kw))
    assert not torch.equal(a, sample_long(gpt, c, **dict(kw, guidance_scale=1.0)))


def test_guided_long_generation_moving_condition_and_priming(gpt_factory):
    gpt, c = gpt_factory('feats', p_uncond=0.2)
    feats_long = torch.randn(2, c.shape[1], 3 * c.shape[2])
    cond_fn = lambda s: feats_long[:, :, s * 4 // W: s * 4 // W + 4]  # noqa: E731 (features under the window)
    kw = dict(H=H, W=W, total_cols=2 * W + 1, prefix=torch.randint(0, 16, (2, 5)), greedy=True, guidance_scale=3.0)
    assert torch.equal(sample_long(gpt, cond_fn, **kw), sample_long_uncached(gpt, cond_fn, **kw))


@pytest.mark.parametrize('precision, native', [('bf16', True), ('bf16', False), ('int8', True)])
def test_guided_reduced_precision_copies(gpt_factory, precision, native):
    """The inference copies: two condition prefixes per condition row (condition, null) shared by the
    samples, through the C++ decoding kernel (native) or torch. Teacher-forced, the cached guided logits
    follow the copy's own full forward; bf16 samples equal its uncached loop token for token (int8
    quantizes activations per tensor, so its logits depend on the batch layout: compared with a tolerance)."""
    gpt, c = gpt_factory('feats', p_uncond=0.2)
    low = prepare_gpt(gpt, precision, native=native)
    assert low.has_null_condition
    torch.testing.assert_close(low.null_condition(c).float(), gpt.null_condition(c), atol=0.02, rtol=0.02)
    view, n = GuidedGPT(low, 2.0), 3
    x = torch.randint(0, 16, (2 * n, 12))
    cache, logits, _ = _prefill(view, c, None, n)
    steps = [logits[:, -1]]
    for k in range(11):
        steps.append(view.forward_cached(view.embed_tokens(x[:, k:k + 1]), cache)[0][:, -1])
    full = full_logits(view, x[:, :11], repeat_cond(c, n))[0][:, -12:]
    torch.testing.assert_close(torch.stack(steps, 1), full.float(), atol=0.05 if precision == 'bf16' else 0.1, rtol=0)
    if precision == 'bf16':
        kw = dict(greedy=True, num_samples=n, guidance_scale=2.0)
        assert torch.equal(sample_tokens(low, c, 12, **kw), sample_tokens_uncached(low, c, 12, **kw))


def test_guided_view_needs_a_null_condition(gpt_factory):
    gpt, c = gpt_factory('class')
    with pytest.raises(ValueError, match='p_uncond'):
        GuidedGPT(gpt, 2.0)
    with pytest.raises(ValueError, match='guidance_scale'):
        sample_tokens(gpt_factory('class', p_uncond=0.1)[0], c, 2, guidance_scale=-1.0)

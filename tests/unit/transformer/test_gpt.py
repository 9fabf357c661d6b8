"""GPT properties: causality, cached == full forward, permuter, block-size derivation, load hook."""
import pytest
import torch

from specvqgan.models.transformer_sizes import derive_permuter_config, derive_transformer_config
from specvqgan.modules.conditioning import ClassOnlyStage, FeatsClassStage, RawFeatsStage
from specvqgan.modules.transformer.permuter import ColumnMajor, Identity
from specvqgan.sampling import full_logits
from specvqgan.shapes import SequenceShape


def test_causality(any_gpt):
    """Changing token t changes no logit before position t (and does change later ones)."""
    gpt, c = any_gpt
    x = torch.randint(0, gpt.config.vocab_size, (2, 8))
    n_c = gpt.cond_length(c)
    with torch.no_grad():
        base, _ = full_logits(gpt, x, c)
        for t in (0, 3, 7):
            x2 = x.clone()
            x2[:, t] = (x2[:, t] + 1) % gpt.config.vocab_size
            new, _ = full_logits(gpt, x2, c)
            pos = n_c + t  # position of token t in the sequence
            assert torch.equal(new[:, :pos], base[:, :pos])
            assert not torch.allclose(new[:, pos:], base[:, pos:])


def test_condition_changes_the_prediction(gpt_factory):
    gpt, c = gpt_factory('feats')
    x = torch.randint(0, 16, (2, 5))
    with torch.no_grad():
        a, _ = full_logits(gpt, x, c)
        b, _ = full_logits(gpt, x, c + 1.0)
    assert not torch.allclose(a[:, -1], b[:, -1])


def test_cached_forward_equals_full_forward(any_gpt):
    """Prefill, then chunks of 1 and 3 positions: the logits equal the whole-sequence forward."""
    gpt, c = any_gpt
    x = torch.randint(0, gpt.config.vocab_size, (2, 9))
    with torch.no_grad():
        full, _ = full_logits(gpt, x, c)
        cache = gpt.new_cache(2)
        outs = [gpt.forward_cached(gpt.embed_condition(c), cache, last_only=False)[0]]
        for lo, hi in ((0, 1), (1, 4), (4, 5), (5, 9)):
            outs.append(gpt.forward_cached(gpt.embed_tokens(x[:, lo:hi]), cache, last_only=False)[0])
    torch.testing.assert_close(torch.cat(outs, 1), full, atol=1e-5, rtol=1e-5)
    assert cache.length == gpt.cond_length(c) + 9


def test_block_size_is_enforced(gpt_factory):
    gpt, c = gpt_factory('feats')
    with pytest.raises(ValueError, match='block size'):
        full_logits(gpt, torch.zeros(2, gpt.block_size, dtype=torch.long), c)


def test_column_major_round_trip():
    p = ColumnMajor(5, 53)
    x = torch.randint(0, 1024, (3, 265))
    assert torch.equal(p(p(x), reverse=True), x)
    # token t is cell (row t % 5, col t // 5) of the row-major grid
    grid = torch.arange(265).view(1, 5, 53).reshape(1, -1)
    t = torch.arange(265)
    assert torch.equal(p(grid)[0], (t % 5) * 53 + t // 5)
    # long sequences (3x the trained width) are permuted as a 5 x 159 grid
    x3 = torch.randint(0, 1024, (2, 5 * 159))
    assert torch.equal(p(p(x3), reverse=True), x3)
    assert torch.equal(p(torch.arange(795)[None])[0, :6], torch.tensor([0, 159, 318, 477, 636, 1]))
    with pytest.raises(ValueError):
        p(torch.zeros(1, 7, dtype=torch.long))
    assert torch.equal(Identity()(x), x)


@pytest.mark.parametrize('n_feats', [1, 5, 212])
@pytest.mark.parametrize('with_class', [False, True])
def test_block_size_derivation(n_feats, with_class):
    stage = FeatsClassStage(n_feats) if with_class else RawFeatsStage(n_feats)
    perm = derive_permuter_config({'target': 'specvqgan.modules.transformer.permuter.ColumnMajor'},
                                  {'params': {'ddconfig': {'ch_mult': [1, 1, 2, 2, 4], 'resolution': 848}}})
    assert perm['params'] == {'H': 5, 'W': 53}
    cfg = derive_transformer_config({'target': 'x', 'params': {
        'feat_embedding_config': {'target': 'torch.nn.Conv1d', 'params': {'in_channels': 2048}},
        'GPT_config': {'vocab_size': 1024, 'n_embd': 1024}}}, 5 * 53, stage.cond_len)
    expected = SequenceShape(n_feats=n_feats, class_token=with_class).block_size
    assert cfg['params']['GPT_config']['block_size'] == expected == n_feats + int(with_class) + 265
    assert cfg['params']['feat_embedding_config']['params']['out_channels'] == 1024
    assert ClassOnlyStage().cond_len + 265 == SequenceShape(n_feats=0, class_token=True).block_size


def test_block_size_mismatch_is_reported():
    with pytest.raises(ValueError, match='block_size=477 but'):
        derive_transformer_config({'target': 'x', 'params': {'GPT_config': {'block_size': 477, 'n_embd': 8}}},
                                  265, 5)


def test_condition_stage_inputs():
    batch = {'feature': torch.rand(2, 212, 8, dtype=torch.float64), 'target': torch.tensor([3, 1])}
    c = RawFeatsStage(212).get_input(batch, 'feature')
    assert c.shape == (2, 8, 212) and c.dtype == torch.float32
    with pytest.raises(ValueError, match='n_feats=5'):
        RawFeatsStage(5).get_input(batch, 'feature')
    assert torch.equal(ClassOnlyStage().get_input(batch, 'target'), torch.tensor([[3], [1]]))
    d = FeatsClassStage(212).get_input(batch, ['feature', 'target'])
    assert d['feature'].shape == (2, 8, 212) and d['target'].shape == (2, 1)
    assert RawFeatsStage().encode(c)[2][2] is c

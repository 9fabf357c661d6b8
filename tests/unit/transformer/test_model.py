"""Net2NetTransformer training pieces on a tiny codebook: optimizer rule, frozen first stage,
the loss goes down, sampling/decoding shapes, checkpoint round trip."""
import pytest
import torch
from omegaconf import OmegaConf

from specvqgan.config import instantiate_from_config

TINY = {
    'target': 'specvqgan.models.cond_transformer.Net2NetTransformer',
    'params': {
        'cond_stage_key': 'feature',
        'transformer_config': {
            'target': 'specvqgan.modules.transformer.mingpt.GPTFeats',
            'params': {'feat_embedding_config': {'target': 'torch.nn.Conv1d',
                                                 'params': {'in_channels': 6, 'kernel_size': 1}},
                       'GPT_config': {'vocab_size': 16, 'n_layer': 2, 'n_head': 2, 'n_embd': 32}}},
        'first_stage_permuter_config': {'target': 'specvqgan.modules.transformer.permuter.ColumnMajor'},
        'first_stage_config': {'target': 'specvqgan.models.vqgan.VQModel', 'params': {
            'embed_dim': 8, 'n_embed': 16, 'lossconfig': {'target': 'specvqgan.modules.losses.DummyLoss'},
            'ddconfig': {'double_z': False, 'z_channels': 8, 'resolution': 64, 'in_channels': 1, 'out_ch': 1,
                         'ch': 32, 'ch_mult': [1, 1, 1, 1, 1], 'num_res_blocks': 1, 'attn_resolutions': [],
                         'dropout': 0.0}}},
        'cond_stage_config': {'target': 'specvqgan.modules.conditioning.RawFeatsStage', 'params': {'n_feats': 4}},
        'log_media': False,
    },
}


@pytest.fixture
def model():
    torch.manual_seed(0)
    m = instantiate_from_config(OmegaConf.create(TINY))
    m.base_learning_rate = 1e-3
    return m


def _batch(n=4):
    g = torch.Generator().manual_seed(1)
    return {'image': torch.rand(n, 80, 64, generator=g) * 2 - 1, 'feature': torch.randn(n, 4, 6, generator=g)}


def test_derived_sizes(model):
    shape = model.shape  # the one source: grid, condition and block size
    assert (shape.latent_rows, shape.latent_cols, shape.n_tokens, shape.n_cond) == (5, 4, 20, 4)
    assert (shape.mel_len, shape.feats_per_col) == (64, 4)
    assert (model.first_stage_permuter.H, model.first_stage_permuter.W) == (5, 4)
    assert model.transformer.block_size == shape.block_size == 4 + 20
    assert model.transformer.embedder.out_channels == 32


def test_optimizer_decays_linear_weights_only(model):
    opt = model.configure_optimizers()
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults['betas'] == (0.9, 0.95)
    decay, no_decay = opt.param_groups
    assert decay['weight_decay'] == 0.01 and no_decay['weight_decay'] == 0.0
    names = {id(p): n for n, p in model.transformer.named_parameters()}
    decayed = {names[id(p)] for p in decay['params']}
    linear = {f'{mn}.weight' for mn, m in model.transformer.named_modules() if isinstance(m, torch.nn.Linear)}
    assert decayed == linear
    assert 'pos_emb' in {names[id(p)] for p in no_decay['params']}
    assert 'embedder.weight' not in decayed  # Conv1d embedder: no decay (reference rule)
    n_opt = sum(p.numel() for g in opt.param_groups for p in g['params'])
    assert n_opt == sum(p.numel() for p in model.transformer.parameters())  # the codebook is not trained


def test_training_lowers_the_loss_and_keeps_the_codebook(model):
    batch = _batch()
    codebook = {k: v.clone() for k, v in model.first_stage_model.state_dict().items()}
    opt = model.configure_optimizers()
    model.train()
    assert not model.first_stage_model.training and model.transformer.training
    losses = []
    for _ in range(60):
        loss = model.shared_step(batch, 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]
    for k, v in model.first_stage_model.state_dict().items():
        assert torch.equal(v, codebook[k])


def test_sample_and_decode_shapes(model):
    model.eval()
    x, c = model.get_xc(_batch(2))
    assert x.shape == (2, 1, 80, 64) and c.shape == (2, 6, 4)
    quant_z, z = model.encode_to_z(x)
    assert z.shape == (2, 20)
    tokens, att = model.sample(z[:, :10], c, steps=10, sample=True, top_k=5, seed=0, num_samples=3)
    assert tokens.shape == (6, 20) and att.shape == (6, 2, 1, 23)
    assert torch.equal(tokens[::3, :10], z[:, :10])
    spec = model.decode_to_img(tokens[:2], quant_z.shape)
    assert spec.shape == (2, 1, 80, 64)
    logs = model.log_images(_batch(2), N=2)
    assert logs['samples_nopix'].shape == logs['inputs'].shape == (2, 1, 80, 64)
    with pytest.raises(RuntimeError, match='eval'):
        model.train()
        model.sample(z[:, :0], c, steps=1)


def test_checkpoint_round_trip(model, tmp_path):
    from specvqgan.checkpoint import build_model as load_model, export as export_checkpoint
    path = export_checkpoint(model, OmegaConf.create(TINY), tmp_path / 'tiny.pt')
    loaded = load_model(path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    assert not any(k.endswith('attn.mask') for k in loaded.state_dict())


def test_generate_long_and_primed(model):
    """3x the trained length decodes as one mel (no seam); priming keeps the first columns."""
    model.eval()
    x, c = model.get_xc(_batch(2))
    tokens, mel = model.generate(c, total_cols=12, num_samples=2, seed=0, top_k=8)
    assert tokens.shape == (4, 5 * 12) and mel.shape == (4, 1, 80, 16 * 12)
    _, z = model.encode_to_z(x)
    tokens, mel = model.generate(c, x=x, prime_cols=2, greedy=True)
    assert torch.equal(tokens[:, :10], z[:, :10]) and mel.shape == (2, 1, 80, 64)


def test_code_cache_gives_the_same_loss_without_re_encoding(model, monkeypatch):
    """code_cache_size: the frozen codebook's tokens are reused for repeated mels (exact), only new
    mels are encoded, and the cache never grows past its size."""
    cached = instantiate_from_config(OmegaConf.create(
        OmegaConf.merge(TINY, {'params': {'code_cache_size': 5}})))
    cached.load_state_dict(model.state_dict())
    model.eval(), cached.eval()
    batch = _batch(4)
    x, c = model.get_xc(batch)
    ref_logits, ref_target = model(x, c)
    calls = []
    encode = cached.encode_to_z
    monkeypatch.setattr(cached, 'encode_to_z', lambda x: calls.append(x.shape[0]) or encode(x))
    for _ in range(2):
        logits, target = cached(x, c)
        assert torch.equal(target, ref_target) and torch.allclose(logits, ref_logits, atol=1e-6)
    assert calls == [4]                                   # encoded once, then served from the cache
    x2 = torch.cat([x[:2], _batch(6)['image'][4:, None]])  # 2 known + 2 new mels
    _, target2 = cached(x2, cached.get_xc(_batch(4))[1])
    assert calls == [4, 2] and torch.equal(target2[:2], ref_target[:2])
    assert torch.equal(target2[2:], model.encode_to_z(x2[2:])[1])
    assert len(cached._code_cache) == 5                   # capped
    with pytest.raises(ValueError, match='code_cache_size'):
        instantiate_from_config(OmegaConf.create(OmegaConf.merge(TINY, {'params': {'code_cache_size': -1}})))


def test_condition_dropout_model_trains_guides_and_loads_strictly(tmp_path):
    """p_uncond > 0: one extra key (the null condition), trained, exported, rebuilt and loaded strictly;
    guided generation runs. The GPT_config spelling means the same; a contradiction is an error."""
    from specvqgan.config import ConfigError
    from specvqgan.checkpoint import build_model as load_model, export as export_checkpoint
    torch.manual_seed(0)
    cfg = OmegaConf.merge(TINY, {'params': {'p_uncond': 0.3}})
    m = instantiate_from_config(cfg)
    assert m.transformer.p_uncond == 0.3
    plain = instantiate_from_config(OmegaConf.create(TINY))
    assert set(m.state_dict()) - set(plain.state_dict()) == {'transformer.null_cond'}
    m.base_learning_rate = 1e-3
    opt = m.configure_optimizers()
    m.train()
    null = m.transformer.null_cond.detach().clone()
    for _ in range(3):
        loss = m.shared_step(_batch(), 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert not torch.equal(m.transformer.null_cond, null)  # the null embedding is learned
    loaded = load_model(export_checkpoint(m, cfg, tmp_path / 'cfg.pt'))  # strict=True inside
    for k, v in m.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    c = loaded.get_xc(_batch(2))[1]
    tokens, mel = loaded.generate(c, num_samples=2, seed=0, top_k=8, guidance_scale=3.0)
    assert tokens.shape == (4, 20) and mel.shape == (4, 1, 80, 64)
    same = instantiate_from_config(OmegaConf.merge(TINY, {'params': {'transformer_config': {
        'params': {'GPT_config': {'p_uncond': 0.3}}}}}))
    assert set(same.state_dict()) == set(m.state_dict())
    with pytest.raises(ConfigError, match='p_uncond'):
        instantiate_from_config(OmegaConf.merge(cfg, {'params': {'transformer_config': {
            'params': {'GPT_config': {'p_uncond': 0.1}}}}}))

"""VQ perceptual loss: explicit LPAPS choice, delayed GAN start, adaptive weight, gradient routing."""
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from specvqgan.config import instantiate_from_config
from specvqgan.losses.gan import adopt_weight, hinge_d_loss, vanilla_d_loss
from specvqgan.losses.vqperceptual import DummyLoss, VQLPAPSWithDiscriminator

REF_TARGET = 'specvqgan.modules.losses.vqperceptual.VQLPAPSWithDiscriminator'


def _loss(**kw):
    torch.manual_seed(0)
    params = dict(disc_start=10, disc_in_channels=1, disc_ndf=8, disc_weight=0.8, perceptual_weight=0.0)
    params.update(kw)
    return VQLPAPSWithDiscriminator(**params)


def _fake_decoder(x):
    """A 'decoder' whose last layer is a 1x1 conv, so last_layer has a graph to x_hat."""
    conv = torch.nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(0.9)
        conv.bias.zero_()
    return conv, conv(x)


def test_gan_primitives_known_values():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.5])
    assert hinge_d_loss(real, fake).item() == pytest.approx(0.5 * (0.25 + 0.75))
    sp = F.softplus
    assert vanilla_d_loss(real, fake).item() == pytest.approx(
        0.5 * (sp(-real).mean() + sp(fake).mean()).item())
    assert adopt_weight(1.0, 9, threshold=10) == 0.0 and adopt_weight(1.0, 10, threshold=10) == 1.0


def test_perceptual_weight_without_checkpoint_is_an_error():
    ref_cfg = OmegaConf.create({'target': REF_TARGET, 'params': {'disc_start': 2001, 'disc_in_channels': 1}})
    with pytest.raises(ValueError, match=r'perceptual_weight=1.0 needs perceptual_ckpt.*perceptual_weight: 0'):
        instantiate_from_config(ref_cfg)
    ref_cfg.params.perceptual_weight = 0
    loss = instantiate_from_config(ref_cfg)
    assert isinstance(loss, VQLPAPSWithDiscriminator) and not loss.perceptual_loss.pretrained


def test_disc_off_before_disc_start_and_on_after(make_mels):
    loss = _loss().train()
    x, rec = make_mels(seed=0, t=32), make_mels(seed=1, t=32)
    d_before, log_b = loss(torch.tensor(0.1), x, rec, 1, global_step=9)
    d_after, log_a = loss(torch.tensor(0.1), x, rec, 1, global_step=10)
    assert d_before.item() == 0.0
    real, fake = loss.discriminator(x), loss.discriminator(rec)
    assert d_after.item() == pytest.approx(hinge_d_loss(real, fake).item(), rel=1e-5)
    assert d_after.item() > 0 and log_a['train/disc_loss'].item() == pytest.approx(d_after.item())


def test_generator_loss_before_and_after_disc_start(make_mels):
    loss = _loss(min_adapt_weight=1.0, max_adapt_weight=1.0).train()
    x = make_mels(seed=0, t=32)
    conv, rec = _fake_decoder(make_mels(seed=1, t=32))
    cb = torch.tensor(0.3)
    l_before, log_b = loss(cb, x, rec, 0, global_step=0, last_layer=conv.weight)
    nll = (x - rec).abs().mean()
    assert l_before.item() == pytest.approx((nll + cb).item(), rel=1e-6)
    assert log_b['train/disc_factor'].item() == 0.0
    l_after, log_a = loss(cb, x, rec, 0, global_step=10, last_layer=conv.weight)
    g = -loss.discriminator(rec).mean()
    # min = max = 1 clamps the adaptive ratio to 1: d_weight = disc_weight = 0.8 (paper configs)
    assert log_a['train/d_weight'].item() == pytest.approx(0.8)
    assert l_after.item() == pytest.approx((nll + 0.8 * g + cb).item(), rel=1e-5)


def test_adaptive_weight_is_gradient_norm_ratio(make_mels):
    loss = _loss(min_adapt_weight=0.0, max_adapt_weight=1e4).train()
    x = make_mels(seed=0, t=32)
    conv, rec = _fake_decoder(make_mels(seed=1, t=32))
    _, log = loss(torch.tensor(0.0), x, rec, 0, global_step=10, last_layer=conv.weight)
    nll = (x - rec).abs().mean()
    g = -loss.discriminator(rec).mean()
    gn = torch.autograd.grad(nll, conv.weight, retain_graph=True)[0].norm()
    gg = torch.autograd.grad(g, conv.weight, retain_graph=True)[0].norm()
    assert log['train/d_weight'].item() == pytest.approx((0.8 * gn / (gg + 1e-4)).item(), rel=1e-4)


def test_validation_without_autograd_uses_zero_weight(make_mels):
    loss = _loss().eval()
    x, rec = make_mels(seed=0, t=32), make_mels(seed=1, t=32)
    with torch.no_grad():
        total, log = loss(torch.tensor(0.1), x, rec, 0, global_step=100, split='val')
    assert log['val/d_weight'].item() == 0.0 and 'val/total_loss' in log
    with pytest.raises(RuntimeError, match='last_layer'):
        loss.train()(torch.tensor(0.1), x, rec, 0, global_step=100)


def test_gradient_routing(classifier_ckpt, make_mels):
    """Generator loss trains the decoder (not LPAPS, whose weights are frozen); disc loss only the disc."""
    path, _ = classifier_ckpt
    loss = _loss(perceptual_weight=1.0, perceptual_ckpt=str(path)).train()
    x = make_mels(seed=0, t=32)
    conv, rec = _fake_decoder(make_mels(seed=1, t=32))
    total, log = loss(torch.tensor(0.0), x, rec, 0, global_step=10, last_layer=conv.weight)
    assert log['train/p_loss'].item() > 0
    total.backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.perceptual_loss.parameters())
    conv.zero_grad()
    d_loss, _ = loss(torch.tensor(0.0), x, rec, 1, global_step=10)
    d_loss.backward()
    assert conv.weight.grad is None or conv.weight.grad.abs().sum() == 0
    assert all(p.grad is not None for p in loss.discriminator.parameters())


def test_perceptual_term_enters_rec_loss(classifier_ckpt, make_mels):
    path, _ = classifier_ckpt
    loss = _loss(perceptual_weight=2.0, perceptual_ckpt=str(path)).eval()
    x, rec = make_mels(seed=0, t=32), make_mels(seed=1, t=32)
    with torch.no_grad():
        _, log = loss(torch.tensor(0.0), x, rec, 0, global_step=0, split='val')
        p = loss.perceptual_loss(x, rec)
    expected = ((x - rec).abs() + 2.0 * p).mean()
    assert log['val/rec_loss'].item() == pytest.approx(expected.item(), rel=1e-6)
    assert log['val/p_loss'].item() == pytest.approx(p.mean().item(), rel=1e-6)


def test_vanilla_and_conditional_variants(make_mels):
    loss = _loss(disc_loss='vanilla', disc_conditional=True, disc_in_channels=2).train()
    x, rec, cond = make_mels(seed=0, t=32), make_mels(seed=1, t=32), make_mels(seed=2, t=32)
    d, _ = loss(torch.tensor(0.0), x, rec, 1, global_step=10, cond=cond)
    real = loss.discriminator(torch.cat((x, cond), 1))
    fake = loss.discriminator(torch.cat((rec, cond), 1))
    assert d.item() == pytest.approx(vanilla_d_loss(real, fake).item(), rel=1e-5)
    with pytest.raises(ValueError, match='disc_conditional'):
        loss(torch.tensor(0.0), x, rec, 1, global_step=10)
    with pytest.raises(ValueError, match='disc_loss'):
        _loss(disc_loss='wgan')


def test_dummy_loss_has_no_state_and_refuses_training():
    assert DummyLoss().state_dict() == {}
    cfg = OmegaConf.create({'target': 'specvqgan.modules.losses.DummyLoss'})
    with pytest.raises(RuntimeError, match='placeholder'):
        instantiate_from_config(cfg)()


def test_discriminator_runs_in_fp32_under_fp16_autocast_only():
    """16-mixed: the patch discriminator and its losses in fp32; bf16-mixed keeps bf16 (cheap and safe)."""
    from specvqgan.losses.vqperceptual import VQLPAPSWithDiscriminator

    loss = VQLPAPSWithDiscriminator(disc_start=0, disc_in_channels=1, disc_ndf=8, perceptual_weight=0.0)
    x = torch.rand(2, 1, 32, 32)
    for dtype, expected in ((torch.float16, torch.float32), (torch.bfloat16, torch.bfloat16)):
        with torch.autocast("cpu", dtype=dtype):
            assert loss._discriminate(x, None).dtype == expected
            d_loss, _ = loss(torch.tensor(0.0), x, x.flip(0), 1, global_step=0)
        assert torch.isfinite(d_loss)

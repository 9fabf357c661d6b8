"""MelGAN LightningModule: losses as in the reference trainer, and a few real training steps."""
import math

import pytest
import pytorch_lightning as pl
import torch

from vocoder.model import MelGAN


def harmonic_wavs(n: int, length: int, seed: int = 0) -> torch.Tensor:
    """(n, length) decaying harmonic tones: a non-trivial mel to reconstruct."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length) / 22050
    f0 = 100 + 400 * torch.rand(n, 1, generator=g)
    wav = sum(torch.sin(2 * math.pi * k * f0 * t + 6.28 * torch.rand(n, 1, generator=g)) / k for k in range(1, 6))
    return 0.3 * wav * torch.exp(-t * 3 * torch.rand(n, 1, generator=g))


def tiny_melgan() -> MelGAN:
    return MelGAN(ngf=8, n_residual_layers=1, ndf=8, n_layers_D=1)


def test_mel_input_matches_generator_length():
    model = tiny_melgan()
    wav = model.get_input({"wav": harmonic_wavs(2, 4096 + 100)})
    assert wav.shape == (2, 1, 4096)  # rounded down to whole hops
    mel = model.wav_to_mel(wav)
    assert mel.shape == (2, 80, 16) and 0 <= mel.min() and mel.max() <= 1
    assert model(mel).shape == wav.shape
    with pytest.raises(KeyError, match="'wav'"):
        model.get_input({"image": wav})


def test_losses_follow_reference_formulas():
    model = MelGAN(ngf=4, n_residual_layers=1, ndf=4, n_layers_D=2, num_D=2)
    real = [[torch.randn(2, 3, 5), torch.randn(2, 1, 4)] for _ in range(2)]
    fake = [[torch.randn(2, 3, 5), torch.randn(2, 1, 4)] for _ in range(2)]
    expected_d = sum(torch.relu(1 - r[-1]).mean() + torch.relu(1 + f[-1]).mean() for r, f in zip(real, fake))
    torch.testing.assert_close(model.discriminator_loss(real, fake), expected_d)
    w = 4.0 / (2 + 1) / 2
    expected_fm = sum(w * (f[0] - r[0]).abs().mean() for r, f in zip(real, fake))
    torch.testing.assert_close(model.feature_matching_loss(real, fake), expected_fm)


@pytest.mark.slow
def test_training_steps_lower_mel_l1():
    """30 manual-optimization iterations (G + D) on a fixed batch lower L1(mel(x), mel(G(mel(x))))."""
    pl.seed_everything(0)
    wav = harmonic_wavs(2, 4096)
    model = tiny_melgan()
    model.base_learning_rate = 1.5e-4  # x batch 2 = 3e-4

    def mel_l1() -> float:
        with torch.no_grad():
            mel = model.wav_to_mel(model.get_input({"wav": wav}))
            return (model.wav_to_mel(model(mel)) - mel).abs().mean().item()

    before = mel_l1()
    loader = torch.utils.data.DataLoader([{"wav": w} for w in wav], batch_size=2)
    trainer = pl.Trainer(max_steps=60, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu")  # 60 optimizer steps = 30 G + 30 D
    before_fit = {k: p.detach().clone() for k, p in model.named_parameters()}
    trainer.fit(model, loader)
    # both nets were optimised (hinge loss: the final D bias may legitimately get zero gradient)
    for key, p in model.named_parameters():
        assert key.endswith("layer_3.bias") or not torch.equal(p, before_fit[key]), key
    after = mel_l1()
    assert after < 0.95 * before, (before, after)

"""MelGAN modules: reference state-dict layout, golden output, weight norm, shapes."""
import json

import pytest
import torch

from vocoder.modules import Discriminator, Generator, WNConv1d, WNConvTranspose1d

from melgan_golden import golden_state_dict, melgan_tensor


@pytest.fixture(scope="module")
def golden(reference_dir):
    return torch.load(reference_dir / "golden" / "melgan.pt")


def test_state_dict_equals_manifest(reference_dir):
    manifest = json.loads((reference_dir / "manifests" / "melgan_generator.json").read_text())
    gen = Generator(80, ngf=32, n_residual_layers=3)
    sd = gen.state_dict()
    assert list(sd) == list(manifest["state_dict"])  # same keys, same order
    for key, meta in manifest["state_dict"].items():
        assert list(sd[key].shape) == meta["shape"], key
    assert sum(p.numel() for p in gen.parameters()) == manifest["num_parameters"] == 4266050


def test_golden_weights_checksums(golden):
    for key, shape in golden["state_dict_keys_shapes"][:6]:
        a = melgan_tensor(key, tuple(shape)).astype("float64")
        assert a.sum() == pytest.approx(golden["weight_checksums"][key]["sum"], rel=1e-9, abs=1e-9)


def test_golden_output(golden):
    gen = Generator(80, 32, 3).eval()
    gen.load_state_dict(golden_state_dict(golden), strict=True)
    with torch.no_grad():
        wav = gen(golden["mel"])
    assert wav.shape == golden["wav"].shape == (1, 1, 256 * 256)
    torch.testing.assert_close(wav, golden["wav"], atol=1e-5, rtol=0)
    gen.remove_weight_norm()  # the inference path folds weight norm: same output
    assert "model.1.weight" in gen.state_dict()
    with torch.no_grad():
        torch.testing.assert_close(gen(golden["mel"]), golden["wav"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("frames", [4, 7, 33])
def test_output_length_is_frames_times_hop(frames):
    gen = Generator(80, ngf=4, n_residual_layers=1).eval()
    with torch.no_grad():
        wav = gen(torch.rand(2, 80, frames))
    assert wav.shape == (2, 1, frames * 256)
    assert wav.abs().max() <= 1.0  # tanh output


def test_generator_rejects_bad_mel_shape():
    with pytest.raises(ValueError, match=r"\(B, 80, T\)"):
        Generator(80, 4, 1)(torch.rand(2, 64, 10))


@pytest.mark.parametrize("cls, kwargs", [(WNConv1d, dict(kernel_size=3, dilation=3)),
                                         (WNConvTranspose1d, dict(kernel_size=16, stride=8, padding=4))])
def test_weight_norm_matches_torch(cls, kwargs):
    """Same parametrisation as torch's weight_norm(dim=0): g initialised to ||v||, w = g v / ||v||."""
    torch.manual_seed(0)
    conv = cls(6, 5, **kwargs)
    assert [k for k, _ in conv.named_parameters()] == ["bias", "weight_g", "weight_v"]
    torch.testing.assert_close(conv.normalized_weight(), conv.weight_v)  # at init g = ||v||
    with torch.no_grad():
        conv.weight_g.mul_(2.0)
    plain_cls = torch.nn.Conv1d if cls is WNConv1d else torch.nn.ConvTranspose1d
    ref = plain_cls(6, 5, **kwargs)
    ref = torch.nn.utils.parametrizations.weight_norm(ref, dim=0)
    ref.parametrizations.weight.original0.data.copy_(conv.weight_g.data)
    ref.parametrizations.weight.original1.data.copy_(conv.weight_v.data)
    ref.bias.data.copy_(conv.bias.data)
    x = torch.randn(2, 6, 20)
    torch.testing.assert_close(conv(x), ref(x), atol=1e-6, rtol=1e-5)
    conv(x).square().sum().backward()
    assert conv.weight_g.grad is not None and conv.weight_v.grad.abs().sum() > 0
    torch.testing.assert_close(conv.to_plain()(x), conv(x), atol=1e-6, rtol=1e-5)


def test_discriminator_scales_and_features():
    disc = Discriminator(num_D=3, ndf=16, n_layers=4, downsampling_factor=4)
    outs = disc(torch.randn(2, 1, 8192))
    assert len(outs) == 3
    for scale, feats in enumerate(outs):
        assert len(feats) == 4 + 3                      # layer_0 .. layer_6
        length = 8192 // 2 ** scale
        assert feats[0].shape == (2, 16, length)
        assert feats[-1].shape == (2, 1, length // 4 ** 4)  # patch scores
    assert [f.shape[1] for f in outs[0]] == [16, 64, 256, 1024, 1024, 1024, 1]

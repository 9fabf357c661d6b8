"""MelGANVocoder / GriffinLimVocoder: checkpoint layouts, any length, batching, scales, errors."""
import argparse
import pathlib

import numpy as np
import pytest
import torch
import yaml

from vocoder.inference import GriffinLimVocoder, MelGANVocoder, load_generator, load_vocoder, read_reference_args
from vocoder.model import MelGAN
from vocoder.modules import Generator

from melgan_golden import golden_state_dict


def write_reference_folder(folder: pathlib.Path, state_dict: dict, **args) -> pathlib.Path:
    """best_netG.pt + args.yml exactly as the reference trainer writes them (yaml.dump of a Namespace)."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state_dict, folder / "best_netG.pt")
    namespace = argparse.Namespace(save_path="logs/vggsound", load_path=None, n_mel_channels=80, ngf=32,
                                   n_residual_layers=3, ndf=16, num_D=3, n_layers_D=4, downsamp_factor=4,
                                   lambda_feat=10.0, cond_disc=False, data_path=pathlib.PosixPath("data/x"),
                                   batch_size=16, seq_len=8192, epochs=3000, **args)
    (folder / "args.yml").write_text(yaml.dump(namespace))
    return folder


@pytest.fixture(scope="module")
def tiny_generator():
    torch.manual_seed(0)
    return Generator(80, ngf=4, n_residual_layers=2).eval()


def test_reference_folder_strict_load_and_golden(tmp_path, reference_dir):
    golden = torch.load(reference_dir / "golden" / "melgan.pt")
    folder = write_reference_folder(tmp_path / "vggsound", golden_state_dict(golden))
    assert "!!python/object:argparse.Namespace" in (folder / "args.yml").read_text()
    assert read_reference_args(folder / "args.yml") == {"n_mel_channels": 80, "ngf": 32, "n_residual_layers": 3}
    voc = MelGANVocoder.from_checkpoint(folder)
    # frames 0..31 of the output depend only on frames 0..39 (receptive field ~7 frames): a cheap exact check
    wav = voc.vocode(golden["mel"][0, :, :40].numpy())
    assert isinstance(wav, np.ndarray) and wav.dtype == np.float32 and wav.shape == (40 * 256,)
    np.testing.assert_allclose(wav[: 32 * 256], golden["wav"][0, 0, : 32 * 256].numpy(), atol=1e-5, rtol=0)


def test_reference_folder_errors(tmp_path, tiny_generator):
    with pytest.raises(FileNotFoundError, match="best_netG.pt"):
        MelGANVocoder.from_checkpoint(tmp_path)
    folder = write_reference_folder(tmp_path / "bad", tiny_generator.state_dict())  # args say ngf 32
    with pytest.raises(ValueError, match="does not match Generator"):
        load_generator(folder)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_generator(tmp_path / "missing.ckpt")


def test_reference_folder_with_small_args(tmp_path, tiny_generator):
    folder = tmp_path / "small"
    write_reference_folder(folder, tiny_generator.state_dict())
    text = (folder / "args.yml").read_text().replace("ngf: 32", "ngf: 4").replace("n_residual_layers: 3",
                                                                                  "n_residual_layers: 2")
    (folder / "args.yml").write_text(text)
    gen = load_generator(folder)
    mel = torch.rand(1, 80, 9)
    with torch.no_grad():
        torch.testing.assert_close(gen(mel), tiny_generator(mel))
    # a bare best_netG.pt next to its args.yml works too
    assert load_generator(folder / "best_netG.pt").state_dict().keys() == tiny_generator.state_dict().keys()


def test_our_checkpoints_load(tmp_path):
    torch.manual_seed(0)
    params = dict(ngf=4, n_residual_layers=1, ndf=4, n_layers_D=1)
    model = MelGAN(**params).eval()
    config = {"model": {"target": "vocoder.model.MelGAN", "params": params}}
    torch.save({"state_dict": model.state_dict(), "config": config}, tmp_path / "last.ckpt")  # train.py layout
    torch.save({"state_dict": model.state_dict(), "config": config["model"]}, tmp_path / "export.pt")
    mel = torch.rand(2, 80, 12)
    with torch.no_grad():
        expected = model(mel)[:, 0]
    for name in ("last.ckpt", "export.pt"):
        torch.testing.assert_close(MelGANVocoder.from_checkpoint(tmp_path / name).vocode(mel), expected,
                                   atol=1e-6, rtol=1e-5)
    torch.save({"state_dict": {"x.weight": torch.zeros(1)}}, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="no generator"):
        load_generator(tmp_path / "other.ckpt")


@pytest.mark.parametrize("frames", [1, 3, 4, 50])
def test_any_length_single_and_batch(tiny_generator, frames):
    voc = MelGANVocoder(tiny_generator)
    mel = torch.rand(3, 80, frames)
    batch = voc.vocode(mel)
    assert isinstance(batch, torch.Tensor) and batch.dtype == torch.float32 and batch.shape == (3, frames * 256)
    single = voc.vocode(mel[1])
    assert single.shape == (frames * 256,)
    torch.testing.assert_close(single, batch[1], atol=1e-6, rtol=1e-5)


def test_chunked_equals_whole(tiny_generator):
    """Long inputs are vocoded in chunks with context > the receptive field: identical output."""
    mel = torch.rand(2, 80, 100)
    whole = MelGANVocoder(tiny_generator, chunk_frames=None).vocode(mel)
    chunked = MelGANVocoder(tiny_generator, chunk_frames=30).vocode(mel)  # 4 chunks, the last one short
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=0)


def test_receptive_field_within_context():
    torch.manual_seed(0)
    gen = Generator(80, 32, 3).eval().remove_weight_norm()  # the paper generator
    mel = torch.rand(1, 80, 36)
    bumped = mel.clone()
    bumped[..., 18] += 1.0
    with torch.no_grad():
        changed = (gen(bumped) - gen(mel)).abs()[0, 0] > 0
    frames = changed.nonzero()[:, 0] / 256
    assert 18 - MelGANVocoder.CONTEXT_FRAMES < frames.min() and frames.max() < 19 + MelGANVocoder.CONTEXT_FRAMES
    assert frames.min() > 0 and frames.max() < 36  # the bump did not reach the edges: a real measurement


def test_mel_scales(tiny_generator):
    voc = MelGANVocoder(tiny_generator)
    mel01 = np.random.default_rng(0).random((80, 10), dtype=np.float32)
    np.testing.assert_allclose(voc.vocode(2 * mel01 - 1, input_range="-1,1"), voc.vocode(mel01), atol=1e-6)
    with pytest.raises(ValueError, match="input_range='-1,1'"):
        voc.vocode(2 * mel01 - 1)  # a [-1, 1] mel given as [0, 1]
    with pytest.raises(ValueError, match=r"\(80, T\)"):
        voc.vocode(np.zeros((64, 10)))
    with pytest.raises(ValueError, match="input_range must be"):
        voc.vocode(mel01, input_range="0-1")


def test_bf16_close_to_fp32(tiny_generator):
    mel = torch.rand(1, 80, 20)
    ref = MelGANVocoder(tiny_generator).vocode(mel)
    out = MelGANVocoder(tiny_generator, precision="bf16").vocode(mel)
    assert out.dtype == torch.float32
    assert (out - ref).abs().max() < 0.05 * ref.abs().max() + 1e-3


def test_griffin_lim_same_interface():
    voc = load_vocoder(None, n_iter=4)
    assert isinstance(voc, GriffinLimVocoder)
    mel = np.random.default_rng(0).random((2, 80, 12), dtype=np.float32)
    wav = voc.vocode(mel)
    assert wav.dtype == np.float32 and wav.shape == (2, 12 * 256)
    assert voc.vocode(torch.from_numpy(mel[0])).shape == (12 * 256,)

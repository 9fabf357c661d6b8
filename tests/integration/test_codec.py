"""Neural audio codec: `python -m specvqgan.codec encode|decode` and the Python API on the SoundStream
comparison clips (24 kHz) with a tiny random codebook (round trip mechanics, lengths, bitrate)."""
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from specvqgan.codec import Codes, SpectrogramCodec
from specvqgan.models.loading import load_codebook
from specvqgan.checkpoint import export as export_checkpoint
from specvqgan.models.vqgan import VQModel

REPO = Path(__file__).resolve().parents[2]
N_EMBED = 64
CONFIG = {"target": "specvqgan.models.vqgan.VQModel",
          "params": {"ddconfig": dict(double_z=False, z_channels=32, resolution=160, in_channels=1, out_ch=1, ch=32,
                                      ch_mult=[1, 1, 1, 1, 2], num_res_blocks=1, attn_resolutions=[10], dropout=0.0),
                     "lossconfig": None, "n_embed": N_EMBED, "embed_dim": 32}}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    model = VQModel(**CONFIG["params"])
    return export_checkpoint(model, CONFIG, tmp_path_factory.mktemp("codec") / "tiny_codebook.pt")


@pytest.fixture(scope="module")
def clips(reference_dir):
    found = sorted((reference_dir / "data" / "neural_audio_codec").glob("*/original.wav"))
    assert len(found) == 6
    return found


def test_python_round_trip_all_clips(ckpt, clips):
    codec = SpectrogramCodec.from_checkpoint(ckpt)
    for path in clips:
        wav, sr = sf.read(path, dtype="float32")
        codes = codec.encode(wav, sr)
        frames = 1 + math.ceil(len(wav) * 22050 / sr) // 256  # mel frames at 22050 Hz (+- resampling rounding)
        assert abs(codes.mel_frames - frames) <= 1
        assert codes.indices.shape == (5, math.ceil(codes.mel_frames / 16))
        assert codes.indices.min() >= 0 and codes.indices.max() < N_EMBED
        assert codes.bitrate == pytest.approx(math.log2(N_EMBED) * codes.indices.size / (len(wav) / sr))
        out, out_sr = codec.decode(codes)
        assert out_sr == sr and out.shape == wav.shape and np.isfinite(out).all()


def test_codes_file_round_trip_and_errors(ckpt, clips, tmp_path):
    codec = SpectrogramCodec(load_codebook(ckpt))
    wav, sr = sf.read(clips[0], dtype="float32")
    codes = codec.encode(wav, sr)
    codes.save(tmp_path / "c.npz")
    back = Codes.load(tmp_path / "c.npz")
    assert np.array_equal(back.indices, codes.indices) and (back.sr, back.n_samples) == (sr, len(wav))
    bad = Codes(codes.indices, n_embed=1024, sr=sr, n_samples=len(wav), mel_frames=codes.mel_frames)
    with pytest.raises(ValueError, match="1024 entries"):
        codec.decode(bad)
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_codebook(tmp_path / "nope.pt")


def test_reference_log_layout(ckpt, tmp_path):
    """An authors'-style run: Lightning ckpt without a config + <run>/configs/*-project.yaml (with its loss)."""
    import yaml

    state = torch.load(ckpt, weights_only=False)
    run = tmp_path / "2021-05-19T22-16-54_vas_codebook"
    (run / "checkpoints").mkdir(parents=True)
    (run / "configs").mkdir()
    torch.save({"state_dict": state["state_dict"], "global_step": 7}, run / "checkpoints" / "last.ckpt")
    params = dict(CONFIG["params"], lossconfig={"target": "specvqgan.modules.losses.vqperceptual.VQLPAPSWithDiscriminator",
                                                "params": {"disc_start": 2001, "perceptual_weight": 1.0}})
    (run / "configs" / "2021-05-19T22-16-54-project.yaml").write_text(
        yaml.safe_dump({"model": {"base_learning_rate": 1e-6, "target": CONFIG["target"], "params": params}}))
    model = load_codebook(run / "checkpoints" / "last.ckpt")  # the loss is not built (inference only)
    assert model.loss is None
    assert torch.equal(model.quantize.embedding.weight, state["state_dict"]["quantize.embedding.weight"])


@pytest.mark.slow
def test_cli_encode_decode(ckpt, clips, tmp_path, capsys):
    clip = clips[0]
    enc = subprocess.run([sys.executable, "-m", "specvqgan.codec", "encode", str(clip), str(tmp_path / "codes.npz"),
                          "--ckpt", str(ckpt)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert enc.returncode == 0, enc.stderr[-2000:]
    codes = Codes.load(tmp_path / "codes.npz")
    assert f"bitrate {codes.bitrate:.1f} bit/s" in enc.stdout
    # decode and the error path in-process (same entry point, without another interpreter start-up)
    from specvqgan.codec import main

    assert main(["decode", str(tmp_path / "codes.npz"), str(tmp_path / "out.wav"), "--ckpt", str(ckpt)]) == 0
    assert "bitrate" in capsys.readouterr().out
    info, orig = sf.info(tmp_path / "out.wav"), sf.info(clip)
    assert (info.samplerate, info.frames) == (orig.samplerate, orig.frames)
    assert main(["encode", str(tmp_path / "none.wav"), str(tmp_path / "x.npz"), "--ckpt", str(ckpt)]) == 2
    assert "none.wav" in capsys.readouterr().err


def test_codes_files_are_validated_with_named_errors(ckpt, clips, tmp_path, capsys):
    """Rate, length, index range, codebook size and grid shape are checked before decoding."""
    from specvqgan.codec import CodesError, main

    codec = SpectrogramCodec(load_codebook(ckpt))
    wav, sr = sf.read(clips[0], dtype="float32")
    good = codec.encode(wav, sr)
    fields = dict(indices=good.indices, n_embed=good.n_embed, sr=good.sr, n_samples=good.n_samples,
                  mel_frames=good.mel_frames)
    cases = {"rate": (dict(sr=10 ** 9), "sample rate 1000000000 Hz"),
             "long": (dict(n_samples=10 ** 12), "length 1000000000000 samples"),
             "frames": (dict(mel_frames=good.mel_frames * 3), "does not match"),
             "range": (dict(indices=good.indices + N_EMBED), "outside the codebook"),
             "negative": (dict(indices=good.indices - N_EMBED), "outside the codebook"),
             "size": (dict(n_embed=1), "codebook size n_embed=1")}
    for name, (change, msg) in cases.items():
        path = tmp_path / f"{name}.npz"
        np.savez(open(path, "wb"), **dict(fields, **change))
        with pytest.raises(CodesError, match=f"{name}.npz: .*{msg}"):
            Codes.load(path)
        assert main(["decode", str(path), str(tmp_path / "o.wav"), "--ckpt", str(ckpt)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{name}.npz" in err and msg in err     # one line, names the file
        assert not (tmp_path / "o.wav").exists()
    path = tmp_path / "pickled.npz"
    np.savez(open(path, "wb"), **dict(fields, indices=np.array([{"x": 1}], dtype=object)))
    with pytest.raises(CodesError, match="pickled.npz: cannot read"):      # object arrays are never unpickled
        Codes.load(path)
    rows = Codes(good.indices[:2], good.n_embed, good.sr, good.n_samples, good.mel_frames)   # valid alone
    with pytest.raises(CodesError, match="x.npz: 2x.* this codebook expects 5x"):
        codec.decode(rows, "x.npz")

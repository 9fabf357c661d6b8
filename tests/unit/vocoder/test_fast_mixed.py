"""The "mixed" precision (bf16 GEMMs in the wide stages, fp32 shortcuts and residual stream in the heaviest one,
fp32 elsewhere) and "auto", the default of the CLIs and the pipeline: its SNR against fp32 on the golden weights is
at least the documented 40 dB; fp32 stays exact."""
from pathlib import Path

import numpy as np
import pytest
import torch

from specvqgan.native import native_bf16
from vocoder.fast import FastGenerator, heaviest_stage, mixed_stages
from vocoder.inference import MelGANVocoder
from vocoder.modules import Generator

from melgan_golden import golden_state_dict

MIXED_MIN_SNR_DB = 40.0  # docs/vocoder.md: 40.9-41.1 dB measured on the golden weights and 3 VGGSound mels


def _snr_db(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float(10 * torch.log10(ref.pow(2).sum() / (out - ref).pow(2).sum()))


@pytest.fixture(scope="module")
def golden_generator(reference_dir):
    golden = torch.load(reference_dir / "golden" / "melgan.pt")
    gen = Generator(80, 32, 3).eval()
    gen.load_state_dict(golden_state_dict(golden), strict=True)
    return gen, golden


def test_heaviest_stage():
    assert heaviest_stage(Generator(80, 32, 3)) == 1  # 128 channels at 64x the mel rate
    assert heaviest_stage(Generator(80, 8, 1, ratios=(2, 8))) == 1


def test_auto_and_mixed_snr_and_fp32_is_exact(golden_generator):
    gen, golden = golden_generator
    mel = golden["mel"][0].numpy()  # (80, 256)
    assert MelGANVocoder(gen, precision="auto").precision == ("mixed" if native_bf16("cpu") else "fp32")
    auto = MelGANVocoder(gen, precision="mixed")
    assert auto.precision == "mixed" and auto.fast.bf16_stages == (0,) and auto.fast.res32_stages == (1,)
    assert [st.dtype for st in auto.fast.stages] == [torch.bfloat16, torch.float32, torch.float32, torch.float32]
    assert [st.w_mid.dtype for st in auto.fast.stages] == [torch.bfloat16, torch.bfloat16, torch.float32, torch.float32]
    assert all(b.ws.dtype == torch.float32 and b.w1.dtype == torch.bfloat16 and b.wino is None
               for b in auto.fast.stages[1].blocks)  # res32: fp32 shortcuts, bf16 GEMMs, no Winograd
    assert MelGANVocoder(gen, precision="auto", backend="eager").precision == "fp32"
    ref = MelGANVocoder(gen, precision="fp32").vocode(mel)
    np.testing.assert_allclose(ref, golden["wav"][0, 0].numpy(), atol=1e-5, rtol=0)  # fp32: the reference output
    out = auto.vocode(mel)
    assert out.shape == ref.shape == (256 * 256,) and out.dtype == np.float32
    assert _snr_db(torch.from_numpy(out), torch.from_numpy(ref)) >= MIXED_MIN_SNR_DB


def test_mixed_snr_on_a_second_clip(golden_generator, reference_dir):
    """The same bound on another real mel (a different VGGSound clip), batch of 2, chunked vocoding."""
    gen, _ = golden_generator
    mels = sorted((reference_dir / "data" / "vggsound" / "melspec_10s_22050hz").glob("*_mel.npy"))
    mel = np.stack([np.load(p)[:, 6:6 + 300].astype(np.float32) for p in mels[1:3]])  # (2, 80, 300)
    ref = torch.from_numpy(MelGANVocoder(gen, precision="fp32", chunk_frames=128).vocode(mel))
    out = torch.from_numpy(MelGANVocoder(gen, precision="mixed", chunk_frames=128).vocode(mel))
    assert out.shape == ref.shape == (2, 300 * 256)
    for o, r in zip(out, ref):
        assert _snr_db(o, r) >= MIXED_MIN_SNR_DB


def test_mixed_stages():
    assert mixed_stages(Generator(80, 32, 3)) == {"bf16_stages": (0,), "res32_stages": (1,)}
    assert mixed_stages(Generator(80, 8, 1, ratios=(8, 2))) == {"bf16_stages": (), "res32_stages": (0,)}


def test_res32_stage_close_to_fp32():
    """res32 stages (bf16 GEMMs, fp32 shortcut / residual) are closer to fp32 than the same stages in bf16
    (default-init weights: ~68 against ~58 dB), and not exact."""
    torch.manual_seed(0)
    gen = Generator(80, 16, 2).eval()
    mel = torch.rand(1, 80, 40)
    ref = FastGenerator(gen)(mel)
    res32 = FastGenerator(gen, res32_stages=(0, 1, 2, 3), winograd_channels=None)(mel)
    bf16 = FastGenerator(gen, bf16_stages=(0, 1, 2, 3), winograd_channels=None)(mel)
    assert res32.shape == ref.shape == (1, 1, 40 * 256) and res32.dtype == torch.float32
    assert _snr_db(bf16, ref) + 5.0 < _snr_db(res32, ref) < 100


def test_bf16_stages_option_errors():
    gen = Generator(80, 4, 1).eval()
    with pytest.raises(ValueError, match="bf16_stages"):
        FastGenerator(gen, torch.bfloat16, bf16_stages=(0,))
    with pytest.raises(ValueError, match="res32_stages"):
        FastGenerator(gen, torch.bfloat16, res32_stages=(0,))
    with pytest.raises(ValueError, match="in both"):
        FastGenerator(gen, bf16_stages=(0,), res32_stages=(0, 1))
    with pytest.raises(ValueError, match="fast CPU backend"):
        MelGANVocoder(gen, precision="mixed", backend="eager")
    with pytest.raises(ValueError, match="precision must be"):
        MelGANVocoder(gen, precision="fp16")

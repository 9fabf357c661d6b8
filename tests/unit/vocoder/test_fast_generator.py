"""vocoder.fast.FastGenerator: the same outputs as the Generator module (fp32), bounded bf16 error."""
import pytest
import torch

from vocoder.fast import FastGenerator
from vocoder.inference import MelGANVocoder
from vocoder.modules import Generator

from melgan_golden import golden_state_dict

CONFIGS = {
    "tiny": dict(ngf=4, n_residual_layers=2),  # paper ratios 8, 8, 2, 2
    "odd-ratios": dict(ngf=8, n_residual_layers=3, ratios=(5, 4, 3, 2)),  # odd r: output_padding 1
    "no-res": dict(ngf=8, n_residual_layers=0, ratios=(4, 3)),
}


def _module_output(gen: Generator, mel: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return gen(mel)


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("chunk_bytes", [None, 256])  # 256 B: many chunks per stage, context recomputed
@pytest.mark.parametrize("winograd", [None, 1])
def test_fast_equals_module(name, chunk_bytes, winograd):
    torch.manual_seed(0)
    gen = Generator(80, **CONFIGS[name]).eval()
    fast = FastGenerator(gen, chunk_bytes=chunk_bytes, winograd_channels=winograd)
    for frames in (4, 13):  # 4: the shortest the vocoder passes on; reflection at both ends of every chunk
        mel = torch.rand(2, 80, frames)
        out = fast(mel)
        assert out.dtype == torch.float32 and out.shape == (2, 1, frames * gen.hop_length)
        torch.testing.assert_close(out, _module_output(gen, mel), atol=1e-5, rtol=0)


def test_workspace_reuse_across_lengths():
    """Stage buffers are reused between calls: a long, a short, then a long input stay exact."""
    torch.manual_seed(0)
    gen = Generator(80, ngf=4, n_residual_layers=2).eval()
    fast = FastGenerator(gen, chunk_bytes=2048)
    for frames in (20, 6, 20):
        mel = torch.rand(1, 80, frames)
        torch.testing.assert_close(fast(mel), _module_output(gen, mel), atol=1e-5, rtol=0)


@pytest.mark.parametrize("winograd", [None, 128])
def test_fast_paper_generator_golden(reference_dir, winograd):
    """Paper-size generator, golden weights and mel: the fast path matches the reference output."""
    golden = torch.load(reference_dir / "golden" / "melgan.pt")
    gen = Generator(80, 32, 3).eval()
    gen.load_state_dict(golden_state_dict(golden), strict=True)
    fast = FastGenerator(gen, chunk_bytes=1 << 16, winograd_channels=winograd)  # several chunks per stage
    wav = fast(golden["mel"][:1, :, :40])
    # frames 0..31 of the output depend only on frames 0..39 (receptive field ~7 frames)
    torch.testing.assert_close(wav[0, 0, : 32 * 256], golden["wav"][0, 0, : 32 * 256], atol=1e-5, rtol=0)


def test_fast_bf16_error_bounded():
    torch.manual_seed(0)
    gen = Generator(80, ngf=8, n_residual_layers=3).eval()
    mel = torch.rand(1, 80, 12)
    ref = _module_output(gen, mel)
    out = FastGenerator(gen, torch.bfloat16)(mel)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    err = (out - ref).abs().max()
    assert 0 < err < 0.05 * ref.abs().max() + 1e-3  # not exact (bf16), but close


def test_vocoder_backends_agree_and_validate():
    torch.manual_seed(0)
    gen = Generator(80, ngf=4, n_residual_layers=2).eval()
    mel = torch.rand(2, 80, 9)
    fast = MelGANVocoder(gen, backend="fast")
    assert fast.fast is not None and MelGANVocoder(gen).fast is not None  # auto: fast on CPU
    eager = MelGANVocoder(gen, backend="eager")
    assert eager.fast is None
    torch.testing.assert_close(fast.vocode(mel), eager.vocode(mel), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="backend must be"):
        MelGANVocoder(gen, backend="onednn")
    with pytest.raises(ValueError, match="CPU only"):
        MelGANVocoder(gen, device="meta", backend="fast")
    with pytest.raises(ValueError, match=r"\(B, 80, T\)"):
        FastGenerator(gen)(torch.rand(80, 9))
    with pytest.raises(ValueError, match="float32 and bfloat16"):
        FastGenerator(gen, torch.float16)

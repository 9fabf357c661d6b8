"""FastGenerator int8 (explicit opt-in): shapes, bounded error vs fp32 (random and golden weights), the C
quantization kernels (vocoder/csrc/melgan.cpp) against the pure-torch fallback, MelGANVocoder(precision="int8")."""
import pytest
import torch

from vocoder import fast_int8 as q
from vocoder.fast_native import load_kernels
from vocoder.fast_ops import SLOPE, lrelu_window
from vocoder.fast import FastGenerator
from vocoder.inference import MelGANVocoder
from vocoder.modules import Generator

from melgan_golden import golden_state_dict

pytestmark = pytest.mark.skipif(not q.HAS_QLINEAR, reason="this torch build has no oneDNN qlinear ops")


def _module_output(gen: Generator, mel: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return gen(mel)


def _snr_db(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float(10 * torch.log10(ref.pow(2).sum() / (out - ref).pow(2).sum()))


def _lib():
    lib = load_kernels()
    if lib is None:
        pytest.skip("no C++ compiler: the int8 path runs its pure-torch fallback")
    return lib


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("chunk_bytes", [None, 256])  # 256 B: many chunks per stage, context recomputed
@pytest.mark.parametrize("ratios", [(8, 8, 2, 2), (5, 4, 3, 2)])  # odd r: output_padding 1
def test_int8_shape_and_error(native, chunk_bytes, ratios):
    torch.manual_seed(0)
    gen = Generator(80, ngf=8, n_residual_layers=3, ratios=ratios).eval()
    fg = FastGenerator(gen, torch.int8, chunk_bytes=chunk_bytes, int8_channels=1, native=native)
    assert all(st.int8 for st in fg.stages)
    for frames in (4, 13):  # 4: the shortest the vocoder passes on; reflection at both ends of every chunk
        mel = torch.rand(2, 80, frames)
        out, ref = fg(mel), _module_output(gen, mel)
        assert out.dtype == torch.float32 and out.shape == (2, 1, frames * gen.hop_length)
        assert (out - ref).abs().max() < 0.05 * ref.abs().max() + 1e-3
        assert _snr_db(out, ref) > 25


def test_int8_stage_selection_and_mixed_dtypes():
    """int8_channels picks the int8 stages (fp32 activations); the others run bf16 (as the first conv)."""
    torch.manual_seed(0)
    gen = Generator(80, ngf=8, n_residual_layers=2).eval()  # stage widths 64, 32, 16, 8
    fg = FastGenerator(gen, torch.int8, int8_channels=32)
    assert [st.int8 for st in fg.stages] == [True, True, False, False]
    assert [st.dtype for st in fg.stages] == [torch.float32] * 2 + [torch.bfloat16] * 2
    mel = torch.rand(1, 80, 9)
    out, ref = fg(mel), _module_output(gen, mel)
    assert (out - ref).abs().max() < 0.05 * ref.abs().max() + 1e-3


def test_native_kernels_match_torch_fallback():
    """The C kernels and the pure-torch path quantize alike (codes may differ by 1 on rounding ties)."""
    _lib()
    torch.manual_seed(0)
    gen = Generator(80, ngf=8, n_residual_layers=3).eval()
    mel = torch.rand(1, 80, 11)
    a = FastGenerator(gen, torch.int8, int8_channels=1, chunk_bytes=4096)(mel)
    b = FastGenerator(gen, torch.int8, int8_channels=1, chunk_bytes=4096, native=False)(mel)
    assert (a - b).abs().max() < 0.01 * b.abs().max()


@pytest.mark.parametrize("lo,hi,pad,zero_pad", [(0, 40, 3, 0), (5, 20, 9, 0), (30, 50, 1, 1), (0, 50, 1, 1)])
def test_quant_block_input_kernel(lo, hi, pad, zero_pad):
    """win / cols / xq / params of quant_block_input against the torch reference (reflection / zero pads)."""
    lib = _lib()
    torch.manual_seed(0)
    n, c, start = 50, 24, 0
    x = torch.randn(n, c) * 3
    m = hi - lo
    win = torch.empty(m + 2 * pad, c, dtype=torch.uint8)
    cols, xq = torch.empty(m, 3 * c, dtype=torch.uint8), torch.empty(m, c, dtype=torch.uint8)
    params = torch.empty(4)
    assert lib.quant_block_input(x.data_ptr(), c, start, n, lo, hi, pad, zero_pad, SLOPE, win.data_ptr(),
                                 cols.data_ptr(), xq.data_ptr(), params.data_ptr()) == 0
    w_lo, w_hi = max(lo - pad, 0), min(hi + pad, n)
    lo_x, hi_x = q.minmax(x[w_lo:w_hi])
    sp, zpp = q.qparams(q.lrelu_f(lo_x), q.lrelu_f(hi_x))
    sx, zpx = q.qparams(lo_x, hi_x)
    torch.testing.assert_close(params, torch.tensor([sp, zpp, sx, zpx]))
    ref_win = q.quantize(lrelu_window(x, 0, n, lo, hi, pad, zero_pad=bool(zero_pad)), q.lrelu_f(lo_x),
                             q.lrelu_f(hi_x)).u8
    assert (win.int() - ref_win.int()).abs().max() <= 1
    torch.testing.assert_close(cols, torch.cat([win[:m], win[pad:pad + m], win[2 * pad:]], 1))
    assert (xq.int() - q.quantize(x[lo:hi], lo_x, hi_x).u8.int()).abs().max() <= 1


def test_quant_block_input_too_short():
    lib = _lib()
    x, out = torch.randn(3, 4), torch.empty(64, dtype=torch.uint8)
    assert lib.quant_block_input(x.data_ptr(), 4, 0, 3, 0, 3, 3, 0, SLOPE, out.data_ptr(), None, None,
                                 torch.empty(4).data_ptr()) == 1


def test_int8_paper_generator_golden(reference_dir):
    """Paper-size generator, golden weights and mel: int8 stays within a (reported) bound of the reference.
    Measured (full 256-frame golden mel): max |diff| 4.2e-2 on a peak of 0.43, SNR 25 dB (bf16: 1.1e-2,
    35 dB); on random default-init weights int8 and bf16 are alike (~1.3e-3, 52 dB)."""
    golden = torch.load(reference_dir / "golden" / "melgan.pt")
    gen = Generator(80, 32, 3).eval()
    gen.load_state_dict(golden_state_dict(golden), strict=True)
    fg = FastGenerator(gen, torch.int8, chunk_bytes=1 << 16)  # several chunks per stage
    wav = fg(golden["mel"][:1, :, :40])
    assert wav.shape == (1, 1, 40 * 256)
    # frames 0..31 of the output depend only on frames 0..39 (receptive field ~7 frames)
    out, ref = wav[0, 0, : 32 * 256], golden["wav"][0, 0, : 32 * 256]
    assert (out - ref).abs().max() < 0.08
    assert _snr_db(out, ref) > 20


def test_vocoder_int8_precision():
    torch.manual_seed(0)
    gen = Generator(80, ngf=4, n_residual_layers=2).eval()
    mel = torch.rand(2, 80, 9)
    voc = MelGANVocoder(gen, precision="int8")
    assert voc.fast is not None and voc.fast.int8
    out, ref = voc.vocode(mel), MelGANVocoder(gen).vocode(mel)
    assert out.dtype == torch.float32 and out.shape == ref.shape == (2, 9 * 256)
    assert (out - ref).abs().max() < 0.05 * ref.abs().max() + 1e-3
    with pytest.raises(ValueError, match="int8"):
        MelGANVocoder(gen, precision="int8", backend="eager")
    with pytest.raises(ValueError, match="precision must be"):
        MelGANVocoder(gen, precision="fp16")

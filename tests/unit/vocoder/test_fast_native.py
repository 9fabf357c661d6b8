"""The C kernels of the fp32 / bf16 paths (vocoder/csrc/melgan.cpp: LeakyReLU windows, Winograd transforms,
last conv) against the pure-torch path of FastGenerator (native=False) and the Generator module."""
import pytest
import torch

from vocoder.fast_native import load_kernels
from vocoder.fast_ops import SLOPE, lrelu_window
from vocoder.fast import FastGenerator
from vocoder.modules import Generator


@pytest.fixture(scope="module")
def lib():
    lib = load_kernels()
    if lib is None:
        pytest.skip("no C++ compiler: FastGenerator runs its pure-torch path")
    return lib


@pytest.mark.parametrize("chunk_bytes", [None, 256])
@pytest.mark.parametrize("ratios", [(8, 8, 2, 2), (5, 4, 3, 2)])
def test_native_equals_torch_path(lib, chunk_bytes, ratios):
    torch.manual_seed(0)
    gen = Generator(80, ngf=8, n_residual_layers=3, ratios=ratios).eval()
    mel = torch.rand(2, 80, 7)
    with torch.no_grad():
        ref = gen(mel)
    for dtype, tol in ((torch.float32, 1e-5), (torch.bfloat16, 0.05 * float(ref.abs().max()) + 1e-3)):
        a = FastGenerator(gen, dtype, chunk_bytes=chunk_bytes, winograd_channels=1)
        b = FastGenerator(gen, dtype, chunk_bytes=chunk_bytes, winograd_channels=1, native=False)
        assert a._lib is not None and b._lib is None
        out = a(mel)
        assert out.shape == ref.shape and out.dtype == torch.float32
        assert (out - ref).abs().max() < tol
        assert (out - b(mel)).abs().max() < tol


@pytest.mark.parametrize("bf16", [False, True])
def test_post_conv_kernel(lib, bf16):
    """lrelu -> reflect(3) -> conv k7 (C -> 1) + bias, before tanh; C = 40: a vector part and a tail."""
    torch.manual_seed(0)
    n, c, k = 50, 40, 7
    x = torch.randn(n, c).to(torch.bfloat16 if bf16 else torch.float32)
    w, bias = torch.randn(c, k), 0.3
    out = torch.empty(n)
    assert lib.post_conv(x.data_ptr(), bf16, n, c, w.data_ptr(), k, bias, SLOPE, out.data_ptr()) == 0
    p = torch.nn.functional.pad(torch.nn.functional.leaky_relu(x.float().t()[None], SLOPE), (3, 3),
                                mode="reflect")
    ref = torch.nn.functional.conv1d(p, w[None], torch.tensor([bias]))[0, 0]
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert lib.post_conv(x.data_ptr(), bf16, 3, c, w.data_ptr(), k, bias, SLOPE, out.data_ptr()) == 1


@pytest.mark.parametrize("zero_pad,extra", [(0, 0), (1, 0), (0, 5)])
def test_lrelu_window_kernel(lib, zero_pad, extra):
    torch.manual_seed(0)
    x = torch.randn(30, 20)
    for dtype in (torch.float32, torch.bfloat16):
        xd = x.to(dtype)
        for lo, hi, pad in ((0, 30, 9), (10, 12, 3), (25, 30, 1)):
            a = lrelu_window(xd, 0, 30, lo, hi, pad, extra=extra, zero_pad=bool(zero_pad), lib=lib)
            b = lrelu_window(xd, 0, 30, lo, hi, pad, extra=extra, zero_pad=bool(zero_pad))
            assert a.dtype == dtype and torch.equal(a, b)

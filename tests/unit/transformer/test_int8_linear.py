"""The native int8 Linear (csrc/int8_linear.cpp) computes fbgemm's dynamic int8 GEMM bit for bit, on every
instruction-set path, without packing or copying the weight; FastGPT uses it and falls back to fbgemm."""
import ctypes
import platform
import subprocess

import pytest
import torch

from specvqgan import native
from specvqgan.modules.transformer import int8_linear as q8
from specvqgan.modules.transformer.fast_decode import FastGPT
from specvqgan.modules.transformer.int8_linear import (FbgemmInt8Linear, NativeInt8Linear, int8_linear,
                                                       quantize_int8)
from specvqgan.sampling import sample_tokens

lib = NativeInt8Linear.kernel()
needs_kernel = pytest.mark.skipif(lib is None, reason='no C++ compiler: fbgemm is used')

INPUTS = {
    'randn': lambda m, k: torch.randn(m, k) * 3,
    'positive': lambda m, k: torch.rand(m, k) + 0.1,      # the range is widened to contain 0
    'negative': lambda m, k: -torch.rand(m, k),
    'zero': lambda m, k: torch.zeros(m, k),               # scale 0 -> 0.1
    'tiny': lambda m, k: torch.randn(m, k) * 1e-6,        # below the smallest scale: the range is stretched
    'large': lambda m, k: torch.randn(m, k) * 1e4,
}


def _cases():
    torch.manual_seed(0)
    for K, N, M in [(16, 3, 1), (48, 7, 5), (100, 96, 13), (64, 1, 2), (1024, 37, 1), (1024, 96, 40),
                    (200, 5, 212)]:                       # K not a multiple of 64 / 32: the masked tails
        for kind, make in INPUTS.items():
            w = torch.randn(N, K) * 0.02
            w[N // 2] = 0                                 # an all-zero channel (eps scale)
            bias = torch.randn(N) if (K + len(kind)) % 2 else None
            yield f'{K}x{N}x{M}-{kind}', quantize_int8(w), bias, make(M, K)


@needs_kernel
@pytest.mark.parametrize('kernel_rows', [0, 12, 10 ** 6], ids=['int_mm', 'default', 'kernel'])
def test_native_equals_fbgemm_bit_for_bit(monkeypatch, kernel_rows):
    """Both int32 routes (the kernel's matrix-vector product, torch._int_mm for many rows) give fbgemm's bits."""
    monkeypatch.setattr(NativeInt8Linear, 'KERNEL_ROWS', kernel_rows)
    for name, qw, bias, x in _cases():
        fast = int8_linear(qw, bias)
        assert isinstance(fast, NativeInt8Linear)
        assert torch.equal(fast(x), FbgemmInt8Linear(qw, bias)(x)), name
        assert fast.int_mm                                # torch._int_mm worked where it was used


@pytest.mark.skipif(platform.machine() not in ('x86_64', 'AMD64') or native._compiler() is None,
                    reason='x86 instruction-set variants need g++ on x86')
@pytest.mark.parametrize('march', ['haswell', 'x86-64'], ids=['avx2', 'scalar'])
def test_other_instruction_sets_equal_fbgemm(tmp_path, march, monkeypatch):
    """The AVX2 and scalar paths (what a CPU without AVX-512 VNNI compiles) give the same bits."""
    so = tmp_path / f'int8_{march}.so'
    cmd = [native._compiler(), '-O3', f'-march={march}', '-mno-avx512f', '-fPIC', '-shared', '-std=c++17',
           '-fopenmp', '-fno-math-errno', str(q8._SOURCE), '-o', str(so), *native._torch_openmp()]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    variant = ctypes.CDLL(str(so))
    for fn, (restype, argtypes) in q8._SIGNATURES.items():
        getattr(variant, fn).restype, getattr(variant, fn).argtypes = restype, argtypes
    for rows in (0, 10 ** 6):
        monkeypatch.setattr(NativeInt8Linear, 'KERNEL_ROWS', rows)
        for name, qw, bias, x in _cases():
            assert torch.equal(NativeInt8Linear(qw, bias, variant)(x), FbgemmInt8Linear(qw, bias)(x)), name


@needs_kernel
def test_the_weight_is_used_in_place():
    torch.manual_seed(0)
    qw, bias = quantize_int8(torch.randn(64, 32)), torch.randn(64)
    lin = int8_linear(qw, bias)
    assert lin.w8.data_ptr() == qw.data_ptr() and torch.equal(lin.w8, qw.int_repr())   # a view, no copy
    x = torch.randn(3, 5, 32)                             # leading dimensions are kept
    assert torch.equal(lin(x), FbgemmInt8Linear(qw, bias)(x)) and lin(x).shape == (3, 5, 64)
    with pytest.raises(ValueError, match='32 features'):
        lin(torch.randn(2, 31))


@needs_kernel
def test_fast_gpt_packs_nothing_and_samples_as_fbgemm(gpt_factory, monkeypatch):
    gpt, c = gpt_factory('feats')
    made = []
    real = FbgemmInt8Linear.__init__
    monkeypatch.setattr(FbgemmInt8Linear, '__init__', lambda self, *a, **k: (made.append(1), real(self, *a, **k))[1])
    fast = FastGPT(gpt, 'int8', pack_in_background=True)
    a = sample_tokens(fast, c, 12, seed=3)
    assert not made and isinstance(fast.layers[0]['fc1'], NativeInt8Linear)
    monkeypatch.setattr(NativeInt8Linear, 'kernel', staticmethod(lambda: None))   # as without a compiler
    slow = FastGPT(gpt, 'int8')                          # (the same native attention)
    assert made and isinstance(slow.layers[0]['fc1'], FbgemmInt8Linear)
    assert torch.equal(a, sample_tokens(slow, c, 12, seed=3))


def test_without_the_kernel_fbgemm_is_used(monkeypatch):
    monkeypatch.setattr(NativeInt8Linear, 'kernel', staticmethod(lambda: None))
    qw = quantize_int8(torch.randn(8, 16))
    assert isinstance(int8_linear(qw, None), FbgemmInt8Linear)
    with pytest.raises(ValueError, match='per-channel qint8'):
        NativeInt8Linear(torch.quantize_per_tensor(torch.randn(4, 4), 0.1, 0, torch.qint8), None, lib)

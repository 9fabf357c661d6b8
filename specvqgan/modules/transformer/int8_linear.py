"""Per-channel int8 Linear layers of the int8 inference copy (:class:`~.fast_decode.FastGPT`).

Weights are qint8 tensors (:func:`quantize_int8`, what the inference bundle stores); activations are quantized
per call (dynamic quantization, torch's ``quantize_dynamic`` recipe). Two implementations of the same
arithmetic, bit for bit:

* :class:`NativeInt8Linear` (default on the CPU): a small C++ kernel (``csrc/int8_linear.cpp``, compiled on
  first use by :mod:`specvqgan.native`) on the qint8 tensor's own row-major storage: nothing is packed or
  copied, so a memory-mapped bundle is ready at once. Up to :attr:`NativeInt8Linear.KERNEL_ROWS` rows (a
  decoding step) its matrix-vector kernel streams each weight byte once (AVX-512 VNNI / AVX2); more rows (a
  prefill, batched decoding) take oneDNN's int8 GEMM (``torch._int_mm``, exact int32) between the kernel's
  quantization and output steps. Paper-size GPT, the 96 Linears of one step, 2 threads (AMX Xeon): 1 row
  24.5 ms (fbgemm 28.3), 10 rows 40 ms (46), 32 rows 55 ms (67), 212 rows 169 ms (218);
* :class:`FbgemmInt8Linear`: ``torch.ops.quantized.linear_dynamic`` on fbgemm's packed weight (packing: about
  0.1 s per 12 M weights, on background threads if asked): where the kernel cannot be built, or with
  ``SPECVQGAN_NATIVE=0``.
"""
from __future__ import annotations

import ctypes
import warnings
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn as nn


def quantize_int8(weight: torch.Tensor) -> torch.Tensor:
    """weight (out, in) float -> per-output-channel symmetric qint8 tensor (out, in), exactly as
    ``quantize_dynamic`` with ``per_channel_dynamic_qconfig`` quantizes it (its observer's scale
    max(|min|, |max|) / 127.5, at least float32 eps). A quantized tensor saves and loads with
    ``torch.load(weights_only=True)`` (the inference bundle stores it, :mod:`specvqgan.export`)."""
    w = weight.detach().float()
    lo, hi = torch.aminmax(w, dim=1)
    scale = torch.maximum(-lo.clamp(max=0), hi.clamp(min=0)) / 127.5
    scale = torch.maximum(scale, torch.tensor(torch.finfo(torch.float32).eps))
    with warnings.catch_warnings():       # quantized tensor creation is marked deprecated
        warnings.simplefilter('ignore')
        return torch.quantize_per_channel(w, scale.double(), torch.zeros(len(scale), dtype=torch.long), 0,
                                          torch.qint8)


def int8_linear(qweight: torch.Tensor, bias: Optional[torch.Tensor], executor=None,
                native: bool = True) -> Callable[[torch.Tensor], torch.Tensor]:
    """x (..., in) fp32 -> (..., out) fp32: ``quantize_dynamic``'s int8 GEMM (reduced-range activations) with the
    qint8 weight of :func:`quantize_int8`. ``native``: :class:`NativeInt8Linear` where the kernel builds (a CPU
    weight); else :class:`FbgemmInt8Linear`, packed in ``executor`` (a background thread) if given."""
    bias = None if bias is None else bias.detach().float().contiguous()
    kernel = NativeInt8Linear.kernel() if native and qweight.device.type == 'cpu' else None
    if kernel is not None:
        return NativeInt8Linear(qweight, bias, kernel)
    return FbgemmInt8Linear(qweight, bias, executor)


def linear_from_module(lin: nn.Linear, native: bool = True) -> Callable[[torch.Tensor], torch.Tensor]:
    """:func:`int8_linear` of an fp32 Linear: the GEMM of ``quantize_dynamic`` (which packs three times)."""
    return int8_linear(quantize_int8(lin.weight), lin.bias, native=native)


class FbgemmInt8Linear:
    """fbgemm's dynamic int8 Linear on a packed copy of the weight."""
    __slots__ = ('packed', 'future')
    op = torch.ops.quantized.linear_dynamic

    def __init__(self, qweight: torch.Tensor, bias: Optional[torch.Tensor], executor=None):
        prepack = torch.ops.quantized.linear_prepack
        self.packed = prepack(qweight, bias) if executor is None else None
        self.future = None if executor is None else executor.submit(prepack, qweight, bias)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.packed is None:
            self.packed, self.future = self.future.result(), None
        return self.op(x, self.packed, True)


_SOURCE = Path(__file__).parent / 'csrc' / 'int8_linear.cpp'
_I64, _PTR = ctypes.c_int64, ctypes.c_void_p
_SIGNATURES = {'int8_linear': (None, [_I64, _I64, _I64, _PTR, _I64, _PTR, _PTR, _PTR, _PTR, _PTR, _I64]),
               'int8_rowsum': (None, [_I64, _I64, _PTR, _PTR]),
               'int8_quantize': (ctypes.c_int32, [_I64, _I64, _PTR, _PTR, _PTR, _PTR]),
               'int8_epilogue': (None, [_I64, _I64, _PTR, ctypes.c_float, ctypes.c_int32, _PTR, _PTR, _PTR, _PTR])}


class NativeInt8Linear:
    """The C++ int8 Linear on the qint8 weight's own storage (an int8 view, no copy); the per-row weight sums of
    the zero-point correction are computed on the first call."""
    __slots__ = ('w8', 'scale', 'bias', 'rowsum', 'lib', 'int_mm')
    KERNEL_ROWS = 12   # the matrix-vector kernel up to this many rows, torch._int_mm above (measured crossover)

    def __init__(self, qweight: torch.Tensor, bias: Optional[torch.Tensor], lib: ctypes.CDLL):
        if qweight.qscheme() != torch.per_channel_affine or qweight.dtype != torch.qint8 or qweight.dim() != 2:
            raise ValueError(f'expected a per-channel qint8 (out, in) weight, got {qweight.dtype} '
                             f'{qweight.qscheme()} {tuple(qweight.shape)}')
        if bool(qweight.q_per_channel_zero_points().any()):
            raise ValueError('expected a symmetric qint8 weight (zero points 0), as quantize_int8 makes')
        qweight = qweight if qweight.is_contiguous() else qweight.contiguous()
        # an int8 view of the qint8 storage (possibly a memory-mapped bundle), which it keeps alive
        self.w8 = torch.empty(0, dtype=torch.int8).set_(qweight.untyped_storage(), qweight.storage_offset(),
                                                        qweight.shape, qweight.stride())
        self.scale = qweight.q_per_channel_scales().float().contiguous()
        self.bias, self.rowsum, self.lib, self.int_mm = bias, None, lib, True

    @staticmethod
    def kernel() -> Optional[ctypes.CDLL]:
        """The compiled library (built on first use, once per process), or None where it cannot be built."""
        from specvqgan import native
        return native.load_library('int8_linear', _SOURCE, _SIGNATURES)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        N, K = self.w8.shape
        if x.shape[-1] != K:
            raise ValueError(f'int8 Linear expects inputs of {K} features, got {tuple(x.shape)}')
        if self.rowsum is None:
            self.rowsum = torch.empty(N, dtype=torch.int32)
            self.lib.int8_rowsum(N, K, self.w8.data_ptr(), self.rowsum.data_ptr())
        lead = x.shape[:-1]
        x2 = x.reshape(-1, K).float().contiguous()    # no copy for the usual fp32 contiguous input
        M = x2.shape[0]
        y = torch.empty(M, N, dtype=torch.float32)
        bias = None if self.bias is None else self.bias.data_ptr()
        if M > self.KERNEL_ROWS and self.int_mm and self._gemm(x2, y, bias):
            return y.view(*lead, N)
        self.lib.int8_linear(M, K, N, x2.data_ptr(), K, self.w8.data_ptr(), self.scale.data_ptr(),
                             self.rowsum.data_ptr(), bias, y.data_ptr(), N)
        return y.view(*lead, N)

    def _gemm(self, x2: torch.Tensor, y: torch.Tensor, bias) -> bool:
        """Many rows: quantize, ``torch._int_mm`` (int8 x int8 -> exact int32), output step; False (the caller
        uses the kernel) for a code of 128 (a rounding tie at the top of the range: not an int8) or where
        ``_int_mm`` is unavailable (then never tried again)."""
        (M, K), N = x2.shape, self.w8.shape[0]
        q = torch.empty(M, K, dtype=torch.int8)
        scale, zp = ctypes.c_float(), ctypes.c_int32()
        if self.lib.int8_quantize(M, K, x2.data_ptr(), q.data_ptr(), ctypes.byref(scale), ctypes.byref(zp)) > 127:
            return False
        try:
            acc = torch._int_mm(q, self.w8.t()).contiguous()
        except (RuntimeError, AttributeError):
            self.int_mm = False
            return False
        self.lib.int8_epilogue(M, N, acc.data_ptr(), scale, zp, self.scale.data_ptr(), self.rowsum.data_ptr(),
                               bias, y.data_ptr())
        return True

"""The C kernels of the fast CPU generator (``vocoder/csrc/melgan.cpp``): ctypes signatures and loading.

:func:`load_kernels` builds them once per process through :mod:`specvqgan.native`; it returns ``None``
without a compiler or with ``SPECVQGAN_NATIVE=0``, and every caller then runs the same computation in
torch ops (fp32 results agree to ~1e-7, uint8 codes may differ by 1 on rounding ties).
"""
from __future__ import annotations

import ctypes
from pathlib import Path

from specvqgan.native import load_library

__all__ = ["SIGNATURES", "load_kernels"]

_i64, _ptr, _f32, _int = ctypes.c_int64, ctypes.c_void_p, ctypes.c_float, ctypes.c_int
SIGNATURES = {  # function: (restype, argtypes) of vocoder/csrc/melgan.cpp
    "quant_block_input": (_int, [_ptr, _i64, _i64, _i64, _i64, _i64, _i64, _int, _f32, _ptr, _ptr, _ptr, _ptr]),
    "quant_rows": (None, [_ptr, _i64, _ptr, _ptr]),
    "quant_rows_bf16": (None, [_ptr, _i64, _ptr, _ptr]),
    "post_conv": (_int, [_ptr, _int, _i64, _i64, _ptr, _i64, _f32, _f32, _ptr]),
    "lrelu_window": (_int, [_ptr, _int, _i64, _i64, _i64, _i64, _i64, _i64, _int, _i64, _f32, _ptr]),
    "wino_in": (None, [_ptr, _int, _i64, _i64, _i64, _ptr, _ptr, _ptr, _ptr]),
    "wino_out": (None, [_ptr, _ptr, _ptr, _ptr, _int, _i64, _i64, _i64, _f32, _ptr]),
}


def load_kernels() -> ctypes.CDLL | None:
    """The C kernels (vocoder/csrc/melgan.cpp, built once per process by specvqgan.native), or None."""
    return load_library("vocoder_melgan", Path(__file__).parent / "csrc" / "melgan.cpp", SIGNATURES)

"""Native TV-L1 optical flow (``feature_extraction/csrc/tvl1.cpp``): OpenCV's ``DualTVL1OpticalFlow``
computed the same way, several times faster: the ``flow_method="tvl1_native"`` path.

The C++ kernel follows opencv_contrib's ``optflow/src/tvl1flow.cpp`` operation for operation (pyramid,
warps, bicubic warping on the 1/32 pixel grid, 5 x 5 median, primal-dual steps, the stopping test on the
sequential float sum) with one fused, vectorised pass per inner iteration. Its resize follows the
opencv-python wheels' IPP resize (``ipp_resize=True``, the default: equal to ``cv2`` as installed) or
OpenCV's generic resize (``ipp_resize=False``: equal to ``cv2`` after ``cv2.ipp.setUseIPP(False)``); the
flows are then bit-identical to OpenCV's (tests/unit/feature_extraction/test_flow_native.py,
docs/benchmarks.md "Flow features"). Built on first use by :mod:`specvqgan.native`; :func:`load` returns
None where it cannot be (no compiler, ``SPECVQGAN_NATIVE=0``), and :mod:`feature_extraction.flow` then
uses OpenCV's ``tvl1``.
"""
from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Optional

import numpy as np

from specvqgan.native import load_library

_ptr, _int, _dbl = ctypes.c_void_p, ctypes.c_int, ctypes.c_double
SIGNATURES = {  # function: (restype, argtypes) of feature_extraction/csrc/tvl1.cpp
    "tvl1_flow": (ctypes.c_long, [_ptr, _ptr, _int, _int, _ptr, _dbl, _dbl, _dbl, _int, _int, _dbl, _int, _int,
                                  _dbl, _int, _int]),
    "tvl1_resize": (None, [_ptr, _int, _int, _ptr, _int, _int, _dbl, _dbl, _int]),
    "tvl1_remap": (None, [_ptr, _ptr, _int, _int, _ptr, _ptr]),
    "tvl1_median5": (None, [_ptr, _int, _int]),
}
SOURCE = Path(__file__).parent / "csrc" / "tvl1.cpp"
# OpenCV DualTVL1OpticalFlow defaults (gamma 0, no initial flow)
DEFAULTS = dict(tau=0.25, lam=0.15, theta=0.3, nscales=5, warps=5, epsilon=0.01, inner=30, outer=10,
                scale_step=0.8, median=5)


def load() -> Optional[ctypes.CDLL]:
    """The compiled kernel (built once per process), or None where it cannot be built."""
    return load_library("tvl1_flow", SOURCE, SIGNATURES)


def tvl1_flow(i0: np.ndarray, i1: np.ndarray, lib: Optional[ctypes.CDLL] = None, ipp_resize: bool = True,
              **params) -> np.ndarray:
    """(H, W) uint8 grey frames -> (H, W, 2) float32 flow from i0 to i1 in pixels (x, y), as OpenCV's
    ``DualTVL1OpticalFlow_create(**params).calc(i0, i1, None)``; ``params``: :data:`DEFAULTS` names.
    Releases the GIL while it runs (pairs may run on threads). RuntimeError if the kernel is unavailable."""
    lib = lib or load()
    if lib is None:
        raise RuntimeError(f"the native TV-L1 kernel ({SOURCE.name}) is unavailable (no compiler or SPECVQGAN_NATIVE=0)")
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown TV-L1 parameters {sorted(unknown)}; choose from {sorted(DEFAULTS)}")
    p = {**DEFAULTS, **params}
    a, b = (np.ascontiguousarray(x, dtype=np.uint8) for x in (i0, i1))
    if a.ndim != 2 or a.shape != b.shape or min(a.shape) < 3:
        raise ValueError(f"tvl1_flow expects two equal (H, W) grey frames of at least 3 x 3, got {a.shape} and {b.shape}")
    if p["median"] not in (0, 1, 5):
        raise ValueError(f"median filter size {p['median']} is not supported (1 or 5)")
    out = np.empty((*a.shape, 2), np.float32)
    rc = lib.tvl1_flow(a.ctypes.data, b.ctypes.data, a.shape[0], a.shape[1], out.ctypes.data, p["tau"], p["lam"],
                       p["theta"], p["nscales"], p["warps"], p["epsilon"], p["inner"], p["outer"], p["scale_step"],
                       p["median"], int(ipp_resize))
    if rc < 0:
        raise ValueError(f"tvl1_flow rejected the arguments {p}")
    return out

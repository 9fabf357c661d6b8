"""Dense optical flow between consecutive frames, encoded as TSN / RegNet flow images.

RegNet (``extract_rgb_flow.py``, followed by the paper's BN-Inception features, section 4) resizes each
21.5 fps frame to 340 x 256, converts it to grey, computes OpenCV's TV-L1 flow (default parameters)
between consecutive frames, clips the x/y displacements to +-20 px and maps them linearly to [0, 255]
(``(f + 20) * 255 / 40``, stored as 8-bit images). :func:`flow_images` does the same in memory.

Methods (:data:`METHODS`):

* ``"tvl1"``: the reference, TV-L1 with OpenCV's ``DualTVL1OpticalFlow`` default parameters, computed by
  the native kernel (:mod:`feature_extraction.flow_native`, ~5x fewer CPU-s than OpenCV, the same flows bit
  for bit) where it builds, else by OpenCV (``cv2.optflow`` from ``opencv-contrib-python-headless``).
* ``"tvl1_fast"``: the same estimator stopped earlier (:data:`TVL1_PRESETS`); see docs/benchmarks.md
  ("Flow features") for its speed and its agreement with ``"tvl1"``.
* ``"tvl1_opencv"``: ``"tvl1"`` always computed by OpenCV (~0.6 s per 340 x 256 pair on one core).
* ``"tvl1_native"``: ``"tvl1"`` always computed by the native kernel (RuntimeError where it cannot build).
* ``"tvl1_torch"``: :mod:`feature_extraction.flow_torch`, the same TV-L1 scheme in torch, all pairs of a
  chunk in one batch on ``device`` (default: CUDA when available): the GPU path (untested on a GPU so far).
* ``"farneback"``: OpenCV core, Gunnar Farneback's polynomial expansion, ~40x faster, a different
  estimator: features from it are not interchangeable with TV-L1's.

The frame pairs are independent: they are computed on ``threads`` threads (default ``cv2.getNumThreads()``,
which the extraction workers set to their share of the cores), OpenCV releasing the GIL; TV-L1 itself is
single-threaded, and the result does not depend on the thread count (the native kernel releases the GIL
too).

Alignment: N frames give N - 1 flows; row ``k >= 1`` is the motion from frame ``k - 1`` to frame ``k``
and row 0 repeats row 1, so the flow rows line up with the RGB rows (frame ``k`` at ``k / 21.5`` s).
(RegNet's image writer overwrites its first frame, which shifts both its RGB and flow rows one frame
later and leaves N - 1 rows; the datasets pad/trim to 215 rows either way.)
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

BOUND = 20.0
# TV-L1 variants: OpenCV DualTVL1OpticalFlow parameters that differ from its defaults (tau 0.25,
# lambda 0.15, theta 0.3, 5 scales, 5 warps, epsilon 0.01, 30 inner / 10 outer iterations, scale step
# 0.8, median filter 5); the iterations stop once the mean squared update per pixel is below epsilon^2.
TVL1_PRESETS = {"tvl1": {}, "tvl1_fast": {"Epsilon": 0.02}}
METHODS = (*TVL1_PRESETS, "tvl1_opencv", "tvl1_native", "tvl1_torch", "farneback")
TORCH_BATCH = 32     # frame pairs per tvl1_torch batch (~0.5 GB at 340 x 256)
# OpenCV DualTVL1 setter name -> feature_extraction.flow_native parameter (Gamma: OpenCV only)
NATIVE_PARAMS = {"Tau": "tau", "Lambda": "lam", "Theta": "theta", "ScalesNumber": "nscales",
                 "WarpingsNumber": "warps", "Epsilon": "epsilon", "InnerIterations": "inner",
                 "OuterIterations": "outer", "ScaleStep": "scale_step", "MedianFiltering": "median"}
log = logging.getLogger(__name__)
_WARNED: set[str] = set()   # methods whose fallback to OpenCV was logged


def _cv2():
    try:
        import cv2
    except ImportError as err:   # pragma: no cover - depends on the installation
        raise ImportError("optical flow needs OpenCV: pip install opencv-contrib-python-headless") from err
    return cv2


def _native(preset: dict):
    """A native TV-L1 flow function with OpenCV setter parameters ``preset``, or None where the kernel is
    unavailable or a parameter is not supported natively. Its resize follows this OpenCV's (IPP or not),
    so that the flows equal ``cv2.optflow.DualTVL1OpticalFlow``'s."""
    if not set(preset) <= set(NATIVE_PARAMS) or preset.get("MedianFiltering", 5) not in (1, 5):
        return None
    from feature_extraction import flow_native

    lib = flow_native.load()
    if lib is None:
        return None
    params = {NATIVE_PARAMS[k]: v for k, v in preset.items()}
    ipp = bool(_cv2().ipp.useIPP())
    return lambda a, b: flow_native.tvl1_flow(a, b, lib, ipp_resize=ipp, **params)


def _opencv_tvl1(method: str, preset: dict):
    cv2 = _cv2()
    if not hasattr(cv2, "optflow"):
        raise ImportError(f"flow method {method!r} needs cv2.optflow (opencv-contrib-python-headless); "
                          "use flow_method='farneback' with plain OpenCV")
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    for name, value in preset.items():
        getattr(tvl1, f"set{name}")(value)
    return lambda a, b: tvl1.calc(a, b, None)


def _estimator(method: str):
    """A new flow function (grey a, grey b) -> (H, W, 2) float32; each thread needs its own (TV-L1 keeps
    its buffers in the object)."""
    cv2 = _cv2()
    if method in TVL1_PRESETS:
        native = _native(TVL1_PRESETS[method])
        if native is None and method not in _WARNED:
            _WARNED.add(method)
            log.warning("flow method %r: the native TV-L1 kernel is unavailable; using OpenCV's "
                        "(the same flows, ~5x slower)", method)
        return native or _opencv_tvl1(method, TVL1_PRESETS[method])
    if method == "tvl1_opencv":
        return _opencv_tvl1(method, {})
    if method == "tvl1_native":
        native = _native({})
        if native is None:
            raise RuntimeError("flow method 'tvl1_native': the native TV-L1 kernel is unavailable (no C++ "
                               "compiler or SPECVQGAN_NATIVE=0); use 'tvl1' (falls back to OpenCV)")
        return native
    if method == "tvl1_torch":
        return None
    if method == "farneback":
        return lambda a, b: cv2.calcOpticalFlowFarneback(a, b, None, pyr_scale=0.5, levels=3, winsize=15,
                                                         iterations=3, poly_n=5, poly_sigma=1.2, flags=0)
    raise ValueError(f"unknown flow method {method!r}; choose from {METHODS}")


def encode_flow(flow: np.ndarray, bound: float = BOUND) -> np.ndarray:
    """(..., 2) float displacements in pixels -> uint8 ``round((clip(f, -bound, bound) + bound) * 255 /
    (2 * bound))`` (0 px -> 128 after rounding 127.5 half-to-even; RegNet's JPEG writer rounds the same)."""
    f = (np.clip(flow, -bound, bound) + bound) * (255.0 / (2 * bound))
    return np.rint(f).astype(np.uint8)


def flow_images(frames: np.ndarray, method: str = "tvl1", bound: float = BOUND,
                threads: int | None = None, device=None) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB frames -> (N, H, W, 2) uint8 flow images (x, y), aligned as in the module
    docstring. A single frame gives zero motion (all 128)."""
    frames = _check(frames)
    if len(frames) == 1:
        _estimator(method)                  # validates the method
        return encode_flow(np.zeros((1, *frames.shape[1:3], 2), np.float32), bound)
    return flow_rows(frames, np.arange(len(frames)), np.arange(len(frames)), method, bound, threads, device)


def row_pairs(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(from, to) frame indices of flow rows ``rows`` (row 0 repeats row 1; needs 2 or more frames)."""
    rows = np.asarray(rows, dtype=np.int64)
    return np.where(rows == 0, 0, rows - 1), np.where(rows == 0, 1, rows)


def flow_rows(frames: np.ndarray, frame_ids, rows, method: str = "tvl1", bound: float = BOUND,
              threads: int | None = None, device=None) -> np.ndarray:
    """Flow images of rows ``rows`` (as :func:`flow_images` numbers them) from the frames ``frame_ids``
    (sorted; ``frames[i]`` is frame ``frame_ids[i]``; they must include :func:`row_pairs` of ``rows``)
    -> (len(rows), H, W, 2) uint8; each distinct pair is computed once, on ``threads`` threads (default
    ``cv2.getNumThreads()``; the result is the same for any count); ``device``: torch device of
    ``"tvl1_torch"`` (default CUDA when available, else CPU)."""
    frames, frame_ids = _check(frames), np.asarray(frame_ids)
    cv2 = _cv2()
    _estimator(method)                      # validates the method before any work
    src, dst = row_pairs(rows)
    pairs = list(dict.fromkeys(zip(src.tolist(), dst.tolist())))
    grey = {i: cv2.cvtColor(np.ascontiguousarray(frames[np.searchsorted(frame_ids, i)]), cv2.COLOR_RGB2GRAY)
            for i in sorted({i for p in pairs for i in p})}
    local = threading.local()

    def one(pair):
        if not hasattr(local, "calc"):
            local.calc = _estimator(method)
        return encode_flow(local.calc(grey[pair[0]], grey[pair[1]]), bound)

    threads = max(1, min(len(pairs), cv2.getNumThreads() if threads is None else int(threads)))
    if method == "tvl1_torch":
        flows = _torch_pairs(grey, pairs, bound, device)
    elif threads == 1:
        flows = [one(p) for p in pairs]
    else:
        with ThreadPoolExecutor(threads, thread_name_prefix="flow") as pool:
            flows = list(pool.map(one, pairs))
    at = dict(zip(pairs, flows))
    return np.stack([at[p] for p in zip(src.tolist(), dst.tolist())])


def _torch_pairs(grey: dict, pairs: list, bound: float, device) -> list[np.ndarray]:
    import torch

    from feature_extraction.flow_torch import tvl1_flow

    device = torch.device(device if device is not None else "cuda" if torch.cuda.is_available() else "cpu")
    out = []
    for i in range(0, len(pairs), TORCH_BATCH):
        chunk = pairs[i:i + TORCH_BATCH]
        a = torch.from_numpy(np.stack([grey[p[0]] for p in chunk])).to(device)
        b = torch.from_numpy(np.stack([grey[p[1]] for p in chunk])).to(device)
        out.extend(encode_flow(tvl1_flow(a, b).cpu().numpy(), bound))
    return out


def _check(frames) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"flow_images expects (N, H, W, 3) uint8 RGB frames, got {frames.shape} {frames.dtype}")
    return frames

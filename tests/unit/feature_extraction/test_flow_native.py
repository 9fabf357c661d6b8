"""Native TV-L1 (feature_extraction/csrc/tvl1.cpp): its building blocks and its flows equal OpenCV's bit for
bit, pairs on threads, the OpenCV fallback where the kernel is unavailable, bad arguments.

Equality, not a tolerance: the kernel performs OpenCV's float operations in OpenCV's order (OpenCV's
dispatched AVX2 code, which uses FMA: on a CPU without AVX2 OpenCV itself rounds differently, so the
exact comparisons are skipped there)."""
from pathlib import Path

import numpy as np
import pytest

from feature_extraction import flow as flowmod
from feature_extraction import flow_native
from feature_extraction.flow import flow_images, flow_rows

cv2 = pytest.importorskip("cv2")
LIB = flow_native.load()
pytestmark = pytest.mark.skipif(LIB is None, reason="native kernels unavailable (no compiler)")


def _avx2() -> bool:
    try:
        return " avx2" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


exact = pytest.mark.skipif(not _avx2(), reason="OpenCV rounds differently without AVX2/FMA")


@pytest.fixture
def ipp(request):
    """cv2's IPP switch set to the test's parameter, restored afterwards."""
    before = cv2.ipp.useIPP()
    cv2.ipp.setUseIPP(request.param)
    if cv2.ipp.useIPP() != request.param:
        pytest.skip("this OpenCV has no IPP")
    yield request.param
    cv2.ipp.setUseIPP(before)


def _ptr(a):
    return a.ctypes.data


@exact
@pytest.mark.parametrize("ipp", [True, False], indirect=True)
def test_resize_equals_cv2(ipp):
    rng = np.random.default_rng(0)
    for h, w in [(256, 340), (131, 174), (37, 41)]:
        src = (rng.random((h, w)) * 255).astype(np.float32)
        down = cv2.resize(src, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_LINEAR)
        up = cv2.resize(down, (w, h), interpolation=cv2.INTER_LINEAR)
        ours_down, ours_up = np.zeros_like(down), np.zeros_like(up)
        LIB.tvl1_resize(_ptr(src), h, w, _ptr(ours_down), *down.shape, 0.8, 0.8, int(ipp))
        LIB.tvl1_resize(_ptr(down), *down.shape, _ptr(ours_up), h, w, w / down.shape[1], h / down.shape[0], int(ipp))
        np.testing.assert_array_equal(ours_down, down)
        np.testing.assert_array_equal(ours_up, up)


@exact
def test_cubic_warp_and_median_equal_cv2():
    rng = np.random.default_rng(1)
    h, w = 60, 70
    src = (rng.random((h, w)) * 255).astype(np.float32)
    u1, u2 = (rng.standard_normal((2, h, w)) * 4).astype(np.float32)   # reaches past every border
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    ours = np.zeros_like(src)
    LIB.tvl1_remap(_ptr(src), _ptr(ours), h, w, _ptr(u1), _ptr(u2))
    np.testing.assert_array_equal(ours, cv2.remap(src, xs + u1, ys + u2, cv2.INTER_CUBIC))
    med = src.copy()
    LIB.tvl1_median5(_ptr(med), h, w)
    np.testing.assert_array_equal(med, cv2.medianBlur(src, 5))


def _real_pair(reference_dir, box=((100, 196), (120, 248))):
    from feature_extraction.media import read_frames

    frames = read_frames(reference_dir / "data/vas/videos/drum/video_02480.mp4", 22 / 21.5, 21.5, (256, 340))
    (y0, y1), (x0, x1) = box
    return [cv2.cvtColor(np.ascontiguousarray(f[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY) for f in frames[20:22]]


@exact
@pytest.mark.parametrize("preset", [{}, {"Epsilon": 0.02, "WarpingsNumber": 3, "ScalesNumber": 3}])
def test_flow_equals_opencv_on_a_real_crop(reference_dir, preset):
    """A real 96 x 128 crop (a drummer moving), with cv2's IPP on (as installed) and off."""
    a, b = _real_pair(reference_dir)
    params = {flowmod.NATIVE_PARAMS[k]: v for k, v in preset.items()}
    before = cv2.ipp.useIPP()
    try:
        for use_ipp in (True, False):
            cv2.ipp.setUseIPP(use_ipp)
            tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
            for name, value in preset.items():
                getattr(tvl1, f"set{name}")(value)
            ref = tvl1.calc(a, b, None)
            ours = flow_native.tvl1_flow(a, b, LIB, ipp_resize=cv2.ipp.useIPP(), **params)
            assert ours.shape == ref.shape == (96, 128, 2) and np.abs(ref).mean() > 0.2   # there is motion
            np.testing.assert_array_equal(ours, ref)
    finally:
        cv2.ipp.setUseIPP(before)


def test_methods_threads_and_alignment(reference_dir):
    a, b = _real_pair(reference_dir, ((100, 164), (120, 200)))
    frames = np.stack([np.repeat(f[..., None], 3, -1) for f in (a, b, a)])
    rows = np.array([0, 1, 2, 2])
    serial = flow_rows(frames, np.arange(3), rows, "tvl1_native", threads=1)
    assert serial.shape == (4, 64, 80, 2) and serial.dtype == np.uint8
    np.testing.assert_array_equal(serial, flow_rows(frames, np.arange(3), rows, "tvl1_native", threads=3))
    np.testing.assert_array_equal(serial[0], serial[1])                 # row 0 repeats the first motion
    np.testing.assert_array_equal(serial, flow_images(frames, "tvl1", threads=2)[rows])
    if _avx2():
        np.testing.assert_array_equal(serial, flow_images(frames, "tvl1_opencv")[rows])


def test_without_the_kernel_tvl1_falls_back_to_opencv(monkeypatch, caplog):
    frames = np.stack([np.repeat(f[..., None], 3, -1) for f in _moving_pair()])
    native = flow_images(frames, "tvl1")
    monkeypatch.setattr(flow_native, "load", lambda: None)
    monkeypatch.setattr(flowmod, "_WARNED", set())
    with caplog.at_level("WARNING", logger="feature_extraction.flow"):
        fallback = flow_images(frames, "tvl1")
    assert "native TV-L1 kernel is unavailable" in caplog.text
    np.testing.assert_array_equal(fallback, flow_images(frames, "tvl1_opencv"))
    assert np.abs(fallback.astype(int) - native).max() <= (0 if _avx2() else 2)
    with pytest.raises(RuntimeError, match="'tvl1_native': the native TV-L1 kernel is unavailable"):
        flow_images(frames, "tvl1_native")


def _moving_pair(h=40, w=48):
    rng = np.random.default_rng(0)
    big = cv2.GaussianBlur((rng.random((h + 8, w + 8)) * 255).astype(np.float32), (0, 0), 2.0)
    big = (255 * (big - big.min()) / (big.max() - big.min())).astype(np.uint8)
    return big[4:4 + h, 4:4 + w], big[2:2 + h, 5:5 + w]


def test_bad_arguments():
    a, b = _moving_pair()
    with pytest.raises(ValueError, match="two equal"):
        flow_native.tvl1_flow(a, b[:-1], LIB)
    with pytest.raises(ValueError, match=r"unknown TV-L1 parameters \['gamma'\]"):
        flow_native.tvl1_flow(a, b, LIB, gamma=0.1)
    with pytest.raises(ValueError, match="median filter size 3"):
        flow_native.tvl1_flow(a, b, LIB, median=3)
    with pytest.raises(ValueError, match="unknown flow method 'tvl1_nativ'"):
        flow_images(np.stack([np.repeat(f[..., None], 3, -1) for f in (a, b)]), "tvl1_nativ")

"""Optical flow images: TSN/RegNet encoding, alignment with the RGB rows, known motions."""
import numpy as np
import pytest

from feature_extraction.flow import encode_flow, flow_images

pytest.importorskip("cv2")


def test_encoding_clips_to_20_pixels_and_maps_to_uint8():
    f = np.array([0.0, 20.0, -20.0, 100.0, -1e9, 10.0, -5.0], np.float32)
    np.testing.assert_array_equal(encode_flow(f), [128, 255, 0, 255, 0, 191, 96])
    assert encode_flow(f).dtype == np.uint8


def _moving_texture(n=4, h=64, w=80, dx=3, dy=-2):
    """n frames of a smooth random texture shifted by (dx, dy) pixels per frame."""
    import cv2

    rng = np.random.default_rng(0)
    big = cv2.GaussianBlur((rng.random((h + 40, w + 40)) * 255).astype(np.float32), (0, 0), 2.5)
    big = (255 * (big - big.min()) / (big.max() - big.min())).astype(np.uint8)
    frames = [big[20 - k * dy:20 - k * dy + h, 20 - k * dx:20 - k * dx + w] for k in range(n)]
    return np.stack([np.repeat(f[..., None], 3, -1) for f in frames])


@pytest.mark.parametrize("method", ["farneback", "tvl1"])
def test_known_translation(method):
    frames = _moving_texture()
    flows = flow_images(frames, method)
    assert flows.shape == (4, 64, 80, 2) and flows.dtype == np.uint8
    np.testing.assert_array_equal(flows[0], flows[1])          # row 0 repeats the first motion
    centre = flows[1:, 16:-16, 16:-16].astype(np.float32)
    dx, dy = (centre.mean(axis=(0, 1, 2)) - 127.5) * 40 / 255  # back to pixels
    assert abs(dx - 3) < 0.5 and abs(dy + 2) < 0.5, (dx, dy)


def test_static_and_single_frames_give_zero_motion():
    still = np.repeat(_moving_texture(n=1), 3, axis=0)
    flows = flow_images(still, "farneback")
    assert np.abs(flows.astype(int) - 128).max() <= 1
    one = flow_images(still[:1], "tvl1")
    assert one.shape == (1, 64, 80, 2) and (one == 128).all()


def test_bad_input():
    with pytest.raises(ValueError, match="unknown flow method 'lk'"):
        flow_images(_moving_texture(n=2), "lk")
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\) uint8"):
        flow_images(np.zeros((2, 8, 8, 3), np.float32), "farneback")

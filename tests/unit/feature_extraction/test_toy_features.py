"""feature_extraction.toy_features.ColorGrid: known cases and input checks."""
import numpy as np
import pytest

from feature_extraction.toy_features import ColorGrid


def test_color_grid_known_case():
    ex = ColorGrid(grid=2, cell=4)
    assert ex.dim == 12 and ex.frame_size == (8, 8)
    frames = np.zeros((3, 8, 8, 3), np.uint8)
    frames[1, :4, 4:] = (255, 0, 0)          # frame 1: top-right cell pure red
    frames[2] = 51                           # frame 2: uniform grey 0.2
    frames[2, 0, 0] = 255                    # one bright pixel in the top-left cell (1/16 of it)
    out = ex(frames)
    assert out.shape == (3, 12) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0], 0)
    cells = out[1].reshape(2, 2, 3)          # (row, col, rgb)
    np.testing.assert_allclose(cells[0, 1], [1, 0, 0])
    assert cells.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(out[2].reshape(2, 2, 3)[0, 0], 0.2 + 0.8 / 16, rtol=1e-6)
    np.testing.assert_allclose(out[2].reshape(2, 2, 3)[1, 1], 0.2, rtol=1e-6)


def test_color_grid_default_dim_and_shape_error():
    ex = ColorGrid()
    assert (ex.dim, ex.frame_size, ex.name) == (48, (32, 32), "color")
    with pytest.raises(ValueError, match=r"\(N, 32, 32, 3\)"):
        ex(np.zeros((2, 16, 16, 3), np.uint8))

import numpy as np
import pytest

from specvqgan.data.transforms import CropFeats, CropImage, ResampleFrames, crop_2d, crop_start, pad_or_trim


def test_center_crop_offsets_match_reference():
    mel = np.arange(80 * 860, dtype=np.float32).reshape(80, 860)
    out = CropImage([80, 848])({"input": mel})["input"]
    np.testing.assert_array_equal(out, mel[:, 6:854])
    feats = np.arange(215 * 7, dtype=np.float32).reshape(215, 7)
    out = CropFeats([212, 7])({"feature": feats})["feature"]
    np.testing.assert_array_equal(out, feats[1:213])


def test_random_crop_stays_in_range_and_varies():
    np.random.seed(0)
    x = np.arange(860)[None].repeat(2, 0)
    starts = set()
    for _ in range(300):
        out = crop_2d(x, (2, 848), random_crop=True)
        assert out.shape == (2, 848)
        start = int(out[0, 0])
        np.testing.assert_array_equal(out[0], np.arange(start, start + 848))
        starts.add(start)
    assert starts == set(range(13))  # every offset 0..12, none outside


def test_crop_errors():
    with pytest.raises(ValueError, match="cannot crop 10 out of 5"):
        crop_start(5, 10)
    with pytest.raises(ValueError, match="does not fit"):
        crop_2d(np.zeros((4, 4)), (2, 2), starts=(3, 0))


@pytest.mark.parametrize("n, expected", [(1, [106]), (5, [35, 77, 119, 162, 204]), (212, list(range(212)))])
def test_resample_frames_indices(n, expected):
    feats = np.arange(212, dtype=np.float32)[:, None].repeat(3, 1)
    out = ResampleFrames(n)({"feature": feats})["feature"]
    assert out.shape == (n, 3)
    np.testing.assert_array_equal(out[:, 0], expected)


def test_resample_frames_repeat_and_too_short():
    idx = ResampleFrames(2, times_to_repeat_after_resample=3).indices(9)
    np.testing.assert_array_equal(idx, [3, 3, 3, 7, 7, 7])  # linspace(0,9,2)=[0,4.5] + 9//3
    with pytest.raises(ValueError, match="cannot resample 5 frames out of 3"):
        ResampleFrames(5).indices(3)


def test_pad_or_trim():
    x = np.ones((216, 2), dtype=np.float32)
    assert pad_or_trim(x, 215).shape == (215, 2)
    short = pad_or_trim(x[:214], 215)
    assert short.dtype == np.float32 and short[214].sum() == 0 and short[:214].min() == 1

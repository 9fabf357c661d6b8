import numpy as np
import pytest

from specvqgan import shapes


def test_ten_second_defaults():
    s = shapes.SequenceShape.for_duration(10.0)
    assert shapes.mel_frames(10.0) == 860 and s.mel_len == 848
    assert (s.latent_rows, s.latent_cols, s.n_tokens) == (5, 53, 265)
    assert shapes.feat_frames(10.0) == 215 and s.n_feats == 212
    assert s.block_size == 477


@pytest.mark.parametrize("n, block", [(1, 266), (5, 270), (212, 477)])
def test_block_size_for_feature_variants(n, block):
    assert shapes.SequenceShape(n_feats=n).block_size == block
    assert shapes.SequenceShape(n_feats=n, class_token=True).block_size == block + 1


def test_grid_shapes_and_unknown_condition():
    s = shapes.SequenceShape.for_grid(5, 10, n_feats=40, class_token=True)
    assert (s.mel_bins, s.mel_len, s.n_tokens, s.n_cond, s.block_size, s.feats_per_col) == (80, 160, 50, 41, 91, 4)
    unknown = shapes.SequenceShape.for_grid(5, 10)  # e.g. codebook indices of the plain GPT as condition
    assert unknown.n_tokens == 50 and unknown.n_cond is None and unknown.block_size is None


def test_resample_indices():
    np.testing.assert_array_equal(shapes.resample_indices(5), [35, 77, 119, 162, 204])
    np.testing.assert_array_equal(shapes.resample_indices(212), np.arange(212))
    assert shapes.resample_indices(1).tolist() == [106]
    with pytest.raises(ValueError):
        shapes.resample_indices(300)


def test_other_durations():
    s = shapes.SequenceShape.for_duration(2.0)
    assert s.mel_len % 16 == 0 and s.mel_len <= shapes.mel_frames(2.0)
    assert s.n_feats == s.mel_len // 4

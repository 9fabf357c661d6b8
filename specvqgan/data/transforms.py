"""Item transforms of the reference datasets, in numpy (no albumentations).

* :class:`Crop` / :class:`CropImage` / :class:`CropFeats`: center or random crop of a 2-D array to a
  fixed shape. The center offset is ``(size - crop) // 2`` per axis (albumentations' ``CenterCrop``):
  mel 860 -> 848 keeps columns 6:854, features 215 -> 212 keep rows 1:213 (paper section 6.1).
* :class:`ResampleFrames`: keep ``n`` evenly spaced feature frames (1, 5 or 212 of 212; paper
  section 4.3 "number of features").
* :func:`pad_or_trim`: zero-pad or trim the feature rows to a fixed length (215 for 10 s).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from specvqgan.shapes import resample_indices


def crop_start(size: int, crop: int, random_crop: bool = False) -> int:
    """First index of a window of ``crop`` inside ``size``: centered, or uniform over all positions.

    Raises:
        ValueError: ``crop`` > ``size``.
    """
    if crop > size:
        raise ValueError(f"cannot crop {crop} out of {size}")
    if random_crop:
        return int(np.random.randint(0, size - crop + 1))
    return (size - crop) // 2


def crop_2d(x: np.ndarray, shape: Sequence[int], starts: Sequence[int] | None = None,
            random_crop: bool = False) -> np.ndarray:
    """Crop a (H, W) array to ``shape`` = (h, w).

    Args:
        x: (H, W) array.
        shape: (h, w) with h <= H, w <= W.
        starts: explicit (row, col) offsets; otherwise centered or random per ``random_crop``.
    Returns:
        (h, w) view of ``x``.
    """
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {x.shape}")
    (H, W), (h, w) = x.shape, shape
    if starts is None:
        starts = (crop_start(H, h, random_crop), crop_start(W, w, random_crop))
    r, c = starts
    if not (0 <= r <= H - h and 0 <= c <= W - w):
        raise ValueError(f"crop {(h, w)} at {(r, c)} does not fit in an array of shape {x.shape}")
    return x[r:r + h, c:c + w]


class Crop:
    """Crop ``item[key]`` (2-D) to ``cropped_shape``; centered unless ``random_crop``.

    Mirrors the reference ``Crop(cropped_shape, random_crop)``; ``cropped_shape=None`` is a no-op.
    """

    key = "input"

    def __init__(self, cropped_shape: Sequence[int] | None = None, random_crop: bool = False) -> None:
        self.cropped_shape = None if cropped_shape is None else tuple(int(s) for s in cropped_shape)
        self.random_crop = bool(random_crop)

    def __call__(self, item: dict) -> dict:
        if self.cropped_shape is not None:
            item[self.key] = crop_2d(item[self.key], self.cropped_shape, random_crop=self.random_crop)
        return item


class CropImage(Crop):
    """Crop the mel spectrogram ``item['input']`` (mel_num, T) -> (mel_num, spec_crop_len)."""

    key = "input"


class CropFeats(Crop):
    """Crop the features ``item['feature']`` (feat_len, D) -> (feat_crop_len, D)."""

    key = "feature"


def pad_or_trim(feats: np.ndarray, length: int) -> np.ndarray:
    """(T, D) -> (length, D): rows beyond ``length`` dropped, missing rows zero (reference rule)."""
    out = np.zeros((length, feats.shape[1]), dtype=feats.dtype)
    n = min(length, feats.shape[0])
    out[:n] = feats[:n]
    return out


class ResampleFrames:
    """Keep ``feat_sample_size`` evenly spaced rows of ``item['feature']`` (T, D).

    Rows ``linspace(0, T, n, endpoint=False) + T // (n + 1)`` (DESIGN.md section 4): for 5 of 212 they
    are [35, 77, 119, 162, 204], for 1 of 212 [106], and 212 of 212 is the identity.

    Args:
        feat_sample_size: n, the number of rows kept.
        times_to_repeat_after_resample: repeat each kept row this many times (abc -> aabbcc).
    """

    def __init__(self, feat_sample_size: int, times_to_repeat_after_resample: int | None = None) -> None:
        self.feat_sample_size = int(feat_sample_size)
        self.times_to_repeat_after_resample = times_to_repeat_after_resample

    def indices(self, feat_len: int) -> np.ndarray:
        """Row indices kept out of ``feat_len`` rows (repeats included)."""
        if feat_len < self.feat_sample_size:
            raise ValueError(f"cannot resample {self.feat_sample_size} frames out of {feat_len}")
        idx = resample_indices(self.feat_sample_size, feat_len)
        if self.times_to_repeat_after_resample is not None and self.times_to_repeat_after_resample > 1:
            idx = np.repeat(idx, self.times_to_repeat_after_resample)
        return idx

    def __call__(self, item: dict) -> dict:
        item["feature"] = item["feature"][self.indices(item["feature"].shape[0])]
        return item

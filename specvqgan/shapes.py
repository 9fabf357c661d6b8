"""Derived sequence sizes: one place that turns a clip duration and a codebook into every length
the models use (DESIGN.md section 1). Nothing here is typed by hand in a YAML.

10 s defaults (paper section 6.1): 860 mel frames -> crop 848 -> 5 x 53 latent grid (265 tokens);
215 visual features at 21.5 fps -> crop 212 (= 848 / 4, one feature per 4 mel frames).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from specvqgan.audio import DURATION_10S, HOP, MEL_FRAMES_10S, N_MELS, SR

FEAT_FPS = 21.5           # visual feature rate: SR / HOP / 4 ~= 21.53
FEATS_10S = 215
FEAT_CROP_10S = 212
MELS_PER_FEAT = 4
LATENT_DOWNSAMPLE = 16    # the codebook's 4 down-sampling levels (ch_mult of length 5)


def mel_frames(duration: float) -> int:
    """Mel frames the reference keeps for a clip: 860 for 10 s (= samples // HOP - 1)."""
    if abs(duration - DURATION_10S) < 1e-9:
        return MEL_FRAMES_10S
    return int(round(duration * SR)) // HOP - 1


def mel_crop(frames: int, multiple: int = LATENT_DOWNSAMPLE) -> int:
    """Largest multiple of ``multiple`` <= frames (860 -> 848)."""
    crop = frames // multiple * multiple
    if crop <= 0:
        raise ValueError(f"{frames} mel frames is too short: need at least {multiple}")
    return crop


def feat_frames(duration: float) -> int:
    """Visual feature frames at 21.5 fps (10 s -> 215)."""
    return int(round(duration * FEAT_FPS))


def feat_crop(mel_crop_len: int) -> int:
    """Feature frames matching a mel crop (848 -> 212)."""
    return mel_crop_len // MELS_PER_FEAT


def resample_indices(n: int, total: int = FEAT_CROP_10S) -> np.ndarray:
    """Indices of the ``n`` features kept out of ``total`` (DESIGN.md section 4):
    ``linspace(0, total, n, endpoint=False) + total // (n + 1)``; identity when n == total.
    For 5 of 212: [35, 77, 119, 162, 204]."""
    if n == total:
        return np.arange(total)
    if not 0 < n < total:
        raise ValueError(f"cannot pick {n} features out of {total}")
    return (np.linspace(0, total, n, endpoint=False) + total // (n + 1)).astype(np.int64)


@dataclass(frozen=True)
class SequenceShape:
    """Token layout of a (condition ; audio) sequence.

    Args:
        mel_bins: mel rows of the spectrogram (80).
        mel_len: mel frames after the crop (848 for 10 s).
        n_feats: visual feature positions in the prefix (1, 5 or 212; 0 for class-only; None when the
            condition's length is not known from the config, e.g. codebook indices of the plain GPT).
        class_token: whether a class token follows the features.
        downsample: codebook down-sampling factor in both axes (16).
    """

    mel_bins: int = N_MELS
    mel_len: int = 848
    n_feats: Optional[int] = FEAT_CROP_10S
    class_token: bool = False
    downsample: int = LATENT_DOWNSAMPLE

    @property
    def latent_rows(self) -> int:
        """Latent grid height (80 / 16 = 5)."""
        return self.mel_bins // self.downsample

    @property
    def latent_cols(self) -> int:
        """Latent grid width (848 / 16 = 53)."""
        return self.mel_len // self.downsample

    @property
    def n_tokens(self) -> int:
        """Audio tokens per clip (265)."""
        return self.latent_rows * self.latent_cols

    @property
    def feats_per_col(self) -> int:
        """Visual feature rows per latent column (16 mel frames / 4 = 4)."""
        return self.downsample // MELS_PER_FEAT

    @property
    def n_cond(self) -> Optional[int]:
        """Condition positions before the audio tokens (None when ``n_feats`` is unknown)."""
        return None if self.n_feats is None else self.n_feats + int(self.class_token)

    @property
    def block_size(self) -> Optional[int]:
        """GPT context: condition + audio tokens (477 for 212 features + 265 tokens; None when the
        condition's length is unknown)."""
        return None if self.n_cond is None else self.n_cond + self.n_tokens

    @classmethod
    def for_grid(cls, rows: int, cols: int, n_feats: Optional[int] = None, class_token: bool = False,
                 downsample: int = LATENT_DOWNSAMPLE) -> "SequenceShape":
        """Shape of a ``rows`` x ``cols`` latent grid (a codebook's 5 x 53) and its condition."""
        return cls(mel_bins=int(rows) * downsample, mel_len=int(cols) * downsample, n_feats=n_feats,
                   class_token=class_token, downsample=downsample)

    @classmethod
    def for_duration(cls, duration: float, n_feats: int | None = None, class_token: bool = False) -> "SequenceShape":
        """Shape for clips of ``duration`` seconds; ``n_feats`` defaults to the full feature crop."""
        crop = mel_crop(mel_frames(duration))
        return cls(mel_len=crop, n_feats=feat_crop(crop) if n_feats is None else n_feats,
                   class_token=class_token)

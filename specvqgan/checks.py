"""Checks on arrays entering or leaving the project (mels, features, generated mels, waveforms): a NaN or
Inf becomes an error naming the file or sample, never a silent NaN loss or undefined PCM."""
from __future__ import annotations

import numpy as np


class NonFiniteError(ValueError):
    """An array holds NaN or Inf values; the message names where it came from."""


def require_finite(x, where: str, what: str = "values"):
    """Return ``x`` (a numpy array or torch tensor) unchanged if every element is finite; otherwise raise
    :class:`NonFiniteError` ``"<where>: <what> contain N NaN and M Inf of K values"``."""
    arr = x.detach().float().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    if arr.dtype.kind not in "fc" or np.isfinite(arr).all():
        return x
    nan, inf = int(np.isnan(arr).sum()), int(np.isinf(arr).sum())
    raise NonFiniteError(f"{where}: {what} contain {nan} NaN and {inf} Inf of {arr.size} values")

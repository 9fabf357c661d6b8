"""Input checks shared by the metric functions."""
from __future__ import annotations

import numpy as np
import torch


def as_2d_array(x, name: str, dtype=np.float64) -> np.ndarray:
    """Tensor/array-like (N, D) -> numpy array of ``dtype``; clear error otherwise."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D (N, D) array, got shape {x.shape}")
    if len(x) < 2:
        raise ValueError(f"{name}: need at least 2 samples, got {len(x)}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return x.astype(dtype, copy=False)

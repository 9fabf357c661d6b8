"""Kernel Inception Distance (Bińkowski et al. 2018), as used in the paper (section 5).

Unbiased MMD^2 with the polynomial kernel k(x, y) = (gamma x.y + coef0)^degree, averaged over
``subsets`` random subsets of ``subset_size`` samples drawn without replacement from each set with
``np.random.RandomState(seed)`` (first from ``feats_a``, then from ``feats_b``, subset by subset, exactly
like the reference, so the numbers are reproducible). The subset size is clipped to the smaller set.
Computed in float32, as the reference does on Melception's float32 features.
"""
from __future__ import annotations

import logging

import numpy as np

from evaluation.metrics._common import as_2d_array

logger = logging.getLogger(__name__)


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None,
                      coef0: float = 1) -> np.ndarray:
    """(n, D), (m, D) -> (n, m) kernel matrix; gamma defaults to 1 / D."""
    if gamma is None:
        gamma = 1.0 / x.shape[1]
    return (x @ y.T * gamma + coef0) ** degree


def polynomial_mmd(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None,
                   coef0: float = 1) -> float:
    """Unbiased MMD^2 estimate between two equally sized samples x, y (m, D)."""
    m = len(x)
    k_xx = polynomial_kernel(x, x, degree, gamma, coef0)
    k_yy = polynomial_kernel(y, y, degree, gamma, coef0)
    k_xy = polynomial_kernel(x, y, degree, gamma, coef0)
    sum_xx = (k_xx.sum(axis=1) - np.diagonal(k_xx)).sum()
    sum_yy = (k_yy.sum(axis=1) - np.diagonal(k_yy)).sum()
    sum_xy = k_xy.sum(axis=0).sum()
    return float((sum_xx + sum_yy) / (m * (m - 1)) - 2 * sum_xy / (m * m))


def kid(feats_a, feats_b, subsets: int = 100, subset_size: int = 1000, degree: int = 3,
        gamma: float | None = None, coef0: float = 1, seed: int = 2020) -> tuple[float, float]:
    """KID between feature sets (N_a, D) and (N_b, D) -> (mean, std) over subsets."""
    a = as_2d_array(feats_a, "feats_a", np.float32)
    b = as_2d_array(feats_b, "feats_b", np.float32)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"kid: feature sizes differ: {a.shape[1]} vs {b.shape[1]}")
    if subsets < 1:
        raise ValueError(f"kid: subsets must be >= 1, got {subsets}")
    size = min(subset_size, len(a), len(b))
    if size < subset_size:
        logger.warning("kid: subset size %d is larger than a feature set; using %d", subset_size, size)
    rng = np.random.RandomState(seed)
    mmds = np.zeros(subsets)
    for i in range(subsets):
        xa = a[rng.choice(len(a), size, replace=False)]
        xb = b[rng.choice(len(b), size, replace=False)]
        mmds[i] = polynomial_mmd(xa, xb, degree, gamma, coef0)
    return float(np.mean(mmds)), float(np.std(mmds))

"""Inception Score (Salimans et al. 2016) on Melception's bias-free logits (paper section 5).

IS = exp(E_x KL(p(y|x) || p(y))), computed on ``splits`` chunks of the (optionally shuffled)
samples in float64; returns the mean and std over chunks, as the reference.
"""
from __future__ import annotations

import numpy as np
import torch


def inception_score(logits_unbiased, splits: int = 10, shuffle: bool = True,
                    seed: int = 2020) -> tuple[float, float]:
    """(N, C) logits -> (mean, std) of the per-split scores. Identical predictions give 1."""
    x = torch.as_tensor(logits_unbiased)
    if x.dim() != 2:
        raise ValueError(f"inception_score: expected (N, C) logits, got shape {tuple(x.shape)}")
    n = len(x)
    if not 1 <= splits <= n:
        raise ValueError(f"inception_score: splits={splits} must be in [1, N={n}]")
    if shuffle:
        x = x[np.random.RandomState(seed).permutation(n)]
    x = x.double()
    p, log_p = x.softmax(dim=1), x.log_softmax(dim=1)
    scores = []
    for i in range(splits):
        lo, hi = i * n // splits, (i + 1) * n // splits
        q = p[lo:hi].mean(dim=0, keepdim=True)
        kl = (p[lo:hi] * (log_p[lo:hi] - q.log())).sum(dim=1).mean()
        scores.append(kl.exp().item())
    return float(np.mean(scores)), float(np.std(scores))

"""Mean KL divergence (MKL, paper section 5): how well a generated sample keeps the class
distribution of the real clip of the same video.

MKL = mean over generated samples i of KL(softmax(real logits of video(i)) || softmax(fake logits i)),
with the reference's 1e-6 added inside the log of the fake probabilities. Generated samples whose
video has no real clip are left out (``evaluate.py`` reports how many).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

EPS = 1e-6


def video_id(path: str | Path) -> str:
    """Pairing key of a mel file: ``<id>_mel.npy`` and ``<id>_sample_<k>.npy`` both give ``<id>``."""
    return Path(path).stem.replace("_mel", "").split("_sample_")[0]


def mkl(fake_logits, fake_ids: Sequence[str], real_logits, real_ids: Sequence[str]) -> float:
    """MKL between generated (N_f, C) and real (N_r, C) logits paired by video id.

    Args:
        fake_logits: (N_f, C) Melception ``logits`` of generated samples (several per video allowed).
        fake_ids: N_f video ids (e.g. ``video_id(path)``).
        real_logits: (N_r, C) logits of the real clips, one per video.
        real_ids: N_r unique video ids.
    Returns:
        sum_i KL(p_real || p_fake_i) / number of paired generated samples.
    """
    fake_logits, real_logits = torch.as_tensor(fake_logits).float(), torch.as_tensor(real_logits).float()
    if fake_logits.dim() != 2 or real_logits.dim() != 2 or fake_logits.shape[1] != real_logits.shape[1]:
        raise ValueError(f"mkl: need (N, C) logits with the same C, got {tuple(fake_logits.shape)} "
                         f"and {tuple(real_logits.shape)}")
    if len(fake_ids) != len(fake_logits) or len(real_ids) != len(real_logits):
        raise ValueError("mkl: one id per row of logits is required")
    real_index = {}
    for i, rid in enumerate(real_ids):
        if rid in real_index:
            raise ValueError(f"mkl: video id {rid!r} appears twice among the real clips")
        real_index[rid] = i
    # group fakes by video, in the order of the real clips (the reference's summation order)
    by_video: dict[str, list[int]] = {}
    for i, fid_ in enumerate(fake_ids):
        by_video.setdefault(fid_, []).append(i)
    fake_rows, real_rows = [], []
    for rid, r in real_index.items():
        rows = by_video.get(rid, [])
        fake_rows += rows
        real_rows += [r] * len(rows)
    if not fake_rows:
        raise ValueError("mkl: no generated sample shares a video id with a real clip")
    p_fake = fake_logits[fake_rows].softmax(dim=1)
    p_real = real_logits[real_rows].softmax(dim=1)
    return float(F.kl_div((p_fake + EPS).log(), p_real, reduction="sum") / len(fake_rows))

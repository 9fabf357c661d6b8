"""Condition stages of the Net2NetTransformer (paper Sec. 3.2 and Tab. 2: features, class, both).

They replace the reference's "cond stage model" (a VQ model in taming-transformers) with pass-through
objects that expose the same tiny interface: ``get_input(batch, key)`` turns a dataset batch into the
condition, ``encode(c)`` returns ``(c, None, (None, None, c))`` like ``VQModel.encode``, ``decode(c)``
is the identity. They hold no weights (not ``nn.Module``s), so checkpoints have no
``cond_stage_model.*`` keys, as in the reference.

Reference paths: ``specvqgan.modules.misc.raw_feats.RawFeatsStage``,
``specvqgan.modules.misc.class_cond.ClassOnlyStage``,
``specvqgan.modules.misc.feats_class.FeatsClassStage`` (see ``specvqgan/reference_targets.yaml``).
"""
from __future__ import annotations

from typing import Any, Iterable, Optional

import torch


class _PassThroughStage:
    """Shared no-op VQ-like interface."""

    #: condition positions in the GPT prefix, or None if unknown until data arrives
    cond_len: Optional[int] = None

    def eval(self):
        return self

    def train(self, mode: bool = True):
        return self

    def to(self, *args, **kwargs):
        return self

    def encode(self, c):
        """Mimics ``VQModel.encode``: ``(quant, loss, (perplexity, min_encodings, indices))``."""
        return c, None, (None, None, c)

    def decode(self, c):
        return c


def _features(batch: dict, key: str, n_feats: Optional[int]) -> torch.Tensor:
    """batch[key] (B, Tf, D) -> (B, D, Tf) float32, checking Tf against ``n_feats``."""
    if key not in batch:
        raise KeyError(f'batch has no {key!r} (keys: {sorted(batch)}); the condition stage needs '
                       f'visual features of shape (B, n_feats, D)')
    x = batch[key]
    if x.dim() != 3:
        raise ValueError(f'batch[{key!r}] must be (B, n_feats, D), got shape {tuple(x.shape)}')
    if n_feats is not None and x.shape[1] != n_feats:
        raise ValueError(f'batch[{key!r}] has {x.shape[1]} feature frames, the condition stage '
                         f'expects n_feats={n_feats}')
    return x.float().permute(0, 2, 1).contiguous()


class RawFeatsStage(_PassThroughStage):
    """Visual features as the condition: batch (B, Tf, D) -> c (B, D, Tf).

    Args:
        n_feats: expected feature frames (1, 5, 212...); optional, used to derive the GPT block size
            and to reject mis-sized inputs.
    """

    def __init__(self, n_feats: Optional[int] = None):
        self.cond_len = n_feats

    def get_input(self, batch: dict, key: str) -> torch.Tensor:
        return _features(batch, key, self.cond_len)


class ClassOnlyStage(_PassThroughStage):
    """The class index as the condition: batch (B,) int -> c (B, 1)."""

    cond_len = 1

    def get_input(self, batch: dict, key: str) -> torch.Tensor:
        return torch.as_tensor(batch[key]).long().unsqueeze(1).contiguous()


class FeatsClassStage(_PassThroughStage):
    """Features and class: ``{'feature': (B, D, Tf), 'target': (B, 1)}`` (Tf + 1 prefix positions).

    Args:
        n_feats: expected feature frames; optional (see :class:`RawFeatsStage`).
    """

    def __init__(self, n_feats: Optional[int] = None):
        self.n_feats = n_feats
        self.cond_len = None if n_feats is None else n_feats + 1

    def get_input(self, batch: dict, keys: Iterable[str]) -> dict:
        out = {}
        for k in keys:
            if k == 'target':
                out[k] = torch.as_tensor(batch[k]).long().unsqueeze(1).contiguous()
            elif k == 'feature':
                out[k] = _features(batch, k, self.n_feats)
            else:
                raise KeyError(f'FeatsClassStage: unknown cond_stage_key entry {k!r}; use feature/target')
        return out


def cond_to(c: Any, device: torch.device | str) -> Any:
    """Move a condition (tensor or dict of tensors) to ``device``."""
    if isinstance(c, dict):
        return {k: v.to(device) for k, v in c.items()}
    return c.to(device)


def cond_slice(c: Any, n: int) -> Any:
    """The first ``n`` items of a condition batch (tensor or dict)."""
    if isinstance(c, dict):
        return {k: v[:n] for k, v in c.items()}
    return c[:n]


def cond_batch_size(c: Any) -> int:
    if isinstance(c, dict):
        return next(iter(c.values())).shape[0]
    return c.shape[0]

"""Per-mel-bin input standardization for the spectrogram classifiers (VGGish-ish, Melception).

The reference trained both classifiers on `(mel - mean[f]) / std[f]`, with stats of the training split
(`StandardNormalizeAudio`: the average over clips of each clip's per-bin time mean and std) kept in a
separate text file. Here they are buffers `train_means`, `train_stds` (F,) float64 of the LightningModule,
computed once at the start of fit, so the checkpoint is self-contained (LPAPS and the metrics read them).
"""
from __future__ import annotations

import logging

import numpy as np
import torch

from specvqgan.audio import load_mel_stats_txt
from specvqgan.modules.classifiers.vggishish import compute_mel_stats

logger = logging.getLogger(__name__)


class MelStatsMixin:
    """Mixin for a LightningModule with `input_key` ((B, F, T) mels in [-1, 1]) and `stats_batch_size`.

    Call `_init_mel_stats(n_mels, stats_path)` in `__init__`. Provides `has_stats`, `set_stats`,
    `compute_stats`, `standardize` and the `on_fit_start` hook that fills the stats from the datamodule's
    training dataset (rank 0 computes, then broadcasts) unless they were given or restored from a checkpoint.
    """

    def _init_mel_stats(self, n_mels: int, stats_path: str | None = None) -> None:
        self.register_buffer('train_means', torch.full((n_mels,), float('nan'), dtype=torch.float64))
        self.register_buffer('train_stds', torch.full((n_mels,), float('nan'), dtype=torch.float64))
        if stats_path is not None:
            self.set_stats(*load_mel_stats_txt(stats_path))

    @property
    def has_stats(self) -> bool:
        return bool(torch.isfinite(self.train_means).all() and torch.isfinite(self.train_stds).all())

    def set_stats(self, means: np.ndarray, stds: np.ndarray) -> None:
        """Set the (F,) per-mel-bin mean/std of [0, 1] training mels."""
        means = torch.as_tensor(np.asarray(means), dtype=torch.float64).flatten()
        stds = torch.as_tensor(np.asarray(stds), dtype=torch.float64).flatten()
        if means.numel() != self.train_means.numel() or stds.numel() != self.train_stds.numel():
            raise ValueError(f'stats have {means.numel()}/{stds.numel()} bins, n_mels is {self.train_means.numel()}')
        if not (torch.isfinite(stds).all() and (stds > 0).all()):
            raise ValueError('mel stds must be finite and positive (a constant mel bin in the training set?)')
        self.train_means.copy_(means)
        self.train_stds.copy_(stds)

    def compute_stats(self, dataset) -> tuple[np.ndarray, np.ndarray]:
        """One pass over `dataset` (items with `input_key` (F, T) in [-1, 1]) -> (means, stds) (F,)."""
        loader = torch.utils.data.DataLoader(dataset, batch_size=self.stats_batch_size, shuffle=False)
        return compute_mel_stats((batch[self.input_key] + 1) / 2 for batch in loader)

    def on_fit_start(self) -> None:
        if self.has_stats:
            return
        dm = self.trainer.datamodule
        if dm is None:
            raise RuntimeError(f'{type(self).__name__} needs a datamodule to compute the mel stats of the '
                               'training split (or pass stats_path)')
        stats = None
        if self.trainer.is_global_zero:
            dataset = dm.train_dataloader().dataset
            logger.info('computing per-mel-bin stats over %d training clips', len(dataset))
            stats = self.compute_stats(dataset)
        self.set_stats(*self.trainer.strategy.broadcast(stats, src=0))

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        """x (Tensor): (B, F, T) mel in [-1, 1] -> ((x + 1) / 2 - mean) / std in float32, (B, F, T)."""
        if not self.has_stats:
            raise RuntimeError(f'{type(self).__name__} has no mel stats: fit it, load a checkpoint or give stats_path')
        x01 = (x.double() + 1) / 2
        return ((x01 - self.train_means[:, None]) / self.train_stds[:, None]).float()


class MelClassifierMixin(MelStatsMixin):
    """Shared training plumbing of the mel classifiers (VGGish-ish, Melception): batch unpacking,
    loss/accuracy logging, the step hooks and Adam on ``self.model``. The class defines ``_step``
    and the attributes ``model``, ``input_key``, ``target_key``, ``betas``, ``weight_decay``."""

    log_top5: bool = False  # also log top-5 accuracy (when there are more than 5 classes)

    def _batch_xy(self, batch: dict, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """-> mels (B, F, T) and int64 class targets (B,); a batch without targets is a clear error."""
        if self.target_key not in batch:
            raise KeyError(f"the {split} batch has no class targets '{self.target_key}' (keys: {sorted(batch)}); "
                           'VGGSound datasets need their class-label CSV (meta_path)')
        return batch[self.input_key], torch.as_tensor(batch[self.target_key], device=self.device).long()

    def _log_classification(self, split: str, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        on_step = split == 'train'
        sync = not on_step  # validation/test metrics: averaged over every DDP rank's share of the split
        self.log(f'{split}/loss', loss, prog_bar=True, on_step=on_step, on_epoch=True, batch_size=len(y),
                 sync_dist=sync)
        self.log(f'{split}/acc', (logits.argmax(1) == y).float().mean(), prog_bar=True, on_step=on_step,
                 on_epoch=True, batch_size=len(y), sync_dist=sync)
        if self.log_top5 and logits.shape[1] > 5:
            top5 = (logits.topk(5, dim=1).indices == y[:, None]).any(1).float().mean()
            self.log(f'{split}/acc5', top5, on_step=on_step, on_epoch=True, batch_size=len(y), sync_dist=sync)

    def training_step(self, batch, batch_idx):
        return self._step(batch, 'train')

    def validation_step(self, batch, batch_idx):
        return self._step(batch, 'val')

    def test_step(self, batch, batch_idx):
        return self._step(batch, 'test')

    def configure_optimizers(self):
        return torch.optim.Adam(self.model.parameters(), lr=self.scaled_lr(), betas=self.betas,
                                weight_decay=self.weight_decay)

"""Shared pieces of every LightningModule: the paper's learning-rate scaling (DESIGN.md section 3).
Checkpoint reading, export and rebuilding live in :mod:`specvqgan.checkpoint`."""
from __future__ import annotations

import logging

import pytorch_lightning as pl
from pytorch_lightning.utilities.rank_zero import rank_zero_only

log = logging.getLogger(__name__)


class BaseModel(pl.LightningModule):
    """A LightningModule with ``base_learning_rate`` (set by ``train.py`` from the YAML's
    ``model.base_learning_rate``) and :meth:`scaled_lr`."""

    base_learning_rate: float = 1e-4
    _lr_logged: bool = False

    def scaled_lr(self) -> float:
        """base_lr x batch size x devices x nodes x gradient accumulation (the reference ``train.py`` rule,
        paper section 6.1; devices x nodes = the DDP world size). Factors of 1 outside a Trainer.
        Logged once, on global rank 0, with each factor."""
        batch, devices, nodes, accumulate = 1, 1, 1, 1
        trainer = self._trainer
        if trainer is not None:
            nodes = max(1, int(getattr(trainer, "num_nodes", 1) or 1))
            devices = max(1, int(trainer.world_size) // nodes)
            accumulate = int(trainer.accumulate_grad_batches)
            batch = _batch_size(trainer)
        lr = self.base_learning_rate * batch * devices * nodes * accumulate
        if not self._lr_logged and getattr(rank_zero_only, "rank", 0) == 0:
            log.info("learning rate %.2e = %d (accumulate_grad_batches) x %d (devices) x %d (nodes) x %d (batch size) "
                     "x %.2e (base_learning_rate)", lr, accumulate, devices, nodes, batch, self.base_learning_rate)
        self._lr_logged = True
        return lr


def _batch_size(trainer: pl.Trainer) -> int:
    """The per-device batch size: from the datamodule's ``batch_size``, or from the train DataLoader
    passed to ``trainer.fit`` (configure_optimizers runs before the loaders are built)."""
    datamodule = getattr(trainer, "datamodule", None)
    if datamodule is not None and getattr(datamodule, "batch_size", None):
        return int(datamodule.batch_size)
    source = getattr(getattr(trainer, "fit_loop", None), "_data_source", None)
    instance = getattr(source, "instance", None)
    loaders = instance if isinstance(instance, (list, tuple)) else [instance]
    for loader in loaders:
        if getattr(loader, "batch_size", None):
            return int(loader.batch_size)
    log.warning("cannot tell the batch size: the learning rate is scaled as if it were 1")
    return 1

"""Shared pieces of every LightningModule: the paper's learning-rate scaling and self-describing
checkpoints (DESIGN.md sections 3 and 5)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


class BaseModel(pl.LightningModule):
    """A LightningModule with ``base_learning_rate`` (set by ``train.py`` from the YAML's
    ``model.base_learning_rate``) and :meth:`scaled_lr`."""

    base_learning_rate: float = 1e-4
    _lr_logged: bool = False

    def scaled_lr(self) -> float:
        """base_lr x batch size x devices x gradient accumulation (the reference ``train.py`` rule,
        paper section 6.1). Falls back to factors of 1 outside a Trainer. Logged once."""
        batch, devices, accumulate = 1, 1, 1
        trainer = self._trainer
        if trainer is not None:
            devices = max(1, int(trainer.world_size))
            accumulate = int(trainer.accumulate_grad_batches)
            batch = _batch_size(trainer)
        lr = self.base_learning_rate * batch * devices * accumulate
        if not self._lr_logged:
            log.info("learning rate %.2e = %d (accumulate_grad_batches) x %d (devices) x %d (batch size) "
                     "x %.2e (base_learning_rate)", lr, accumulate, devices, batch, self.base_learning_rate)
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


def export_checkpoint(module: torch.nn.Module, model_config: Any, path: str | Path) -> Path:
    """Write ``{state_dict, config}``: a checkpoint that rebuilds itself without Lightning or data.

    Args:
        module: the trained model.
        model_config: its ``{target, params}`` block (``cfg.model``).
        path: output file (``.pt``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = OmegaConf.to_container(model_config, resolve=True) if isinstance(model_config, DictConfig) else model_config
    torch.save({"state_dict": module.state_dict(), "config": config}, path)
    return path


def read_checkpoint(path: str | Path, weights_only: bool = False, what: str = "checkpoint") -> Any:
    """``torch.load`` a checkpoint or weight file on CPU, with clear errors naming the file.

    Args:
        weights_only: refuse anything but tensors and plain containers (for bare weight files).
        what: how the file is named in error messages (e.g. "Melception checkpoint").
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as err:
        raise ValueError(f"{path}: cannot read as a {what} ({type(err).__name__}: {err})") from err


def model_config_of(ckpt: dict, path: str | Path = "") -> dict:
    """The ``{target, params}`` model block stored in a checkpoint (exported or written by train.py)."""
    config = ckpt.get("config")
    if isinstance(config, dict) and "model" in config and "target" not in config:
        config = config["model"]
    if (not isinstance(config, dict) or "target" not in config) and path:
        config = reference_run_config(path)  # the authors' releases carry no config in the .ckpt
    if not isinstance(config, dict) or "target" not in config:
        raise ValueError(f"checkpoint {path} carries no model config; export it with "
                         f"specvqgan.models.base.export_checkpoint or train it with train.py")
    return config


def reference_run_config(ckpt_path: str | Path) -> dict | None:
    """The model block of the reference log layout (the authors' releases, ``python -m specvqgan.download``):
    the newest ``<run>/configs/*-project.yaml`` beside ``<run>/checkpoints/<ckpt>``; None if there is none."""
    found = sorted(Path(ckpt_path).resolve().parent.parent.glob("configs/*-project.yaml"))
    if not found:
        return None
    cfg = OmegaConf.load(found[-1])
    return OmegaConf.to_container(cfg.model, resolve=True) if "model" in cfg else None


def load_model(path: str | Path, **overrides: Any) -> torch.nn.Module:
    """Rebuild a model from a self-describing checkpoint (exported ``.pt`` or a ``train.py`` ``.ckpt``)
    and load its weights strictly. ``overrides`` replace constructor params (e.g. ``ckpt_path=None``)."""
    from specvqgan.config import instantiate_from_config

    ckpt = read_checkpoint(path)
    config = model_config_of(ckpt, path)
    config = {"target": config["target"], "params": {**config.get("params", {}), **overrides}}
    model = instantiate_from_config(OmegaConf.create(config))
    model.load_state_dict(ckpt["state_dict"], strict=True)
    return model.eval()

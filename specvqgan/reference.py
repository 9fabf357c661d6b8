"""Running the reference implementation's configs, run folders and command lines (Lightning 1.x era)
on Lightning 2 (docs/migration.md).

* :func:`parse_gpus` / :func:`translate_trainer_args`: ``--gpus 0,`` and the Lightning-1.x trainer keys
  that the authors' ``<time>-lightning.yaml`` files hold (``gpus``, ``distributed_backend``, ...) ->
  ``accelerator`` / ``devices`` / ``strategy``; asking for GPUs this machine lacks is a ConfigError.
* :func:`is_foreign_run`: a downloaded release or an authors' run folder (resumed into a new folder).
* :class:`SetupCallback`: the reference ``train.SetupCallback`` (creates the run folders and saves the
  project / lightning configs when fitting starts).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from specvqgan.config import ConfigError

log = logging.getLogger(__name__)

#: Lightning-1.x Trainer keys with no Lightning-2 meaning here, and why they are dropped
DROPPED_TRAINER_KEYS = {
    "resume_from_checkpoint": "resume with train.py -r <run folder or .ckpt>",
    "checkpoint_callback": "train.py always adds its checkpoint callbacks",
    "weights_summary": "removed in Lightning 2",
    "progress_bar_refresh_rate": "removed in Lightning 2",
    "flush_logs_every_n_steps": "removed in Lightning 2",
}


def parse_gpus(gpus: Any) -> list[int] | int | None:
    """Lightning-1.x ``gpus``: ``'0,'`` / ``'0,1,2,3'`` / ``[0, 1]`` -> device indices; an int N -> N devices;
    ``None`` / ``0`` / ``''`` -> no GPU."""
    if gpus is None or gpus == 0 or (isinstance(gpus, str) and gpus.strip() in ("", "0", "None", "null")):
        return None
    if isinstance(gpus, int):
        return -1 if gpus == -1 else gpus
    if isinstance(gpus, str):
        parts = [p.strip() for p in gpus.split(",") if p.strip()]
        if len(parts) == 1 and "," not in gpus:  # '2' means two GPUs, '2,' means GPU 2
            return -1 if parts[0] == "-1" else int(parts[0])
        try:
            return [int(p) for p in parts]
        except ValueError:
            raise ConfigError(f"gpus={gpus!r}: expected GPU indices like '0,' or '0,1,2,3'") from None
    return [int(g) for g in gpus]


def check_gpus(devices: list[int] | int, where: str = "--gpus",
               fix: str = "run without it to train on the CPU") -> None:
    """Raise ConfigError if this machine lacks the requested CUDA devices."""
    import torch

    have = torch.cuda.device_count()
    need = (max(devices) + 1) if isinstance(devices, list) else (1 if devices == -1 else devices)
    if have < need:
        raise ConfigError(f"{where} asks for GPU(s) {devices} but this machine has {have} CUDA device(s); "
                          f"{fix}")


def translate_trainer_args(trainer: dict) -> dict:
    """Lightning-1.x ``lightning.trainer`` keys -> Lightning 2 (logged); other keys pass unchanged."""
    out = dict(trainer)
    if "gpus" in out:
        devices = parse_gpus(out.pop("gpus"))
        if devices is not None:
            check_gpus(devices, where=f"lightning.trainer.gpus={trainer['gpus']!r}",
                       fix="add lightning.trainer.gpus=null to train on the CPU")
            out.setdefault("accelerator", "gpu")
            out.setdefault("devices", devices)
            log.info("lightning.trainer.gpus=%r (Lightning 1.x) -> accelerator='gpu', devices=%r",
                     trainer["gpus"], devices)
    backend = out.pop("distributed_backend", None)
    if out.get("accelerator") in ("ddp", "ddp_spawn", "dp"):  # Lightning 1.x put the strategy here
        backend = out.pop("accelerator")
    if backend:
        devices = out.get("devices", 1)
        several = devices == -1 or (isinstance(devices, list) and len(devices) > 1) or (
            isinstance(devices, int) and devices > 1)
        if several:
            out.setdefault("strategy", backend)
        log.info("lightning.trainer distributed_backend=%r (Lightning 1.x) -> strategy=%r", backend,
                 out.get("strategy", "auto"))
    for key, why in DROPPED_TRAINER_KEYS.items():
        if key in out:
            log.info("lightning.trainer.%s=%r (Lightning 1.x) ignored: %s", key, out.pop(key), why)
    return out


def is_foreign_run(logdir: Path) -> bool:
    """Whether ``logdir`` was not written by our train.py: a downloaded release (its unpack marker) or a
    reference run (``configs/*-lightning.yaml``, which only the reference's SetupCallback writes)."""
    from specvqgan.download import MARKER

    logdir = Path(logdir)
    return (logdir / MARKER).exists() or any((logdir / "configs").glob("*-lightning.yaml"))


class SetupCallback(pl.Callback):
    """The reference ``train.SetupCallback``: on rank 0 at the start of fitting, create ``logdir``,
    ``ckptdir`` and ``cfgdir`` and save ``<now>-project.yaml`` (``config``) and ``<now>-lightning.yaml``
    (``{'lightning': lightning_config}``). ``train.py`` does this itself; the class is for configs and
    scripts written for the reference."""

    def __init__(self, resume: Any, now: str, logdir: str, ckptdir: str, cfgdir: str, config: Any,
                 lightning_config: Any) -> None:
        super().__init__()
        self.resume, self.now = resume, now
        self.logdir, self.ckptdir, self.cfgdir = Path(logdir), Path(ckptdir), Path(cfgdir)
        self.config = config if isinstance(config, DictConfig) else OmegaConf.create(config)
        self.lightning_config = lightning_config if isinstance(lightning_config, DictConfig) \
            else OmegaConf.create(lightning_config)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_rank != 0:
            return
        for d in (self.logdir, self.ckptdir, self.cfgdir):
            d.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, self.cfgdir / f"{self.now}-project.yaml")
        OmegaConf.save(OmegaConf.create({"lightning": self.lightning_config}),
                       self.cfgdir / f"{self.now}-lightning.yaml")

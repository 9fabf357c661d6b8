"""What ``train.py`` does, as a library: log directories, resume, the Trainer and its callbacks.

Log layout (DESIGN.md section 5)::

    logs/<YYYY-MM-DDTHH-MM-SS>_<name>/
        configs/<time>-project.yaml    the merged config of each run (a resume adds one)
        checkpoints/last.ckpt          every checkpoint also carries the merged config (key 'config')
        checkpoints/best-*.ckpt        best by lightning.modelcheckpoint.params.monitor
        tensorboard/                   scalars, spectrogram images, audio

Under DDP (docs/distributed.md) the folder is decided once, by global rank 0 (exclusive ``mkdir``: two runs
started in the same second get ``<time>_<name>`` and ``<time>_<name>_1``), handed to Lightning's spawned
ranks through ``SPECVQGAN_RUN_DIR`` and to every other rank by a broadcast when the Trainer sets up; only
rank 0 writes configs, checkpoints and media.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback, EarlyStopping, LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.strategies import DDPStrategy
from pytorch_lightning.utilities.exceptions import SIGTERMException

from specvqgan.checkpoint import run_config_files, safe_checkpoint_io
from specvqgan.config import ConfigError, check_missing, instantiate_from_config, load_config
from specvqgan.distributed import RUN_DIR_ENV, ddp_strategy, is_launch_rank_zero
from specvqgan.reference import is_foreign_run, translate_trainer_args

log = logging.getLogger(__name__)
RUN_TIME = r"^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d_"  # the time prefix of a run folder name


@dataclass
class RunDirs:
    logdir: Path
    ckpt_to_resume: Path | None
    base_configs: list[Path]

    @property
    def ckptdir(self) -> Path:
        return self.logdir / "checkpoints"

    @property
    def cfgdir(self) -> Path:
        return self.logdir / "configs"


def resolve_run(base: list[str], resume: str | None, name: str | None, logroot: str, now: str) -> RunDirs:
    """Where this run writes, and what it resumes from.

    ``resume`` is a log directory (resumes its ``checkpoints/last.ckpt``, else its newest ``*.ckpt`` as the
    reference did) or a checkpoint file inside ``<logdir>/checkpoints/``; the run's saved configs
    (``<time>-project.yaml`` + ``<time>-lightning.yaml``) come first, then ``base``. A run folder this
    codebase did not write (a downloaded release, an authors' run with ``*-lightning.yaml``) is never
    written into: the resumed run gets a new folder ``<logroot>/<now>_<name>``. Resuming our own run from a
    checkpoint other than ``last.ckpt`` (an earlier state) branches into a new folder
    ``<logdir>_from_<ckpt stem>_<now>`` beside it, so the run's later ``last.ckpt`` and checkpoints are
    never overwritten.
    """
    if resume:
        path = Path(resume)
        if not path.exists():
            raise FileNotFoundError(f"cannot resume: {path} does not exist")
        if path.is_file():
            logdir, ckpt = path.parent.parent, path
        else:
            logdir, ckpt = path, path / "checkpoints" / "last.ckpt"
            if not ckpt.is_file():
                found = sorted((path / "checkpoints").glob("*.ckpt"))
                if not found:
                    raise FileNotFoundError(f"cannot resume: no checkpoints/last.ckpt or *.ckpt in {path}")
                ckpt = found[-1]
        saved = run_config_files(logdir)
        if is_foreign_run(logdir):
            new = Path(logroot) / f"{now}_{name or re.sub(RUN_TIME, '', logdir.name)}"
            log.info("%s is not a run folder of this codebase (a release or an authors' run): resuming %s "
                     "into the new run folder %s", logdir, ckpt.name, new)
            logdir = _shared_new_dir(new, lambda: create_run_dir(new))
        elif ckpt.name != "last.ckpt":
            logdir = _branch_target(logdir, ckpt, now)
            log.warning("resuming from %s (not last.ckpt): this run writes to %s", ckpt, logdir)
        return RunDirs(logdir, ckpt, saved + [Path(b) for b in base])
    if not base:
        raise ConfigError("no config given: pass --base configs/<stage>.yaml (or -r <logdir> to resume)")
    run_name = name or Path(base[0]).stem
    return RunDirs(Path(logroot) / f"{now}_{run_name}", None, [Path(b) for b in base])


def _branch_dir(logdir: Path, ckpt: Path, now: str) -> Path:
    """A new, unused folder beside ``logdir`` for a run resumed from the earlier state ``ckpt`` (created
    here, so two runs cannot claim it)."""
    for k in range(1, 1000):
        path = logdir.parent / f"{logdir.name}_from_{ckpt.stem}_{now}{'' if k == 1 else f'-{k}'}"
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a new run folder beside {logdir}")


def _shared_new_dir(candidate: Path, create) -> Path:
    """A new run folder decided once under DDP: rank 0 makes it (``create()``), Lightning's spawned ranks
    find it in ``SPECVQGAN_RUN_DIR``, other ranks keep ``candidate`` until rank 0's name reaches them at
    setup (:class:`ShareRunDir`)."""
    if os.environ.get(RUN_DIR_ENV):
        return Path(os.environ[RUN_DIR_ENV])
    return create() if is_launch_rank_zero() else candidate


def _branch_target(logdir: Path, ckpt: Path, now: str) -> Path:
    """The branch folder of a resume from an earlier state (:func:`_branch_dir`), decided once."""
    return _shared_new_dir(logdir.parent / f"{logdir.name}_from_{ckpt.stem}_{now}",
                           lambda: _branch_dir(logdir, ckpt, now))


def create_run_dir(candidate: Path) -> Path:
    """Create ``candidate`` (``<root>/<time>_<name>``) exclusively, or ``<time>_<name>_<k>`` with the first
    free k when it exists already: two runs never share a folder."""
    candidate.parent.mkdir(parents=True, exist_ok=True)
    for k in range(10_000):
        path = candidate if k == 0 else candidate.with_name(f"{candidate.name}_{k}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a new run folder next to {candidate}")


def _decide_run_dir(dirs: RunDirs, rank_zero: bool) -> None:
    """Set ``dirs.logdir`` of a fresh run: ``$SPECVQGAN_RUN_DIR`` when set (by rank 0 before Lightning
    spawned this process, or by hand), else a new folder created by rank 0. Other ranks keep the
    candidate name until :class:`ShareRunDir` replaces it with rank 0's."""
    chosen = os.environ.get(RUN_DIR_ENV)
    if chosen:
        dirs.logdir = Path(chosen)
        if rank_zero and any((dirs.ckptdir).glob("*.ckpt")):
            raise ConfigError(f"{RUN_DIR_ENV}={chosen} holds a run already: resume it with -r {chosen} "
                              f"or unset {RUN_DIR_ENV}")
    elif rank_zero:
        dirs.logdir = create_run_dir(dirs.logdir)


class ShareRunDir(Callback):
    """Once the process group exists: every rank takes global rank 0's run folder (so checkpoints and the
    returned :class:`RunDirs` agree on every node), and non-zero ranks reseed their random generators
    with ``seed + rank`` (different augmentations; model weights are synchronized by DDP)."""

    def __init__(self, dirs: RunDirs, seed: int) -> None:
        self.dirs, self.seed = dirs, seed

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.world_size <= 1:
            return
        logdir = Path(trainer.strategy.broadcast(str(self.dirs.logdir), src=0))
        self.dirs.logdir = logdir
        for callback in trainer.callbacks:
            if isinstance(callback, ModelCheckpoint):
                callback.dirpath = str(self.dirs.ckptdir)
        rank_seed = self.seed + trainer.global_rank  # PL_GLOBAL_SEED stays: DistributedSampler needs one seed
        random.seed(rank_seed)
        np.random.seed(rank_seed % 2**32)
        torch.manual_seed(rank_seed)


class RescaleLR(Callback):
    """A resumed run keeps the paper's rule for its own setup: Lightning restores the optimizers' learning
    rate from the checkpoint, which was scaled for the old world size / batch / accumulation; at train start
    it is set back to ``scaled_lr()`` of this run (unchanged when nothing changed; skipped with schedulers)."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not hasattr(pl_module, "scaled_lr") or trainer.lr_scheduler_configs:
            return
        lr = pl_module.scaled_lr()
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                if abs(group["lr"] - lr) > 1e-12 * max(lr, 1e-30):
                    if trainer.is_global_zero:
                        log.info("learning rate %.2e restored from the checkpoint -> %.2e for this run's setup",
                                 group["lr"], lr)
                    group["lr"] = lr


class SaveLast(Callback):
    """``last.ckpt`` always holds the latest state: written when training ends (also mid-epoch, e.g.
    at ``max_steps``) and on Ctrl-C (SIGINT) or SIGTERM before the process exits, so no work is lost.
    The path follows ``dirs`` (rank 0's folder under DDP)."""

    def __init__(self, dirs: RunDirs) -> None:
        self.dirs = dirs

    @property
    def path(self) -> Path:
        return self.dirs.ckptdir / "last.ckpt"

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        trainer.save_checkpoint(self.path)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, (KeyboardInterrupt, SIGTERMException)):
            return
        if trainer.world_size == 1:
            log.warning("interrupted at step %d: saving %s", trainer.global_step, self.path)
            trainer.save_checkpoint(self.path)
        elif trainer.is_global_zero:
            # DDP: the weights are the same on every rank, and another rank may already be gone (Ctrl-C
            # reaches every process), so rank 0 writes alone, without save_checkpoint's barrier
            log.warning("interrupted at step %d: saving %s", trainer.global_step, self.path)
            checkpoint = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
            trainer.strategy.checkpoint_io.save_checkpoint(checkpoint, self.path)


class StoreConfig(Callback):
    """Put the merged config into every checkpoint, so a ``.ckpt`` describes itself."""

    def __init__(self, config: DictConfig) -> None:
        try:  # resolved, so a checkpoint rebuilds its model without the YAML files it came from
            self.config = OmegaConf.to_container(config, resolve=True)
        except Exception:  # an interpolation that cannot be resolved here: keep it as written
            self.config = OmegaConf.to_container(config, resolve=False)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint["config"] = self.config


def build_callbacks(cfg: DictConfig, dirs: RunDirs, seed: int = 23) -> list[Callback]:
    """Checkpointing (last + best by the monitored metric), interrupt saving, optional early stopping,
    learning-rate monitor and any ``lightning.callbacks.<name>: {target, params}``."""
    light = cfg.get("lightning", OmegaConf.create())
    ckpt_params = dict(OmegaConf.to_container(light.get("modelcheckpoint", {}).get("params", {}) or {}))
    monitor = ckpt_params.pop("monitor", None)
    ckpt_params.pop("save_last", None)  # the reference YAMLs' `save_last:`; last.ckpt is always written
    callbacks: list[Callback] = [
        ModelCheckpoint(dirpath=dirs.ckptdir, filename="best-{epoch:03d}-{step:06d}" if monitor else "{epoch:03d}-{step:06d}",
                        monitor=monitor, save_top_k=ckpt_params.pop("save_top_k", 1), save_last=True,
                        mode=ckpt_params.pop("mode", "min"), enable_version_counter=False, **ckpt_params),
        ShareRunDir(dirs, seed),
        SaveLast(dirs),
        RescaleLR(),
        StoreConfig(cfg),
        LearningRateMonitor(logging_interval="step"),
    ]
    early = light.get("early_stopping")
    if early:
        params = OmegaConf.to_container(early.get("params", {}))
        params.setdefault("check_on_train_epoch_end", False)  # judge after validation, not mid-epoch stops
        callbacks.append(EarlyStopping(**params))
    for name, block in (light.get("callbacks") or {}).items():
        if not isinstance(block, DictConfig) or "target" not in block:
            raise ConfigError(f"lightning.callbacks.{name} must be a {{target, params}} block")
        callbacks.append(instantiate_from_config(block))
    return callbacks


def build_trainer(cfg: DictConfig, dirs: RunDirs, trust_checkpoint: bool = False,
                  model: pl.LightningModule | None = None, seed: int = 23) -> pl.Trainer:
    """A Trainer from ``lightning.trainer`` (any Trainer kwarg) with our logger and callbacks; it reads
    checkpoints (resume) through :mod:`specvqgan.checkpoint` (``trust_checkpoint``: in full). A DDP strategy
    (named, or picked by ``auto`` for several devices) looks for unused parameters only for models that
    need it (:func:`specvqgan.distributed.ddp_strategy`)."""
    trainer_kwargs = OmegaConf.to_container(cfg.get("lightning", {}).get("trainer", {}) or {}, resolve=True)
    for forbidden in ("logger", "callbacks", "default_root_dir", "plugins"):
        if forbidden in trainer_kwargs:
            raise ConfigError(f"lightning.trainer.{forbidden} is set by train.py; remove it from the config")
    trainer_kwargs = translate_trainer_args(trainer_kwargs)  # Lightning-1.x keys (gpus, distributed_backend)
    trainer_kwargs.setdefault("accelerator", "auto")
    strategy = trainer_kwargs.get("strategy", "auto")
    trainer_kwargs["strategy"] = ddp_strategy(strategy, model)

    def make() -> pl.Trainer:
        logger = TensorBoardLogger(save_dir=str(dirs.logdir), name="", version="tensorboard")
        try:
            return pl.Trainer(logger=logger, callbacks=build_callbacks(cfg, dirs, seed),
                              default_root_dir=str(dirs.logdir),
                              plugins=[safe_checkpoint_io(trust_checkpoint)], **trainer_kwargs)
        except TypeError as err:
            raise ConfigError(f"bad lightning.trainer option: {err}") from err

    trainer = make()
    if strategy == "auto" and type(trainer.strategy) is DDPStrategy and ddp_strategy("ddp", model) != "ddp":
        trainer_kwargs["strategy"] = ddp_strategy("ddp", model)
        trainer = make()
    return trainer


def run(base: list[str], overrides: list[str], train: bool = True, resume: str | None = None,
        name: str | None = None, seed: int = 23, logroot: str = "logs", trust_checkpoint: bool = False) -> RunDirs:
    """Load configs, build data/model/trainer, then fit (``train``) or validate. Returns the run dirs.
    ``trust_checkpoint``: read the checkpoint to resume in full (``weights_only=False``)."""
    now = dt.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    dirs = resolve_run(base, resume, name, logroot, now)
    cfg = load_config(dirs.base_configs, overrides)
    check_missing(cfg)
    for section in ("model", "data"):
        if section not in cfg:
            raise ConfigError(f"the config ({', '.join(map(str, dirs.base_configs))}) has no `{section}:` section")
    pl.seed_everything(seed, workers=True)
    rank_zero = is_launch_rank_zero()
    if dirs.ckpt_to_resume is None:
        _decide_run_dir(dirs, rank_zero)
    if rank_zero:
        dirs.cfgdir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, dirs.cfgdir / f"{now}-project.yaml")
        log.info("logging to %s", dirs.logdir)

    data = instantiate_from_config(cfg.data)
    model = instantiate_from_config(cfg.model)
    if "base_learning_rate" in cfg.model:
        model.base_learning_rate = float(cfg.model.base_learning_rate)
    trainer = build_trainer(cfg, dirs, trust_checkpoint, model, seed)
    ckpt = str(dirs.ckpt_to_resume) if dirs.ckpt_to_resume else None
    exported = rank_zero and RUN_DIR_ENV not in os.environ
    if exported:  # Lightning's spawned ranks re-run this command: they inherit rank 0's folder
        os.environ[RUN_DIR_ENV] = str(dirs.logdir)
    try:
        if train:
            trainer.fit(model, datamodule=data, ckpt_path=ckpt)
        else:
            trainer.validate(model, datamodule=data, ckpt_path=ckpt)
    finally:
        if exported:
            os.environ.pop(RUN_DIR_ENV, None)
    return dirs


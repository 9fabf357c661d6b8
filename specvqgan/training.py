"""What ``train.py`` does, as a library: log directories, resume, the Trainer and its callbacks.

Log layout (DESIGN.md section 5)::

    logs/<YYYY-MM-DDTHH-MM-SS>_<name>/
        configs/<time>-project.yaml    the merged config of each run (a resume adds one)
        checkpoints/last.ckpt          every checkpoint also carries the merged config (key 'config')
        checkpoints/best-*.ckpt        best by lightning.modelcheckpoint.params.monitor
        tensorboard/                   scalars, spectrogram images, audio
"""
from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from pathlib import Path
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback, EarlyStopping, LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities.exceptions import SIGTERMException

from specvqgan.checkpoint import run_config_files, safe_checkpoint_io
from specvqgan.config import ConfigError, check_missing, instantiate_from_config, load_config
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
            logdir = new
        elif ckpt.name != "last.ckpt":
            logdir = _branch_dir(logdir, ckpt, now)
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


class SaveLast(Callback):
    """``last.ckpt`` always holds the latest state: written when training ends (also mid-epoch, e.g.
    at ``max_steps``) and on Ctrl-C (SIGINT) or SIGTERM before the process exits, so no work is lost."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        trainer.save_checkpoint(self.path)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        # every rank calls save_checkpoint (it synchronizes; only rank 0 writes the file)
        if isinstance(exception, (KeyboardInterrupt, SIGTERMException)):
            log.warning("interrupted at step %d: saving %s", trainer.global_step, self.path)
            trainer.save_checkpoint(self.path)


class StoreConfig(Callback):
    """Put the merged config into every checkpoint, so a ``.ckpt`` describes itself."""

    def __init__(self, config: DictConfig) -> None:
        try:  # resolved, so a checkpoint rebuilds its model without the YAML files it came from
            self.config = OmegaConf.to_container(config, resolve=True)
        except Exception:  # an interpolation that cannot be resolved here: keep it as written
            self.config = OmegaConf.to_container(config, resolve=False)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint["config"] = self.config


def build_callbacks(cfg: DictConfig, dirs: RunDirs) -> list[Callback]:
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
        SaveLast(dirs.ckptdir / "last.ckpt"),
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


def build_trainer(cfg: DictConfig, dirs: RunDirs, trust_checkpoint: bool = False) -> pl.Trainer:
    """A Trainer from ``lightning.trainer`` (any Trainer kwarg) with our logger and callbacks; it reads
    checkpoints (resume) through :mod:`specvqgan.checkpoint` (``trust_checkpoint``: in full)."""
    trainer_kwargs = OmegaConf.to_container(cfg.get("lightning", {}).get("trainer", {}) or {}, resolve=True)
    for forbidden in ("logger", "callbacks", "default_root_dir", "plugins"):
        if forbidden in trainer_kwargs:
            raise ConfigError(f"lightning.trainer.{forbidden} is set by train.py; remove it from the config")
    trainer_kwargs = translate_trainer_args(trainer_kwargs)  # Lightning-1.x keys (gpus, distributed_backend)
    trainer_kwargs.setdefault("accelerator", "auto")
    logger = TensorBoardLogger(save_dir=str(dirs.logdir), name="", version="tensorboard")
    try:
        return pl.Trainer(logger=logger, callbacks=build_callbacks(cfg, dirs), default_root_dir=str(dirs.logdir),
                          plugins=[safe_checkpoint_io(trust_checkpoint)], **trainer_kwargs)
    except TypeError as err:
        raise ConfigError(f"bad lightning.trainer option: {err}") from err


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
    dirs.cfgdir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, dirs.cfgdir / f"{now}-project.yaml")
    log.info("logging to %s", dirs.logdir)

    data = instantiate_from_config(cfg.data)
    model = instantiate_from_config(cfg.model)
    if "base_learning_rate" in cfg.model:
        model.base_learning_rate = float(cfg.model.base_learning_rate)
    trainer = build_trainer(cfg, dirs, trust_checkpoint)
    if train:
        ckpt = str(dirs.ckpt_to_resume) if dirs.ckpt_to_resume else None
        trainer.fit(model, datamodule=data, ckpt_path=ckpt)
    else:
        trainer.validate(model, datamodule=data, ckpt_path=str(dirs.ckpt_to_resume) if dirs.ckpt_to_resume else None)
    return dirs


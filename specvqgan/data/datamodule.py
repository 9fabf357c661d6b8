"""LightningDataModules built from the ``data:`` block of a YAML config.

* :class:`DataModule`: each split is a ``{target, params}`` dataset config instantiated with
  :func:`specvqgan.config.instantiate_from_config`.
* :class:`SpectrogramDataModuleFromConfig` / :class:`ConditionedSpectrogramDataModuleFromConfig`: the
  reference's modules (``train.*`` there; aliased), which take the dataset parameters once at the top
  level and hand them to every split's ``specs_dataset_cfg`` / ``condition_dataset_cfg``. Keys set inside a
  split's own sub-config win (the reference overwrote them; it then ignored the per-split ``split_path``
  of the spectrogram datasets and read ``./data/vas_<split>.txt`` instead, which named the same file).

Example::

    data:
      target: specvqgan.data.datamodule.DataModule
      params:
        batch_size: 4
        train: {target: specvqgan.data.toy.ToySpecsTrain}
        validation: {target: specvqgan.data.toy.ToySpecsValidation}
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset

from specvqgan.config import ConfigError, instantiate_from_config

log = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "validation", "test")


def worker_init_fn(worker_id: int) -> None:
    """Give each DataLoader worker its own numpy seed (random crops and random features use numpy)."""
    np.random.seed((torch.initial_seed() + worker_id) % 2**32)


class WrappedDataset(Dataset):
    """Wraps any object with ``__len__`` and ``__getitem__`` into a torch Dataset."""

    def __init__(self, dataset: Any) -> None:
        self.data = dataset

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, idx: int) -> Any:
        return self.data[idx]


class DataModule(pl.LightningDataModule):
    """Train/validation/test DataLoaders over datasets given as ``{target, params}`` configs.

    Args:
        batch_size: per-device batch size (``BaseModel.scaled_lr`` reads ``.batch_size``).
        num_workers: DataLoader worker processes (0: load in the main process).
        train, validation, test: dataset configs; a split left out gets no DataLoader.
        wrap: wrap each dataset in :class:`WrappedDataset` (reference option).
        shuffle_train: shuffle the training set every epoch.
        drop_last: drop the last incomplete training batch.
        pin_memory: DataLoader ``pin_memory``.
    """

    def __init__(self, batch_size: int, num_workers: int = 0, train: Mapping | None = None,
                 validation: Mapping | None = None, test: Mapping | None = None, wrap: bool = False,
                 shuffle_train: bool = True, drop_last: bool = False, pin_memory: bool = False) -> None:
        super().__init__()
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers or 0)
        self.wrap, self.shuffle_train, self.drop_last, self.pin_memory = wrap, shuffle_train, drop_last, pin_memory
        self.dataset_configs = {k: v for k, v in zip(SPLIT_NAMES, (train, validation, test)) if v is not None}
        self.datasets: dict[str, Dataset] = {}
        # only the splits that exist get a loader method (Lightning checks whether they are overridden)
        if "train" in self.dataset_configs:
            self.train_dataloader = self._train_dataloader
        if "validation" in self.dataset_configs:
            self.val_dataloader = self._val_dataloader
        if "test" in self.dataset_configs:
            self.test_dataloader = self._test_dataloader

    def setup(self, stage: str | None = None) -> None:
        """Instantiate the datasets (once; later calls reuse them)."""
        for name, cfg in self.dataset_configs.items():
            if name not in self.datasets:
                dataset = instantiate_from_config(cfg)
                self.datasets[name] = WrappedDataset(dataset) if self.wrap else dataset
                log.info("%s dataset: %s with %d items", name, type(dataset).__name__, len(dataset))

    def _loader(self, name: str, shuffle: bool, drop_last: bool = False) -> DataLoader:
        if name not in self.datasets:
            self.setup()
        return DataLoader(self.datasets[name], batch_size=self.batch_size, shuffle=shuffle,
                          num_workers=self.num_workers, drop_last=drop_last, pin_memory=self.pin_memory,
                          worker_init_fn=worker_init_fn if self.num_workers > 0 else None,
                          persistent_workers=self.num_workers > 0)

    def _train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=self.shuffle_train, drop_last=self.drop_last)

    def _val_dataloader(self) -> DataLoader:
        return self._loader("validation", shuffle=False)

    def _test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


def _inject(split: Mapping, key: str, shared: Mapping) -> DictConfig:
    """A copy of a split config whose ``params[key]`` is ``shared`` updated with the split's own keys."""
    split = OmegaConf.create(OmegaConf.to_container(split, resolve=True) if isinstance(split, DictConfig)
                             else dict(split))
    params = split.get("params") or OmegaConf.create({})
    own = params.get(key) or {}
    merged = {k: v for k, v in shared.items() if v is not None}
    merged.update({str(k): own[k] for k in own})
    params[key] = merged
    split["params"] = params
    return split


class SpectrogramDataModuleFromConfig(DataModule):
    """The reference's codebook data module: spectrogram parameters once, for every split.

    Args (besides batch_size, num_workers, train/validation/test, wrap):
        spec_dir_path, mel_num, spec_len, spec_crop_len, random_crop: put into each split's
            ``specs_dataset_cfg`` (``None`` values are left out, so the dataset defaults apply).
        skip_missing, meta_path: also passed on when set (not in the reference): skip absent clips;
            the VGGSound class-label CSV.
        sample_rate: accepted for reference configs; unused (22050 Hz everywhere).
    """

    def __init__(self, batch_size: int, num_workers: int = 0, spec_dir_path: str | None = None,
                 sample_rate: int | None = None, mel_num: int | None = None, spec_len: int | None = None,
                 spec_crop_len: int | None = None, random_crop: bool | None = None, skip_missing: bool | None = None,
                 meta_path: str | None = None, train: Mapping | None = None, validation: Mapping | None = None,
                 test: Mapping | None = None, wrap: bool = False) -> None:
        shared = dict(spec_dir_path=spec_dir_path, mel_num=mel_num, spec_len=spec_len, spec_crop_len=spec_crop_len,
                      random_crop=random_crop, skip_missing=skip_missing, meta_path=meta_path)
        splits = [None if s is None else _inject(s, "specs_dataset_cfg", shared) for s in (train, validation, test)]
        super().__init__(batch_size, num_workers, *splits, wrap=wrap)


class ConditionedSpectrogramDataModuleFromConfig(DataModule):
    """The reference's transformer data module: spectrogram and feature parameters once, for every split.

    The spectrogram keys go to each split's ``specs_dataset_cfg``; the feature keys to its
    ``condition_dataset_cfg`` (only for targets whose class name has ``CondOn``). ``None`` values are left
    out so that the dataset defaults apply. ``sample_rate`` and ``crop_coord`` are accepted and unused;
    ``skip_missing`` and ``meta_path`` (not in the reference) go to both sub-configs when set.
    """

    def __init__(self, batch_size: int, num_workers: int = 0, spec_dir_path: str | None = None,
                 rgb_feats_dir_path: str | None = None, flow_feats_dir_path: str | None = None,
                 sample_rate: int | None = None, mel_num: int | None = None, spec_len: int | None = None,
                 spec_crop_len: int | None = None, random_crop: bool | None = None,
                 replace_feats_with_random: bool | None = None, feat_depth: int | None = None,
                 feat_len: int | None = None, feat_crop_len: int | None = None, crop_coord: bool | None = None,
                 for_which_class: str | None = None, feat_sampler_cfg: Mapping | None = None,
                 skip_missing: bool | None = None, meta_path: str | None = None,
                 train: Mapping | None = None, validation: Mapping | None = None, test: Mapping | None = None,
                 wrap: bool = False) -> None:
        both = dict(random_crop=random_crop, for_which_class=for_which_class, skip_missing=skip_missing,
                    meta_path=meta_path)
        specs = dict(spec_dir_path=spec_dir_path, mel_num=mel_num, spec_len=spec_len,
                     spec_crop_len=spec_crop_len, crop_coord=crop_coord, **both)
        cond = dict(rgb_feats_dir_path=rgb_feats_dir_path, flow_feats_dir_path=flow_feats_dir_path,
                    feat_depth=feat_depth, feat_len=feat_len, feat_crop_len=feat_crop_len,
                    feat_sampler_cfg=feat_sampler_cfg, replace_feats_with_random=replace_feats_with_random, **both)
        splits = []
        for split in (train, validation, test):
            if split is not None:
                split = _inject(split, "specs_dataset_cfg", specs)
                if "CondOn" in str(split.get("target", "")).rsplit(".", 1)[-1]:
                    split = _inject(split, "condition_dataset_cfg", cond)
            splits.append(split)
        super().__init__(batch_size, num_workers, *splits, wrap=wrap)


def build_split(cfg: DictConfig, split: str):
    """Instantiate the ``<split>`` dataset (``validation`` or ``test``) of a run config's ``data`` block
    through its data module, so that reference-style modules (``ConditionedSpectrogramDataModuleFromConfig``,
    whose shared keys such as ``spec_dir_path`` are injected into every split) give the same dataset as in
    training. Only that split is built."""
    module = instantiate_from_config(cfg.data)
    configs = getattr(module, "dataset_configs", None)
    if configs is None:
        raise ConfigError(f"data target {cfg.data.get('target')} is not a specvqgan.data DataModule")
    if split not in configs:
        raise ConfigError(f"the data config has no `data.params.{split}` dataset (it has {sorted(configs)})")
    return instantiate_from_config(configs[split])

"""Datasets for the toy audio-visual data (``python scripts/make_toy_dataset.py --out data/toy`` then
``python -m feature_extraction ...``): the VAS classes with defaults that point at ``data_root`` and
lengths derived from the clip ``duration`` (:mod:`specvqgan.shapes`; 2 s -> mel crop 160, 43 features
-> crop 40).

Layout (VAS-like): ``<root>/toy_{train,valid}.txt`` (rows ``<class>/<id>``) and under ``<root>/features/<class>/``:
``melspec_<dur>s_22050hz/<id>_mel.npy``, ``feature_<name>_dim<D>_21.5fps/<id>.pkl`` (toy name ``color``;
D is read from the folder name) and ``audio_<dur>s_22050hz/<id>.wav``; ``<dur>`` is ``%g`` of the duration.
Targets enumerate the class folders under ``<root>/features``, so every split agrees on them.
Each class takes the ``split`` first, e.g. ``ToySpecsCondOnFeats("train")``; the former ``Toy*Train`` /
``Toy*Validation`` config names resolve to them through :mod:`specvqgan.aliases`.
"""
from __future__ import annotations

import re
from glob import glob
from pathlib import Path
from typing import Mapping, Sequence

from specvqgan.audio import N_MELS
from specvqgan.data.base import SpecsCondOnClass, SpecsCondOnFeats, _cfg_dict
from specvqgan.data.vas import VASFeats, VASSpecs
from specvqgan.data.waves import SEGMENT_LENGTH, WaveSegments
from specvqgan.shapes import feat_crop, feat_frames, mel_crop, mel_frames

TOY_ROOT = "data/toy"
TOY_DURATION = 2.0
TOY_FEATURE = "color"


def toy_classes(data_root: str) -> list[str] | None:
    """Sorted class folders of ``<root>/features`` (or ``<root>/videos``); None when neither exists."""
    for sub in ("features", "videos"):
        folder = Path(data_root) / sub
        if folder.is_dir():
            names = sorted(p.name for p in folder.iterdir() if p.is_dir())
            if names:
                return names
    return None


def toy_feat_depth(data_root: str, feat_name: str = TOY_FEATURE) -> int:
    """D of the ``feature_<name>_dim<D>_21.5fps`` folders under ``<root>/features/*``."""
    pattern = f"{data_root}/features/*/feature_{feat_name}_dim*_21.5fps"
    dims = {int(m.group(1)) for p in glob(pattern)
            if (m := re.search(rf"feature_{re.escape(feat_name)}_dim(\d+)_21\.5fps$", p))}
    if len(dims) != 1:
        found = f"several depths {sorted(dims)}" if dims else "no folder"
        raise FileNotFoundError(f"cannot infer feat_depth: {found} matches {pattern}; extract the toy "
                                f"features (python -m feature_extraction ...) or set feat_depth")
    return dims.pop()


class ToySpecs(VASSpecs):
    """Toy mels; ``None`` arguments are derived from ``data_root`` and ``duration`` (see VASSpecs)."""

    def __init__(self, split: str, data_root: str = TOY_ROOT, duration: float = TOY_DURATION,
                 spec_dir_path: str | None = None, mel_num: int | None = N_MELS, spec_len: int | None = None,
                 spec_crop_len: int | None = None, random_crop: bool | None = False,
                 crop_coord: bool | None = None, for_which_class: str | Sequence[str] | None = None,
                 split_path: str | None = None, classes: Sequence[str] | None = None,
                 skip_missing: bool = False) -> None:
        spec_len = spec_len or mel_frames(duration)
        super().__init__(split, spec_dir_path or f"{data_root}/features/*/melspec_{duration:g}s_22050hz",
                         mel_num, spec_len, spec_crop_len or mel_crop(spec_len), random_crop, crop_coord,
                         for_which_class, split_path or f"{data_root}/toy_{split}.txt",
                         classes or toy_classes(data_root), skip_missing)


class ToyFeats(VASFeats):
    """Toy visual features (one stream, ``feature_<feat_name>_dim<D>_21.5fps``); see VASFeats."""

    def __init__(self, split: str, data_root: str = TOY_ROOT, duration: float = TOY_DURATION,
                 feat_name: str = TOY_FEATURE, rgb_feats_dir_path: str | None = None,
                 flow_feats_dir_path: str | None = None, feat_len: int | None = None,
                 feat_depth: int | None = None, feat_crop_len: int | None = None,
                 replace_feats_with_random: bool | None = False, random_crop: bool | None = False,
                 split_path: str | None = None, for_which_class: str | Sequence[str] | None = None,
                 feat_sampler_cfg: Mapping | None = None, classes: Sequence[str] | None = None,
                 skip_missing: bool = False) -> None:
        feat_depth = feat_depth or toy_feat_depth(data_root, feat_name)
        rgb = rgb_feats_dir_path or f"{data_root}/features/*/feature_{feat_name}_dim{feat_depth}_21.5fps"
        super().__init__(split, rgb, flow_feats_dir_path, feat_len or feat_frames(duration), feat_depth,
                         feat_crop_len or feat_crop(mel_crop(mel_frames(duration))), replace_feats_with_random,
                         random_crop, split_path or f"{data_root}/toy_{split}.txt", for_which_class,
                         feat_sampler_cfg, classes or toy_classes(data_root), skip_missing)


class ToyWave(WaveSegments):
    """Toy waveform segments from ``<root>/features/*/audio_<dur>s_22050hz``; see WaveSegments."""

    def __init__(self, split: str, data_root: str = TOY_ROOT, duration: float = TOY_DURATION,
                 wav_dir_path: str | None = None, split_path: str | None = None,
                 segment_length: int | None = SEGMENT_LENGTH, random_crop: bool | None = None,
                 augment: bool | None = None, peak_normalize: bool = True,
                 for_which_class: str | Sequence[str] | None = None, classes: Sequence[str] | None = None,
                 skip_missing: bool = False) -> None:
        super().__init__(split, wav_dir_path or f"{data_root}/features/*/audio_{duration:g}s_22050hz",
                         split_path or f"{data_root}/toy_{split}.txt", segment_length,
                         random_crop=random_crop, augment=augment, peak_normalize=peak_normalize,
                         for_which_class=for_which_class, classes=classes or toy_classes(data_root),
                         skip_missing=skip_missing)


def _toy_cfg(cfg: Mapping | None, data_root: str, duration: float) -> dict:
    """A sub-config with ``data_root``/``duration`` filled in unless it sets them."""
    return {"data_root": data_root, "duration": duration, **_cfg_dict(cfg)}


class ToySpecsCondOnFeats(SpecsCondOnFeats):
    """Toy mels + features; ``data_root``/``duration`` go to both sub-configs unless they set them.

    Args: as :class:`specvqgan.data.base.SpecsCondOnFeats` (both sub-configs optional), plus ``data_root``
    and ``duration`` (see :class:`ToySpecs`).
    """

    specs_cls, feats_cls = ToySpecs, ToyFeats

    def __init__(self, split: str, specs_dataset_cfg: Mapping | None = None,
                 condition_dataset_cfg: Mapping | None = None, align_random_crop: bool = True,
                 require_labels: bool = False, data_root: str = TOY_ROOT, duration: float = TOY_DURATION) -> None:
        super().__init__(split, _toy_cfg(specs_dataset_cfg, data_root, duration),
                         _toy_cfg(condition_dataset_cfg, data_root, duration), align_random_crop, require_labels)


class ToySpecsCondOnClass(SpecsCondOnClass):
    """Toy mels with class targets; ``data_root``/``duration`` as in :class:`ToySpecsCondOnFeats`."""

    specs_cls = ToySpecs

    def __init__(self, split: str, specs_dataset_cfg: Mapping | None = None,
                 condition_dataset_cfg: Mapping | None = None, data_root: str = TOY_ROOT,
                 duration: float = TOY_DURATION) -> None:
        super().__init__(split, _toy_cfg(specs_dataset_cfg, data_root, duration), condition_dataset_cfg)

"""VGGSound datasets (Chen et al. 2020; paper section 6.1), with the reference class names and parameters.

Each class takes the ``split`` first; the reference's ``VGGSoundSpecsTrain``, ``VGGSoundFeatsTest``, ...
are config names that fix it (alias entries in ``specvqgan/reference_targets.yaml``).

Layout: split lists with rows ``<youtube_id>_<start_ms>_<end_ms>``; mels ``melspec_10s_22050hz/<clip>_mel.npy``
(stored as float64 in the reference samples; items are float32); features
``feature_{rgb,flow}_bninception_dim1024_21.5fps/<clip>.pkl``.

Class labels come from the dataset's CSV (``meta_path``, rows ``youtube_id,start_s,label,split``), which the
reference read from ``./data/vggsound.csv`` but did not ship. Without it the spectrogram and feature datasets
still work and their items carry no ``target``/``label``; the class-conditioned datasets raise an error that
names the missing file.
"""
from __future__ import annotations

import logging
import os
from typing import Mapping, Sequence

from specvqgan.audio import MEL_CROP_10S, MEL_FRAMES_10S, N_MELS
from specvqgan.data.base import FeatsDataset, SpecsCondOnClass, SpecsCondOnFeats, SpecsDataset
from specvqgan.data.clips import MAX_LISTED, CsvLabels
from specvqgan.data.transforms import Crop, CropFeats, CropImage, ResampleFrames  # noqa: F401 (reference paths)
from specvqgan.shapes import FEAT_CROP_10S, FEATS_10S

log = logging.getLogger(__name__)

DEFAULT_META_PATH = "./data/vggsound.csv"

__all__ = ["VGGSoundSpecs", "VGGSoundFeats", "ResampleFrames", "CropImage", "CropFeats"]


class _VGGSoundLabels:
    """Mixin: labels from the CSV at ``self.meta_path`` (or none, with a warning, when it is absent)."""

    default_split_path = "./data/vggsound_{split}.txt"

    def _load_csv(self, meta_path: str | None) -> None:
        self.meta_path = meta_path
        self._csv = None
        if meta_path and os.path.isfile(meta_path):
            self._csv = CsvLabels(meta_path)
        elif meta_path:
            log.warning("class-label CSV %s not found: VGGSound items will have no `target`/`label`", meta_path)

    def clip_class(self, clip: str) -> str:
        if self._csv is None:
            raise ValueError(f"for_which_class needs the class-label CSV (meta_path={self.meta_path!r}), "
                             f"which is absent")
        return self._csv.label(clip)

    def make_labels(self, clips: Sequence[str]):
        if self._csv is None:
            return None
        unknown = [c for c in clips if c[:11] not in self._csv.video2label]
        if unknown:
            raise KeyError(f"{len(unknown)} clips of {self.split_path} are not in the class-label CSV "
                           f"{self.meta_path}: {unknown[:MAX_LISTED]}")
        return self._csv


class VGGSoundSpecs(_VGGSoundLabels, SpecsDataset):
    """VGGSound mel spectrograms; see :class:`specvqgan.data.base.SpecsDataset` for the arguments.

    Args (besides the base ones):
        meta_path: the class-label CSV (optional unless class conditioning is used).
    """

    def __init__(self, split: str, spec_dir_path: str, mel_num: int | None = N_MELS,
                 spec_len: int | None = MEL_FRAMES_10S, spec_crop_len: int | None = MEL_CROP_10S,
                 random_crop: bool | None = False, crop_coord: bool | None = None,
                 for_which_class: str | Sequence[str] | None = None, split_path: str | None = None,
                 meta_path: str | None = DEFAULT_META_PATH, skip_missing: bool = False) -> None:
        super().__init__()
        self.crop_coord = crop_coord
        self._load_csv(meta_path)
        self._init_specs(split, spec_dir_path, mel_num, spec_len, spec_crop_len, random_crop,
                         for_which_class, split_path, skip_missing)


class VGGSoundFeats(_VGGSoundLabels, FeatsDataset):
    """VGGSound visual features; see :class:`specvqgan.data.base.FeatsDataset` for the arguments."""

    def __init__(self, split: str, rgb_feats_dir_path: str, flow_feats_dir_path: str | None = None,
                 feat_len: int = FEATS_10S, feat_depth: int = 2048, feat_crop_len: int = FEAT_CROP_10S,
                 replace_feats_with_random: bool | None = False, random_crop: bool | None = False,
                 split_path: str | None = None, meta_path: str | None = DEFAULT_META_PATH,
                 for_which_class: str | Sequence[str] | None = None, feat_sampler_cfg: Mapping | None = None,
                 skip_missing: bool = False) -> None:
        super().__init__()
        self._load_csv(meta_path)
        self._init_feats(split, rgb_feats_dir_path, flow_feats_dir_path, feat_len, feat_depth, feat_crop_len,
                         replace_feats_with_random, random_crop, split_path, for_which_class,
                         feat_sampler_cfg, skip_missing)


class VGGSoundSpecsCondOnFeats(SpecsCondOnFeats):
    """VGGSound mels + visual features; see :class:`specvqgan.data.base.SpecsCondOnFeats`."""

    specs_cls, feats_cls = VGGSoundSpecs, VGGSoundFeats


class VGGSoundSpecsCondOnClass(SpecsCondOnClass):
    """VGGSound mels with class targets (needs ``meta_path``)."""

    specs_cls = VGGSoundSpecs

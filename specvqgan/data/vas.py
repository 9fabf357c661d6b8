"""VAS datasets (Zhou et al. 2018; paper section 6.1), with the reference class names and parameters.

Each class takes the ``split`` first; the reference's ``VASSpecsTrain``, ``VASSpecsCondOnFeatsValidation``, ...
are config names that fix it (alias entries in ``specvqgan/reference_targets.yaml``).

Layout: split lists with rows ``<class>/video_<id>``; mels ``features/<class>/melspec_10s_22050hz/
video_<id>_mel.npy``; BN-Inception ``features/<class>/feature_{rgb,flow}_bninception_dim1024_21.5fps/
video_<id>.pkl`` (or ResNet-50 ``feature_resnet50_dim2048_21.5fps``). Directory params hold ``*`` for the
class. Targets are the sorted class names of the split list (or of ``classes`` when given).

A reference ``data:`` section (``configs/vas_{codebook,transformer}.yaml``) instantiates unchanged
through :mod:`specvqgan.data.datamodule`.
"""
from __future__ import annotations

import os
from glob import glob
from pathlib import Path
from typing import Mapping, Sequence

from specvqgan.audio import MEL_CROP_10S, MEL_FRAMES_10S, N_MELS
from specvqgan.data.base import FeatsDataset, SpecsCondOnClass, SpecsCondOnFeats, SpecsDataset
from specvqgan.data.clips import ClassDirLabels
from specvqgan.data.transforms import Crop, CropFeats, CropImage, ResampleFrames  # noqa: F401 (reference paths)
from specvqgan.shapes import FEAT_CROP_10S, FEATS_10S

__all__ = ["VASSpecs", "VASFeats", "ResampleFrames", "CropImage", "CropFeats", "make_split_files"]


class VASSpecs(SpecsDataset):
    """VAS mel spectrograms; see :class:`specvqgan.data.base.SpecsDataset` for the arguments.

    Args (besides the base ones):
        classes: all class names, so that targets agree across splits (default: the split's classes).
    """

    default_split_path = "./data/vas_{split}.txt"

    def __init__(self, split: str, spec_dir_path: str, mel_num: int | None = N_MELS,
                 spec_len: int | None = MEL_FRAMES_10S, spec_crop_len: int | None = MEL_CROP_10S,
                 random_crop: bool | None = False, crop_coord: bool | None = None,
                 for_which_class: str | Sequence[str] | None = None, split_path: str | None = None,
                 classes: Sequence[str] | None = None, skip_missing: bool = False) -> None:
        super().__init__()
        self.classes = list(classes) if classes else None
        self.crop_coord = crop_coord
        self._init_specs(split, spec_dir_path, mel_num, spec_len, spec_crop_len, random_crop,
                         for_which_class, split_path, skip_missing)

    def make_labels(self, clips):
        return ClassDirLabels(clips, self.classes)


class VASFeats(FeatsDataset):
    """VAS visual features; see :class:`specvqgan.data.base.FeatsDataset` for the arguments."""

    default_split_path = "./data/vas_{split}.txt"

    def __init__(self, split: str, rgb_feats_dir_path: str, flow_feats_dir_path: str | None = None,
                 feat_len: int = FEATS_10S, feat_depth: int = 2048, feat_crop_len: int = FEAT_CROP_10S,
                 replace_feats_with_random: bool | None = False, random_crop: bool | None = False,
                 split_path: str | None = None, for_which_class: str | Sequence[str] | None = None,
                 feat_sampler_cfg: Mapping | None = None, classes: Sequence[str] | None = None,
                 skip_missing: bool = False) -> None:
        super().__init__()
        self.classes = list(classes) if classes else None
        self._init_feats(split, rgb_feats_dir_path, flow_feats_dir_path, feat_len, feat_depth, feat_crop_len,
                         replace_feats_with_random, random_crop, split_path, for_which_class,
                         feat_sampler_cfg, skip_missing)

    def make_labels(self, clips):
        return ClassDirLabels(clips, self.classes)


class VASSpecsCondOnFeats(SpecsCondOnFeats):
    """VAS mels + visual features; see :class:`specvqgan.data.base.SpecsCondOnFeats`."""

    specs_cls, feats_cls = VASSpecs, VASFeats


class VASSpecsCondOnClass(SpecsCondOnClass):
    """VAS mels with class targets; see :class:`specvqgan.data.base.SpecsCondOnClass`."""

    specs_cls = VASSpecs


def make_split_files(out_dir: str, feat_folder: str, feat_suffix: str = "_mel.npy",
                     prefix: str = "vas") -> tuple[Path, Path]:
    """Write ``<prefix>_train.txt`` / ``<prefix>_valid.txt`` from the files on disk (reference rule).

    Per class, in sorted order, the last 128 clips (dog, fireworks, baby, drum) or 64 (other classes)
    go to valid, the rest to train. The reference did this silently when a split list was missing;
    here it is an explicit call.

    Args:
        out_dir: folder for the two split lists.
        feat_folder: pattern of the feature folder with ``*`` for the class, e.g.
            ``data/vas/features/*/melspec_10s_22050hz``.
        feat_suffix: file suffix stripped to get the clip id.
    Returns:
        The paths of the train and valid lists.
    """
    paths = sorted(glob(os.path.join(feat_folder, "*" + feat_suffix)))
    if not paths:
        raise FileNotFoundError(f"no '*{feat_suffix}' file matches {feat_folder}")
    clips = [f"{Path(p).parent.parent.name}/{Path(p).name[:-len(feat_suffix)]}" for p in paths]
    train, valid = [], []
    for cls in sorted({c.split("/")[0] for c in clips}):
        n_valid = 128 if cls in ("dog", "fireworks", "baby", "drum") else 64
        rows = [c for c in clips if c.split("/")[0] == cls]
        train += rows[:-n_valid]
        valid += rows[-n_valid:]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_path, valid_path = out / f"{prefix}_train.txt", out / f"{prefix}_valid.txt"
    train_path.write_text("".join(f"{r}\n" for r in train))
    valid_path.write_text("".join(f"{r}\n" for r in valid))
    return train_path, valid_path

"""Dataset logic shared by VAS, VGGSound and the toy data (reference: ``specvqgan/data/vas.py``).

* :class:`ClipDataset`: a split list, optional class filter, labels, and the absent-clip check.
* :class:`SpecsDataset`: mel spectrogram items (the codebook's input; paper section 3.1).
* :class:`FeatsDataset`: visual feature items (RGB [+ flow] pickles), or random ones ("no features").
* :class:`SpecsCondOnFeats` / :class:`SpecsCondOnClass`: the transformer's paired items (section 3.2).

Items are dicts as in the reference: ``image`` (mel_num, spec_crop_len) float32 in [-1, 1] (= 2*mel-1),
``feature`` (n_feats, D) float32, ``target`` int, ``label`` str, ``file_path_`` str.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from specvqgan.data.clips import (clip_path, drop_absent, load_feats, load_mel, read_split,
                                  split_clip)
from specvqgan.data.transforms import crop_2d, crop_start, pad_or_trim
from specvqgan.shapes import MELS_PER_FEAT

SPLITS = ("train", "valid", "test")


class ClipDataset(torch.utils.data.Dataset):
    """Clips of one split. Subclasses set ``default_split_path`` and implement ``make_labels``.

    After ``__init__``: ``self.dataset`` (clip rows that are on disk), ``self.absent`` (skipped rows),
    ``self.labels`` (an object with ``label(clip)``, ``label2target`` and ``target2label``, or None when
    the clips have no labels) and ``self.label2target``.
    """

    default_split_path = "./data/{split}.txt"
    suffix = ""

    def _init_clips(self, split: str, split_path: str | None, for_which_class: str | Sequence[str] | None,
                    skip_missing: bool) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.split = split
        self.split_path = str(split_path) if split_path else self.default_split_path.format(split=split)
        self.skip_missing = bool(skip_missing)
        clips = read_split(self.split_path)
        if for_which_class:
            wanted = {for_which_class} if isinstance(for_which_class, str) else set(for_which_class)
            clips = [c for c in clips if self.clip_class(c) in wanted]
            if not clips:
                raise ValueError(f"split list {self.split_path} has no clip of class(es) {sorted(wanted)}")
        self.labels = self.make_labels(clips)
        self.dataset = drop_absent(clips, self.required_paths(), self.skip_missing, self.describe())
        kept = set(self.dataset)
        self.absent = [c for c in clips if c not in kept]  # skipped clips (skip_missing=True)
        self.label2target = self.labels.label2target if self.labels is not None else None

    def clip_class(self, clip: str) -> str | None:
        """Class name of a clip, used by ``for_which_class``."""
        return split_clip(clip)[0]

    def make_labels(self, clips: Sequence[str]) -> Any:
        raise NotImplementedError

    def required_paths(self) -> list[Callable[[str], str]]:
        """Functions clip -> file that must exist for the clip to be read."""
        raise NotImplementedError

    def describe(self) -> str:
        return f"split list {self.split_path}"

    def add_labels(self, item: dict, clip: str) -> dict:
        if self.labels is not None:
            item["label"] = self.labels.label(clip)
            item["target"] = self.labels.label2target[item["label"]]
        return item

    def __len__(self) -> int:
        return len(self.dataset)


class SpecsDataset(ClipDataset):
    """Mel spectrograms ``<spec_dir_path>/<id>_mel.npy`` of the clips of a split.

    Args:
        split: 'train', 'valid' or 'test'.
        spec_dir_path: folder of the mels; ``*`` is replaced by the clip's class.
        mel_num: mel bins (80). spec_len: stored frames (860 for 10 s; informative, as in the reference).
        spec_crop_len: frames kept (848): centered (columns 6:854 of 860) unless ``random_crop``.
        random_crop: crop at a uniformly random offset (training augmentation).
        crop_coord: accepted for reference configs; unused.
        for_which_class: keep only clips of this class (or list of classes).
        split_path: the split list (default: ``default_split_path``).
        skip_missing: skip clips whose mel is absent (with a warning) instead of raising.
    Item: ``image`` (mel_num, spec_crop_len) float32 in [-1, 1], ``file_path_``, ``label``, ``target``.
    """

    suffix = "_mel.npy"

    def _init_specs(self, split, spec_dir_path, mel_num, spec_len, spec_crop_len, random_crop,
                    for_which_class, split_path, skip_missing) -> None:
        if not spec_dir_path:
            raise ValueError(f"{type(self).__name__}: `spec_dir_path` is required")
        self.spec_dir_path = str(spec_dir_path)
        self.mel_num = mel_num
        self.spec_len = spec_len
        self.spec_crop_len = spec_crop_len
        self.random_crop = bool(random_crop)
        self._init_clips(split, split_path, for_which_class, skip_missing)

    def required_paths(self):
        return [self.spec_path]

    def describe(self) -> str:
        return f"split list {self.split_path} (mels in {self.spec_dir_path})"

    def spec_path(self, clip: str) -> str:
        return clip_path(self.spec_dir_path, clip, self.suffix)

    def load(self, idx: int, start: int | None = None) -> tuple[dict, int]:
        """Item ``idx`` with its mel cropped from column ``start`` (default: center or random).

        Returns:
            (item, start): the item and the first kept column.
        """
        clip = self.dataset[idx]
        path = self.spec_path(clip)
        mel = load_mel(path, self.mel_num)
        crop = mel.shape[1] if self.spec_crop_len is None else int(self.spec_crop_len)
        if mel.shape[1] < crop:
            raise ValueError(f"mel spectrogram {path} has {mel.shape[1]} frames, fewer than "
                             f"spec_crop_len={crop}")
        if start is None:
            start = crop_start(mel.shape[1], crop, self.random_crop)
        mel = crop_2d(mel, (mel.shape[0], crop), starts=(0, start))
        # the models take [-1, 1] (reference: `2 * item['input'] - 1`), computed in the stored dtype
        item = {"image": (2 * mel - 1).astype(np.float32), "file_path_": path}
        return self.add_labels(item, clip), start

    def __getitem__(self, idx: int) -> dict:
        return self.load(idx)[0]


class FeatsDataset(ClipDataset):
    """Visual features ``<rgb_feats_dir_path>/<id>.pkl`` [+ flow] of the clips of a split.

    Args:
        rgb_feats_dir_path: folder of the RGB (or ResNet-50, or toy) feature pickles (``*`` = class).
        flow_feats_dir_path: folder of the optical-flow pickles, concatenated after RGB; None for one stream.
        feat_len: rows after zero-padding/trimming (215 for 10 s).
        feat_depth: D of the concatenated features (2048 = 1024 RGB + 1024 flow).
        feat_crop_len: rows kept (212): centered (rows 1:213) unless ``random_crop``.
        replace_feats_with_random: "no features" mode: uniform [0, 1) noise of shape
            (feat_len, feat_depth / streams), new at every read; no file is read.
        feat_sampler_cfg: ``{target, params}`` of a transform applied last (``ResampleFrames``).
        split_path, for_which_class, skip_missing: as in :class:`SpecsDataset`.
    Item: ``feature`` (n, feat_depth) float32, ``file_path_`` (rgb[, flow]) tuple, ``label``, ``target``.
    """

    suffix = ".pkl"

    def _init_feats(self, split, rgb_feats_dir_path, flow_feats_dir_path, feat_len, feat_depth,
                    feat_crop_len, replace_feats_with_random, random_crop, split_path, for_which_class,
                    feat_sampler_cfg, skip_missing) -> None:
        if not rgb_feats_dir_path:
            raise ValueError(f"{type(self).__name__}: `rgb_feats_dir_path` is required")
        self.feat_dirs = [str(rgb_feats_dir_path)] + ([str(flow_feats_dir_path)] if flow_feats_dir_path else [])
        self.rgb_feats_dir_path, self.flow_feats_dir_path = rgb_feats_dir_path, flow_feats_dir_path
        self.feat_len, self.feat_depth, self.feat_crop_len = int(feat_len), int(feat_depth), int(feat_crop_len)
        if self.feat_depth % len(self.feat_dirs):
            raise ValueError(f"feat_depth={feat_depth} is not divisible by the {len(self.feat_dirs)} streams")
        if self.feat_crop_len > self.feat_len:
            raise ValueError(f"feat_crop_len={feat_crop_len} exceeds feat_len={feat_len}")
        self.replace_feats_with_random = bool(replace_feats_with_random)
        self.random_crop = bool(random_crop)
        self.feat_sampler_cfg = feat_sampler_cfg
        self.feat_sampler = None
        if feat_sampler_cfg is not None:
            from specvqgan.config import instantiate_from_config
            self.feat_sampler = instantiate_from_config(feat_sampler_cfg)
        self._init_clips(split, split_path, for_which_class, skip_missing)

    def required_paths(self):
        if self.replace_feats_with_random:
            return []
        return [lambda clip, d=d: clip_path(d, clip, self.suffix) for d in self.feat_dirs]

    def describe(self) -> str:
        return f"split list {self.split_path} (features in {', '.join(self.feat_dirs)})"

    def load(self, idx: int, start: int | None = None) -> tuple[dict, int]:
        """Item ``idx`` with its features cropped from row ``start`` (default: center or random).

        Returns:
            (item, start): the item and the first kept row (before ``feat_sampler``).
        """
        clip = self.dataset[idx]
        paths = tuple(clip_path(d, clip, self.suffix) for d in self.feat_dirs)
        depth = self.feat_depth // len(paths)
        if self.replace_feats_with_random:
            streams = [np.random.rand(self.feat_len, depth).astype(np.float32) for _ in paths]
        else:
            streams = [pad_or_trim(load_feats(p), self.feat_len) for p in paths]
        feats = np.concatenate(streams, axis=1)
        if feats.shape[1] != self.feat_depth:
            dims = " + ".join(f"{s.shape[1]} ({p})" for s, p in zip(streams, paths))
            raise ValueError(f"features of clip {clip!r} have depth {dims} = {feats.shape[1]}, "
                             f"expected feat_depth={self.feat_depth}")
        if start is None:
            start = crop_start(self.feat_len, self.feat_crop_len, self.random_crop)
        feats = crop_2d(feats, (self.feat_crop_len, self.feat_depth), starts=(start, 0))
        item = {"feature": feats.astype(np.float32), "file_path_": paths}
        item = self.add_labels(item, clip)
        if self.feat_sampler is not None:
            item = self.feat_sampler(item)
        return item, start

    def __getitem__(self, idx: int) -> dict:
        return self.load(idx)[0]


def _cfg_dict(cfg: Mapping | None) -> dict:
    """A dataset sub-config (dict, DictConfig or None) as a plain dict of its top-level keys."""
    return {str(k): cfg[k] for k in cfg} if cfg else {}


def build_with_cfg(cls: type, split: str, cfg: Mapping | None, section: str) -> Any:
    """``cls(split, **cfg)`` with a clear error for keys ``cls`` does not accept."""
    import inspect

    cfg = _cfg_dict(cfg)
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "split"}
    unknown = sorted(set(cfg) - accepted)
    if unknown:
        raise TypeError(f"{cls.__name__}: unknown key(s) {unknown} in {section}; accepted: {sorted(accepted)}")
    return cls(split, **cfg)


class SpecsCondOnFeats(torch.utils.data.Dataset):
    """Mel + visual features of the same clips (the transformer's input; paper section 3.2).

    Args:
        split: 'train', 'valid' or 'test'.
        specs_dataset_cfg / condition_dataset_cfg: keyword arguments of ``specs_cls`` / ``feats_cls``.
            A ``split_path`` given in only one of them is used for both.
        align_random_crop: with ``random_crop``, crop the features at the mel offset // 4 so that both
            cover the same time span. The reference drew the two offsets independently (set False for
            that behaviour); center crops (6 of 860 and 1 of 215) are aligned either way.
        require_labels: every item must carry ``target``/``label`` (feature + class conditioning).
    Item: the spec item (``image``, ``file_path_`` = ``file_path_specs_``, ``label``, ``target``) plus
    ``feature`` and ``file_path_feats_``.
    """

    specs_cls: type = SpecsDataset
    feats_cls: type = FeatsDataset

    def __init__(self, split: str, specs_dataset_cfg: Mapping | None, condition_dataset_cfg: Mapping | None,
                 align_random_crop: bool = True, require_labels: bool = False) -> None:
        specs_cfg, cond_cfg = _cfg_dict(specs_dataset_cfg), _cfg_dict(condition_dataset_cfg)
        for a, b in ((specs_cfg, cond_cfg), (cond_cfg, specs_cfg)):
            if not a.get("split_path") and b.get("split_path"):
                a["split_path"] = b["split_path"]
        self.specs_dataset_cfg, self.condition_dataset_cfg = specs_cfg, cond_cfg
        self.specs_dataset = build_with_cfg(self.specs_cls, split, specs_cfg, "specs_dataset_cfg")
        self.feats_dataset = build_with_cfg(self.feats_cls, split, cond_cfg, "condition_dataset_cfg")
        self.align_random_crop = bool(align_random_crop)
        if require_labels:
            _require_labels(self.specs_dataset)
        specs, feats = self.specs_dataset.dataset, self.feats_dataset.dataset
        if specs != feats:
            if not (self.specs_dataset.skip_missing or self.feats_dataset.skip_missing):
                raise ValueError(f"the specs split {self.specs_dataset.split_path} and the features split "
                                 f"{self.feats_dataset.split_path} name different clips")
            common = set(specs) & set(feats)
            self.specs_dataset.dataset = [c for c in specs if c in common]
            self.feats_dataset.dataset = [c for c in feats if c in common]
            if self.specs_dataset.dataset != self.feats_dataset.dataset:
                raise ValueError(f"the specs split {self.specs_dataset.split_path} and the features split "
                                 f"{self.feats_dataset.split_path} list their clips in different orders")

    def __getitem__(self, idx: int) -> dict:
        specs_item, start = self.specs_dataset.load(idx)
        feat_start = None
        if self.align_random_crop and self.specs_dataset.random_crop:
            feats = self.feats_dataset
            feat_start = min(start // MELS_PER_FEAT, feats.feat_len - feats.feat_crop_len)
        feats_item, _ = self.feats_dataset.load(idx, feat_start)
        for key in ("target", "label"):
            if key in feats_item and specs_item.get(key) != feats_item.pop(key):
                raise ValueError(f"clip {self.specs_dataset.dataset[idx]!r}: the specs and features "
                                 f"datasets disagree on its {key}")
        specs_item["file_path_specs_"] = specs_item["file_path_"]
        specs_item["feature"] = feats_item["feature"]
        specs_item["file_path_feats_"] = feats_item["file_path_"]
        return specs_item

    def __len__(self) -> int:
        return len(self.specs_dataset)


class SpecsCondOnClass(torch.utils.data.Dataset):
    """Mel items with their class ``target`` (class conditioning, paper section 4.3).

    ``condition_dataset_cfg`` is accepted for reference configs and unused, as in the reference.
    """

    specs_cls: type = SpecsDataset

    def __init__(self, split: str, specs_dataset_cfg: Mapping | None,
                 condition_dataset_cfg: Mapping | None = None) -> None:
        self.specs_dataset_cfg = _cfg_dict(specs_dataset_cfg)
        self.condition_dataset_cfg = condition_dataset_cfg
        self.specs_dataset = build_with_cfg(self.specs_cls, split, self.specs_dataset_cfg, "specs_dataset_cfg")
        _require_labels(self.specs_dataset)

    def __getitem__(self, idx: int) -> dict:
        return self.specs_dataset[idx]

    def __len__(self) -> int:
        return len(self.specs_dataset)


def _require_labels(dataset: ClipDataset) -> None:
    if dataset.labels is None:
        meta = getattr(dataset, "meta_path", None)
        where = f"the class-label CSV meta_path={meta!r} is absent" if meta else "no class-label CSV given"
        raise FileNotFoundError(f"{type(dataset).__name__} for {dataset.split_path}: class conditioning needs "
                                f"class labels, but {where}")

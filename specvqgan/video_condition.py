"""What a trained transformer conditions on, and that condition computed from a video's features.

:func:`condition_spec` reads a Net2NetTransformer and its stored run config (the ``data`` block when the
checkpoint has one, as ``train.py`` writes it) and returns a :class:`ConditionSpec`: the visual feature
type (toy ``color`` grid, ``resnet50``, ``bninception`` RGB + flow), the trained clip duration, the
dataset's feature pad/crop/resampling (1 / 5 / 212 frames; toy 40) and whether a class is needed.
:func:`window_features` applies that recipe with the dataset's own transforms
(:mod:`specvqgan.data.transforms`) to a window of a video's features, so that a clip of the trained
length gets exactly the condition the dataset gave the model in training. Used by :mod:`specvqgan.pipeline`.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np

from specvqgan.data.transforms import crop_2d, crop_start, pad_or_trim
from specvqgan.shapes import SequenceShape, feat_crop, feat_frames, mel_crop, mel_frames

log = logging.getLogger(__name__)


class GenerationError(ValueError):
    """The pipeline cannot run on this input / checkpoint; the message names the file and the problem."""


# ----------------------------------------------------------------------------- what the model was trained with
@dataclass(frozen=True)
class ConditionSpec:
    """The condition a transformer was trained with, read from its checkpoint.

    Attributes:
        feature: extractor name (a key of ``feature_extraction.extract.FEATURES``: ``color``, ``resnet50``,
            ``bninception`` ...), None for a class-only model.
        streams: extractor outputs concatenated along D in the dataset's order (RGB then flow).
        feat_depth: D. duration: trained clip length (s). feat_len: feature rows after pad/trim (215 for 10 s).
        feat_crop_len: rows of the centre crop (212; = 4 x latent width). n_feats: condition positions
            after ``feat_sampler_cfg`` (1 / 5 / 212; toy 40). needs_class: the model takes a class index.
        trained_on_noise: the training data replaced the features by noise (``replace_feats_with_random``).
        feats_per_col: feature rows per latent column (4: the model's ``shape.feats_per_col``).
    """

    feature: Optional[str]
    streams: tuple
    feat_depth: int
    duration: float
    feat_len: int
    feat_crop_len: int
    n_feats: int
    feat_sampler_cfg: Optional[dict] = None
    needs_class: bool = False
    trained_on_noise: bool = False
    feats_per_col: int = SequenceShape().feats_per_col

    @property
    def crop_offset(self) -> int:
        """First row of the dataset's centre crop (215 -> 212: row 1)."""
        return crop_start(self.feat_len, self.feat_crop_len) if self.feature else 0

    def rows_needed(self, total_cols: int, W: int) -> int:
        """Feature rows a ``total_cols``-column generation reads (the last window's end)."""
        return self.crop_offset + self.feats_per_col * max(0, total_cols - W) + self.feat_crop_len

    def describe(self) -> str:
        feats = (f"{self.feature} features {self.n_feats} x {self.feat_depth} (crop {self.feat_crop_len} of "
                 f"{self.feat_len})" if self.feature else "no features")
        return f"{feats}, {'class, ' if self.needs_class else ''}{self.duration:g} s clips"


def window_features(feats: np.ndarray, spec: ConditionSpec, start_col: int = 0) -> np.ndarray:
    """The model's features for the window whose first latent column is ``start_col``.

    feats: (N, D) features of the whole video at 21.5 fps. Rows are zero-padded/trimmed (``pad_or_trim``)
    and cropped as :class:`specvqgan.data.base.FeatsDataset` does (centre crop of ``feat_crop_len``),
    shifted by 4 rows per latent column, then resampled by the dataset's ``feat_sampler_cfg``.
    For ``start_col=0`` and N = ``feat_len`` this is exactly the dataset's item for the clip.
    Returns (n_feats, D) float32.
    """
    from specvqgan.config import instantiate_from_config

    start = spec.crop_offset + spec.feats_per_col * int(start_col)
    rows = pad_or_trim(np.asarray(feats, dtype=np.float32), max(spec.feat_len, start + spec.feat_crop_len))
    item = {"feature": crop_2d(rows, (spec.feat_crop_len, rows.shape[1]), starts=(start, 0))}
    if spec.feat_sampler_cfg:
        item = instantiate_from_config(spec.feat_sampler_cfg)(item)
    return np.ascontiguousarray(item["feature"], dtype=np.float32)


def used_rows(spec: ConditionSpec, total_cols: int, W: int, n_rows: int) -> np.ndarray:
    """Sorted rows of a video's (n_rows, D) features that :func:`window_features` reads for any window of a
    ``total_cols``-column generation of a ``W``-column model (rows past ``n_rows`` are zero padding and not
    listed): the dataset's own crop and resampling applied to the row numbers."""
    numbers = np.arange(1, n_rows + 1, dtype=np.float32)[:, None]          # row k -> k + 1; 0 = padding
    used = np.concatenate([window_features(numbers, spec, s)[:, 0] for s in range(max(0, total_cols - W) + 1)])
    return np.unique(used[used > 0]).astype(np.int64) - 1


def _dataset_config(run_config: Optional[dict], path: str) -> tuple[str, dict]:
    """(target, params) of the run's validation (else test, else train) dataset, with the shared keys of
    reference-style data modules injected as in training; ("", {}) without a data config."""
    from omegaconf import OmegaConf

    from specvqgan.config import instantiate_from_config

    if not run_config or "data" not in run_config:
        return "", {}
    try:
        configs = instantiate_from_config(OmegaConf.create(run_config["data"])).dataset_configs
    except Exception as err:  # an unknown data module: fall back to the model config
        log.warning("%s: cannot read the data config (%s); deriving the condition from the model", path, err)
        return "", {}
    for split in ("validation", "test", "train"):
        if split in configs:
            cfg = configs[split]
            cfg = OmegaConf.to_container(cfg, resolve=True) if not isinstance(cfg, dict) else cfg
            return str(cfg.get("target", "")), dict(cfg.get("params") or {})
    return "", {}


def _trained_duration(params: dict, mel_crop_len: int) -> float:
    """Clip seconds: the toy datasets' ``duration``, else the smallest 0.5 s multiple whose mels have the
    dataset's ``spec_len`` (860 -> 10 s), else whose mel crop equals the model's (848 -> 10 s, 160 -> 2 s)."""
    specs = params.get("specs_dataset_cfg") or {}
    if params.get("duration") or specs.get("duration"):
        return float(params.get("duration") or specs["duration"])
    grid = [k / 2 for k in range(1, 241)]
    if specs.get("spec_len"):
        found = [d for d in grid if mel_frames(d) == int(specs["spec_len"])]
        if found:
            return found[0]
    found = [d for d in grid if mel_crop(mel_frames(d)) == mel_crop_len]
    if not found:
        raise GenerationError(f"cannot tell the clip duration of a model with a {mel_crop_len}-frame mel crop")
    return found[0]


def _outputs(feature: str) -> tuple:
    """((output name, dim), ...) of extractor ``feature`` (networks are not loaded)."""
    from feature_extraction.extract import ExtractConfig, feature_outputs

    return feature_outputs(ExtractConfig(feature=feature, random_weights=True).extractor)


def _feature_names() -> dict:
    """{extractor output names: extractor name} of every visual feature the extractor knows."""
    from feature_extraction.extract import FEATURES

    return {tuple(n for n, _ in _outputs(name)): name for name in FEATURES}


def _feature_kind(target: str, cond_cfg: dict, feat_depth: int, feature: Optional[str], path: str):
    """(extractor name, streams) from the ``feature_<name>_dim<D>_21.5fps`` folders of the training data,
    the toy datasets' ``feat_name``, an explicit ``feature`` or, last, the toy colour depth (48)."""
    from feature_extraction.extract import FEATURES

    if feature is not None:
        if feature not in FEATURES:
            raise GenerationError(f"unknown feature {feature!r}; choose from {sorted(FEATURES)}")
        return feature, tuple(n for n, _ in _outputs(feature))
    streams = []
    for key in ("rgb_feats_dir_path", "flow_feats_dir_path"):
        if cond_cfg.get(key):
            m = re.search(r"feature_(.+?)_dim\d+_", Path(str(cond_cfg[key])).name)
            if not m:
                raise GenerationError(f"{path}: cannot tell the visual feature from {key}={cond_cfg[key]!r}")
            streams.append(m.group(1))
    if not streams and target.startswith("specvqgan.data.toy."):
        from specvqgan.data.toy import TOY_FEATURE
        streams = [cond_cfg.get("feat_name") or TOY_FEATURE]
    if streams:
        names = _feature_names()
        if tuple(streams) not in names:
            raise GenerationError(f"{path}: trained on features {streams}, which feature_extraction cannot make")
        return names[tuple(streams)], tuple(streams)
    from feature_extraction.toy_features import ColorGrid
    if feat_depth == ColorGrid().dim:
        return "color", (ColorGrid().name,)
    raise GenerationError(f"{path}: the checkpoint does not say which {feat_depth}-d visual features it was "
                          f"trained on; pass feature='resnet50' or 'bninception' (--feature)")


def condition_spec(model, run_config: Optional[dict], feature: Optional[str] = None, path: str = "") -> ConditionSpec:
    """What ``model`` (a Net2NetTransformer) was trained with, from its stored run config (the data block,
    when the checkpoint has one) and its own shapes. See :class:`ConditionSpec`."""
    stage = type(model.cond_stage_model).__name__
    if not model.has_prefix_gpt or stage not in ("RawFeatsStage", "FeatsClassStage", "ClassOnlyStage"):
        raise GenerationError(f"{path}: unsupported condition ({stage}, {type(model.transformer).__name__}); "
                              f"the pipeline takes visual-feature and/or class conditioned transformers")
    shape = model.shape
    if shape is None:
        raise GenerationError(f"{path}: the pipeline needs a ColumnMajor first-stage permuter")
    target, params = _dataset_config(run_config, path)
    duration = _trained_duration(params, shape.mel_len)
    needs_class = stage != "RawFeatsStage"
    if stage == "ClassOnlyStage":
        return ConditionSpec(None, (), 0, duration, 0, 0, 0, needs_class=True, feats_per_col=shape.feats_per_col)
    cond_cfg = dict(params.get("condition_dataset_cfg") or {})
    emb = getattr(model.transformer, "feat_embedder", None)
    emb = getattr(model.transformer, "embedder", None) if emb is None else emb
    depths = [getattr(emb, a, None) for a in ("in_channels", "in_features", "input_size")] + [cond_cfg.get("feat_depth")]
    feat_depth = next((int(d) for d in depths if d), None)
    if feat_depth is None:
        raise GenerationError(f"{path}: cannot tell the depth of the visual features the model takes")
    name, streams = _feature_kind(target, cond_cfg, feat_depth, feature, path)
    made = sum(dim for _, dim in _outputs(name))
    if made != feat_depth:
        raise GenerationError(f"{path}: the model takes {feat_depth}-d features but {name!r} features are "
                              f"{made}-d")
    spec = ConditionSpec(
        feature=name, streams=streams, feat_depth=feat_depth, duration=duration,
        feat_len=int(cond_cfg.get("feat_len") or feat_frames(duration)),
        feat_crop_len=int(cond_cfg.get("feat_crop_len") or feat_crop(mel_crop(mel_frames(duration)))),
        n_feats=0, feat_sampler_cfg=cond_cfg.get("feat_sampler_cfg"), needs_class=needs_class,
        trained_on_noise=bool(cond_cfg.get("replace_feats_with_random")), feats_per_col=shape.feats_per_col)
    n_feats = window_features(np.zeros((spec.feat_len, feat_depth), np.float32), spec).shape[0]
    expected = getattr(model.cond_stage_model, "n_feats", None) or getattr(model.cond_stage_model, "cond_len", None)
    if expected is not None and int(expected) != n_feats:
        raise GenerationError(f"{path}: the data config gives {n_feats} feature frames but the model takes "
                              f"{expected}")
    if spec.trained_on_noise:
        log.warning("%s was trained with random features (replace_feats_with_random)", path)
    return replace(spec, n_feats=n_feats)

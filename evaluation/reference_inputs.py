"""The reference evaluation configs' input classes (``evaluation/configs/eval_melception_*.yaml`` of
github.com/v-iashin/SpecVQGAN), without torchvision or albumentations.

Reference path -> class here (see ``specvqgan/reference_targets.yaml``):

* ``evaluation.feature_extractors.melception.Melception`` -> :class:`MelceptionExtractor`: the network
  (:class:`specvqgan.modules.classifiers.melception.Melception`) with its weights read by path.
* ``evaluation.datasets.fakes.FakesFolder`` -> :class:`FakesFolder`: the generated ``.npy`` mels under
  ``root`` as items ``{'file_path_': path, 'image': (F, T) mel in [0, 1]}``.
* ``evaluation.datasets.transforms.{FromMinusOneOneToZeroOne, GetInputFromBatchByKey, ToFloat32,
  CropNoDict}`` -> the classes of the same name.
* ``specvqgan.modules.losses.vggishish.transforms.StandardNormalizeAudio`` ->
  :class:`StandardNormalizeAudio`: per-mel-bin ``(x - mean) / std`` with the stats file
  ``<cache_path>/train_means_stds_<specs_dir name>.txt``.

``python evaluate.py config=...`` (:mod:`evaluation.reference_config`) reads these blocks to find the
samples, the real mels and the stats; the metrics come from :func:`evaluation.evaluate.evaluate`.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np
import torch

from evaluation.features import DEFAULT_STATS_PATH, load_stats, read_melception_checkpoint
from specvqgan.data.transforms import crop_start
from specvqgan.modules.classifiers.melception import Melception

logger = logging.getLogger(__name__)


class FakesFolder(torch.utils.data.Dataset):
    """Every file ending in ``extensions`` under ``root`` (recursively, sorted), loaded with ``np.load``.

    Items: ``{'file_path_': str, 'image': (F, T) array}`` (``transform`` applied to the array when given).
    ``loader`` / ``target_transform`` / ``is_valid_file`` keep the reference signature; only ``.npy``
    mels are read by the default loader (the reference's ``.wav`` branch is not supported).
    """

    def __init__(self, root: str, loader: Optional[Callable] = None, extensions: str | Sequence[str] = ".npy",
                 transform: Optional[Callable] = None, target_transform: Optional[Callable] = None,
                 is_valid_file: Optional[Callable[[str], bool]] = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"FakesFolder: root {root} is not a folder of generated samples")
        exts = (extensions,) if isinstance(extensions, str) else tuple(extensions)
        if loader is None and any(e != ".npy" for e in exts):
            raise ValueError(f"FakesFolder: extensions {exts}: only .npy mels are supported")
        self.loader = loader or (lambda p: np.load(p, allow_pickle=False))
        self.transform = transform
        self.samples = sorted(str(p) for p in self.root.rglob("*") if p.is_file() and str(p).endswith(exts)
                              and (is_valid_file is None or is_valid_file(str(p))))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        path = self.samples[index]
        image = self.loader(path)
        return {"file_path_": path, "image": self.transform(image) if self.transform else image}


class FromMinusOneOneToZeroOne:
    """``item['image'] = (item['image'] + 1) / 2`` (dataset mels in [-1, 1] -> [0, 1])."""

    def __call__(self, item: dict) -> dict:
        item["image"] = (item["image"] + 1) / 2
        return item


class GetInputFromBatchByKey:
    """``item[input_key]``."""

    def __init__(self, input_key: str) -> None:
        self.input_key = input_key

    def __call__(self, item: dict) -> Any:
        return item[self.input_key]


class ToFloat32:
    """``x.float()`` for a tensor, ``x.astype(float32)`` for an array."""

    def __call__(self, x):
        return x.float() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float32)


class CropNoDict:
    """Center (or random) crop of a batch (B, F, T) to ``cropped_shape`` = (F', T')."""

    def __init__(self, cropped_shape: Sequence[int], random_crop: bool = False) -> None:
        self.cropped_shape, self.random_crop = tuple(cropped_shape), bool(random_crop)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x (Tensor): (B, F, T) -> (B, F', T'), the same window for the whole batch."""
        (h, w), (H, W) = self.cropped_shape, x.shape[-2:]
        r, c = crop_start(H, h, self.random_crop), crop_start(W, w, self.random_crop)
        return torch.as_tensor(x)[..., r:r + h, c:c + w]


class StandardNormalizeAudio:
    """Per-mel-bin standardization ``(x - mean[f]) / std[f]`` (float64 stats) of ``item['input']`` /
    ``item['image']`` or of a (B, F, T) tensor / (F, T) array.

    The stats file is ``<cache_path>/train_means_stds_<Path(specs_dir).stem>.txt``; when it is absent and
    ``specs_dir`` is the paper's ``melspec_10s_22050hz``, the identical bundled copy
    (``evaluation/data/``) is used. ``train_ids_path`` is kept for the reference signature: stats are not
    recomputed here (a missing stats file is an error).
    """

    def __init__(self, specs_dir: str, train_ids_path: str = "./data/vggsound_train.txt",
                 cache_path: str = "./data/") -> None:
        name = f"train_means_stds_{Path(specs_dir).stem}.txt"
        path = Path(cache_path) / name
        if not path.is_file():
            if name != DEFAULT_STATS_PATH.name:
                raise FileNotFoundError(f"StandardNormalizeAudio: mel stats {path} not found (stats are not "
                                        f"recomputed from {train_ids_path}); write F rows of 'mean std' there")
            logger.info("StandardNormalizeAudio: %s not found; using the bundled %s", path, DEFAULT_STATS_PATH)
            path = DEFAULT_STATS_PATH
        self.stats_path = path
        stats = load_stats(path)
        self.means, self.stds = stats[:, :1], stats[:, 1:]  # (F, 1) float64

    def _norm(self, x):
        if isinstance(x, torch.Tensor):
            m, s = (torch.as_tensor(a, device=x.device) for a in (self.means, self.stds))
            return (x.double() - m) / s
        return (np.asarray(x, dtype=np.float64) - self.means) / self.stds

    def __call__(self, item):
        if isinstance(item, dict):
            key = "input" if "input" in item else "image"
            item[key] = self._norm(item[key])
            return item
        return self._norm(item)


class MelceptionExtractor(Melception):
    """The reference constructor ``evaluation.feature_extractors.melception.Melception(num_classes,
    features_list, feature_extractor_weights_path)``, so that reference eval configs instantiate.

    Loads ``{'model': state_dict}`` (strict), freezes the weights and returns a tuple of the features
    named in ``features_list`` (``'2048'``, ``'logits_unbiased'``, ``'logits'``) from ``forward``.
    """

    _NAMES = {"2048": "pool", "logits_unbiased": "logits_unbiased", "logits": "logits"}

    def __init__(self, num_classes: int = 309, features_list=("logits_unbiased", "2048", "logits"),
                 feature_extractor_weights_path: str | None = None) -> None:
        super().__init__(num_classes=num_classes, aux_logits=True, init_weights=False)
        unknown = [f for f in features_list if f not in self._NAMES]
        if unknown:
            raise ValueError(f"features_list: unknown feature(s) {unknown}; known: {list(self._NAMES)}")
        self.features_list = list(features_list)
        if feature_extractor_weights_path is not None:
            state_dict, _, _ = read_melception_checkpoint(feature_extractor_weights_path)
            self.load_state_dict(state_dict, strict=True)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor):
        feats = self.features(x)
        return tuple(feats[self._NAMES[f]] for f in self.features_list)

    def convert_features_tuple_to_dict(self, features) -> Dict[str, torch.Tensor]:
        """Tuple from ``forward`` -> {name in features_list: tensor} (reference API)."""
        return dict(zip(self.features_list, features))

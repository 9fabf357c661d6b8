"""Melception outputs of sets of mel spectrograms, with a cache (paper section 5).

* :class:`MelceptionScorer`: a Melception plus its per-mel-bin standardization stats; takes mels in
  [0, 1] (the scale the reference sampler saves and ``(image + 1) / 2`` of a dataset item).
* :func:`read_melception_checkpoint` / :func:`load_melception`: the authors' release
  (``{'model': state_dict}``), our reference-layout export (plus ``train_means_stds``), a
  ``train.py`` Lightning ``.ckpt`` / exported file of
  :class:`evaluation.model.MelceptionClassifier`, or a bare state_dict.
* :class:`MelSource` + :func:`extract_features`: batched extraction over ``.npy`` files (or dataset
  items), center-cropped to a common length, with unreadable files counted instead of crashing, and an
  on-disk cache keyed by the checkpoint, the stats, the crop and the files' sizes and mtimes.

Standardization follows the reference eval pipeline: ``((x - mean[f]) / std[f])`` in float64, then
float32 (``StandardNormalizeAudio`` then ``ToFloat32``). The default stats are the reference
VGGSound ones (``evaluation/data/train_means_stds_melspec_10s_22050hz.txt``), used with the released
checkpoint, which does not carry them.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from specvqgan.audio import load_mel_stats_txt
from specvqgan.checkpoint import read
from specvqgan.checks import require_finite
from specvqgan.data.transforms import crop_start
from specvqgan.files import atomic_write
from specvqgan.modules.classifiers.melception import Melception

logger = logging.getLogger(__name__)

DEFAULT_STATS_PATH = Path(__file__).parent / "data" / "train_means_stds_melspec_10s_22050hz.txt"
FEATURE_KEYS = ("logits", "logits_unbiased", "pool")
CACHE_VERSION = 2  # 2: .npz (no pickles)


def load_stats(path: str | Path = DEFAULT_STATS_PATH) -> np.ndarray:
    """Reference stats text file (F rows of ``mean std``) -> (F, 2) float64."""
    means, stds = load_mel_stats_txt(path)
    return np.stack([means, stds], axis=1)


def standardize(mel01: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
    """mel01 (B, F, T) in [0, 1], stats (F, 2) float64 -> (B, F, T) float32 ``(x - mean) / std``."""
    if mel01.dim() != 3 or mel01.shape[1] != stats.shape[0]:
        raise ValueError(f"expected mels (B, {stats.shape[0]}, T), got {tuple(mel01.shape)}")
    stats = stats.to(device=mel01.device, dtype=torch.float64)
    return ((mel01.double() - stats[None, :, 0, None]) / stats[None, :, 1, None]).float()


def read_melception_checkpoint(path: str | Path, trust: bool = False
                               ) -> Tuple[Dict[str, torch.Tensor], np.ndarray | None, dict]:
    """Read any supported Melception checkpoint on CPU (``trust``: see :func:`specvqgan.checkpoint.read`).

    Returns:
        (state_dict with the reference keys, stats (F, 2) or None when the file carries none,
        info dict with ``layout`` and, when present, ``config``).
    """
    path = Path(path)
    ckpt = read(path, trust=trust, what="Melception checkpoint")
    if not isinstance(ckpt, dict):
        raise ValueError(f"Melception checkpoint {path} holds a {type(ckpt).__name__}, expected a dict")
    stats = None
    if "model" in ckpt and isinstance(ckpt["model"], dict):  # authors' release / our reference export
        sd, layout = ckpt["model"], "reference"
        if ckpt.get("train_means_stds") is not None:
            stats = np.asarray(torch.as_tensor(ckpt["train_means_stds"]).double())
    elif "state_dict" in ckpt:  # train.py .ckpt or exported MelceptionClassifier
        full, layout = ckpt["state_dict"], "lightning"
        sd = {k[len("model."):]: v for k, v in full.items() if k.startswith("model.")}
        if "train_means" in full and "train_stds" in full:
            stats = torch.stack([full["train_means"], full["train_stds"]], 1).double().numpy()
    elif "Conv2d_1a_3x3.conv.weight" in ckpt:
        sd, layout = ckpt, "state_dict"
    else:
        raise ValueError(f"{path} is not a Melception checkpoint: expected a 'model' or 'state_dict' entry "
                         f"(found keys {sorted(ckpt)[:8]})")
    if "Conv2d_1a_3x3.conv.weight" not in sd or "fc.weight" not in sd:
        raise ValueError(f"{path}: the state_dict has no Melception weights (Conv2d_1a_3x3.*, fc.*)")
    if stats is not None and not np.isfinite(stats).all():
        stats = None  # a classifier saved before its stats were computed
    return sd, stats, {"layout": layout, "config": ckpt.get("config")}


def melception_from_state_dict(state_dict: Dict[str, torch.Tensor]) -> Melception:
    """Build a Melception whose size (classes, width, aux head) matches ``state_dict`` and load it strictly."""
    num_classes = state_dict["fc.weight"].shape[0]
    width = state_dict["Conv2d_1a_3x3.conv.weight"].shape[0] / 32
    model = Melception(num_classes=num_classes, width=width, aux_logits="AuxLogits.fc.weight" in state_dict,
                       init_weights=False)
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


class MelceptionScorer(nn.Module):
    """Melception + stats: (B, F, T) mels in [0, 1] -> dict of ``logits``, ``logits_unbiased``, ``pool``."""

    def __init__(self, net: Melception, stats: np.ndarray) -> None:
        super().__init__()
        stats = torch.as_tensor(np.asarray(stats, dtype=np.float64))
        if stats.dim() != 2 or stats.shape[1] != 2 or not (stats[:, 1] > 0).all():
            raise ValueError(f"mel stats must be (F, 2) with positive stds, got shape {tuple(stats.shape)}")
        self.net = net.eval().requires_grad_(False)
        self.register_buffer("stats", stats)

    @torch.inference_mode()
    def forward(self, mel01: torch.Tensor) -> Dict[str, torch.Tensor]:
        return self.net.features(standardize(mel01, self.stats))


def load_melception(path: str | Path, stats_path: str | Path | None = None,
                    device: str | torch.device = "cpu", trust: bool = False) -> MelceptionScorer:
    """A ready :class:`MelceptionScorer` from a checkpoint; ``stats_path`` overrides the stored stats
    (a checkpoint without stats, e.g. the authors' release, gets the default VGGSound stats)."""
    sd, stats, info = read_melception_checkpoint(path, trust=trust)
    if stats_path is not None:
        stats = load_stats(stats_path)
    elif stats is None:
        logger.info("%s (%s layout) carries no mel stats; using %s", path, info["layout"], DEFAULT_STATS_PATH)
        stats = load_stats(DEFAULT_STATS_PATH)
    return MelceptionScorer(melception_from_state_dict(sd), stats).to(device)


def export_reference_checkpoint(net: Melception, stats: np.ndarray | None, path: str | Path) -> Path:
    """Write the authors' layout ``{'model': state_dict}`` (+ ``train_means_stds`` (F, 2) if given)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = {"model": net.state_dict()}
    if stats is not None:
        ckpt["train_means_stds"] = torch.as_tensor(np.asarray(stats, dtype=np.float64))
    torch.save(ckpt, path)
    return path


# ---- sets of mels -----------------------------------------------------------------------------------
def find_mels(root: str | Path) -> List[str]:
    """Sorted ``.npy`` files under ``root`` (recursive; hidden folders such as the cache are skipped)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"not a folder of mel spectrograms: {root}")
    return sorted(str(p) for p in root.rglob("*.npy")
                  if not any(part.startswith(".") for part in p.relative_to(root).parts))


def read_mel01(path: str) -> np.ndarray:
    """A ``.npy`` mel in [0, 1] (F, T); a (1, F, T) array is squeezed. Errors name the file."""
    try:
        mel = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"mel spectrogram not found: {path}") from None
    except Exception:
        raise ValueError(f"{path} is not a readable .npy array") from None
    if mel.ndim == 3 and mel.shape[0] == 1:
        mel = mel[0]
    if mel.ndim != 2:
        raise ValueError(f"mel spectrogram {path} has shape {mel.shape}, expected (F, T)")
    return require_finite(mel, path, "mel spectrogram values")


@dataclass
class MelSource:
    """A set of mels: ``paths`` (ids for pairing and caching) and ``load(i) -> (F, T)`` array in [0, 1]."""

    paths: List[str]
    load: Callable[[int], np.ndarray]
    description: str = ""
    fingerprint: str | None = None  # replaces the files' size/mtime in the cache key when set

    @classmethod
    def from_files(cls, paths: Sequence[str], description: str = "") -> "MelSource":
        paths = list(paths)
        return cls(paths, lambda i: read_mel01(paths[i]), description or f"{len(paths)} files")

    @classmethod
    def from_folder(cls, root: str | Path) -> "MelSource":
        return cls.from_files(find_mels(root), f"folder {root}")


@dataclass
class Features:
    """Melception outputs of the readable mels of a source, row i <-> ``paths[i]``."""

    paths: List[str]
    logits: torch.Tensor           # (N, C)
    logits_unbiased: torch.Tensor  # (N, C)
    pool: torch.Tensor             # (N, D)
    unreadable: List[Tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def save(self, path: str | Path) -> None:
        """Write an ``.npz`` (arrays + a JSON string of the paths; no pickles) atomically."""
        lists = json.dumps({"version": CACHE_VERSION, "paths": self.paths, "unreadable": self.unreadable})

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, lists=np.array(lists), **{k: getattr(self, k).float().numpy() for k in FEATURE_KEYS})
        atomic_write(path, write)

    @classmethod
    def load(cls, path: str | Path) -> "Features":
        """Read :meth:`save`'s file (``allow_pickle=False``); ValueError naming the file if it is not one."""
        try:
            with np.load(path, allow_pickle=False) as f:
                lists = json.loads(str(f["lists"]))
                arrays = {k: torch.from_numpy(f[k]) for k in FEATURE_KEYS}
        except Exception as err:  # truncated, not a zip, a pickle, missing keys
            raise ValueError(f"{path}: not a feature cache ({type(err).__name__}: {err})") from None
        n = len(lists.get("paths", []))
        if lists.get("version") != CACHE_VERSION or any(len(a) != n for a in arrays.values()):
            raise ValueError(f"{path}: feature cache of another version or with mismatched rows")
        return cls(list(lists["paths"]), arrays["logits"], arrays["logits_unbiased"], arrays["pool"],
                   [tuple(u) for u in lists["unreadable"]])


def cache_key(source: MelSource, checkpoint: str | Path, stats: torch.Tensor, crop: int) -> str:
    """Hash of everything the features depend on."""
    def stat(p):
        try:
            s = os.stat(p)
            return [str(Path(p).resolve()), s.st_size, s.st_mtime_ns]
        except OSError:
            return [str(p), None, None]

    payload = {"v": CACHE_VERSION, "ckpt": stat(checkpoint), "crop": int(crop),
               "stats": hashlib.sha1(stats.cpu().numpy().tobytes()).hexdigest(),
               "files": source.fingerprint or [stat(p) for p in source.paths]}
    return hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def extract_features(scorer: MelceptionScorer, source: MelSource, crop: int, batch_size: int = 8,
                     cache_dir: str | Path | None = None, checkpoint: str | Path = "") -> Features:
    """Run ``scorer`` over every mel of ``source``, center-cropped to ``crop`` frames.

    Mels that cannot be read, are not (F, T) with the scorer's F, or are shorter than ``crop`` are
    listed in ``Features.unreadable``. With ``cache_dir`` the result is stored as
    ``<cache_dir>/melception_<key>.npz`` (written atomically) and reused while nothing it depends on
    changes; a cache file that cannot be read is recomputed.
    """
    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / f"melception_{cache_key(source, checkpoint, scorer.stats, crop)}.npz"
        if cache_file.is_file():
            try:
                feats = Features.load(cache_file)
                logger.info("features of %s: cached in %s", source.description, cache_file)
                return feats
            except ValueError as err:
                logger.warning("recomputing: %s", err)
    device = scorer.stats.device
    n_mels = scorer.stats.shape[0]
    kept, unreadable, outs, batch = [], [], {k: [] for k in FEATURE_KEYS}, []

    def flush():
        if batch:
            x = torch.from_numpy(np.stack([b for _, b in batch])).to(device)
            for k, v in scorer(x).items():
                outs[k].append(v.float().cpu())
            kept.extend(p for p, _ in batch)
            batch.clear()

    for i, path in enumerate(source.paths):
        try:
            mel = np.asarray(source.load(i))
            if mel.ndim != 2 or mel.shape[0] != n_mels:
                raise ValueError(f"shape {mel.shape}, expected ({n_mels}, T)")
            if mel.shape[1] < crop:
                raise ValueError(f"{mel.shape[1]} frames, fewer than the crop {crop}")
            start = crop_start(mel.shape[1], crop)
            batch.append((path, mel[:, start:start + crop]))
        except Exception as err:  # a bad file is reported, not fatal
            logger.warning("skipping unreadable mel %s: %s", path, err)
            unreadable.append((path, str(err)))
        if len(batch) == batch_size:
            flush()
    flush()
    if not kept:
        raise ValueError(f"no readable mel spectrogram in {source.description}")
    feats = Features(kept, *(torch.cat(outs[k]) for k in FEATURE_KEYS), unreadable=unreadable)
    if cache_file is not None:
        feats.save(cache_file)
    return feats

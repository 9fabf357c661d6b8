"""Evaluate generated mel spectrograms against real ones with Melception (paper section 5, Table 1).

Generated samples are ``.npy`` mels in [0, 1] named ``<video_id>_sample_<k>.npy`` (as the reference
sampler writes them); each is paired with the real clip of the same video through
:func:`evaluation.metrics.video_id`. The reference set is one of

* a folder of real ``<video_id>_mel.npy`` files (searched recursively);
* a training config (``.yaml``) whose ``data.params.<split>`` dataset gives the real mels (items'
  ``image`` in [-1, 1] -> ``(image + 1) / 2``, as the reference ``FromMinusOneOneToZeroOne``);
* a split list (``.txt``, rows ``<class>/<id>`` or ``<id>``) whose ``<id>_mel.npy`` files are looked up
  under ``root`` (default: the list's folder).

Metrics (as the reference eval config): FID and KID on the 2048-d pool features of all readable
generated vs all readable real mels; IS on the generated samples' bias-free logits; MKL on the
logits of generated samples that have a real clip of the same video.
"""
from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from evaluation.features import MelSource, extract_features, load_melception
from evaluation.metrics import fid, inception_score, kid, mkl, video_id
from specvqgan.data.clips import read_split, split_clip
from specvqgan.shapes import mel_crop

logger = logging.getLogger(__name__)

METRICS = ("fid", "kid", "isc", "mkl")


def reference_source(reference: str | Path, split: str = "validation", root: str | Path | None = None) -> MelSource:
    """The real mels named by ``reference`` (folder, config or split list; see the module docstring)."""
    ref = Path(reference)
    if ref.is_dir():
        return MelSource.from_folder(ref)
    if not ref.is_file():
        raise FileNotFoundError(f"--reference {ref}: no such folder, config or split list")
    if ref.suffix in (".yaml", ".yml"):
        return _config_source(ref, split)
    if ref.suffix == ".txt":
        return _split_list_source(ref, Path(root) if root else ref.parent)
    raise ValueError(f"--reference {ref}: expected a folder of .npy mels, a .yaml config or a .txt split list")


def _config_source(path: Path, split: str) -> MelSource:
    from specvqgan.config import load_config

    return experiment_source(load_config([path]), split, str(path))


def experiment_source(cfg, split: str, description: str) -> MelSource:
    """The real mels of ``data.params.<split>`` of a training config (items' ``image`` -> ``(image + 1) / 2``)."""
    from specvqgan.config import ConfigError
    from specvqgan.data.datamodule import build_split

    try:  # through the data module, so shared keys of reference-style modules reach the split
        dataset = build_split(cfg, split)
    except ConfigError as err:
        raise ValueError(f"{description}: {err}") from None
    specs = getattr(dataset, "specs_dataset", dataset)  # feature-conditioned datasets wrap a specs dataset
    if not hasattr(specs, "spec_path"):
        raise ValueError(f"{description}: data.params.{split} ({type(dataset).__name__}) does not give mel spectrograms")
    paths = [specs.spec_path(clip) for clip in specs.dataset]
    return MelSource(paths, lambda i: (specs.load(i)[0]["image"] + 1) / 2,
                     f"{description} data.params.{split} ({len(paths)} clips)")


def _split_list_source(path: Path, root: Path) -> MelSource:
    index: dict[str, list[Path]] = {}
    for p in root.rglob("*_mel.npy"):
        index.setdefault(p.name[:-len("_mel.npy")], []).append(p)
    paths, missing = [], []
    for clip in read_split(path):
        cls, vid = split_clip(clip)
        found = [p for p in index.get(vid, []) if cls is None or cls in p.relative_to(root).parts]
        if len(found) > 1:
            raise ValueError(f"split list {path}: clip {clip!r} matches several mels under {root} "
                             f"({[str(p) for p in found[:3]]}); pass a narrower root")
        (paths if found else missing).append(str(found[0]) if found else clip)
    if missing:
        logger.warning("split list %s: %d clips have no mel under %s (e.g. %s)", path, len(missing), root,
                       missing[0])
    if not paths:
        raise FileNotFoundError(f"split list {path}: none of its clips has a <id>_mel.npy under {root}")
    return MelSource.from_files(paths, f"split list {path} ({len(paths)} mels under {root})")


def _frames(source: MelSource, n_mels: int, limit: int = 256) -> list[int]:
    """Frame counts of (up to ``limit``) readable (n_mels, T) mels of a source, read cheaply."""
    frames = []
    for p in source.paths[:limit]:
        try:
            shape = np.load(p, mmap_mode="r").shape
        except Exception:
            continue
        if len(shape) in (2, 3) and shape[-2] == n_mels and (len(shape) == 2 or shape[0] == 1):
            frames.append(shape[-1])
    return frames


def pairing(fake_paths: Sequence[str], real_paths: Sequence[str]) -> dict:
    """Match generated samples to real clips by video id.

    Returns:
        dict with ``fake_ids`` / ``real_ids`` (ids usable for MKL; ambiguous real ids are dropped),
        counts ``paired``, ``unmatched`` (generated without a real clip), ``reals_without_samples`` and
        ``ambiguous_real_ids`` (ids shared by several real files), and ``unmatched_examples``.
    """
    real_ids = [video_id(p) for p in real_paths]
    counts = Counter(real_ids)
    ambiguous = {i for i, c in counts.items() if c > 1}
    usable = set(real_ids) - ambiguous
    fake_ids = [video_id(p) for p in fake_paths]
    paired = [i for i in fake_ids if i in usable]
    unmatched = [p for p, i in zip(fake_paths, fake_ids) if i not in usable]
    return {"fake_ids": fake_ids, "real_ids": real_ids, "ambiguous": ambiguous,
            "paired": len(paired), "unmatched": len(unmatched),
            "reals_without_samples": len(usable - set(paired)), "ambiguous_real_ids": len(ambiguous),
            "unmatched_examples": unmatched[:5]}


def evaluate(generated: str | Path, reference: str | Path | MelSource | None, melception: str | Path,
             metrics: Sequence[str] = METRICS, split: str = "validation", root: str | Path | None = None,
             crop: int | None = None, batch_size: int = 8, device: str | None = None,
             cache_dir: str | Path | None = None, stats_path: str | Path | None = None,
             kid_subsets: int = 100, kid_subset_size: int = 1000, isc_splits: int = 10) -> dict:
    """Compute the requested metrics; returns a JSON-serialisable dict (``metrics``, ``counts``, ...).

    ``crop`` defaults to the largest multiple of 16 <= the shortest of the first 256 mels of each set
    (848 for 10 s mels, 160 for the 2 s toy ones); shorter mels are reported as unreadable.
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ValueError(f"--metrics: unknown {unknown}; choose from {','.join(METRICS)}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    fakes = MelSource.from_folder(generated)
    if not fakes.paths:
        raise FileNotFoundError(f"--generated {generated}: no .npy files")
    needs_reals = any(m in metrics for m in ("fid", "kid", "mkl"))
    if not needs_reals:
        reals = None
    elif isinstance(reference, MelSource):
        reals = reference
    elif reference is None:
        raise ValueError("fid, kid and mkl need real mels: give a reference")
    else:
        reals = reference_source(reference, split, root)
    scorer = load_melception(melception, stats_path, device)
    if crop is None:
        n_mels = scorer.stats.shape[0]
        frames = _frames(fakes, n_mels) + (_frames(reals, n_mels) if reals is not None else [])
        if not frames:
            raise ValueError(f"no readable ({n_mels}, T) mel in {fakes.description}")
        crop = mel_crop(min(frames))
    kw = dict(crop=crop, batch_size=batch_size, cache_dir=cache_dir, checkpoint=melception)
    f_fake = extract_features(scorer, fakes, **kw)
    f_real = extract_features(scorer, reals, **kw) if reals is not None else None

    results: dict = {}
    if "isc" in metrics:
        splits = min(isc_splits, len(f_fake.paths))
        results["isc_mean"], results["isc_std"] = inception_score(f_fake.logits_unbiased, splits=splits)
    if "fid" in metrics:
        results["fid"] = fid(f_fake.pool, f_real.pool)
    if "kid" in metrics:
        results["kid_mean"], results["kid_std"] = kid(f_fake.pool, f_real.pool, subsets=kid_subsets,
                                                      subset_size=kid_subset_size)
    counts = {"generated": len(fakes.paths), "generated_unreadable": len(f_fake.unreadable)}
    pairs = None
    if f_real is not None:
        pairs = pairing(f_fake.paths, f_real.paths)
        counts.update(reference=len(reals.paths), reference_unreadable=len(f_real.unreadable),
                      **{k: pairs[k] for k in ("paired", "unmatched", "reals_without_samples",
                                               "ambiguous_real_ids")})
    if "mkl" in metrics:
        keep = [i for i, r in enumerate(pairs["real_ids"]) if r not in pairs["ambiguous"]]
        results["mkl"] = mkl(f_fake.logits, pairs["fake_ids"], f_real.logits[keep],
                             [pairs["real_ids"][i] for i in keep])
    return {"metrics": results, "counts": counts,
            "unreadable": [list(u) for u in f_fake.unreadable + (f_real.unreadable if f_real else [])],
            "unmatched_examples": pairs["unmatched_examples"] if pairs else [],
            "config": {"generated": str(generated), "split": split,
                       "reference": reference.description if isinstance(reference, MelSource) else str(reference),
                       "melception": str(melception), "crop": int(crop), "device": str(device),
                       "stats": str(stats_path) if stats_path else "checkpoint/default",
                       "kid_subsets": kid_subsets, "kid_subset_size": kid_subset_size, "isc_splits": isc_splits,
                       "reference_source": reals.description if reals is not None else None}}


def format_table(report: dict) -> str:
    """Plain-text table of the metrics and pairing counts."""
    m, lines = report["metrics"], []
    rows = [("FID", m.get("fid")), ("KID", m.get("kid_mean"), m.get("kid_std")),
            ("IS", m.get("isc_mean"), m.get("isc_std")), ("MKL", m.get("mkl"))]
    lines.append(f"{'metric':<8}{'value':>14}{'std':>12}")
    for name, value, *std in rows:
        if value is not None:
            s = f"{std[0]:>12.5f}" if std and std[0] is not None else ""
            lines.append(f"{name:<8}{value:>14.5f}{s}")
    lines.append("")
    lines.append(", ".join(f"{k}: {v}" for k, v in report["counts"].items()))
    return "\n".join(lines)

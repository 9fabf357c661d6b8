"""Sample a whole dataset split with a trained transformer, or reconstruct it with a codebook (paper
Sec. 5 / Table 1: Melception metrics are computed on such folders with ``python evaluate.py``).

Folder layout (what :mod:`evaluation.evaluate` pairs by video id)::

    <out>/<class>/<video_id>_sample_<k>.npy    (80, T) float32 mel in [0, 1]; k = 0 .. N-1
    <out>/<video_id>_sample_<k>.npy            when the split list rows carry no class (VGGSound)
    <out>/sampling.json                        mode, checkpoint, split and sampling options

Reconstructions (``mode='reconstructions'``) write one ``<video_id>_sample_0.npy`` per clip: the real
mel through the codebook's encoder, quantizer and decoder.

Reproducibility and resuming. Sample ``k`` of video ``v`` draws its tokens with its own random stream,
seeded by ``sample_seed(seed, v, k)``, independently of the batch it lands in (per-row seeded sampling,
:class:`specvqgan.sampling.TokenPicker`: the Gumbel-max trick, an exact draw from the top-k / top-p
softmax); ``VideoToSound`` draws sample k of ``<v>.mp4`` with the same seed, so both give the same tokens. Files are written atomically (a hidden
``.tmp`` then a rename) and existing files are skipped, so an interrupted run loses at most the batch
in flight and a resumed run writes the files it would have written (mels are decoded one at a time;
the GPT runs batched, so a token could only differ on a floating-point tie between two candidates).
Random conditions (the "no features" datasets) and random crops are seeded per video as well.
``shard=(i, n)`` keeps the videos ``i, i+n, ...``: n processes (one per GPU, e.g. ``torchrun``) write
disjoint files into one folder.
"""
from __future__ import annotations

import json
import logging
import os
import random
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from specvqgan.checkpoint import read_config
from specvqgan.config import ConfigError, load_config
from specvqgan.data.clips import split_clip
from specvqgan.data.datamodule import build_split
from specvqgan.distributed import parse_shard
from specvqgan.files import atomic_write, file_sha256, save_mel_atomic
from specvqgan.models.loading import load_model
from specvqgan.sampling import prepare_gpt, sample_seed

log = logging.getLogger(__name__)

MODES = ("samples", "reconstructions")
METADATA = "sampling.json"


# ----------------------------------------------------------------------------- naming and seeds
def sample_path(out: str | Path, clip: str, k: int) -> Path:
    """``<out>/<class>/<video_id>_sample_<k>.npy`` for a ``<class>/<id>`` clip, ``<out>/<id>_sample_<k>.npy``
    for an ``<id>`` clip (characters other than letters, digits, ``-_. ,()&'`` become ``_``)."""
    cls, vid = split_clip(clip)
    name = f"{vid}_sample_{k}.npy"
    if cls is None:
        return Path(out) / name
    return Path(out) / re.sub(r"[^\w\-. ,()&']", "_", cls) / name


# ----------------------------------------------------------------------------- models and data
def data_config(ckpt: str | Path, config: Optional[Sequence[str | Path]] = None,
                overrides: Sequence[str] = ()) -> DictConfig:
    """The run config whose ``data`` block gives the split: ``config`` YAMLs if given (merged left to
    right), else the config stored in the checkpoint; ``overrides`` are ``key=value`` dotlist entries."""
    if config:
        cfg = load_config(list(config), overrides)
    else:
        stored = read_config(ckpt)
        if not stored or "data" not in stored:
            raise ConfigError(f"checkpoint {ckpt} carries no data config; pass --config <training yaml>")
        cfg = OmegaConf.merge(OmegaConf.create(stored), OmegaConf.from_dotlist(list(overrides)))
    if "data" not in cfg:
        raise ConfigError(f"config {list(config or [ckpt])} has no `data` block")
    return cfg


def clip_names(dataset) -> list[str]:
    """Split-list rows (``<class>/<id>`` or ``<id>``) of a dataset, in item order."""
    specs = getattr(dataset, "specs_dataset", dataset)
    clips = getattr(specs, "dataset", None)
    if not isinstance(clips, (list, tuple)) or len(clips) != len(dataset):
        raise ValueError(f"{type(dataset).__name__} does not list its clips (needs a specvqgan.data dataset)")
    return list(clips)


def load_item(dataset, idx: int, clip: str, seed: int) -> dict:
    """``dataset[idx]`` with numpy/python RNGs seeded from (seed, video id): random crops and random
    ("no features") conditions are the same in every run."""
    s = sample_seed(seed, split_clip(clip)[1], "data")
    np.random.seed(s % 2 ** 32)
    random.seed(s)
    return dataset[idx]


# ----------------------------------------------------------------------------- per-row sampling
@torch.inference_mode()
def sample_rows(model, cond, seeds: Sequence[int], *, temperature: float = 1.0, top_k: Optional[int] = None,
                top_p: Optional[float] = None, gpt=None, guidance_scale: float = 1.0) -> torch.Tensor:
    """One sample per condition row, row b drawn with its own seed (per-row seeded sampling of
    :mod:`specvqgan.sampling`, as ``VideoToSound`` draws it: same seed, same tokens).

    Args:
        model: a Net2NetTransformer (eval). cond: its condition batch for B rows (``get_input`` output).
        seeds: B seeds. gpt: an inference copy (:func:`specvqgan.sampling.prepare_gpt`), default fp32.
        guidance_scale: classifier-free guidance (:class:`specvqgan.sampling.GuidedGPT`; 1: off).
    Returns:
        mels (B, 80, 16 * W) float32 in [0, 1] (trained length: H x W tokens).
    """
    tokens, _ = model.generate(cond, temperature=temperature, top_k=top_k, top_p=top_p, seed=list(seeds), gpt=gpt,
                               guidance_scale=guidance_scale, decode=False)
    H, W = model.shape.latent_rows, model.shape.latent_cols
    e_dim = model.first_stage_model.quantize.embedding.weight.shape[1]
    # one row at a time: a row's mel does not depend on the batch (batched convs round differently)
    mel = torch.cat([model.decode_to_img(t[None], (1, e_dim, H, W)) for t in tokens])
    return ((mel[:, 0].float() + 1) / 2).clamp(0, 1)


@torch.inference_mode()
def reconstruct(codebook, image: torch.Tensor) -> torch.Tensor:
    """Real mels (B, 80, T) in [-1, 1] -> codebook reconstructions (B, 80, T) in [0, 1]."""
    x = image[:, None].to(next(codebook.parameters()).device, torch.float32)
    rec = torch.cat([codebook.decode_from_indices(codebook.encode_to_indices(xi[None])) for xi in x])
    return ((rec[:, 0].float() + 1) / 2).clamp(0, 1)


# ----------------------------------------------------------------------------- the run
@dataclass
class SamplerOptions:
    """Options of :func:`sample_dataset` (the CLI flags of ``scripts/sample_dataset.py``)."""

    ckpt: str
    out: str
    mode: str = "samples"                   # 'samples' or 'reconstructions'
    split: str = "validation"               # data.params.<split>
    config: Optional[list] = None           # YAMLs with the data block (default: the checkpoint's)
    overrides: tuple = ()                   # key=value for that config
    samples_per_video: int = 10
    batch_size: int = 32                    # rows (samples) per forward
    temperature: float = 1.0
    top_k: Optional[int] = None
    top_p: Optional[float] = None
    guidance_scale: float = 1.0             # classifier-free guidance (1: off; models trained with p_uncond)
    seed: int = 0
    device: Optional[str] = None            # default: cuda (cuda:$LOCAL_RANK under torchrun) if available
    precision: str = "fp32"                 # fp32 | bf16 | int8 (specvqgan.sampling.prepare_gpt)
    limit: Optional[int] = None             # only the first `limit` videos of the split
    shard: Optional[str] = None             # 'i/n'; default torchrun's RANK/WORLD_SIZE
    progress: bool = True


# options that change the files: a folder holds one setting (extending samples_per_video is fine)
_FIXED = ("mode", "split", "seed", "temperature", "top_k", "top_p", "precision", "guidance_scale")
_DEFAULTS = {"guidance_scale": 1.0}  # for folders written before the option existed


def _check_metadata(out: Path, opts: SamplerOptions) -> None:
    """Refuse to mix settings or checkpoints in one folder (existing samples are only skipped when they
    came from the same checkpoint bytes, data config and options); write ``sampling.json`` (rank 0) when
    it is new."""
    meta = out / METADATA
    mine = {k: getattr(opts, k) for k in _FIXED}
    mine.update(overrides=list(opts.overrides), config=[str(c) for c in opts.config or []],
                ckpt_sha256=file_sha256(opts.ckpt))
    if meta.is_file():
        old = json.loads(meta.read_text())
        if "ckpt_sha256" not in old and old.get("ckpt") == str(Path(opts.ckpt).resolve()):
            old["ckpt_sha256"] = mine["ckpt_sha256"]    # written before hashes were recorded: same file
        old["config"] = [str(c) for c in old.get("config") or []]
        for k, v in _DEFAULTS.items():
            old.setdefault(k, v)
        diff = {k: (old.get(k), v) for k, v in mine.items() if old.get(k) != v}
        if diff:
            if "ckpt_sha256" in diff:
                diff["ckpt_sha256"] = (f"{old.get('ckpt')} ({str(old.get('ckpt_sha256'))[:12]})",
                                       f"{opts.ckpt} ({mine['ckpt_sha256'][:12]})")
            raise ValueError(f"{meta}: this folder was written with other settings or another checkpoint "
                             f"{diff} (old, new); its samples would be mixed: use another --out")
        return
    if parse_shard(opts.shard)[0] == 0:
        out.mkdir(parents=True, exist_ok=True)
        info = dict(asdict(opts), ckpt=str(Path(opts.ckpt).resolve()), **mine,
                    layout="<out>/<class>/<video_id>_sample_<k>.npy, (80, T) float32 mel in [0, 1]")
        atomic_write(meta, lambda tmp: tmp.write_text(json.dumps(info, indent=1)))


def _batches(rows: list, size: int) -> Iterator[list]:
    for i in range(0, len(rows), size):
        yield rows[i:i + size]


def _default_device(device: Optional[str]) -> str:
    if device:
        return device
    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    return "cpu"


def sample_dataset(opts: SamplerOptions) -> dict:
    """Write the samples (or reconstructions) of a split; returns counts and timing.

    Returns:
        dict with ``videos`` (of this shard), ``written``, ``skipped`` (already there), ``seconds``,
        ``out``, ``shard``.
    """
    if opts.mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {opts.mode!r}")
    if opts.samples_per_video < 1 or opts.batch_size < 1:
        raise ValueError("samples_per_video and batch_size must be >= 1")
    if not opts.guidance_scale >= 0:
        raise ValueError(f"guidance_scale must be >= 0, got {opts.guidance_scale}")
    rank, world = parse_shard(opts.shard)
    cfg = data_config(opts.ckpt, opts.config, opts.overrides)
    dataset = build_split(cfg, opts.split)
    clips = clip_names(dataset)
    n_videos = len(clips) if opts.limit is None else min(len(clips), int(opts.limit))
    mine = [i for i in range(n_videos) if i % world == rank]
    n_per = opts.samples_per_video if opts.mode == "samples" else 1
    out = Path(opts.out)
    _check_metadata(out, opts)
    rows, skipped = [], 0
    for i in mine:
        for k in range(n_per):
            if sample_path(out, clips[i], k).is_file():
                skipped += 1
            else:
                rows.append((i, k))
    log.info("%s of %s (%d videos in shard %d/%d): %d to write, %d already there", opts.mode, opts.split,
             len(mine), rank, world, len(rows), skipped)
    result = dict(videos=len(mine), written=0, skipped=skipped, seconds=0.0, out=str(out), shard=f"{rank}/{world}")
    if not rows:
        return result

    device = _default_device(opts.device)
    model, kind = load_model(opts.ckpt, opts.mode)
    model = model.to(device).eval()
    if kind == "transformer" and opts.guidance_scale != 1 and not model.transformer.has_null_condition:
        raise ValueError(f"{opts.ckpt}: guidance_scale={opts.guidance_scale} needs a model trained with "
                         f"p_uncond > 0 (docs/guidance.md); this one has no null condition")
    gpt = prepare_gpt(model.transformer, opts.precision) if kind == "transformer" else None
    bar = None
    if opts.progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(rows), desc=f"{opts.mode} {rank}/{world}", unit="mel")
    t0 = time.perf_counter()
    for batch_rows in _batches(rows, opts.batch_size):
        items = {i: load_item(dataset, i, clips[i], opts.seed) for i in dict.fromkeys(i for i, _ in batch_rows)}
        batch = torch.utils.data.default_collate([items[i] for i, _ in batch_rows])
        if kind == "transformer":
            cond = model.get_input(model.cond_stage_key, batch)
            seeds = [sample_seed(opts.seed, split_clip(clips[i])[1], k) for i, k in batch_rows]
            mels = sample_rows(model, cond, seeds, temperature=opts.temperature, top_k=opts.top_k,
                               top_p=opts.top_p, gpt=gpt, guidance_scale=opts.guidance_scale)
        else:
            mels = reconstruct(model, batch["image"])
        for (i, k), mel in zip(batch_rows, mels.cpu().numpy()):
            save_mel_atomic(sample_path(out, clips[i], k), mel.astype(np.float32))
        result["written"] += len(batch_rows)
        if bar is not None:
            bar.update(len(batch_rows))
    if bar is not None:
        bar.close()
    result["seconds"] = round(time.perf_counter() - t0, 3)
    return result

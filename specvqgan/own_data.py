"""A folder of your own videos as a dataset the toy classes read (``specvqgan.data.toy``), and the derived
sizes the toy configs need for its clip length. Used by ``scripts/demo.py --videos DIR``.

    <root>/videos/<class>/<id><ext>   links to the sources (class: the first sub-folder; "all" when flat)
    <root>/sources.tsv                <class>/<id> <TAB> source path
    <root>/features/<class>/...       python -m feature_extraction output (mels, wavs, visual features)
    <root>/toy_{train,valid}.txt      split lists (stratified by class, or random, or the user's lists)

Every length follows from the clip duration D (:mod:`specvqgan.shapes`): mel frames T = mel_frames(D), crop
16 * floor(T / 16), latent width crop / 16, feature crop crop / 4, GPT block size (derived by the model).
"""
from __future__ import annotations

import logging
import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from specvqgan.shapes import LATENT_DOWNSAMPLE, feat_crop, mel_crop, mel_frames

log = logging.getLogger(__name__)

FLAT_CLASS = "all"  # the one class of a folder without class sub-folders
FAILED = "failed_videos.tsv"  # <root>/failed_videos.tsv: source <TAB> reason, one unusable video a line


def add_cli_options(group) -> None:
    """The own-video options of ``scripts/demo.py`` (an argparse group)."""
    group.add_argument("--videos", default=None, help="folder of your videos (recursive; first sub-folder = class)")
    group.add_argument("--duration", type=float, default=2.0,
                       help="clip length in seconds (videos are looped / trimmed to it; every model size follows)")
    group.add_argument("--feature", default="color", choices=("color", "resnet50", "rgb_bninception"),
                       help="visual feature (python -m feature_extraction --feature; one stream: the toy datasets "
                       "read one feature folder)")
    group.add_argument("--feature-weights", default=None, help="weights of a pretrained --feature network, e.g. "
                       "`python -m specvqgan.download --path resnet50`")
    group.add_argument("--valid-fraction", type=float, default=0.2, help="validation share per class")
    group.add_argument("--train-list", default=None, help="your train split (paths relative to --videos)")
    group.add_argument("--valid-list", default=None, help="your validation split (paths relative to --videos)")
    group.add_argument("--init-codebook", default=None, metavar="NAME|CKPT",
                       help="fine-tune this codebook (a release, e.g. vggsound_codebook, from the download cache, "
                       "or a checkpoint) instead of training the toy one")
    group.add_argument("--melception", default=None, help="Melception checkpoint for the metrics instead of "
                       "training one (needed without class folders: one class cannot train a classifier)")


def _clean(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "x"


def stage_videos(videos: str | Path, root: str | Path) -> dict[str, Path]:
    """Link every video under ``videos`` (recursive) to ``<root>/videos/<class>/<id><ext>``: class = its first
    sub-folder (``all`` for videos directly in ``videos``), id = the rest of its path joined with ``__``.
    Returns {``<class>/<id>``: source}; also written to ``<root>/sources.tsv``. Idempotent."""
    from specvqgan.video_files import list_videos

    root = Path(root)
    rows: dict[str, Path] = {}
    for item in list_videos([videos]):
        parts = item.subdir.parts
        cls = _clean(parts[0]) if parts else FLAT_CLASS
        clip = f"{cls}/{_clean('__'.join([*parts[1:], item.video.stem]))}"
        rows[clip] = item.video.resolve()
        link = root / "videos" / f"{clip}{item.video.suffix.lower()}"
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.symlink(rows[clip], link)
            except OSError:
                shutil.copyfile(rows[clip], link)
    tmp = root / ".sources.tsv.tmp"
    tmp.write_text("".join(f"{c}\t{s}\n" for c, s in sorted(rows.items())))
    os.replace(tmp, root / "sources.tsv")
    return rows


def split_clips(clips: Sequence[str], valid_fraction: float = 0.2, seed: int = 0) -> tuple[list[str], list[str]]:
    """(train, valid) rows: per class, a seeded shuffle puts round(fraction * n) clips (at least 1 when the
    class has 2 or more, never all) into valid; a flat folder is one class, i.e. a random split."""
    by_class: dict[str, list[str]] = {}
    for c in sorted(clips):
        by_class.setdefault(c.split("/")[0], []).append(c)
    train, valid = [], []
    for cls, rows in sorted(by_class.items()):
        rows = rows[:]
        random.Random(f"{seed}/{cls}").shuffle(rows)
        n_valid = 0 if len(rows) < 2 else min(len(rows) - 1, max(1, round(valid_fraction * len(rows))))
        valid += rows[:n_valid]
        train += rows[n_valid:]
    return sorted(train), sorted(valid)


def user_split(path: str | Path, sources: dict[str, Path], videos: str | Path) -> list[str]:
    """Rows of a user's list (paths relative to ``videos``, with or without extension, or ``<class>/<id>``
    rows) as ``<class>/<id>``; ValueError naming the list and the first row it cannot find."""
    by_source = {str(s.with_suffix("")): c for c, s in sources.items()}
    out = []
    for row in Path(path).read_text().split():
        if row in sources:
            out.append(row)
            continue
        key = str((Path(videos) / row).resolve().with_suffix("")) if Path(row).suffix else \
            str((Path(videos) / row).resolve())
        if key not in by_source:
            raise ValueError(f"{path}: {row!r} is not a video under {videos}")
        out.append(by_source[key])
    return out


def write_split(path: Path, rows: Sequence[str]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(f"{r}\n" for r in rows))
    os.replace(tmp, path)


@dataclass(frozen=True)
class OwnShapes:
    """Sizes derived from the clip duration (seconds) and the feature depth.

    Attributes: mel_crop (mel frames the codebook sees), latent_width (mel_crop / 16), n_feats (feature
    crop, mel_crop / 4)."""

    duration: float
    feat_depth: int

    @property
    def mel_crop(self) -> int:
        return mel_crop(mel_frames(self.duration))

    @property
    def latent_width(self) -> int:
        return self.mel_crop // LATENT_DOWNSAMPLE

    @property
    def n_feats(self) -> int:
        return feat_crop(self.mel_crop)


def overrides(stage: str, shapes: OwnShapes, feature: str, n_classes: int) -> list[str]:
    """``train.py`` overrides of ``configs/toy/<stage>.yaml`` for clips of ``shapes.duration`` seconds with
    ``feature`` visual features (``n_classes``: Melception's output)."""
    splits = ("train", "validation")
    o = [f"data.params.{s}.params.duration={shapes.duration:g}" for s in splits]
    dd = "model.params.ddconfig" if stage == "codebook" else "model.params.first_stage_config.params.ddconfig"
    if stage in ("codebook", "transformer"):
        o += [f"{dd}.resolution={shapes.mel_crop}", f"{dd}.attn_resolutions=[{shapes.latent_width}]"]
    if stage == "transformer":
        o += [f"model.params.cond_stage_config.params.n_feats={shapes.n_feats}",
              f"model.params.transformer_config.params.feat_embedding_config.params.in_channels={shapes.feat_depth}"]
        if feature != "color":
            o += [f"data.params.{s}.params.condition_dataset_cfg.feat_name={feature}" for s in splits]
    if stage == "melception":
        o.append(f"model.params.num_classes={n_classes}")
    return o


@dataclass
class Prepared:
    """What :func:`prepare` made: split rows, the classes, the videos that failed (source, reason)."""

    train: list
    valid: list
    classes: list
    failed: list


def prepare(videos: str | Path, root: str | Path, *, duration: float, feature: str = "color",
            weights: Optional[str] = None, valid_fraction: float = 0.2, seed: int = 0,
            train_list: Optional[str] = None, valid_list: Optional[str] = None, workers: int = 2) -> Prepared:
    """Stage ``videos`` under ``root``, extract audio / mels / visual features at ``duration`` seconds (videos
    that fail are listed, not fatal) and write the split lists (the user's, else stratified / random).
    Rerunning skips what exists. Raises ValueError when fewer than 2 usable clips remain."""
    from feature_extraction.extract import ExtractConfig, extract_folder

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    sources = stage_videos(videos, root)
    cfg = ExtractConfig(duration=duration, feature=feature, weights=weights)
    results = extract_folder(root / "videos", root / "features", cfg, workers=workers, progress=False)
    bad = {Path(r.video).relative_to(root / "videos").with_suffix("").as_posix(): r.reason
           for r in results if r.status == "failed"}
    failed = [(str(sources.get(c, c)), reason) for c, reason in sorted(bad.items())]
    usable = [c for c in sources if c not in bad]
    if train_list or valid_list:
        if not (train_list and valid_list):
            raise ValueError("give both --train-list and --valid-list (or neither: the split is made)")
        train = [c for c in user_split(train_list, sources, videos) if c not in bad]
        valid = [c for c in user_split(valid_list, sources, videos) if c not in bad]
    else:
        train, valid = split_clips(usable, valid_fraction, seed)
    if not train or not valid:
        raise ValueError(f"{videos}: {len(usable)} usable video(s) of {len(sources)} give {len(train)} training "
                         f"and {len(valid)} validation clips; need at least one of each")
    write_split(root / "toy_train.txt", train)
    write_split(root / "toy_valid.txt", valid)
    tmp = root / f".{FAILED}.tmp"
    tmp.write_text("".join(f"{v}\t{r}\n" for v, r in failed))
    os.replace(tmp, root / FAILED)
    classes = sorted({c.split("/")[0] for c in usable})
    log.info("%s: %d train / %d valid clips, classes %s, %d failed", videos, len(train), len(valid), classes,
             len(failed))
    return Prepared(train, valid, classes, failed)


def read_failed(root: str | Path) -> list[str]:
    """Rows ``source<TAB>reason`` of the videos :func:`prepare` could not use."""
    path = Path(root) / FAILED
    return path.read_text().splitlines() if path.is_file() else []


def init_codebook_configs(init: str, cfg_dir: str | Path, shapes: OwnShapes, models_dir: str | Path,
                          cache_dir: Optional[Path] = None) -> tuple[Path, Path]:
    """Fine-tune a released (or any trained) codebook on your videos instead of training the toy one.

    ``init``: a codebook release name / alias (from the download cache) or a checkpoint path. Writes two YAMLs
    to merge after ``configs/toy/codebook.yaml`` / ``configs/toy/transformer.yaml``: the codebook's own model
    (its architecture and weights, sized for ``shapes``; the loss is the toy codebook's: a fresh
    discriminator, no perceptual term) and the transformer's first stage (that architecture, loaded from
    ``<models_dir>/codebook.ckpt``). Returns (codebook yaml, transformer yaml)."""
    from omegaconf import OmegaConf

    from specvqgan.checkpoint import model_config, read

    ckpt = Path(init)
    if not ckpt.is_file():
        from specvqgan.download import local_path
        ckpt = local_path(init, cache_dir)  # FileNotFoundError with the download command
    model = model_config(read(ckpt, mmap=True), ckpt)
    if not str(model.get("target", "")).endswith("VQModel"):
        raise ValueError(f"{ckpt}: not a codebook checkpoint (model {model.get('target') or 'not recorded'})")
    params = dict(model.get("params") or {})
    ddconfig = {**params["ddconfig"], "resolution": shapes.mel_crop, "attn_resolutions": [shapes.latent_width]}
    params.pop("lossconfig", None)  # the toy codebook's loss (fresh discriminator, no perceptual term)
    codebook = {"model": {**model, "params": {**params, "ddconfig": ddconfig, "ckpt_path": str(ckpt),
                                              "ignore_keys": ["loss."]}}}
    first = {"target": model["target"], "params": {**params, "ddconfig": ddconfig, "ckpt_path":
             str(Path(models_dir) / "codebook.ckpt"), "lossconfig": {"target": "specvqgan.modules.losses.DummyLoss"}}}
    cfg_dir = Path(cfg_dir)
    cfg_dir.mkdir(parents=True, exist_ok=True)
    paths = cfg_dir / "init_codebook.yaml", cfg_dir / "init_transformer.yaml"
    for path, cfg in zip(paths, (codebook, {"model": {"params": {"first_stage_config": first}}})):
        path.write_text(f"# fine-tuning {init} (scripts/demo.py --init-codebook)\n" + OmegaConf.to_yaml(cfg))
    return paths

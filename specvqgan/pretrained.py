"""The authors' released models by name: a transformer release (or its alias, e.g. ``vggsound``) resolved to
the files :class:`specvqgan.pipeline.VideoToSound` takes, from the download cache.

    model = resolve_model("vggsound")                   # FileNotFoundError naming the download command
    model = resolve_model("vggsound", download=True)    # fetches what is missing (specvqgan.download)
    pipe = VideoToSound.from_checkpoints(model.transformer, model.vocoder, feature_weights=model.feature_weights)

A transformer release brings its codebook inside its checkpoint (``first_stage_model.*``); it runs with the
MelGAN the paper evaluated with and, for feature-conditioned models, the ImageNet network of its features
(:data:`specvqgan.releases.RELEASES`, ``requires``). Nothing is downloaded unless ``download=True``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from specvqgan.releases import Release, find_release

log = logging.getLogger(__name__)


class MissingRelease(FileNotFoundError):
    """Releases a model needs are not in the cache; ``command`` fetches them."""

    def __init__(self, message: str, command: str):
        super().__init__(message)
        self.command = command


@dataclass(frozen=True)
class ResolvedModel:
    """Local files of a transformer release.

    Attributes:
        release: the transformer's registry entry. transformer: its checkpoint (the authors' run layout, so
        its ``configs/*-project.yaml`` describe it). vocoder: the MelGAN folder. feature_weights: the
        ImageNet weights of its feature network (None: class or noise conditioned). random_features: the
        model was trained on random features (the paper's "no feats" row), so the video is not looked at.
    """

    release: Release
    transformer: Path
    vocoder: Path
    feature_weights: Optional[Path]
    random_features: bool


def needed(name: str) -> list[Release]:
    """The transformer release ``name`` (or alias) and the releases it runs with (KeyError: unknown name,
    ValueError: not a transformer)."""
    rel = find_release(name)
    if rel.kind != "transformer":
        raise ValueError(f"{name!r} is a {rel.kind} release, not a transformer; see "
                         f"`python -m specvqgan.download --list` (kind 'transformer')")
    return [rel, *(find_release(r) for r in rel.requires)]


def download_command(names, cache_dir: Optional[Path] = None) -> str:
    """The ``python -m specvqgan.download ...`` command that fetches ``names``."""
    cache = f" --cache-dir {cache_dir}" if cache_dir is not None else ""
    return f"python -m specvqgan.download {' '.join(names)}{cache}"


def resolve_model(name: str, cache_dir: Optional[Path] = None, *, download: bool = False,
                  base_url: Optional[str] = None, progress: bool = True, allow_http: bool = False) -> ResolvedModel:
    """Local paths of transformer release ``name`` and what it runs with.

    Args:
        cache_dir: the download cache (default: ``specvqgan.download.default_cache_dir()``).
        download: fetch missing releases (md5 / sha256 checked); otherwise a missing one raises.
        base_url: a mirror (``specvqgan.download`` ``--base-url``); ``allow_http``: accept a plain-http one.
    Raises:
        KeyError (unknown name), ValueError (not a transformer), MissingRelease (not cached, no download:
        the message and ``.command`` give the exact download command), specvqgan.download.DownloadError.
    """
    from specvqgan import download as dl

    releases = needed(name)
    cache = Path(cache_dir) if cache_dir else dl.default_cache_dir()
    missing = [r.name for r in releases if not dl.is_present(r, cache)]
    if missing and not download:
        command = download_command(missing, cache_dir)
        raise MissingRelease(f"model {name!r} needs {', '.join(missing)}, not in the cache {cache}; fetch with "
                             f"`{command}` (or pass --download)", command)
    paths = {}
    for rel in releases:
        if rel.name in missing:
            log.info("downloading %s", rel.name)
            paths[rel.name] = dl.download(rel.name, cache, base_url=base_url, progress=progress, allow_http=allow_http)
        else:
            paths[rel.name] = cache / rel.use
    tr = releases[0]
    ckpts = sorted((paths[tr.name] / "checkpoints").glob("*.ckpt"))
    if not ckpts:
        raise FileNotFoundError(f"{paths[tr.name]}: the release has no checkpoints/*.ckpt; fetch it again with "
                                f"`{download_command([tr.name], cache_dir)} --force`")
    kind = {r.kind: paths[r.name] for r in releases[1:]}
    return ResolvedModel(release=tr, transformer=ckpts[-1], vocoder=kind["vocoder"],
                         feature_weights=kind.get("features"),
                         random_features=tr.condition == "noise")

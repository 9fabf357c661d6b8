"""Atomic file writes: a reader (or a rerun after Ctrl-C) never sees a partial file; file hashes."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from specvqgan.checks import require_finite


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a hidden temporary path beside ``path`` (same suffix, so writers such as
    ``np.save`` keep the name), then rename it onto ``path``; the temporary file is removed on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_mel_atomic(path: Path, mel: np.ndarray) -> None:
    """Write ``mel`` to ``path`` through a hidden temporary file and a rename (never a partial .npy); a mel
    with NaN / Inf is refused (:class:`specvqgan.checks.NonFiniteError` naming ``path``)."""
    require_finite(mel, str(path), "mel values")
    atomic_write(path, lambda tmp: np.save(tmp, mel))


def link_atomic(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """``dst`` becomes a hard link to (or, across file systems, a copy of) ``src``, atomically."""
    import shutil

    def link(tmp: Path) -> None:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
    atomic_write(dst, link)


def hash_file(path: str | os.PathLike, h) -> str:
    """Hex digest of a file's bytes fed (in 1 MiB blocks) to the hashlib object ``h``."""
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    import hashlib

    return hash_file(path, hashlib.sha256())

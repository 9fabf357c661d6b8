"""Clip lists, labels and file readers shared by the VAS, VGGSound and toy datasets.

On-disk layout of the reference (``../shared/reference/data/SOURCE.md``):

* a split list is a text file with one clip per line: ``<class>/<id>`` (VAS, toy) or
  ``<youtube_id>_<start_ms>_<end_ms>`` (VGGSound);
* a directory pattern may contain ``*``, replaced by the clip's class (VAS:
  ``./data/vas/features/*/melspec_10s_22050hz``); a clip ``<class>/<id>`` then lives at
  ``<dir with * = class>/<id><suffix>``, a clip without a class at ``<dir>/<id><suffix>``;
* mels are ``np.save`` arrays (80, T) in [0, 1] (float32 for VAS, float64 for VGGSound);
  visual features are pickled float32 arrays (T, D) at 21.5 fps.

Every missing or unreadable file raises an error that names the file.
"""
from __future__ import annotations

import csv
import logging
import os
import pickle
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from specvqgan.checks import require_finite

log = logging.getLogger(__name__)

MAX_LISTED = 10  # absent clips named in an error message (the count is always complete)


class AbsentClipsError(FileNotFoundError):
    """A split list names clips whose files are not on disk; ``.absent`` holds all of them."""

    def __init__(self, msg: str, absent: Sequence[str] = ()) -> None:
        super().__init__(msg)
        self.absent = list(absent)


def read_split(split_path: str | os.PathLike) -> list[str]:
    """Rows of a split list (blank lines and surrounding whitespace dropped).

    Raises:
        FileNotFoundError: the file does not exist. ValueError: it names no clip.
    """
    path = Path(split_path)
    if not path.is_file():
        raise FileNotFoundError(f"split list not found: {path}")
    rows = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"split list {path} is empty")
    return rows


def split_clip(clip: str) -> tuple[str | None, str]:
    """``'dog/video_02754'`` -> ``('dog', 'video_02754')``; ``'abc_0_10000'`` -> ``(None, 'abc_0_10000')``."""
    cls, sep, vid = clip.rpartition("/")
    return (cls, vid) if sep else (None, clip)


def clip_path(dir_pattern: str, clip: str, suffix: str) -> str:
    """Path of a clip's file: ``*`` in ``dir_pattern`` is replaced by the clip's class."""
    cls, vid = split_clip(clip)
    if "*" in dir_pattern:
        if cls is None:
            raise ValueError(f"directory pattern {dir_pattern!r} contains '*' but clip {clip!r} has no "
                             f"'<class>/' prefix to put there")
        dir_pattern = dir_pattern.replace("*", cls)
    return os.path.join(dir_pattern, f"{vid}{suffix}")


def find_absent(clips: Sequence[str], path_fns: Iterable[Callable[[str], str]]) -> list[str]:
    """Clips for which any of the files given by ``path_fns`` does not exist (order kept)."""
    path_fns = list(path_fns)
    return [c for c in clips if not all(os.path.isfile(fn(c)) for fn in path_fns)]


def drop_absent(clips: list[str], path_fns: Iterable[Callable[[str], str]], skip_missing: bool,
                where: str) -> list[str]:
    """Check that every clip's files exist.

    Args:
        clips: clip rows of a split list.
        path_fns: functions clip -> required file path (e.g. the mel and the two feature pickles).
        skip_missing: drop absent clips with a warning instead of raising.
        where: what is being read (split list path and directories), for the message.
    Returns:
        The clips whose files all exist.
    Raises:
        AbsentClipsError: some clips are absent and ``skip_missing`` is False; the message gives the
            count, names the first few and one file that was looked for; ``.absent`` lists all.
    """
    path_fns = list(path_fns)
    absent = find_absent(clips, path_fns)
    if not absent:
        return clips
    example = next(p for p in (fn(absent[0]) for fn in path_fns) if not os.path.isfile(p))
    more = f" and {len(absent) - MAX_LISTED} more" if len(absent) > MAX_LISTED else ""
    msg = (f"{len(absent)} of {len(clips)} clips named by {where} are absent (e.g. no file {example}): "
           f"{', '.join(absent[:MAX_LISTED])}{more}")
    if not skip_missing:
        raise AbsentClipsError(msg + ". Pass skip_missing=True to skip them with a warning.", absent)
    log.warning("skipping %s", msg)
    absent_set = set(absent)
    kept = [c for c in clips if c not in absent_set]
    if not kept:
        raise AbsentClipsError(f"no clip named by {where} is present on disk", absent)
    return kept


def load_mel(path: str, mel_num: int | None = None) -> np.ndarray:
    """Read a mel spectrogram ``.npy`` -> (F, T) array in its stored dtype (float32 or float64).

    Raises:
        FileNotFoundError / ValueError naming the file when missing, unreadable, not (mel_num, T) or
        holding NaN / Inf (:class:`specvqgan.checks.NonFiniteError`).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"mel spectrogram not found: {path}")
    try:
        mel = np.load(path, allow_pickle=False)
    except Exception as err:
        raise ValueError(f"cannot read mel spectrogram {path}: {err}") from err
    if mel.ndim != 2 or (mel_num is not None and mel.shape[0] != mel_num):
        rows = f"({mel_num}, T)" if mel_num is not None else "(F, T)"
        raise ValueError(f"mel spectrogram {path} has shape {mel.shape}, expected {rows}")
    return require_finite(mel, path, "mel spectrogram values")


class _ArrayUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays (and the plain lists/tuples/dicts around them) only: any other global in
    the pickle (a function, a class that could run code) is refused before it is looked up."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"),
               *((m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray") for n in ("_reconstruct", "scalar"))}

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED or (module == "numpy.dtypes" and name.endswith("DType")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing the global {module}.{name} (feature pickles may only hold numpy arrays)")


def load_feats(path: str, feat_depth: int | None = None) -> np.ndarray:
    """Read a pickled feature array (T, D), as the reference does (``encoding='bytes'``), with an
    unpickler that can only rebuild numpy arrays (the files come from the internet).

    Raises:
        FileNotFoundError / ValueError naming the file when missing, unreadable, holding anything but a
        numeric array, not 2-D (T, D) or holding NaN / Inf.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"feature file not found: {path}")
    try:
        with open(path, "rb") as f:
            feats = _ArrayUnpickler(f, encoding="bytes").load()
    except Exception as err:
        raise ValueError(f"cannot read feature pickle {path}: {err}") from None
    feats = np.asarray(feats)
    if feats.dtype.kind not in "fiub":
        raise ValueError(f"features in {path} are {feats.dtype}, expected a numeric array")
    if feats.ndim != 2 or (feat_depth is not None and feats.shape[1] != feat_depth):
        cols = feat_depth if feat_depth is not None else "D"
        raise ValueError(f"features in {path} have shape {feats.shape}, expected (T, {cols})")
    return require_finite(feats, path, "feature values")


class ClassDirLabels:
    """Labels of ``<class>/<id>`` clips (VAS, toy): the class is the folder name.

    ``label2target`` maps the sorted class names to 0..C-1: ``classes`` when given, else the classes
    of the split list (the reference's rule; give ``classes`` so that train and valid agree when a
    split lacks a class).
    """

    def __init__(self, clips: Sequence[str], classes: Sequence[str] | None = None) -> None:
        in_clips = {split_clip(c)[0] for c in clips}
        if None in in_clips:
            raise ValueError(f"clips must be '<class>/<id>' rows to take their label from the folder, "
                             f"got e.g. {next(c for c in clips if '/' not in c)!r}")
        names = sorted(set(classes)) if classes else sorted(in_clips)
        unknown = sorted(in_clips - set(names))
        if unknown:
            raise ValueError(f"the split names classes {unknown} that are not in `classes` {names}")
        self.label2target = {label: target for target, label in enumerate(names)}
        self.target2label = {t: l for l, t in self.label2target.items()}

    def label(self, clip: str) -> str:
        cls = split_clip(clip)[0]
        if cls is None or cls not in self.label2target:
            raise ValueError(f"clip {clip!r} has no known class (known: {sorted(self.label2target)})")
        return cls


class CsvLabels:
    """Labels of VGGSound clips from the dataset's CSV (rows ``youtube_id,start_s,label,split``).

    A clip ``<youtube_id>_<start_ms>_<end_ms>`` takes the label of its first 11 characters (the
    YouTube id), as in the reference. ``label2target`` enumerates the sorted labels of the whole CSV.
    """

    def __init__(self, meta_path: str | os.PathLike) -> None:
        path = Path(meta_path)
        if not path.is_file():
            raise FileNotFoundError(f"class-label CSV not found: {path} (VGGSound's vggsound.csv is not "
                                    f"shipped with the reference data; point `meta_path` at your copy)")
        with open(path, newline="") as f:
            rows = [r for r in csv.reader(f, quotechar='"') if r]
        bad = [i for i, r in enumerate(rows) if len(r) < 3]
        if bad:
            raise ValueError(f"class-label CSV {path}: row {bad[0] + 1} has fewer than 3 columns "
                             f"(expected youtube_id,start_s,label[,split])")
        self.path = path
        self.label2target = {label: t for t, label in enumerate(sorted({r[2] for r in rows}))}
        self.target2label = {t: l for l, t in self.label2target.items()}
        self.video2label = {r[0]: r[2] for r in rows}

    def label(self, clip: str) -> str:
        video = split_clip(clip)[1][:11]
        if video not in self.video2label:
            raise KeyError(f"clip {clip!r} (video {video!r}) is not in the class-label CSV {self.path}")
        return self.video2label[video]

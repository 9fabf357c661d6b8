"""What produced the files in an output folder, so that "skip what exists" only skips matching outputs.

A resumable output folder (the extractor's ``audio_*``, ``melspec_*`` and ``feature_*`` folders) holds
``_provenance.json``: a small JSON dict of what its files depend on (settings, weight-file sha256).
:func:`claim_folder` is called before a run writes there:

* no record and no files: the record is written now (an interrupted run resumes);
* a matching record: existing files are kept (skipped);
* a different record, or files without any record (an older version, an interrupted ``--overwrite``):
  :class:`ProvenanceError` naming the folder and the differences, unless ``overwrite``; then the record
  is removed until :func:`record_folder` writes the new one when the run has finished.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

from specvqgan.files import atomic_write, file_sha256

RECORD = "_provenance.json"


class ProvenanceError(ValueError):
    """Existing outputs were made by something else than this run; the message names the folder."""


def _differences(old: dict, new: dict) -> str:
    keys = sorted(set(old) | set(new))
    return "; ".join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} now" for k in keys if old.get(k) != new.get(k))


def claim_folder(folder: str | Path, produced_by: dict, overwrite: bool = False,
                 redo: str = "pass --overwrite to redo them") -> None:
    """Check (and, for a new folder, record) that ``folder``'s outputs come from ``produced_by`` (JSON
    values only). Raises :class:`ProvenanceError` (ending with ``redo``, how to redo them) on a mismatch
    unless ``overwrite`` (see module doc)."""
    folder, produced_by = Path(folder), json.loads(json.dumps(produced_by))
    rec = folder / RECORD
    old = json.loads(rec.read_text()) if rec.is_file() else None
    if old == produced_by:
        return
    has_files = folder.is_dir() and any(p.name != RECORD and not p.name.startswith(".") for p in folder.iterdir())
    if old is None and not has_files:
        record_folder(folder, produced_by)
        return
    if not overwrite:
        why = (f"its outputs were made with other settings ({_differences(old, produced_by)})" if old is not None
               else f"it holds outputs with no {RECORD} (an older version or an interrupted overwrite)")
        raise ProvenanceError(f"{folder}: {why}; {redo}, or use another output folder")
    if rec.is_file():
        rec.unlink()                # an interrupted overwrite must not pass for a finished one


def path_sha256(path: str | Path | None) -> str | None:
    """sha256 of a file, or of a folder's files (names and contents, sorted); None for None. A file's hash
    is computed once per process while its path and modification time stay the same."""
    import hashlib

    if path is None:
        return None
    path = Path(path)
    if path.is_file():
        return _file_sha256(*_identity(path))
    h = hashlib.sha256()
    for f in _files(path):
        h.update(f"{f.relative_to(path)}\0{_file_sha256(*_identity(f))}\n".encode())
    return h.hexdigest()


def _files(path: Path) -> list[Path]:
    """``path`` itself (a file), or a folder's files (recursively, sorted), or nothing (missing)."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []


def _identity(f: Path) -> tuple[str, int]:
    """(resolved path, mtime_ns): the key a file's digest is cached under."""
    return str(f.resolve()), f.stat().st_mtime_ns


@functools.lru_cache(maxsize=32)
def _file_sha256(path: str, mtime_ns: int) -> str:
    ahead = _AHEAD.pop((path, mtime_ns), None)
    return ahead.result() if ahead is not None else file_sha256(path)


_AHEAD: dict = {}       # (resolved path, mtime_ns) -> Future of its sha256, from hash_ahead


def hash_ahead(*paths: str | Path | None) -> None:
    """Start hashing these files (folders: their files) on a background thread, so that a later
    :func:`path_sha256` only waits for the rest: a CLI calls it before its imports and model loading, which
    leave a core idle (hashlib releases the GIL). Missing paths and None are ignored."""
    from concurrent.futures import ThreadPoolExecutor

    files = [f for p in paths if p is not None for f in _files(Path(p))]
    if not files:
        return
    pool = ThreadPoolExecutor(1, thread_name_prefix="sha256")
    for key in map(_identity, files):
        if key not in _AHEAD:
            _AHEAD[key] = pool.submit(file_sha256, key[0])
    pool.shutdown(wait=False)


def record_folder(folder: str | Path, produced_by: dict) -> None:
    """Write ``folder/_provenance.json`` (atomically)."""
    atomic_write(Path(folder) / RECORD, lambda p: p.write_text(json.dumps(produced_by, indent=1, sort_keys=True)))

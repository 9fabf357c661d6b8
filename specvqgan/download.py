"""Fetch the authors' released checkpoints into a local cache. The only module that touches the network,
and only when called explicitly (no loader ever calls it).

Command line::

    python -m specvqgan.download --list                          # the registry, and what is cached
    python -m specvqgan.download vggsound_codebook melgan        # fetch (md5-checked, resumable)
    python -m specvqgan.download --path vggsound_codebook        # print the local path, no network

Files go to ``--cache-dir`` or ``$SPECVQGAN_CACHE`` or ``$XDG_CACHE_HOME/specvqgan`` or
``~/.cache/specvqgan``. A download is written to ``<file>.part`` and resumed with an HTTP ``Range``
request after a broken connection (in the same run, up to ``--retries`` times, or in a later run);
only a file whose md5 equals the published one (and whose git blob hash equals the pinned one, for the
MelGAN files kept in the reference repository) is renamed to its final name. ``.tar.gz`` releases are
unpacked to ``<cache>/<name>/`` (with tar's ``data`` filter) and the archive is deleted. A release
already present and verified is not fetched again. ``--base-url`` / ``$SPECVQGAN_BASE_URL`` reads every
file from ``<base>/<path>`` instead (a mirror, or a local server in the tests); a plain ``http://`` URL
is refused unless ``--allow-http`` is given. Processes fetching the same release at once take turns
(a lock file ``<cache>/.locks/<name>``): the second finds the release present.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import http.client
import json
import logging
import os
import shutil
import sys
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

from specvqgan.files import file_sha256, hash_file
from specvqgan.releases import HOSTS, RELEASES, Release, RemoteFile, find_release

log = logging.getLogger(__name__)

MARKER = ".specvqgan-release.json"  # written into an unpacked release folder once it is complete
CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download that could not be completed or verified; the message names the URL or file."""


def default_cache_dir() -> Path:
    """``$SPECVQGAN_CACHE``, else ``$XDG_CACHE_HOME/specvqgan``, else ``~/.cache/specvqgan``."""
    if os.environ.get("SPECVQGAN_CACHE"):
        return Path(os.environ["SPECVQGAN_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "specvqgan"


def url_of(remote: RemoteFile, base_url: Optional[str] = None) -> str:
    """The URL of ``remote``: ``<base_url>/<path>`` if a base (argument or ``$SPECVQGAN_BASE_URL``) is set,
    else the authors' host."""
    base = base_url or os.environ.get("SPECVQGAN_BASE_URL") or HOSTS[remote.host]
    return f"{base.rstrip('/')}/{remote.path}"


def md5sum(path: Path) -> str:
    return hash_file(path, hashlib.md5())


def git_blob_sha1(path: Path) -> str:
    """The git blob hash of a file: sha1 of ``b"blob <size>\0" + content``."""
    return hash_file(path, hashlib.sha1(f"blob {Path(path).stat().st_size}\0".encode()))


@contextlib.contextmanager
def _release_lock(cache: Path, name: str):
    """Exclusive lock on ``<cache>/.locks/<name>`` while a release is fetched (released on exit or death)."""
    (cache / ".locks").mkdir(exist_ok=True)
    with open(cache / ".locks" / name, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _check_scheme(url: str, allow_http: bool) -> None:
    if url.startswith("http://") and not allow_http:
        raise DownloadError(f"refusing the plain-http URL {url} (no transport security); use https, or pass "
                            f"--allow-http (allow_http=True) for a mirror you trust on your own network")


def _content_range_start(value: Optional[str]) -> Optional[int]:
    """``'bytes 100-199/200'`` -> 100 (None if absent or malformed)."""
    try:
        return int(value.split()[1].split("-")[0])
    except (AttributeError, IndexError, ValueError):
        return None


def _transfer(url: str, part: Path, timeout: float, progress: bool) -> bool:
    """One HTTP request appending to ``part`` (resuming with ``Range`` if it holds bytes).
    True when the body arrived complete, False when the connection broke off (bytes so far are kept)."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "specvqgan-download"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing left to send: the .part is already whole (md5 decides)
            return True
        raise DownloadError(f"HTTP {err.code} {err.reason} for {url}") from None
    except urllib.error.URLError:
        raise
    except (OSError, http.client.HTTPException) as err:  # dropped before the headers arrived
        log.warning("no response from %s: %s", url, err)
        return False
    with resp:
        if have and resp.status == 206 and _content_range_start(resp.headers.get("Content-Range")) == have:
            mode = "ab"
            log.info("resuming %s at byte %d", url, have)
        else:  # no partial file, or the server ignored/mangled the Range: start over
            mode, have = "wb", 0
        length = resp.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        received = 0
        bar = _progress_bar(url, have, None if expected is None else have + expected, progress)
        try:
            with open(part, mode) as f:
                while True:
                    block = resp.read(CHUNK)
                    if not block:
                        break
                    f.write(block)
                    received += len(block)
                    bar.update(len(block))
        except (OSError, http.client.HTTPException) as err:  # reset, timeout, IncompleteRead
            log.warning("connection to %s broke off after %d bytes: %s", url, have + received, err)
            return False
        finally:
            bar.close()
    if expected is not None and received < expected:
        log.warning("connection to %s broke off after %d of %d bytes", url, have + received, have + expected)
        return False
    return True


def _progress_bar(url: str, initial: int, total: Optional[int], enabled: bool):
    from tqdm import tqdm  # a dependency of Lightning, pinned in requirements.txt

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=url.rsplit("/", 1)[-1], file=sys.stderr, disable=None if enabled else True)


def fetch(url: str, dest: Path, md5: Optional[str], *, timeout: float = 60.0, retries: int = 5,
          progress: bool = True, git_sha1: Optional[str] = None, sha256_prefix: Optional[str] = None) -> str:
    """Download ``url`` to ``dest`` via ``dest.part`` (resumed if present) and return the file's md5.

    A broken connection is resumed with a ``Range`` request up to ``retries`` times. If ``md5`` (or the git
    blob hash ``git_sha1``, or the ``sha256_prefix``) is given and differs, nothing is kept (neither ``dest``
    nor the ``.part``) and :class:`DownloadError` says so; a resumed ``.part`` that fails the check is first
    re-fetched once from scratch (it may be stale).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    resumed = part.exists() and part.stat().st_size > 0
    for attempt in range(retries + 1):
        try:
            complete = _transfer(url, part, timeout, progress)
        except urllib.error.URLError as err:  # refused, DNS, timeout while connecting
            complete, reason = False, err.reason
            if attempt == retries:
                raise DownloadError(f"cannot download {url}: {reason}") from None
            log.warning("cannot reach %s (%s); retrying", url, reason)
        if complete:
            break
        if attempt < retries:
            time.sleep(min(0.5 * 2 ** attempt, 10.0))
    else:
        size = part.stat().st_size if part.exists() else 0
        raise DownloadError(f"download of {url} kept breaking off ({retries + 1} attempts, {size} bytes in "
                            f"{part}); run the same command again to resume")
    digest = md5sum(part)
    bad = None
    if md5 is not None and digest != md5:
        bad = f"md5 mismatch for {url}: expected {md5}, got {digest}"
    elif git_sha1 is not None and (got := git_blob_sha1(part)) != git_sha1:
        bad = f"git blob hash mismatch for {url}: expected {git_sha1}, got {got}"
    elif sha256_prefix and not (got := file_sha256(part)).startswith(sha256_prefix):
        bad = f"sha256 mismatch for {url}: got {got[:16]}..., the file name says {sha256_prefix}"
    if bad:
        part.unlink()
        if resumed:
            log.warning("the resumed %s fails its check (stale partial file?); downloading it again", part)
            return fetch(url, dest, md5, timeout=timeout, retries=retries, progress=progress, git_sha1=git_sha1,
                         sha256_prefix=sha256_prefix)
        raise DownloadError(f"{bad}; the download was deleted and nothing was saved as {dest}")
    os.replace(part, dest)
    return digest


def _unpack(archive: Path, cache: Path, name: str) -> Path:
    """Unpack ``archive`` to ``cache/name`` (its top folder ``name/`` is not repeated). Returns the folder."""
    tmp = cache / f".unpack-{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(tmp, filter="data")  # refuses absolute paths, '..', devices, links leaving tmp
    except (tarfile.TarError, OSError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DownloadError(f"cannot unpack {archive}: {err}") from None
    entries = list(tmp.iterdir())
    src = entries[0] if len(entries) == 1 and entries[0].is_dir() and entries[0].name == name else tmp
    final = cache / name
    shutil.rmtree(final, ignore_errors=True)
    os.replace(src, final)
    shutil.rmtree(tmp, ignore_errors=True)
    return final


def _unpacked(cache: Path, name: str, remote: RemoteFile) -> bool:
    """Whether ``cache/name`` holds a complete unpack of ``remote`` (its marker names the right md5)."""
    try:
        marker = json.loads((cache / name / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return remote.md5 is None or marker.get("md5") == remote.md5


def is_present(release: Release, cache_dir: Optional[Path] = None, verify: bool = False) -> bool:
    """Whether ``release`` is complete in the cache (no network). Unpacked releases are judged by the
    marker written after their md5-checked archive was unpacked; plain files by existence (``verify``:
    by md5 against the published sum, or the sum recorded at download when none was published)."""
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    for remote in release.files:
        if remote.archive:
            if not _unpacked(cache, release.name, remote):
                return False
            continue
        dest = cache / remote.dest
        if not dest.is_file():
            return False
        if verify and not _verified(remote, dest):
            return False
    return True


def _verified(remote: RemoteFile, dest: Path) -> bool:
    """Whether ``dest`` matches the published md5, the pinned git blob hash, or the md5 recorded at download."""
    if remote.git_sha1 is not None and git_blob_sha1(dest) != remote.git_sha1:
        log.warning("%s does not have the git blob hash %s", dest, remote.git_sha1)
        return False
    want = remote.md5 or (None if remote.git_sha1 else _recorded_md5(dest))
    if want is not None and md5sum(dest) != want:
        log.warning("%s does not have the md5 %s", dest, want)
        return False
    return True


def _recorded_md5(dest: Path) -> Optional[str]:
    sidecar = dest.with_name(dest.name + ".md5")
    return sidecar.read_text().split()[0] if sidecar.is_file() else None


def local_path(name: str, cache_dir: Optional[Path] = None) -> Path:
    """The path a loader takes for release ``name`` (see ``Release.use``); never downloads.
    FileNotFoundError with the command to run if it is not in the cache."""
    release = find_release(name)
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    if not is_present(release, cache):
        raise FileNotFoundError(f"checkpoint {release.name!r} is not in the cache {cache}; fetch it with "
                                f"`python -m specvqgan.download {release.name} --cache-dir {cache}`")
    return cache / release.use


def download(name: str, cache_dir: Optional[Path] = None, *, base_url: Optional[str] = None, force: bool = False,
             keep_archive: bool = False, timeout: float = 60.0, retries: int = 5, progress: bool = True,
             allow_http: bool = False) -> Path:
    """Fetch release ``name`` (md5-checked, resumable, unpacked) into the cache; return its loader path.
    Already present and verified -> no network (``force`` fetches again). ``allow_http``: accept a plain
    ``http://`` base URL. Concurrent calls for the same release (any process) take turns."""
    release = find_release(name)
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    for remote in release.files:
        _check_scheme(url_of(remote, base_url), allow_http)
    with _release_lock(cache, release.name):
        fetched = _download_files(release, cache, base_url, force, keep_archive, timeout, retries, progress)
    log.info("%s is %s in %s", release.name, "ready" if fetched else "already", cache)
    return cache / release.use


def _download_files(release: Release, cache: Path, base_url: Optional[str], force: bool, keep_archive: bool,
                    timeout: float, retries: int, progress: bool) -> int:
    """Fetch the missing or unverified files of ``release``; returns how many were fetched."""
    fetched = 0
    for remote in release.files:
        url = url_of(remote, base_url)
        dest = cache / remote.dest
        if remote.archive:
            if not force and _unpacked(cache, release.name, remote):
                continue
            digest = fetch(url, dest, remote.md5, timeout=timeout, retries=retries, progress=progress)
            folder = _unpack(dest, cache, release.name)
            (folder / MARKER).write_text(json.dumps({"name": release.name, "url": url, "md5": digest}) + "\n")
            if not keep_archive:
                dest.unlink()
            fetched += 1
            continue
        if dest.is_file() and not force:
            if _verified(remote, dest):
                continue
            log.warning("removing %s and downloading it again", dest)
        dest.unlink(missing_ok=True)  # a failed fetch must leave nothing under the final name
        digest = fetch(url, dest, remote.md5, timeout=timeout, retries=retries, progress=progress,
                       git_sha1=remote.git_sha1, sha256_prefix=remote.sha256_prefix)
        fetched += 1
        if remote.md5 is None and remote.git_sha1 is None:
            dest.with_name(dest.name + ".md5").write_text(f"{digest}  {dest.name}\n")
            log.warning("%s has no published md5; recorded the downloaded file's md5 %s", url, digest)
    return fetched


def _list(cache: Path) -> str:
    """The registry as a table: name, alias, kind, the paper's FID / MKL (README; blank: none), cached."""
    rows = [f"{'name':42s} {'alias':32s} {'kind':11s} {'FID':>5s} {'MKL':>5s} {'md5':9s} {'cached':6s} description"]
    for rel in RELEASES:
        md5 = "published" if all(f.md5 for f in rel.files) else "none"
        cached = "yes" if is_present(rel, cache) else "-"
        fid, mkl = (f"{v:5.1f}" if v is not None else f"{'':5s}" for v in (rel.fid, rel.mkl))
        rows.append(f"{rel.name:42s} {', '.join(rel.aliases) or '-':32s} {rel.kind:11s} {fid} {mkl} {md5:9s} "
                    f"{cached:6s} {rel.description}")
    return "\n".join(rows) + (f"\nFID / MKL: the paper's (reference README tables; codebooks: reconstructions)."
                              f"\ncache: {cache}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m specvqgan.download",
                                     description="Fetch the authors' released SpecVQGAN checkpoints into a cache.")
    parser.add_argument("names", nargs="*", help="release names or aliases (see --list)")
    parser.add_argument("--list", action="store_true", help="list the releases and whether they are cached")
    parser.add_argument("--path", action="store_true", help="print the local paths of NAMES (no network)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: $SPECVQGAN_CACHE or ~/.cache/specvqgan")
    parser.add_argument("--base-url", default=None, help="read files from <base>/<path> (default: $SPECVQGAN_BASE_URL "
                                                         "or the authors' hosts)")
    parser.add_argument("--allow-http", action="store_true",
                        help="accept a plain-http --base-url / $SPECVQGAN_BASE_URL (no transport security)")
    parser.add_argument("--force", action="store_true", help="download again even if present")
    parser.add_argument("--keep-archive", action="store_true", help="keep the .tar.gz after unpacking")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds without data before a retry")
    parser.add_argument("--retries", type=int, default=5, help="resumed attempts after a broken connection")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    cache = args.cache_dir or default_cache_dir()
    if args.list:
        print(_list(cache))
        return 0
    if not args.names:
        parser.error("name the checkpoints to fetch (see --list)")
    try:
        releases = [find_release(n) for n in args.names]
    except KeyError as err:
        parser.error(err.args[0])
    status = 0
    for rel in releases:
        try:
            if args.path:
                path = local_path(rel.name, cache)
            else:
                path = download(rel.name, cache, base_url=args.base_url, force=args.force,
                                keep_archive=args.keep_archive, timeout=args.timeout, retries=args.retries,
                                progress=not args.quiet, allow_http=args.allow_http)
        except (DownloadError, FileNotFoundError) as err:
            print(f"error: {err}", file=sys.stderr)
            status = 1
            continue
        print(path)
        if not args.path:
            print(f"  use: {rel.loader.format(path=path, cache=cache)}", file=sys.stderr)
            ckpts = sorted((cache / rel.name / "checkpoints").glob("*.ckpt"))
            if ckpts:
                print(f"  checkpoints: {', '.join(str(c) for c in ckpts)}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())

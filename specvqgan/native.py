"""Small optional C++ kernels, compiled on first use and loaded with ``ctypes``.

A kernel is one C++ source file with ``extern "C"`` functions. :func:`load_library` compiles it with the
system compiler (``$CXX`` or ``g++``: ``-O3 -march=native -fopenmp``, linked against the OpenMP runtime
that torch itself loaded, so the kernel's threads are torch's threads) into a cache folder and loads it.
Nothing here is required: where no compiler is found, compilation fails, or ``SPECVQGAN_NATIVE=0`` is set,
:func:`load_library` warns once and returns ``None`` and the callers use their pure-torch path.

The compiled file is keyed by the source, the flags, the compiler version and the CPU's flags, and is
written atomically (concurrent first uses are safe). Cache folder (per user, created 0700):
``$SPECVQGAN_CACHE/native-<uid>`` or ``~/.cache/specvqgan/native-<uid>``. Loading a library runs its
code, so a cached file is loaded only if this user owns it and nobody else can write it (or its folder);
anything else, or a file that fails to load (corrupt, truncated), is removed and rebuilt once. Temporary
files of killed builds are removed after an hour.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import stat
import subprocess
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Optional

import torch

FLAGS = ['-O3', '-march=native', '-fPIC', '-shared', '-std=c++17', '-fopenmp', '-fno-math-errno']
_LOADED: dict[str, Optional[ctypes.CDLL]] = {}
_LOCK = threading.Lock()
STALE_TMP_SECONDS = 3600  # a build takes seconds: older tmp*.so files are leftovers of killed builds


def enabled() -> bool:
    """False when ``SPECVQGAN_NATIVE=0`` (force the pure-torch paths)."""
    return os.environ.get('SPECVQGAN_NATIVE', '1') not in ('0', 'false', 'False', 'no')


def cache_dir() -> Path:
    base = os.environ.get('SPECVQGAN_CACHE')
    root = Path(base).expanduser() if base else Path(os.environ.get('XDG_CACHE_HOME', '~/.cache')).expanduser() / 'specvqgan'
    return root / f'native-{os.getuid()}'


def _private_dir() -> Path:
    """:func:`cache_dir`, created 0700; OSError if it is not this user's or others can write to it."""
    path = cache_dir()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise OSError(f'{path} is not a folder owned by this user; refusing to use it as the kernel cache')
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def _trusted_file(path: Path) -> bool:
    """A regular file (not a link) owned by this user that neither group nor others can write."""
    st = path.lstat()
    return stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o022


def _clean_stale(folder: Path) -> None:
    now = time.time()
    for tmp in folder.glob('tmp*.so'):
        try:
            if now - tmp.lstat().st_mtime > STALE_TMP_SECONDS:
                tmp.unlink()
        except OSError:
            pass


def _torch_openmp() -> list[str]:
    """Link flags for the OpenMP runtime shipped inside torch (same soname: the loader reuses it)."""
    lib = Path(torch.__file__).parent / 'lib'
    gomp = sorted(lib.glob('libgomp*.so*'))
    if gomp:
        return [str(gomp[0]), f'-Wl,-rpath,{lib}']
    return []


def _cpu_flags() -> str:
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('flags'):
                return line
    except OSError:
        pass
    return platform.processor()


def _compiler() -> Optional[str]:
    cxx = os.environ.get('CXX', 'g++')
    return shutil.which(cxx)


COMPILE_TIMEOUT_S = 300.0   # a compiler run longer than this is killed (the torch fallback is used)


def _run(cmd: list[str], source: Path, timeout: float) -> subprocess.CompletedProcess:
    """``subprocess.run`` with a time limit; a time-out raises RuntimeError naming the command and file."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f'{source}: {cmd[0]} timed out after {timeout:g} s (command: {" ".join(cmd)})') from None


def library_path(name: str, source: Path, cxx: str) -> Path:
    """Where the compiled ``source`` is cached (depends on source, flags, compiler and CPU)."""
    version = _run([cxx, '--version'], source, 30.0).stdout
    key = hashlib.sha256('\0'.join([Path(source).read_text(), ' '.join(FLAGS), version, _cpu_flags(),
                                    torch.__version__]).encode()).hexdigest()[:16]
    return cache_dir() / f'{name}-{key}.so'


def _compile(source: Path, out: Path, cxx: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix='.so', dir=out.parent)
    os.close(fd)
    try:
        cmd = [cxx, *FLAGS, str(source), '-o', tmp, *_torch_openmp()]
        res = _run(cmd, source, COMPILE_TIMEOUT_S)
        if res.returncode != 0:
            raise RuntimeError(f'compiling {source} failed:\n{" ".join(cmd)}\n{res.stderr[-2000:]}')
        os.chmod(tmp, 0o700)  # whatever the umask: nobody else may write what this process will load
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


Signatures = dict[str, tuple[Optional[type], list[type]]]


def load_library(name: str, source: Path, signatures: Optional[Signatures] = None) -> Optional[ctypes.CDLL]:
    """Compile (once, cached) and load the C++ file ``source``; None (with one warning) if unavailable.

    signatures: ``{function: (restype, argtypes)}`` set on the loaded functions (ctypes types), so every
    caller gets the library ready to call, loaded once per process."""
    with _LOCK:
        if name not in _LOADED:
            _LOADED[name] = _load(name, source)
        lib = _LOADED[name]
        for fn, (restype, argtypes) in (signatures or {}).items():
            if lib is not None:
                getattr(lib, fn).restype = restype
                getattr(lib, fn).argtypes = argtypes
        return lib


def _load(name: str, source: Path) -> Optional[ctypes.CDLL]:
    if not enabled():
        return None
    cxx = _compiler()
    if cxx is None:
        warnings.warn(f'specvqgan.native: no C++ compiler ($CXX or g++): the {name} kernel falls back '
                      'to pure torch (slower)')
        return None
    try:
        _clean_stale(_private_dir())
        path = library_path(name, source, cxx)
        for attempt in range(2):
            if path.exists() and not _trusted_file(path):
                warnings.warn(f'specvqgan.native: {path} is not owned by this user or is writable by others; '
                              f'removing it and building the {name} kernel again')
                path.unlink()
            if not path.exists():
                _compile(Path(source), path, cxx)
            try:
                return ctypes.CDLL(str(path))
            except OSError as e:
                if attempt:
                    raise
                warnings.warn(f'specvqgan.native: cannot load {path} ({e}); building it again')
                path.unlink(missing_ok=True)
    except (OSError, RuntimeError) as e:
        warnings.warn(f'specvqgan.native: the {name} kernel is unavailable, using pure torch: {e}')
        return None


def native_bf16(device: str) -> bool:
    """``device`` computes bfloat16 natively: a CUDA GPU that supports it, or a CPU with AVX512-BF16 / AMX
    (elsewhere bf16 convolutions are emulated and slower than fp32)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if dev.type != "cpu":
        return False
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:   # an older torch without the probes
        return False

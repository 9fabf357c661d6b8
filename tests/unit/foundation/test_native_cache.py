"""The native kernel cache loads only this user's own, private libraries: a planted library (writable by
others, or owned by someone else) is never loaded but rebuilt; a corrupt one is rebuilt once; leftovers of
killed builds are removed."""
import ctypes
import os
import shutil
import time
import warnings

import pytest

from specvqgan import native

pytestmark = pytest.mark.skipif(native._compiler() is None, reason="no C++ compiler")

GOOD = 'extern "C" int answer() { return 42; }\n'
PLANTED = ('#include <cstdlib>\n__attribute__((constructor)) static void run() { std::system("touch {marker}"); }\n'
           'extern "C" int answer() { return 666; }\n')


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECVQGAN_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "answer.cpp"
    source.write_text(GOOD)
    name = f"answer{time.monotonic_ns()}"  # load_library caches per name and process

    def load():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            lib = native.load_library(name, source, {"answer": (ctypes.c_int, [])})
        return lib, [str(w.message) for w in caught]

    return source, name, load


def _plant(tmp_path, target, marker):
    """Compile a library that would create ``marker`` when loaded, and put it at ``target``."""
    src = tmp_path / "planted.cpp"
    src.write_text(PLANTED.replace("{marker}", str(marker)))
    native._compile(src, tmp_path / "planted.so", native._compiler())
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(tmp_path / "planted.so", target)


def test_cache_folder_is_private_and_per_user(kernel):
    source, name, load = kernel
    lib, _ = load()
    assert lib.answer() == 42
    folder = native.cache_dir()
    assert folder.name == f"native-{os.getuid()}" and folder.stat().st_mode & 0o777 == 0o700
    (lib_file,) = folder.glob(f"{name}-*.so")
    assert lib_file.stat().st_mode & 0o022 == 0


@pytest.mark.parametrize("how", ["world-writable", "foreign-owner"])
def test_planted_library_is_not_loaded(kernel, tmp_path, how):
    source, name, load = kernel
    if how == "foreign-owner" and os.getuid() != 0:
        pytest.skip("needs root to give a file to another user")
    target = native.library_path(name, source, native._compiler())
    marker = tmp_path / "ran"
    _plant(tmp_path, target, marker)
    if how == "world-writable":
        os.chmod(target, 0o777)
    else:
        os.chown(target, 65534, -1)
    lib, messages = load()
    assert not marker.exists(), "a planted library was loaded"
    assert lib is not None and lib.answer() == 42  # rebuilt from the source
    assert any("not owned by this user or is writable by others" in m for m in messages), messages


def test_corrupt_library_is_rebuilt_once_and_stale_tmp_files_go(kernel):
    source, name, load = kernel
    folder = native.cache_dir()
    folder.mkdir(parents=True, mode=0o700)
    target = native.library_path(name, source, native._compiler())
    target.write_bytes(b"\x7fELF truncated")
    os.chmod(target, 0o700)
    stale, fresh = folder / "tmpabc123.so", folder / "tmpdef456.so"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"y")  # a build in progress right now: kept
    old = time.time() - 2 * native.STALE_TMP_SECONDS
    os.utime(stale, (old, old))
    lib, messages = load()
    assert lib is not None and lib.answer() == 42
    assert any("building it again" in m for m in messages), messages
    assert not stale.exists() and fresh.exists()

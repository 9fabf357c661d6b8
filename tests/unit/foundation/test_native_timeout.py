"""A compiler that hangs is killed after native.COMPILE_TIMEOUT_S: one warning naming the kernel, the
command and the source file, then the torch fallback (None)."""
import time
import warnings

from specvqgan import native


def test_hanging_compiler_is_killed_and_named(monkeypatch, tmp_path):
    cxx = tmp_path / "slowcxx"
    cxx.write_text('#!/bin/sh\nif [ "$1" = "--version" ]; then echo slowcxx 1.0; exit 0; fi\nexec sleep 60\n')
    cxx.chmod(0o755)
    src = tmp_path / "k.cpp"
    src.write_text("int f() { return 1; }\n")
    monkeypatch.setenv("CXX", str(cxx))
    monkeypatch.setenv("SPECVQGAN_NATIVE", "1")
    monkeypatch.setenv("SPECVQGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(native, "_LOADED", {})
    monkeypatch.setattr(native, "COMPILE_TIMEOUT_S", 0.5)
    t0 = time.monotonic()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert native.load_library("slow_kernel", src) is None
    assert time.monotonic() - t0 < 20
    msg = " ".join(str(x.message) for x in w)
    assert "slow_kernel" in msg and "k.cpp" in msg and "timed out after 0.5 s" in msg and "slowcxx" in msg

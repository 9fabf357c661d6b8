"""specvqgan.files.atomic_write: all or nothing, the previous file survives a failed write."""
import numpy as np
import pytest

from specvqgan.files import atomic_write


def test_writes_via_a_same_suffix_temporary(tmp_path):
    target = tmp_path / "sub" / "mel.npy"
    atomic_write(target, lambda tmp: np.save(tmp, np.arange(3)))   # np.save keeps a .npy name as is
    assert np.array_equal(np.load(target), np.arange(3))
    assert sorted(p.name for p in target.parent.iterdir()) == ["mel.npy"]


def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")

    def broken(tmp):
        tmp.write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, broken)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]

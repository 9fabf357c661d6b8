"""Skip-existing only skips outputs made the same way: each output folder records what produced it
(settings, weight sha256); a mismatch is refused with a message naming the folder, or redone with
overwrite; files without a record (older version, interrupted overwrite) are never trusted."""
import json

import numpy as np
import pytest

from feature_extraction.__main__ import main
from feature_extraction.extract import ExtractConfig, extract_folder
from feature_extraction.encode import write_mp4
from specvqgan.provenance import RECORD, ProvenanceError, claim_folder

SR = 22050


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("pv")
    frames = np.zeros((50, 32, 32, 3), np.uint8)
    frames[:, :16] = 200
    write_mp4(root / "cls" / "a.mp4", frames, 25, np.zeros(2 * SR, np.float32), SR)
    return root


def test_matching_outputs_are_skipped_mismatched_refused_or_redone(videos, tmp_path, capsys):
    out = tmp_path / "out"
    assert [r.status for r in extract_folder(videos, out, ExtractConfig(duration=2.0), progress=False)] == ["done"]
    feat_dir = out / "cls" / "feature_color_dim48_21.5fps"
    rec = json.loads((feat_dir / RECORD).read_text())
    assert rec["feature"] == "color" and rec["duration"] == 2.0 and rec["allow_truncated"] is False
    assert all((out / "cls" / d / RECORD).is_file() for d in ("audio_2s_22050hz", "melspec_2s_22050hz"))
    assert [r.status for r in extract_folder(videos, out, ExtractConfig(duration=2.0), progress=False)] == ["skipped"]

    other = ExtractConfig(duration=2.0, allow_truncated=True)
    with pytest.raises(ProvenanceError, match=r"audio_2s_22050hz: its outputs were made with other settings "
                                              r"\(allow_truncated: False there, True now\); pass --overwrite"):
        extract_folder(videos, out, other, progress=False)
    assert main(["--videos", str(videos), "--out", str(out), "--allow-truncated", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "allow_truncated" in err and str(out) in err

    stamp = (feat_dir / "a.pkl").stat().st_mtime_ns
    redo = ExtractConfig(duration=2.0, allow_truncated=True, overwrite=True)
    assert [r.status for r in extract_folder(videos, out, redo, progress=False)] == ["done"]
    assert (feat_dir / "a.pkl").stat().st_mtime_ns != stamp
    assert json.loads((feat_dir / RECORD).read_text())["allow_truncated"] is True
    assert [r.status for r in extract_folder(videos, out, other, progress=False)] == ["skipped"]


def test_outputs_without_a_record_and_other_weights_are_not_trusted(tmp_path):
    old = tmp_path / "feature_resnet50_dim2048_21.5fps"
    old.mkdir()
    (old / "a.pkl").write_bytes(b"from an older version")
    wa, wb = tmp_path / "a.pth", tmp_path / "b.pth"
    wa.write_bytes(b"weights A")
    wb.write_bytes(b"weights B")
    by_a = ExtractConfig(feature="resnet50", weights=str(wa)).produced_by("feature_resnet50")
    by_b = ExtractConfig(feature="resnet50", weights=str(wb)).produced_by("feature_resnet50")
    assert by_a["weights_sha256"] != by_b["weights_sha256"]
    with pytest.raises(ProvenanceError, match="holds outputs with no _provenance.json"):
        claim_folder(old, by_a)
    claim_folder(old, by_a, overwrite=True)                 # the run will redo them: no record until it ends
    assert not (old / RECORD).exists()
    fresh = tmp_path / "fresh"
    claim_folder(fresh, by_a)                               # a new folder is recorded at once (resumable)
    claim_folder(fresh, by_a)
    (fresh / "a.pkl").write_bytes(b"x")
    with pytest.raises(ProvenanceError, match="weights_sha256: '[0-9a-f]{64}' there, '[0-9a-f]{64}' now"):
        claim_folder(fresh, by_b)


def test_hash_ahead_gives_the_same_digests(tmp_path):
    """Hashing started ahead (a background thread) ends in the digests path_sha256 computes itself."""
    from specvqgan.provenance import _AHEAD, _file_sha256, hash_ahead, path_sha256

    (tmp_path / "a.bin").write_bytes(b"x" * 100_000)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "b.bin").write_bytes(b"y" * 1000)
    hash_ahead(tmp_path / "a.bin", None, tmp_path / "missing", tmp_path / "d")
    ahead = path_sha256(tmp_path / "a.bin"), path_sha256(tmp_path / "d")
    assert not any(str(tmp_path) in key[0] for key in _AHEAD)   # every future was taken
    _file_sha256.cache_clear()
    assert ahead == (path_sha256(tmp_path / "a.bin"), path_sha256(tmp_path / "d"))

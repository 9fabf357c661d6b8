"""feature_extraction.extract + CLI: reference layout, bad inputs reported (never a crash), skip/overwrite."""
import pickle
import re

import numpy as np
import pytest
import soundfile as sf

from feature_extraction.__main__ import main
from feature_extraction.extract import ExtractConfig, extract_folder
from specvqgan.video_files import find_videos
from feature_extraction.encode import write_mp4
from specvqgan.audio import load_audio, wav_to_mel
from specvqgan.shapes import feat_frames, mel_frames

SR = 22050
DUR = 2.0


def _tone(freq, seconds, sr=SR, amp=0.5):
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _frames(seconds, fps=25, size=32, rgb=(200, 40, 40)):
    f = np.zeros((int(round(seconds * fps)), size, size, 3), np.uint8)
    f[:, : size // 2, : size // 2] = rgb          # top-left quarter coloured
    return f


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """A class folder with good and bad clips (see the names)."""
    root = tmp_path_factory.mktemp("vids")
    d = root / "cls"
    write_mp4(d / "good.mp4", _frames(DUR), 25, _tone(1000, DUR), SR)
    write_mp4(d / "stereo44k.mp4", _frames(DUR), 25, np.stack([_tone(1000, DUR, 44100)] * 2), 44100)
    write_mp4(d / "silence.mp4", _frames(DUR), 25, np.zeros(int(DUR * SR), np.float32), SR)
    write_mp4(d / "loopme.mp4", _frames(1.3), 25, _tone(1000, 1.3), SR)
    write_mp4(d / "short.mp4", _frames(0.5), 25, _tone(1000, 0.5), SR)
    write_mp4(d / "noaudio.mp4", _frames(DUR), 25, None, SR)
    (d / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 16)
    return root


@pytest.fixture(scope="module")
def extracted(videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("feats")
    results = extract_folder(videos, out, ExtractConfig(duration=DUR), workers=2, progress=False)
    return out, {r.video.split("/")[-1]: r for r in results}


def _outputs(out, stem):
    d = out / "cls"
    return (d / "audio_2s_22050hz" / f"{stem}.wav", d / "melspec_2s_22050hz" / f"{stem}_mel.npy",
            d / "feature_color_dim48_21.5fps" / f"{stem}.pkl")


def test_statuses_and_failure_list(extracted):
    out, res = extracted
    assert {k: r.status for k, r in res.items()} == {
        "corrupt.mp4": "failed", "good.mp4": "done", "loopme.mp4": "done", "noaudio.mp4": "failed",
        "short.mp4": "failed", "silence.mp4": "done", "stereo44k.mp4": "done"}
    assert "cannot open" in res["corrupt.mp4"].reason
    assert res["noaudio.mp4"].reason == "no audio stream"
    assert re.fullmatch(r"too short to loop \(0\.(48|50) s < min_clip_duration 1 s\)", res["short.mp4"].reason)
    lines = (out / "failures_2s.txt").read_text().splitlines()
    assert len(lines) == 3 and all(line.split("\t")[0].endswith(".mp4") for line in lines)
    for stem in ("corrupt", "noaudio", "short"):
        assert not any(p.exists() for p in _outputs(out, stem))


@pytest.mark.parametrize("stem", ["good", "stereo44k", "loopme"])
def test_outputs_in_reference_layout(extracted, stem):
    out, _ = extracted
    wav_p, mel_p, feat_p = _outputs(out, stem)
    info = sf.info(str(wav_p))
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (SR, 1, 44100, "PCM_16")
    mel = np.load(mel_p)
    assert mel.shape == (80, mel_frames(DUR)) and mel.dtype == np.float32
    assert 0 <= mel.min() and mel.max() <= 1
    np.testing.assert_allclose(mel, wav_to_mel(load_audio(wav_p), SR, n_frames=mel_frames(DUR)), atol=1e-6)
    feats = pickle.load(open(feat_p, "rb"), encoding="bytes")
    assert feats.shape == (feat_frames(DUR), 48) and feats.dtype == np.float32
    cells = feats.reshape(-1, 4, 4, 3)
    np.testing.assert_allclose(cells[:, :2, :2], np.broadcast_to([200 / 255, 40 / 255, 40 / 255],
                                                                 cells[:, :2, :2].shape), atol=0.03)
    assert cells[:, 2:, 2:].max() < 0.03


def test_stereo_44k_matches_mono_22k(extracted):
    out, _ = extracted
    good, stereo = np.load(_outputs(out, "good")[1]), np.load(_outputs(out, "stereo44k")[1])
    assert good.mean(1).argmax() == stereo.mean(1).argmax()   # same 1 kHz mel band
    assert np.abs(good[:, 4:-4] - stereo[:, 4:-4]).mean() < 0.05


def test_silence_gives_valid_near_zero_mel(extracted):
    out, _ = extracted
    mel = np.load(_outputs(out, "silence")[1])
    assert mel.shape == (80, mel_frames(DUR)) and mel.max() < 0.05


def test_short_clip_is_looped_to_duration(extracted):
    out, _ = extracted
    wav = load_audio(_outputs(out, "loopme")[0])
    assert len(wav) == 44100
    assert np.abs(wav[int(1.35 * SR):]).mean() > 0.2       # the tone continues past the 1.3 s source


def test_second_run_skips_and_failure_keeps_earlier_outputs(videos, extracted, tmp_path):
    out, _ = extracted
    paths = _outputs(out, "good")
    stamps = [p.stat().st_mtime_ns for p in paths]
    again = extract_folder(videos, out, ExtractConfig(duration=DUR), progress=False)
    assert sum(r.status == "skipped" for r in again) == 4 and sum(r.status == "failed" for r in again) == 3
    assert [p.stat().st_mtime_ns for p in paths] == stamps
    # The source turns corrupt and is re-extracted with overwrite: it fails, the old files stay.
    vids = tmp_path / "v" / "cls"
    vids.mkdir(parents=True)
    (vids / "good.mp4").write_bytes(b"not a video")
    before = [p.read_bytes() for p in paths]
    res = extract_folder(tmp_path / "v", out, ExtractConfig(duration=DUR, overwrite=True), progress=False)
    assert [r.status for r in res] == ["failed"]
    assert [p.read_bytes() for p in paths] == before
    assert not list(out.rglob("*.tmp*"))


def test_cli_summary_strict_and_errors(videos, tmp_path, capsys):
    assert main(["--videos", str(videos), "--out", str(tmp_path), "--duration", "2", "--workers", "1",
                 "--no-progress", "--strict"]) == 1
    text = capsys.readouterr().out
    assert "7 videos" in text and "4 extracted" in text and "3 failed" in text
    assert "noaudio.mp4: no audio stream" in text
    (tmp_path / "empty").mkdir()
    assert main(["--videos", str(tmp_path / "empty"), "--out", str(tmp_path)]) == 2
    with pytest.raises(SystemExit):
        main(["--videos", str(videos), "--out", str(tmp_path), "--feature", "resnet18"])
    with pytest.raises(ValueError, match="unknown feature"):
        ExtractConfig(feature="resnet18")
    with pytest.raises(FileNotFoundError, match="video folder not found"):
        find_videos(tmp_path / "missing")


def test_shards_partition_the_folder(videos, extracted, capsys):
    out, res = extracted
    parts = [extract_folder(videos, out, ExtractConfig(duration=DUR), progress=False, shard=(i, 2)) for i in (0, 1)]
    names = [[r.video for r in part] for part in parts]
    assert not set(names[0]) & set(names[1]) and abs(len(names[0]) - len(names[1])) <= 1
    assert sorted(names[0] + names[1]) == sorted(r.video for r in res.values())
    rows = [(out / f"failures_{DUR:g}s_shard{i}of2.txt") for i in (0, 1)]  # one list per shard, none clobbered
    failed = sorted(line for f in rows if f.exists() for line in f.read_text().splitlines())
    assert [r.split("\t")[0] for r in failed] == sorted(r.video for r in res.values() if r.status == "failed")
    assert (out / f"failures_{DUR:g}s.txt").is_file()
    with pytest.raises(SystemExit) as err:
        main(["--videos", str(videos), "--out", str(out), "--shard", "2/2"])
    assert err.value.code == 2 and "--shard '2/2'" in capsys.readouterr().err

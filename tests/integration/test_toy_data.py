"""End to end: scripts/make_toy_dataset.py then ``python -m feature_extraction`` as subprocesses.

Checks the VAS-like layout and splits, real H.264 + AAC files, determinism for a seed, and that
the extracted data carry what the toy set promises: classes told apart by audio and by the colour
feature, and sound onsets that coincide with the visual flashes at per-clip random times.
"""
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from feature_extraction.media import probe
from specvqgan.shapes import feat_frames, mel_frames

REPO = Path(__file__).resolve().parents[2]
CLIPS, VALID = 4, 1
pytestmark = pytest.mark.slow       # ~15-25 s on 2 shared cores (generation + extraction)


def _run(*args):
    proc = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _make(out, seed=0, classes=8):
    return _run("scripts/make_toy_dataset.py", "--out", str(out), "--clips-per-class", str(CLIPS),
                "--valid-per-class", str(VALID), "--seed", str(seed), "--classes", str(classes),
                "--workers", "2")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    _make(root)
    stdout = _run("-m", "feature_extraction", "--videos", str(root / "videos"), "--out",
                  str(root / "features"), "--duration", "2", "--workers", "2", "--no-progress")
    assert f"{8 * CLIPS} extracted" in stdout and "0 failed" in stdout
    return root, json.loads((root / "meta.json").read_text())


def _load(root, clip):
    cls, vid = clip.split("/")
    d = root / "features" / cls
    mel = np.load(d / "melspec_2s_22050hz" / f"{vid}_mel.npy")
    feats = pickle.load(open(d / "feature_color_dim48_21.5fps" / f"{vid}.pkl", "rb"))
    return mel, feats


def test_layout_splits_and_media(toy):
    root, meta = toy
    assert len(meta["classes"]) == 8
    train = (root / "toy_train.txt").read_text().split()
    valid = (root / "toy_valid.txt").read_text().split()
    assert len(train) == 8 * (CLIPS - VALID) and len(valid) == 8 * VALID and not set(train) & set(valid)
    for row in train + valid:
        cls, vid = row.split("/")
        assert cls in meta["classes"] and (root / "videos" / cls / f"{vid}.mp4").is_file()
        assert (root / "features" / cls / "audio_2s_22050hz" / f"{vid}.wav").is_file()
    info = probe(root / "videos" / f"{train[0]}.mp4")
    assert (info.width, info.height, info.video_fps, info.audio_rate, info.audio_channels) == (128, 128, 25, 22050, 1)
    assert info.duration == pytest.approx(2.0, abs=0.05)
    import av
    with av.open(str(root / "videos" / f"{valid[0]}.mp4")) as c:
        assert (c.streams.video[0].codec_context.name, c.streams.audio[0].codec_context.name) == ("h264", "aac")


def test_deterministic_for_a_seed(toy, tmp_path):
    root, meta = toy
    _make(tmp_path / "same", classes=2)               # clip content depends on (seed, class, clip)
    made = sorted((tmp_path / "same" / "videos").rglob("*.mp4"))
    assert len(made) == 2 * CLIPS
    for p in made:
        assert (root / "videos" / p.relative_to(tmp_path / "same" / "videos")).read_bytes() == p.read_bytes()
    _make(tmp_path / "other", seed=1, classes=2)
    other = json.loads((tmp_path / "other" / "meta.json").read_text())["events"]
    assert other != {k: v for k, v in meta["events"].items() if k in other}


def test_classes_distinguishable_by_audio_and_colour(toy):
    root, meta = toy
    clips = sorted(meta["events"])
    y = np.array([meta["classes"].index(c.split("/")[0]) for c in clips])
    audio, colour = [], []
    for clip in clips:
        mel, feats = _load(root, clip)
        assert mel.shape == (80, mel_frames(2.0)) and feats.shape == (feat_frames(2.0), 48)
        assert mel.max() > 0.6                                   # non-trivial level (peak 0.5-0.9)
        spectrum = mel.mean(1)
        audio.append(spectrum - spectrum.mean())                  # timbre/pitch band, level removed
        cells = feats.reshape(len(feats), 16, 3)
        brightest = cells[np.arange(len(feats)), cells.sum(2).argmax(1)]   # the object's colour
        colour.append(brightest.mean(0) / brightest.mean(0).sum())
    for name, x in (("audio", np.array(audio)), ("colour", np.array(colour))):
        correct = 0
        for i in range(len(x)):                                   # leave-one-out nearest centroid
            keep = np.arange(len(x)) != i
            cents = np.stack([x[keep & (y == k)].mean(0) for k in range(8)])
            correct += int(np.argmin(((cents - x[i]) ** 2).sum(1)) == y[i])
        assert correct / len(x) >= 0.9, f"{name}: {correct}/{len(x)}"


def test_sound_and_flash_start_together_at_random_times(toy):
    root, meta = toy
    firsts = {}
    for clip, events in meta["events"].items():
        mel, feats = _load(root, clip)
        e = events[0]
        fa, fv = int(round(e * 22050 / 256)), int(round(e * 21.5))
        loud = mel.mean(0)
        onset = np.flatnonzero(loud > loud[: max(fa - 3, 1)].max() + 0.03)[0]   # first clearly louder frame
        assert fa - 3 <= onset <= fa + 1, (clip, e, onset)
        assert loud[fa:fa + 4].mean() - loud[: max(fa - 3, 1)].mean() > 0.04, clip
        bright = feats.max(1)                                     # brightest colour value per frame
        assert bright[fv:fv + 2].max() - bright[: max(fv - 1, 1)].max() > 0.06, clip
        firsts.setdefault(clip.split("/")[0], set()).add(e)
    assert all(len(times) > 1 for times in firsts.values())     # timing varies between clips


def test_datasets_read_the_extracted_layout(toy):
    from specvqgan.data.toy import ToySpecsCondOnFeats, ToyWave

    root, meta = toy
    ds = ToySpecsCondOnFeats("train", data_root=str(root))
    assert len(ds) == 8 * (CLIPS - VALID)
    item = ds[0]
    assert item["image"].shape == (80, 160) and item["feature"].shape == (40, 48)   # 2 s crops
    assert -1 <= item["image"].min() and item["image"].max() <= 1
    assert item["label"] in meta["classes"]
    assert ToyWave("valid", data_root=str(root))[0]["wav"].ndim == 1

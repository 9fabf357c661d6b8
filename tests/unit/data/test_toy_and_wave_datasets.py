import numpy as np
import pytest
import soundfile as sf

from specvqgan.data.toy import ToyFeats, ToySpecs, ToySpecsCondOnClass, ToySpecsCondOnFeats, ToyWave
from specvqgan.data.waves import WaveSegments
from specvqgan.shapes import feat_crop, feat_frames, mel_crop, mel_frames

TOY_DEPTH = 12  # the colour-feature depth of the `toy_root` fixture


def test_toy_lengths_follow_duration(toy_root):
    ds = ToySpecsCondOnFeats("valid", {"random_crop": False}, data_root=str(toy_root), duration=2)
    crop = mel_crop(mel_frames(2))
    assert (crop, feat_frames(2), feat_crop(crop)) == (160, 43, 40)
    item = ds[0]
    assert item["image"].shape == (80, 160) and item["feature"].shape == (40, TOY_DEPTH)
    mel = np.load(toy_root / "features/bell/melspec_2s_22050hz/bell_0001_mel.npy")
    np.testing.assert_array_equal(item["image"], 2 * mel[:, 6:166] - 1)  # (173 - 160) // 2 = 6
    assert ds.feats_dataset.feat_depth == TOY_DEPTH  # read from the folder name


def test_toy_targets_agree_across_splits(toy_root):
    train = ToySpecs("train", data_root=str(toy_root))
    valid = ToySpecsCondOnClass("valid", data_root=str(toy_root))
    assert train.label2target == valid.specs_dataset.label2target == {"bell": 0, "drum": 1, "horn": 2}
    assert [valid[i]["target"] for i in range(len(valid))] == [0, 1]  # valid has no horn clip


def test_toy_random_crop_and_batch(toy_root):
    from torch.utils.data import DataLoader
    np.random.seed(0)
    ds = ToySpecsCondOnFeats("train", {"random_crop": True}, {"random_crop": True}, data_root=str(toy_root))
    batch = next(iter(DataLoader(ds, batch_size=3)))
    assert tuple(batch["image"].shape) == (3, 80, 160) and tuple(batch["feature"].shape) == (3, 40, TOY_DEPTH)
    assert batch["image"].min() >= -1 and batch["image"].max() <= 1


def test_toy_missing_features_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot infer feat_depth: no folder matches"):
        ToyFeats("train", data_root=str(tmp_path))


def test_wave_segments(toy_root):
    np.random.seed(0)
    train = ToyWave("train", data_root=str(toy_root))
    items = [train[0] for _ in range(5)]
    for item in items:
        assert item["wav"].shape == (8192,) and item["wav"].dtype == np.float32
        assert item["label"] == "bell" and item["file_path_"].endswith("bell_0000.wav")
        assert np.abs(item["wav"]).max() <= 0.95 + 1e-6
    assert len({float(it["wav"][0]) for it in items}) == 5  # random offsets and gains
    valid = ToyWave("valid", data_root=str(toy_root))
    wav = sf.read(toy_root / "features/bell/audio_2s_22050hz/bell_0001.wav", dtype="float32")[0]
    a, b = valid[0]["wav"], valid[0]["wav"]
    np.testing.assert_array_equal(a, b)  # deterministic: centered, no gain
    start = (len(wav) - 8192) // 2
    np.testing.assert_allclose(a, 0.95 * wav[start:start + 8192] / np.abs(wav).max(), atol=1e-6)


def test_wave_short_clip_is_padded(tmp_path):
    (tmp_path / "a").mkdir()
    sf.write(tmp_path / "a/x.wav", np.full(1000, 0.25, dtype=np.float32), 22050)
    split = tmp_path / "s.txt"
    split.write_text("a/x\n")
    ds = WaveSegments("valid", str(tmp_path / "*"), str(split), segment_length=4096, peak_normalize=False)
    wav = ds[0]["wav"]
    assert wav.shape == (4096,) and np.allclose(wav[:1000], 0.25, atol=1e-4) and not wav[1000:].any()

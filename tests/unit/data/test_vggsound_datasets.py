import pickle

import numpy as np
import pytest

from specvqgan.data.vggsound import VGGSoundSpecs, VGGSoundSpecsCondOnClass, VGGSoundSpecsCondOnFeats

CLIP = "-1pRmoJIGQc_10000_20000"


@pytest.fixture
def vgg(reference_dir, tmp_path):
    root = reference_dir / "data/vggsound"
    return {"mels": str(root / "melspec_10s_22050hz"), "rgb": str(root / "feature_rgb_bninception_dim1024_21.5fps"),
            "flow": str(root / "feature_flow_bninception_dim1024_21.5fps"),
            "split": str(reference_dir / "data/vggsound_test.txt"), "missing_csv": str(tmp_path / "none.csv")}


def test_shipped_samples_without_labels(vgg):
    ds = VGGSoundSpecs("test", vgg["mels"], split_path=vgg["split"], skip_missing=True, meta_path=vgg["missing_csv"])
    assert len(ds) == 12 and len(ds.absent) == 14500 and ds.labels is None
    i = ds.dataset.index(CLIP)
    item = ds[i]
    mel = np.load(f"{vgg['mels']}/{CLIP}_mel.npy")
    assert mel.dtype == np.float64 and mel.shape == (80, 860)
    assert set(item) == {"image", "file_path_"}  # no CSV: no target/label
    assert item["image"].dtype == np.float32 and item["image"].shape == (80, 848)
    np.testing.assert_array_equal(item["image"], (2 * mel[:, 6:854] - 1).astype(np.float32))


def test_specs_and_features(vgg, tmp_path):
    split = tmp_path / "vggsound_test.txt"
    split.write_text(f"{CLIP}\n3HgbEKrbA9s_54000_64000\n")
    sampler = {"target": "specvqgan.data.vggsound.ResampleFrames", "params": {"feat_sample_size": 5}}
    ds = VGGSoundSpecsCondOnFeats(
        "test",
        {"spec_dir_path": vgg["mels"], "meta_path": None},
        {"rgb_feats_dir_path": vgg["rgb"], "flow_feats_dir_path": vgg["flow"], "split_path": str(split),
         "meta_path": None, "feat_sampler_cfg": sampler})
    item = ds[0]
    rgb = pickle.load(open(f"{vgg['rgb']}/{CLIP}.pkl", "rb"), encoding="bytes")
    flow = pickle.load(open(f"{vgg['flow']}/{CLIP}.pkl", "rb"), encoding="bytes")
    expected = np.concatenate([rgb, flow], 1)[1:213][[35, 77, 119, 162, 204]]
    assert item["feature"].shape == (5, 2048)
    np.testing.assert_array_equal(item["feature"], expected)
    assert item["image"].shape == (80, 848) and "target" not in item


def test_labels_from_csv(vgg, tmp_path):
    csv = tmp_path / "vggsound.csv"
    csv.write_text('-1pRmoJIGQc,10,"dog barking",test\n3HgbEKrbA9s,54,playing drums,test\n'
                   'zzzzzzzzzzz,1,"a cat",train\n')
    split = tmp_path / "s.txt"
    split.write_text(f"{CLIP}\n3HgbEKrbA9s_54000_64000\n")
    ds = VGGSoundSpecsCondOnClass("test", {"spec_dir_path": vgg["mels"], "split_path": str(split),
                                           "meta_path": str(csv)})
    assert ds.specs_dataset.label2target == {"a cat": 0, "dog barking": 1, "playing drums": 2}
    assert [(ds[i]["label"], ds[i]["target"]) for i in range(2)] == [("dog barking", 1), ("playing drums", 2)]
    drums = VGGSoundSpecs("test", vgg["mels"], split_path=str(split), meta_path=str(csv),
                          for_which_class="playing drums")
    assert drums.dataset == ["3HgbEKrbA9s_54000_64000"]
    split.write_text(f"{CLIP}\n0nib7bMm8BA_15000_25000\n")
    with pytest.raises(KeyError, match="1 clips of .*s.txt are not in the class-label CSV"):
        VGGSoundSpecs("test", vgg["mels"], split_path=str(split), meta_path=str(csv))


def test_class_conditioning_needs_the_csv(vgg, tmp_path):
    split = tmp_path / "s.txt"
    split.write_text(f"{CLIP}\n")
    with pytest.raises(FileNotFoundError, match="class-label CSV meta_path=.*none.csv.* is absent"):
        VGGSoundSpecsCondOnClass("test", {"spec_dir_path": vgg["mels"], "split_path": str(split),
                                          "meta_path": vgg["missing_csv"]})

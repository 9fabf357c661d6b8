import logging

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from specvqgan.data.clips import AbsentClipsError
from specvqgan.data.vas import VASFeats, VASSpecs, VASSpecsCondOnClass, VASSpecsCondOnFeats, make_split_files

SAMPLER_212 = {"target": "specvqgan.data.vas.ResampleFrames", "params": {"feat_sample_size": 212}}


def feats_cfg(vas, **kw):
    return {"rgb_feats_dir_path": vas["rgb"], "flow_feats_dir_path": vas["flow"], "feat_depth": 2048,
            "feat_len": 215, "feat_crop_len": 212, "split_path": vas["split"], **kw}


def test_specs_equal_codebook_golden(vas, reference_dir):
    ds = VASSpecs("valid", vas["mels"], split_path=vas["split"], mel_num=80, spec_len=860, spec_crop_len=848,
                  random_crop=False)
    batch = default_collate([ds[0], ds[1]])
    golden = torch.load(reference_dir / "golden/codebook_tiny.pt")["input"]
    x = batch["image"][:, None].float()  # VQModel.get_input
    assert x.dtype == golden.dtype and torch.equal(x, golden)
    assert batch["label"] == ["dog", "drum"] and batch["target"].tolist() == [0, 1]
    assert batch["file_path_"][0].endswith("dog/melspec_10s_22050hz/video_02754_mel.npy")


def test_feats_equal_transformer_golden(vas, reference_dir):
    ds = VASSpecsCondOnFeats("valid", {"spec_dir_path": vas["mels"]}, feats_cfg(vas, feat_sampler_cfg=SAMPLER_212))
    item = ds[0]
    golden = torch.load(reference_dir / "golden/transformer_tiny.pt")
    feats = default_collate([item])["feature"].permute(0, 2, 1).float()  # RawFeatsStage.get_input
    assert feats.shape == (1, 2048, 212) and torch.equal(feats, golden["feats"])
    codebook_input = torch.load(reference_dir / "golden/codebook_tiny.pt")["input"][0:1]  # spec_input_note
    assert torch.equal(torch.from_numpy(item["image"])[None, None], codebook_input)
    assert item["file_path_specs_"] == item["file_path_"] and len(item["file_path_feats_"]) == 2
    assert set(item) == {"image", "feature", "label", "target", "file_path_", "file_path_specs_", "file_path_feats_"}


def test_short_features_are_zero_padded(reference_dir, tmp_path):
    split = tmp_path / "s.txt"
    split.write_text("cough/video_00331\n")  # 214 rows
    ds = VASFeats("valid", str(reference_dir / "data/vas/features/*/feature_rgb_bninception_dim1024_21.5fps"),
                  feat_depth=1024, feat_crop_len=215, split_path=str(split))
    feats = ds[0]["feature"]
    assert feats.shape == (215, 1024) and feats.dtype == np.float32
    assert not feats[214].any() and feats[213].any()


def test_absent_clips_are_reported(reference_dir, caplog):
    cfg = {"spec_dir_path": str(reference_dir / "data/vas/features/*/melspec_10s_22050hz"),
           "split_path": str(reference_dir / "data/vas_valid.txt")}
    with pytest.raises(AbsentClipsError, match=r"758 of 768 clips .*/vas_valid.txt .*: baby/video_01933, ") as err:
        VASSpecs("valid", **cfg)
    assert len(err.value.absent) == 758 and "dog/video_02754" not in err.value.absent
    with caplog.at_level(logging.WARNING):
        ds = VASSpecs("valid", **cfg, skip_missing=True)
    assert len(ds) == 10 and len(ds.absent) == 758 and "skipping 758 of 768" in caplog.text
    assert len(ds.label2target) == 8  # targets from the whole split list: stable when clips are skipped


def test_absent_features_skip_keeps_pairs_aligned(vas, reference_dir, tmp_path):
    split = tmp_path / "s.txt"
    split.write_text("dog/video_02754\nbaby/video_00000\ndrum/video_02480\n")
    specs = {"spec_dir_path": vas["mels"], "split_path": str(split)}
    with pytest.raises(AbsentClipsError, match="1 of 3 clips"):
        VASSpecsCondOnFeats("valid", specs, feats_cfg(vas, split_path=str(split)))
    ds = VASSpecsCondOnFeats("valid", {**specs, "skip_missing": True},
                             feats_cfg(vas, split_path=str(split), skip_missing=True))
    assert len(ds) == 2 and [ds[i]["label"] for i in range(2)] == ["dog", "drum"]


def test_file_errors_name_the_file(vas, tmp_path):
    ds = VASSpecs("valid", vas["mels"], split_path=vas["split"])
    bad = tmp_path / "bad_mel.npy"
    bad.write_bytes(b"not a numpy file")
    ds.spec_path = lambda clip: str(bad)
    with pytest.raises(ValueError, match="cannot read mel spectrogram .*bad_mel.npy"):
        ds[0]
    ds.spec_path = lambda clip: str(tmp_path / "gone_mel.npy")
    with pytest.raises(FileNotFoundError, match="gone_mel.npy"):
        ds[0]
    with pytest.raises(FileNotFoundError, match="split list not found: .*nope.txt"):
        VASSpecs("valid", vas["mels"], split_path=str(tmp_path / "nope.txt"))
    with pytest.raises(ValueError, match="depth 1024 .* = 1024, expected feat_depth=2048"):
        VASFeats("valid", vas["rgb"], split_path=vas["split"])[0]


def test_unknown_key_is_named(vas):
    with pytest.raises(TypeError, match=r"unknown key\(s\) \['spec_dir'\] in specs_dataset_cfg"):
        VASSpecsCondOnFeats("valid", {"spec_dir": vas["mels"]}, feats_cfg(vas))


@pytest.mark.parametrize("n", [1, 5])
def test_no_features_mode(vas, tmp_path, n):
    """Random features (no file is read): one (or n) random vector(s) of the full depth."""
    split = tmp_path / "s.txt"
    split.write_text("dog/video_99999\n")  # no files at all for this clip
    sampler = {"target": "specvqgan.data.vas.ResampleFrames", "params": {"feat_sample_size": n}}
    ds = VASFeats("valid", str(tmp_path / "*/rgb"), str(tmp_path / "*/flow"), replace_feats_with_random=True,
                  split_path=str(split), feat_sampler_cfg=sampler)
    a, b = ds[0]["feature"], ds[0]["feature"]
    assert a.shape == (n, 2048) and a.dtype == np.float32 and 0 <= a.min() and a.max() < 1
    assert not np.array_equal(a, b)  # fresh noise every read, as in the reference


def test_class_conditioning(vas):
    ds = VASSpecsCondOnClass("valid", {"spec_dir_path": vas["mels"], "split_path": vas["split"],
                                         "classes": ["baby", "dog", "drum"]})
    assert [ds[i]["target"] for i in range(2)] == [1, 2]
    both = VASSpecsCondOnFeats("valid", {"spec_dir_path": vas["mels"], "split_path": vas["split"]},
                               feats_cfg(vas), require_labels=True)  # = the reference's ...FeatsAndClass
    assert both[1]["target"] == 1 and both[1]["feature"].shape == (212, 2048)
    with pytest.raises(ValueError, match=r"classes \['drum'\] that are not in `classes`"):
        VASSpecs("valid", vas["mels"], split_path=vas["split"], classes=["dog"])
    only_dog = VASSpecs("valid", vas["mels"], split_path=vas["split"], for_which_class="dog")
    assert len(only_dog) == 1 and only_dog.label2target == {"dog": 0}


def test_aligned_random_crop(vas):
    np.random.seed(1)
    ds = VASSpecsCondOnFeats("train", {"spec_dir_path": vas["mels"], "random_crop": True},
                             feats_cfg(vas, random_crop=True))
    mel = np.load(ds.specs_dataset.spec_path("dog/video_02754"))
    seen = set()
    for _ in range(40):
        specs_item, start = ds.specs_dataset.load(0)
        assert 0 <= start <= 12
        np.testing.assert_array_equal(specs_item["image"], 2 * mel[:, start:start + 848] - 1)
        seen.add(start)
        feats_item, feat_start = ds.feats_dataset.load(0, min(start // 4, 3))
        assert feat_start == start // 4
    assert len(seen) > 5
    item = ds[0]  # the pair: features start at mel start // 4
    image_start = next(s for s in range(13) if np.array_equal(item["image"], 2 * mel[:, s:s + 848] - 1))
    feats = ds.feats_dataset.load(0, image_start // 4)[0]["feature"]
    np.testing.assert_array_equal(item["feature"], feats)


def test_make_split_files(reference_dir, tmp_path):
    train, valid = make_split_files(tmp_path, str(reference_dir / "data/vas/features/*/melspec_10s_22050hz"))
    assert train.read_text() == ""  # fewer clips than the per-class valid quota
    assert "dog/video_02677\ndog/video_02754\n" in valid.read_text() and len(valid.read_text().split()) == 10

"""Pretrained extractors in the extraction pipeline: preprocessing, reference layout, shapes, skip/failures."""
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from feature_extraction import extract
from feature_extraction.__main__ import main
from feature_extraction.extract import ExtractConfig, extract_arrays, extract_folder
from feature_extraction.visual import BNInceptionFeatures, ResNet50Features

REPO = Path(__file__).resolve().parents[3]


def test_resnet_resize_and_center_crop_follow_torchvision():
    ex = ResNet50Features()
    assert ex.frame_size_for(340, 256) == (256, 340)            # (H, W): shorter side -> 256
    assert ex.frame_size_for(1280, 720) == (256, 455)
    assert ex.frame_size_for(360, 640) == (455, 256)
    frames = torch.zeros(1, 256, 340, 3, dtype=torch.uint8)
    frames[:, :, :58] = 255                                    # CenterCrop(224) keeps columns 58..281
    x = ex.preprocess(frames)
    assert x.shape == (1, 3, 224, 224)
    black = (0 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(x[0, :, 100, 0], black)
    frames[:, :, 58] = 255
    assert torch.allclose(ex.preprocess(frames)[0, :, 100, 0], (1 - torch.tensor([0.485, 0.456, 0.406]))
                          / torch.tensor([0.229, 0.224, 0.225]))


def test_bninception_input_is_bgr_minus_caffe_mean():
    ex = BNInceptionFeatures()
    red = torch.zeros(1, 256, 340, 3, dtype=torch.uint8)
    red[..., 0] = 255
    x = ex.preprocess_rgb(red)
    assert x.shape == (1, 3, 224, 224)
    torch.testing.assert_close(x[0, :, 50, 50], torch.tensor([-104.0, -117.0, 127.0]))   # B, G, R
    flow = torch.full((2, 256, 340, 2), 128, dtype=torch.uint8)
    assert (ex.preprocess_flow(flow) == 0).all() and ex.preprocess_flow(flow).shape == (2, 2, 224, 224)
    assert ex.outputs == (("rgb_bninception", 1024), ("flow_bninception", 1024))
    with pytest.raises(ValueError, match="unknown flow method"):
        BNInceptionFeatures(flow_method="dis")


def test_batching_does_not_change_features():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (5, 72, 96, 3), dtype=np.uint8)
    a = ResNet50Features(batch_size=5, resize=72, crop=64)(frames)["resnet50"]
    b = ResNet50Features(batch_size=2, resize=72, crop=64)(frames)["resnet50"]
    assert a.shape == (5, 2048) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    assert np.abs(a[0] - a[1]).max() > 1e-3                       # different frames, different rows


@pytest.fixture(scope="module")
def videos(tmp_path_factory, reference_dir):
    """A VAS clip, a toy clip (from the generator) and a corrupt file, VAS-like class folders."""
    root = tmp_path_factory.mktemp("videos")
    toy = tmp_path_factory.mktemp("toy")
    subprocess.run([sys.executable, str(REPO / "scripts/make_toy_dataset.py"), "--out", str(toy), "--classes",
                    "1", "--clips-per-class", "1", "--valid-per-class", "0", "--workers", "1"], check=True,
                   capture_output=True)
    (root / "dog").mkdir()
    shutil.copy(reference_dir / "data/vas/videos/dog/video_02754.mp4", root / "dog")
    shutil.copytree(next((toy / "videos").iterdir()), root / "toyclass")
    (root / "dog" / "broken.mp4").write_bytes(b"\x00" * 100)
    return root


@pytest.mark.slow
def test_bninception_rgb_flow_in_reference_layout(videos, tmp_path, capsys):
    args = ["--videos", str(videos), "--out", str(tmp_path), "--duration", "2", "--feature", "bninception",
            "--random-weights", "--flow-method", "farneback", "--batch-size", "16", "--workers", "2",
            "--no-progress"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "3 videos" in text and "2 extracted" in text and "1 failed" in text and "broken.mp4" in text
    pkls = sorted(tmp_path.rglob("*.pkl"))
    assert [p.relative_to(tmp_path).parts[:2] for p in pkls] == [
        ("dog", "feature_flow_bninception_dim1024_21.5fps"), ("dog", "feature_rgb_bninception_dim1024_21.5fps"),
        ("toyclass", "feature_flow_bninception_dim1024_21.5fps"),
        ("toyclass", "feature_rgb_bninception_dim1024_21.5fps")]
    for p in pkls:
        f = pickle.load(open(p, "rb"), encoding="bytes")
        assert f.shape == (43, 1024) and f.dtype == np.float32 and f.min() >= 0 and np.isfinite(f).all()
    assert (tmp_path / "dog" / "melspec_2s_22050hz" / "video_02754_mel.npy").is_file()
    stamps = [p.stat().st_mtime_ns for p in pkls]
    assert main(args) == 0 and "2 skipped" in capsys.readouterr().out
    assert [p.stat().st_mtime_ns for p in pkls] == stamps


@pytest.mark.slow
def test_resnet50_cli_with_weights_file_and_video_list(videos, tmp_path, capsys):
    from specvqgan.modules.visual.resnet50 import ResNet50

    torch.save(ResNet50(seed=1).state_dict(), tmp_path / "resnet50.pth")
    (tmp_path / "list.txt").write_text("dog/video_02754\n# comment\ndog/absent\n")
    out = tmp_path / "out"
    assert main(["--videos", str(videos), "--out", str(out), "--duration", "2", "--feature", "resnet50",
                 "--weights", str(tmp_path / "resnet50.pth"), "--video-list", str(tmp_path / "list.txt"),
                 "--workers", "1", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "2 videos" in text and "1 extracted" in text and "absent: file not found (listed in" in text
    f = pickle.load(open(out / "dog/feature_resnet50_dim2048_21.5fps/video_02754.pkl", "rb"))
    assert f.shape == (43, 2048) and f.dtype == np.float32
    assert np.abs(f[0] - f[-1]).max() > 0                       # the frames differ over 2 s
    with pytest.raises(SystemExit):                             # a pretrained feature needs weights
        main(["--videos", str(videos), "--out", str(out), "--feature", "resnet50"])
    assert "needs weights" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--videos", str(videos), "--out", str(out), "--feature", "resnet50", "--weights", "nope.pth"])
    assert "weight file not found: nope.pth" in capsys.readouterr().err
    with pytest.raises(ValueError, match="takes no weights"):
        ExtractConfig(feature="color", weights=str(tmp_path / "resnet50.pth"))


@pytest.mark.slow
def test_ten_second_clip_gives_215_rows(videos, monkeypatch):
    """Full 10 s recipe (loop/trim, 21.5 fps) with a cheap input size: 215 x 2048."""
    small = ResNet50Features(resize=64, crop=56, batch_size=32)
    monkeypatch.setattr(extract, "_build_extractor", lambda *a: small)
    cfg = ExtractConfig(duration=10, feature="resnet50", random_weights=True)
    arrays = extract_arrays(videos / "toyclass" / next((videos / "toyclass").iterdir()).name, cfg)
    f = arrays["feature_resnet50"]
    assert f.shape == (215, 2048) and f.dtype == np.float32
    np.testing.assert_allclose(f[43:86], f[:43], rtol=1e-4, atol=1e-4)   # the 2 s toy clip is looped
    assert arrays["mel"].shape == (80, 860)

"""Fixtures of the dataset tests: reference sample paths and a tiny toy dataset in tmp_path."""
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

VAS_MELS = "data/vas/features/*/melspec_10s_22050hz"
VAS_RGB = "data/vas/features/*/feature_rgb_bninception_dim1024_21.5fps"
VAS_FLOW = "data/vas/features/*/feature_flow_bninception_dim1024_21.5fps"

TOY_CLASSES = ("bell", "drum", "horn")
TOY_DEPTH = 12


@pytest.fixture
def vas(reference_dir, tmp_path):
    """Absolute VAS sample folders and a split list (tmp_path) of two present clips."""
    split = tmp_path / "vas_valid.txt"
    split.write_text("dog/video_02754\ndrum/video_02480\n")
    return {"mels": str(reference_dir / VAS_MELS), "rgb": str(reference_dir / VAS_RGB),
            "flow": str(reference_dir / VAS_FLOW), "split": str(split)}


@pytest.fixture
def toy_root(tmp_path) -> Path:
    """A 2 s toy dataset in the shared layout: 3 classes x 2 clips, train = clip 0, valid = clip 1.

    Mels (80, 173) in [0, 1], colour features (43, 12), 2 s wavs; class ``horn`` has no valid clip.
    """
    rng = np.random.default_rng(0)
    root = tmp_path / "toy"
    rows = {"train": [], "valid": []}
    for cls in TOY_CLASSES:
        feats = root / "features" / cls
        for sub in ("melspec_2s_22050hz", f"feature_color_dim{TOY_DEPTH}_21.5fps", "audio_2s_22050hz"):
            (feats / sub).mkdir(parents=True)
        for i in range(2):
            vid = f"{cls}_{i:04d}"
            np.save(feats / "melspec_2s_22050hz" / f"{vid}_mel.npy", rng.random((80, 173), dtype=np.float32))
            with open(feats / f"feature_color_dim{TOY_DEPTH}_21.5fps" / f"{vid}.pkl", "wb") as f:
                pickle.dump(rng.random((43, TOY_DEPTH), dtype=np.float32), f)
            sf.write(feats / "audio_2s_22050hz" / f"{vid}.wav", 0.5 * rng.standard_normal(44100) * 0.1, 22050)
            if not (cls == "horn" and i == 1):
                rows["train" if i == 0 else "valid"].append(f"{cls}/{vid}")
    for split, names in rows.items():
        (root / f"toy_{split}.txt").write_text("".join(f"{r}\n" for r in names))
    return root

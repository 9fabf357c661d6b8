"""Shared fixtures. Reference material (golden vectors, manifests, sample clips) lives in
``<repo>/../shared/reference``; tests that need it are skipped when it is absent."""
import os
from pathlib import Path

import pickle

import numpy as np
import pytest
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[1]
REFERENCE = Path(os.environ.get("SPECVQGAN_REFERENCE", REPO.parent / "shared" / "reference"))

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not REFERENCE.is_dir():
        pytest.skip(f"reference material not found at {REFERENCE}")
    return REFERENCE


TOY_CLASSES = ("bell", "drum", "horn")
TOY_DEPTH = 12


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

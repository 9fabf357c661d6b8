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


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a test module: tiny models run ~10x faster so when the cores are shared (OpenMP
    spinning). Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


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


@pytest.fixture(scope="session")
def toy_video(tmp_path_factory) -> Path:
    """A 2 s toy-style clip (H.264 128x128 at 25 fps + AAC 22050 Hz mono): a red square that flashes
    twice, each flash with a noise burst."""
    from feature_extraction.encode import write_mp4

    fps, sr, seconds = 25, 22050, 2.0
    t = np.arange(int(fps * seconds)) / fps
    level = 0.3 + 0.7 * np.exp(-np.clip(t[:, None] - np.array([0.4, 1.2]), 0, None) / 0.12).max(1) \
        * ((t[:, None] >= np.array([0.4, 1.2])).any(1))
    frames = np.zeros((len(t), 128, 128, 3), np.uint8)
    frames[:, 40:88, 40:88] = (level[:, None, None, None] * np.array([230, 60, 50])).astype(np.uint8)
    wav = np.zeros(int(sr * seconds), np.float32)
    rng = np.random.default_rng(0)
    for onset in (0.4, 1.2):
        start = int(onset * sr)
        wav[start:start + sr // 4] = 0.3 * rng.standard_normal(sr // 4) * np.exp(-np.arange(sr // 4) / (0.08 * sr))
    path = tmp_path_factory.mktemp("toy_video") / "flash.mp4"
    write_mp4(path, frames, fps, wav, sr)
    return path


def shrunk_toy_transformer_config(repo_root: Path, data_root: str | Path = "/nonexistent/toy"):
    """``configs/toy/transformer.yaml`` (2 s clips, 48-d colour features, 40 condition frames, 5 x 10 tokens)
    shrunk to a 1-layer GPT (16 wide, 2 heads) over a small random codebook (16 codes), reading the toy
    data under ``data_root`` (the default is a dummy: building the model needs no data)."""
    from specvqgan.config import load_config

    first = "model.params.first_stage_config.params"
    gpt = "model.params.transformer_config.params.GPT_config"
    return load_config(repo_root / "configs" / "toy" / "transformer.yaml", [
        f"{first}.ckpt_path=null", f"{first}.embed_dim=8", f"{first}.n_embed=16", f"{first}.ddconfig.z_channels=8",
        f"{first}.ddconfig.ch_mult=[1,1,1,1,1]", f"{first}.ddconfig.attn_resolutions=[]",
        f"{gpt}.n_layer=1", f"{gpt}.n_head=2", f"{gpt}.n_embd=16",
        *(f"data.params.{split}.params.data_root={data_root}" for split in ("train", "validation"))])


@pytest.fixture(scope="session")
def tiny_transformer_config(repo_root):
    """``data_root -> run config`` (an OmegaConf tree): :func:`shrunk_toy_transformer_config`."""
    return lambda data_root="/nonexistent/toy": shrunk_toy_transformer_config(repo_root, data_root)


@pytest.fixture(scope="session")
def tiny_transformer_ckpt(tmp_path_factory, repo_root) -> Path:
    """An untrained tiny transformer (:func:`shrunk_toy_transformer_config`) in ``train.py``'s checkpoint
    layout (``{state_dict, config}`` with the whole run config); builds in ~1 s."""
    from omegaconf import OmegaConf

    from specvqgan.config import instantiate_from_config

    cfg = shrunk_toy_transformer_config(repo_root)
    torch.manual_seed(0)
    model = instantiate_from_config(cfg.model)
    with torch.no_grad():  # larger weights: token choices depend clearly on the condition
        for p in model.transformer.parameters():
            p.normal_(0, 0.3)
    path = tmp_path_factory.mktemp("tiny_transformer") / "last.ckpt"
    torch.save({"state_dict": model.state_dict(), "config": OmegaConf.to_container(cfg, resolve=False)}, path)
    return path

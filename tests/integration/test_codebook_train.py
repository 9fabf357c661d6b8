"""`python train.py --base configs/toy/codebook.yaml -t` end to end on a tiny toy-layout dataset."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
CLASSES = ("bell", "drum")


def write_toy_mels(root: Path, n_per_class: int = 3, frames: int = 171) -> None:
    """Toy layout with mels only: features/<class>/melspec_2s_22050hz/<id>_mel.npy + split lists."""
    rng = np.random.default_rng(0)
    rows = {"train": [], "valid": []}
    for c, cls in enumerate(CLASSES):
        folder = root / "features" / cls / "melspec_2s_22050hz"
        folder.mkdir(parents=True)
        for i in range(n_per_class):
            mel = np.zeros((80, frames), np.float32)
            f0 = 8 + 10 * c + i
            mel[f0 - 1:f0 + 2, rng.integers(0, 60):] = 0.8
            np.save(folder / f"clip{i}_mel.npy", mel)
            rows["valid" if i == 0 else "train"].append(f"{cls}/clip{i}")
    for split, r in rows.items():
        (root / f"toy_{split}.txt").write_text("\n".join(r) + "\n")


@pytest.mark.slow
def test_train_toy_codebook_cli(tmp_path):
    root = tmp_path / "toy"
    write_toy_mels(root)
    cmd = [sys.executable, "train.py", "--base", "configs/toy/codebook.yaml", "-t", "-l", str(tmp_path / "logs"),
           f"data.params.train.params.data_root={root}", f"data.params.validation.params.data_root={root}",
           "data.params.batch_size=2", "lightning.trainer.max_steps=4", "lightning.trainer.enable_progress_bar=false"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    logdir = next((tmp_path / "logs").glob("*_codebook"))
    last = logdir / "checkpoints" / "last.ckpt"
    assert last.is_file() and list((logdir / "configs").glob("*-project.yaml"))
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 4  # 2 batches (one epoch) x (generator + discriminator)
    assert {k.split(".")[0] for k in ckpt["state_dict"]} == {"encoder", "decoder", "quantize", "quant_conv",
                                                            "post_quant_conv", "loss"}
    # the training checkpoint describes itself: the codec rebuilds the codebook from it alone
    from specvqgan.models.loading import load_codebook

    model = load_codebook(last)
    x = torch.from_numpy(2 * np.load(root / "features/bell/melspec_2s_22050hz/clip0_mel.npy")[:, 5:165] - 1)
    assert model.encode_to_indices(x[None, None]).shape == (1, 5, 10)

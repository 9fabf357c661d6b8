"""train.py end to end for the toy transformer: a synthetic toy dataset and a random codebook in
tmp_path, a few optimizer steps, then the checkpoint rebuilds itself and samples."""
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from specvqgan.config import load_config


def _toy_data(root, classes=("a", "b"), n_train=4, n_valid=2):
    rng = np.random.default_rng(0)
    rows = {"train": [], "valid": []}
    for cls in classes:
        mel_dir = root / "features" / cls / "melspec_2s_22050hz"
        feat_dir = root / "features" / cls / "feature_color_dim48_21.5fps"
        mel_dir.mkdir(parents=True)
        feat_dir.mkdir(parents=True)
        for i in range(n_train + n_valid):
            vid = f"{cls}_{i:02d}"
            np.save(mel_dir / f"{vid}_mel.npy", rng.random((80, 171), dtype=np.float32))
            with open(feat_dir / f"{vid}.pkl", "wb") as f:
                pickle.dump(rng.random((43, 48), dtype=np.float32), f)
            rows["train" if i < n_train else "valid"].append(f"{cls}/{vid}")
    for split, r in rows.items():
        (root / f"toy_{split}.txt").write_text("\n".join(r) + "\n")


@pytest.mark.slow
def test_toy_transformer_trains_and_reloads(tmp_path, repo_root):
    data = tmp_path / "toy"
    _toy_data(data)
    cfg = load_config(repo_root / "configs" / "toy" / "transformer.yaml")
    first = OmegaConf.to_container(cfg.model.params.first_stage_config, resolve=False)
    first["params"]["ckpt_path"] = None
    from specvqgan.config import instantiate_from_config
    torch.manual_seed(0)
    codebook = instantiate_from_config(OmegaConf.create(first))
    torch.save({"state_dict": codebook.state_dict()}, tmp_path / "codebook.ckpt")

    cmd = [sys.executable, "train.py", "--base", "configs/toy/transformer.yaml", "-t", "-l", str(tmp_path / "logs"),
           "-n", "toy_gpt", f"model.params.first_stage_config.params.ckpt_path={tmp_path / 'codebook.ckpt'}",
           f"data.params.train.params.data_root={data}", f"data.params.validation.params.data_root={data}",
           "data.params.batch_size=4", "lightning.trainer.max_steps=4", "lightning.trainer.check_val_every_n_epoch=1"]
    proc = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=600,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = next((tmp_path / "logs").glob("*_toy_gpt"))
    ckpt = run / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()

    from specvqgan.models.cond_transformer import Net2NetTransformer
    (tmp_path / "codebook.ckpt").unlink()  # the transformer checkpoint carries the codebook weights
    model = Net2NetTransformer.from_checkpoint(ckpt)
    sd = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    assert torch.equal(model.first_stage_model.quantize.embedding.weight, codebook.quantize.embedding.weight)
    assert not any(k.endswith("attn.mask") for k in sd)
    feats = torch.rand(1, 48, 40)
    tokens, _ = model.sample(torch.zeros(1, 0, dtype=torch.long), feats, steps=50, sample=True, top_k=10, seed=0)
    spec = model.decode_to_img(tokens, (1, 64, 5, 10))
    assert spec.shape == (1, 1, 80, 160)
    assert list(run.glob("tensorboard/**/events.*")), "no TensorBoard log written"

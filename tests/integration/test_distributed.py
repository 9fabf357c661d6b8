"""Every model under Lightning DDP on CPU (2 processes, gloo): one run folder, one loadable last.ckpt, the
learning rate scaled by the world size, resume continuing the step count (docs/distributed.md)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from specvqgan.config import instantiate_from_config, load_config
from specvqgan.checkpoint import build_model, read
from specvqgan.data.toy import toy_feat_depth

pytestmark = pytest.mark.slow

DDP = ["lightning.trainer.accelerator=cpu", "lightning.trainer.devices=2", "lightning.trainer.strategy=ddp"]
QUIET = ["lightning.trainer.enable_progress_bar=false", "lightning.trainer.enable_model_summary=false",
         "lightning.trainer.num_sanity_val_steps=0", "lightning.trainer.log_every_n_steps=1"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
BF16 = "lightning.trainer.precision=bf16-mixed"  # every model but VGGish-ish (the fp32 DDP run) also checks bf16
CODEBOOK = ["model.params.embed_dim=16", "model.params.n_embed=16", "model.params.ddconfig.z_channels=16",
            "model.params.ddconfig.ch=32", "model.params.ddconfig.ch_mult=[1,1,1,1,1]",
            "model.params.ddconfig.num_res_blocks=0", "model.params.ddconfig.attn_resolutions=[]",
            "model.params.lossconfig.params.disc_ndf=8", "model.params.lossconfig.params.disc_start=1",
            "model.params.log_media=false", BF16]
MODELS = {  # config -> (tiny overrides, batch size)
    "codebook": (CODEBOOK, 2),
    "melgan": (["model.params.ngf=4", "model.params.n_residual_layers=1", "model.params.ndf=4",
                "model.params.n_layers_D=1", "lightning.trainer.limit_val_batches=1", BF16], 2),
    "vggishish": (["model.params.num_classes=3", "model.params.conv_layers=[8,MP,16,MP,16,MP,16,MP]",
                   "model.params.hidden_dim=16", "model.params.pool_size=[5,10]"], 2),
    "melception": (["model.params.num_classes=3", "model.params.width=0.0625", BF16], 2),
}


def ddp_train(repo_root: Path, logroot: Path, first: list[str], *overrides: str,
              ddp=DDP) -> tuple[subprocess.CompletedProcess, Path]:
    """train.py ``first`` (``--base <config>`` or ``-r <run>``) -t under Lightning's own spawn with 2 CPU
    processes; -> (process, the one run folder)."""
    cmd = [sys.executable, "train.py", *first, "-t", "--logdir", str(logroot), *overrides, *QUIET, *ddp]
    out = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=300, env=ENV)
    assert out.returncode == 0, out.stderr[-4000:]
    runs = [p for p in logroot.iterdir() if p.is_dir()]
    assert len(runs) == 1, f"expected one run folder, got {runs}"
    return out, runs[0]


def check_run(run: Path, steps: int, lr: float) -> dict:
    """One last.ckpt at ``steps`` whose optimizers run at ``lr`` and that rebuilds its model."""
    ckpts = sorted(p.name for p in (run / "checkpoints").glob("last*.ckpt"))
    assert ckpts == ["last.ckpt"]
    ckpt = read(run / "checkpoints" / "last.ckpt")  # the safe reader: no code runs
    assert ckpt["global_step"] == steps
    for opt in ckpt["optimizer_states"]:
        assert opt["param_groups"][0]["lr"] == pytest.approx(lr)
    build_model(run / "checkpoints" / "last.ckpt")
    return ckpt


def tiny_transformer_yaml(tiny_transformer_config, toy_root: Path, tmp_path: Path) -> Path:
    """The 1-layer toy transformer over a random 16-code codebook saved in tmp_path, on the 12-d toy features."""
    cfg = tiny_transformer_config(toy_root)
    first = OmegaConf.to_container(cfg.model.params.first_stage_config, resolve=True)
    first["params"]["ckpt_path"] = None
    torch.save({"state_dict": instantiate_from_config(OmegaConf.create(first)).state_dict()}, tmp_path / "vq.ckpt")
    cfg.model.params.first_stage_config.params.ckpt_path = str(tmp_path / "vq.ckpt")
    cfg.model.params.transformer_config.params.feat_embedding_config.params.in_channels = toy_feat_depth(str(toy_root))
    cfg.model.params.log_media = False
    OmegaConf.save(cfg, tmp_path / "transformer.yaml")
    return tmp_path / "transformer.yaml"


@pytest.mark.parametrize("name", [*sorted(MODELS), "transformer"])
def test_model_trains_under_ddp(repo_root, toy_root, tmp_path, tiny_transformer_config, name):
    overrides, batch = MODELS.get(name, ([BF16], 2))
    config = (tiny_transformer_yaml(tiny_transformer_config, toy_root, tmp_path) if name == "transformer"
              else repo_root / "configs" / "toy" / f"{name}.yaml")
    base_lr = float(load_config(config).model.base_learning_rate)
    data = [f"data.params.{split}.params.data_root={toy_root}" for split in ("train", "validation")]
    out, run = ddp_train(repo_root, tmp_path / "logs", ["--base", str(config)], *overrides, *data,
                         f"data.params.batch_size={batch}", "lightning.trainer.max_steps=4")
    assert out.stderr.count("x 2 (devices) x 1 (nodes)") == 1  # logged once, by rank 0
    check_run(run, 4, base_lr * batch * 2)
    assert len(list((run / "configs").glob("*-project.yaml"))) == 1
    if name != "codebook":
        return
    # resume under DDP: same folder, optimizers and step count continue
    out, resumed = ddp_train(repo_root, tmp_path / "logs", ["-r", str(run)], "lightning.trainer.max_steps=8")
    assert resumed == run and "Restored all states" in out.stderr
    check_run(run, 8, base_lr * batch * 2)
    assert len(list((run / "configs").glob("*-project.yaml"))) == 2

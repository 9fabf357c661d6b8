"""The trust boundary from the command line: an authors'-layout release (Lightning-1.2 checkpoint without a
config, ``configs/<time>-project.yaml`` + ``<time>-lightning.yaml``, a stale first-stage ``ckpt_path``)
generates without any opt-in; a pickle payload in its place is refused with one line (exit 2) by
generate.py and by ``train.py -r``, and never runs."""
import os
import subprocess
import sys

import pytest
import soundfile as sf
import torch
from omegaconf import OmegaConf

pytestmark = pytest.mark.slow

STAMP = "2021-07-30T21-34-25"


class Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _cli(repo_root, *args, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(repo_root), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], cwd=repo_root, capture_output=True, text=True,
                          timeout=timeout, env=env)


def _one_line_error(out, *needles):
    lines = [ln for ln in out.stderr.strip().splitlines() if ln.strip() and not ln.startswith(("INFO", "WARNING"))]
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr and len(lines) == 1, out.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def authors_release(tmp_path_factory, tiny_transformer_config):
    """<run>/checkpoints/last.ckpt (Lightning 1.2 style, no config) + <run>/configs/<t>-{project,lightning}.yaml."""
    from pytorch_lightning.callbacks import ModelCheckpoint

    from specvqgan.config import instantiate_from_config

    run = tmp_path_factory.mktemp("release") / f"{STAMP}_toy_transformer"
    (run / "checkpoints").mkdir(parents=True)
    (run / "configs").mkdir()
    cfg = tiny_transformer_config()
    torch.manual_seed(0)
    model = instantiate_from_config(cfg.model)
    cfg.model.params.first_stage_config.params.ckpt_path = "/scratch/specvqgan/logs/2021-06-06_codebook/last.ckpt"
    lightning = cfg.pop("lightning", None) or OmegaConf.create({"trainer": {"max_epochs": 1}})
    OmegaConf.save(cfg, run / "configs" / f"{STAMP}-project.yaml")
    OmegaConf.save(OmegaConf.create({"lightning": lightning}), run / "configs" / f"{STAMP}-lightning.yaml")
    torch.save({"epoch": 3, "global_step": 7, "pytorch-lightning_version": "1.2.10",
                "state_dict": model.state_dict(), "optimizer_states": [], "lr_schedulers": [],
                "callbacks": {ModelCheckpoint: {"monitor": "val/loss", "best_model_score": torch.tensor(1.5),
                                                "best_model_path": "/scratch/x.ckpt"}}},
               run / "checkpoints" / "last.ckpt")
    return run


def test_authors_release_generates_without_opt_in(repo_root, authors_release, toy_video, tmp_path):
    from specvqgan.models.cond_transformer import Net2NetTransformer

    ckpt = authors_release / "checkpoints" / "last.ckpt"
    model = Net2NetTransformer.from_checkpoint(str(ckpt))  # strict; the stale first-stage path is not read
    saved = torch.load(ckpt, weights_only=False)["state_dict"]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved.items() if not k.endswith("attn.mask"))
    out = _cli(repo_root, "scripts/generate.py", "--video", str(toy_video), "--transformer", str(ckpt),
               "--out", str(tmp_path / "out"), "--samples", "1", "--no-mp4")
    assert out.returncode == 0, out.stderr[-3000:]
    audio, sr = sf.read(tmp_path / "out" / "flash_sample_0.wav")
    assert sr == 22050 and len(audio) > sr


def test_payload_release_is_refused_by_generate(repo_root, authors_release, toy_video, tmp_path):
    run = tmp_path / authors_release.name
    (run / "checkpoints").mkdir(parents=True)
    os.symlink(authors_release / "configs", run / "configs")
    marker = tmp_path / "ran"
    torch.save({"state_dict": {}, "callbacks": {"x": Payload(marker)}}, run / "checkpoints" / "last.ckpt")
    out = _cli(repo_root, "scripts/generate.py", "--video", str(toy_video), "--transformer",
               str(run / "checkpoints" / "last.ckpt"), "--out", str(tmp_path / "out"), "--no-mp4")
    _one_line_error(out, "last.ckpt", "system", "--trust-checkpoint")
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_payload_resume_is_refused_by_train(repo_root, toy_root, tmp_path):
    from specvqgan.config import load_config

    run = tmp_path / "logs" / f"{STAMP}_codebook"
    (run / "checkpoints").mkdir(parents=True)
    (run / "configs").mkdir()
    cfg = load_config(repo_root / "configs" / "toy" / "codebook.yaml",
                      [f"data.params.{s}.params.data_root={toy_root}" for s in ("train", "validation")])
    OmegaConf.save(cfg, run / "configs" / f"{STAMP}-project.yaml")
    marker = tmp_path / "ran"
    torch.save({"state_dict": {}, "loops": Payload(marker)}, run / "checkpoints" / "last.ckpt")
    out = _cli(repo_root, "train.py", "-t", "-r", str(run), "lightning.trainer.max_steps=1",
               "lightning.trainer.enable_progress_bar=false")
    assert out.returncode == 2, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "last.ckpt" in last and "--trust-checkpoint" in last, last
    assert not marker.exists()

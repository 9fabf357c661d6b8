"""train.py end to end on a tiny toy dataset: log layout, resume, interrupt saving, config errors."""
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

TINY = [  # the toy codebook shrunk to seconds per step
    "model.params.embed_dim=16", "model.params.n_embed=16", "model.params.ddconfig.z_channels=16",
    "model.params.ddconfig.ch=32", "model.params.ddconfig.ch_mult=[1,1,1,1,1]",
    "model.params.ddconfig.num_res_blocks=0", "model.params.lossconfig.params.disc_ndf=8",
    "model.params.lossconfig.params.disc_start=2", "data.params.batch_size=2",
    "lightning.trainer.enable_progress_bar=false", "lightning.trainer.enable_model_summary=false",
]


def train(repo_root, *args, timeout=300):
    cmd = [sys.executable, "train.py", *args]
    return subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=timeout)


def data_overrides(root):
    return [f"data.params.train.params.data_root={root}", f"data.params.validation.params.data_root={root}"]


def run_dir(logroot: Path) -> Path:
    (run,) = [p for p in logroot.iterdir() if p.is_dir()]
    return run


def test_train_writes_logdir_and_resumes(repo_root, toy_root, tmp_path):
    logroot = tmp_path / "logs"
    common = ["--base", "configs/toy/codebook.yaml", "--logdir", str(logroot), *TINY, *data_overrides(toy_root)]
    out = train(repo_root, "-t", "-n", "tiny", *common, "lightning.trainer.max_steps=6")
    assert out.returncode == 0, out.stderr[-3000:]
    run = run_dir(logroot)
    assert run.name.endswith("_tiny")
    assert len(list((run / "configs").glob("*-project.yaml"))) == 1
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert list((run / "checkpoints").glob("best-*.ckpt")), "no best checkpoint by the monitored metric"
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert "learning rate" in out.stderr and "base_learning_rate" in out.stderr
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 6 and ckpt["config"]["model"]["target"].endswith("VQModel")
    assert len(ckpt["optimizer_states"]) == 2  # generator and discriminator

    out = train(repo_root, "-t", "-r", str(run), "lightning.trainer.max_steps=10",
                "lightning.trainer.enable_progress_bar=false")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Restored all states" in out.stderr
    resumed = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert resumed["global_step"] == 10
    assert len(list((run / "configs").glob("*-project.yaml"))) == 2
    assert not list((run / "checkpoints").glob("last-v*.ckpt"))  # one canonical last.ckpt


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_saves_last_checkpoint(repo_root, toy_root, tmp_path, sig):
    logroot = tmp_path / "logs"
    cmd = [sys.executable, "train.py", "-t", "--base", "configs/toy/codebook.yaml", "--logdir", str(logroot), *TINY,
           *data_overrides(toy_root), "lightning.trainer.max_steps=100000"]
    log_path = tmp_path / "train.log"  # a file, not a pipe nobody reads while training runs
    # a shell without job control starts background jobs with SIGINT ignored, and the child inherits
    # that (CI does so): give it the terminal's default, as for Ctrl-C in a terminal
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=repo_root, stdout=log, stderr=subprocess.STDOUT, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 240
    while time.time() < deadline and not list(logroot.glob("*/checkpoints/*.ckpt")):
        time.sleep(0.5)  # the first epoch-end checkpoint means training is under way
    assert proc.poll() is None, log_path.read_text()[-3000:]
    proc.send_signal(sig)
    try:
        proc.wait(timeout=120)
    finally:
        proc.kill()
    output = log_path.read_text()
    assert "interrupted at step" in output, output[-3000:]
    step = int(output.split("interrupted at step ")[1].split(":")[0])
    ckpt = torch.load(run_dir(logroot) / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == step > 0


def test_config_typo_is_reported_with_key_and_file(repo_root, tmp_path):
    typo = tmp_path / "typo.yaml"
    typo.write_text("model:\n  params:\n    n_embedd: 64\n")
    out = train(repo_root, "-t", "--base", "configs/toy/codebook.yaml", str(typo), "--logdir", str(tmp_path / "logs"))
    assert out.returncode == 2
    assert "model.params.n_embedd" in out.stderr and str(typo) in out.stderr and "n_embed" in out.stderr
    out = train(repo_root, "-t", "--base", "configs/toy/codebook.yaml", "--logdir", str(tmp_path / "logs"),
                "lightning.trainer.max_stepz=3")
    assert out.returncode == 2 and "max_stepz" in out.stderr

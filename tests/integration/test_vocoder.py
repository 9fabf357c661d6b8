"""The vocoder CLIs end to end: ``train.py`` on toy waveforms in tmp_path, then ``python -m vocoder``."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def write_toy_waves(root: Path, classes=("ball", "bell"), per_class: int = 2, seconds: float = 2.0) -> None:
    """The toy layout: features/<class>/audio_2s_22050hz/<id>.wav + toy_{train,valid}.txt."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * 22050)) / 22050
    rows = []
    for c, cls in enumerate(classes):
        folder = root / "features" / cls / "audio_2s_22050hz"
        folder.mkdir(parents=True)
        for i in range(per_class):
            vid = f"video_{c * per_class + i:05d}"
            wav = 0.5 * np.sin(2 * np.pi * (200 + 300 * c + 50 * i) * t) * np.exp(-2 * t) + 0.01 * rng.standard_normal(t.size)
            sf.write(folder / f"{vid}.wav", wav.astype(np.float32), 22050)
            rows.append(f"{cls}/{vid}")
    (root / "toy_train.txt").write_text("\n".join(rows) + "\n")
    (root / "toy_valid.txt").write_text("\n".join(rows[::2]) + "\n")


def run(*args, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_train_toy_melgan_then_vocode(tmp_path):
    data = tmp_path / "toy"
    write_toy_waves(data)
    run(str(REPO / "train.py"), "--base", str(REPO / "configs/toy/melgan.yaml"), "-t", "-l", str(tmp_path / "logs"),
        f"data.params.train.params.data_root={data}", f"data.params.validation.params.data_root={data}",
        "data.params.batch_size=2", "lightning.trainer.max_steps=4", "lightning.trainer.limit_val_batches=1",
        "model.params.ngf=4", "model.params.n_residual_layers=1", "model.params.ndf=4", "model.params.n_layers_D=1",
        cwd=tmp_path)
    ckpts = list((tmp_path / "logs").glob("*_melgan/checkpoints/last.ckpt"))
    assert len(ckpts) == 1

    mel = np.random.default_rng(0).random((80, 30), dtype=np.float32)
    np.save(tmp_path / "mel.npy", mel)
    out = run("-m", "vocoder", str(tmp_path / "mel.npy"), str(tmp_path / "out.wav"), "--ckpt", str(ckpts[0]),
              cwd=REPO)
    assert "MelGANVocoder" in out.stdout
    wav, sr = sf.read(tmp_path / "out.wav")
    assert sr == 22050 and wav.shape == (30 * 256,)
    run("-m", "vocoder", str(tmp_path / "mel.npy"), str(tmp_path / "eager.wav"), "--ckpt", str(ckpts[0]),
        "--backend", "eager", cwd=REPO)
    assert np.abs(sf.read(tmp_path / "eager.wav")[0] - wav).max() <= 2 / 2 ** 15  # same audio up to 16-bit rounding

    out = run("-m", "vocoder", str(tmp_path / "mel.npy"), str(tmp_path / "gl.wav"), "--n-iter", "2", cwd=REPO)
    assert "GriffinLimVocoder" in out.stdout and sf.read(tmp_path / "gl.wav")[0].shape == (30 * 256,)


def test_cli_errors(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "vocoder", str(tmp_path / "none.npy"), str(tmp_path / "o.wav")],
                          cwd=REPO, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 2 and "mel file not found" in proc.stderr
    np.save(tmp_path / "bad.npy", np.zeros((64, 10), dtype=np.float32))
    proc = subprocess.run([sys.executable, "-m", "vocoder", str(tmp_path / "bad.npy"), str(tmp_path / "o.wav")],
                          cwd=REPO, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 2 and "(80, T)" in proc.stderr
    nan = np.zeros((80, 10), dtype=np.float32)
    nan[0, 0] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    proc = subprocess.run([sys.executable, "-m", "vocoder", str(tmp_path / "nan.npy"), str(tmp_path / "o.wav")],
                          cwd=REPO, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "nan.npy: mel values contain 1 NaN" in proc.stderr
    assert not (tmp_path / "o.wav").exists()

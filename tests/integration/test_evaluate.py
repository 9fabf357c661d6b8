"""`python evaluate.py` end to end on random mels with a tiny Melception (CPU), plus the other
reference kinds (split list, training config) through the library call."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from evaluation.evaluate import evaluate
from evaluation.features import export_reference_checkpoint, load_stats
from specvqgan.modules.classifiers.melception import Melception

REPO = Path(__file__).resolve().parents[2]
CLASSES = ("bell", "drum")


def _mel(rng, frames, cls):
    """[0, 1] mel with class-dependent energy, so that the features vary."""
    mel = rng.random((80, frames)) * 0.3
    mel[(40 * cls):(40 * cls + 40)] += 0.5 * rng.random()
    return mel.astype(np.float32)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    rng = np.random.default_rng(0)
    gen, toy = root / "gen", root / "toy"
    rows = []
    for i in range(6):
        cls = i % 2
        mel_dir = toy / "features" / CLASSES[cls] / "melspec_2s_22050hz"
        mel_dir.mkdir(parents=True, exist_ok=True)
        np.save(mel_dir / f"vid{i}_mel.npy", _mel(rng, 171, cls))
        rows.append(f"{CLASSES[cls]}/vid{i}")
        (gen / f"cls_{cls}").mkdir(parents=True, exist_ok=True)
        for k in range(2):
            np.save(gen / f"cls_{cls}" / f"vid{i}_sample_{k}.npy", _mel(rng, 160, cls))
    np.save(gen / "cls_0" / "orphan_sample_0.npy", _mel(rng, 160, 0))
    (gen / "cls_0" / "broken_sample_0.npy").write_bytes(b"garbage")
    (toy / "toy_valid.txt").write_text("\n".join(rows) + "\n")
    # tiny Melception; BN statistics calibrated on mels so that its eval outputs are not degenerate
    torch.manual_seed(0)
    net = Melception(num_classes=4, width=0.0625)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
    stats = load_stats()
    with torch.no_grad():
        x = torch.from_numpy(np.stack([_mel(rng, 160, i % 2) for i in range(8)]))
        net.train()(((x.double() - torch.from_numpy(stats[:, :1])) / torch.from_numpy(stats[:, 1:])).float())
    ckpt = export_reference_checkpoint(net.eval(), stats, root / "melception.pt")
    return root, gen, toy, ckpt


@pytest.mark.slow
def test_cli_end_to_end(setup):
    root, gen, toy, ckpt = setup
    real = next(toy.glob("features"))
    cmd = [sys.executable, "evaluate.py", "--generated", str(gen), "--reference", str(real),
           "--melception", str(ckpt), "--device", "cpu", "--kid-subsets", "10", "--out", str(root / "r.json")]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    for name in ("FID", "KID", "IS", "MKL"):
        assert any(line.startswith(name) for line in res.stdout.splitlines()), res.stdout
    assert "paired: 12, unmatched: 1" in res.stdout and "generated_unreadable: 1" in res.stdout
    report = json.loads((root / "r.json").read_text())
    assert report["counts"]["generated"] == 14 and report["counts"]["reference"] == 6
    assert report["config"]["crop"] == 160
    assert report["unreadable"][0][0].endswith("broken_sample_0.npy")
    assert len(list((gen / ".melception_cache").glob("melception_*.npz"))) == 2
    # the library call (no cache) gives the same numbers
    direct = evaluate(gen, real, ckpt, device="cpu", kid_subsets=10)
    for key, value in direct["metrics"].items():
        assert report["metrics"][key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
    assert report["metrics"]["fid"] > 0 and report["metrics"]["isc_mean"] > 1.0

    bad = subprocess.run(cmd[:5] + [str(root / "missing")] + cmd[6:], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 2 and "no such folder" in bad.stderr


def test_split_list_and_config_references(setup, tmp_path):
    root, gen, toy, ckpt = setup
    by_folder = evaluate(gen, toy / "features", ckpt, metrics=["fid", "mkl"], device="cpu")
    by_list = evaluate(gen, toy / "toy_valid.txt", ckpt, metrics=["fid", "mkl"], device="cpu")
    assert by_list["counts"]["paired"] == 12
    assert by_list["metrics"] == pytest.approx(by_folder["metrics"], rel=1e-6)
    cfg = tmp_path / "toy.yaml"
    cfg.write_text(f"data:\n  target: specvqgan.data.datamodule.DataModule\n  params:\n    batch_size: 2\n"
                   f"    validation:\n      target: specvqgan.data.toy.ToySpecsValidation\n"
                   f"      params: {{data_root: {toy}, duration: 2.0}}\n")
    by_config = evaluate(gen, cfg, ckpt, metrics=["fid", "mkl"], split="validation", device="cpu")
    assert by_config["counts"]["paired"] == 12 and by_config["config"]["crop"] == 160
    # the dataset's center crop (171 -> 160, offset 5) equals ours, so the numbers agree; the dataset's
    # float32 round trip [0, 1] -> [-1, 1] -> [0, 1] moves each value by ~6e-8, hence abs for the near-zero MKL
    assert by_config["metrics"] == pytest.approx(by_folder["metrics"], rel=1e-5, abs=2e-7)
    with pytest.raises(ValueError, match="data.params.test"):
        evaluate(gen, cfg, ckpt, metrics=["fid"], split="test", device="cpu")
    with pytest.raises(ValueError, match="unknown"):
        evaluate(gen, cfg, ckpt, metrics=["fad"], device="cpu")

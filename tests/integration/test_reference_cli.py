"""The reference's command lines and run folders (docs/migration.md): ``-t True``, ``--gpus 0,`` and
resuming an authors' run folder (``<time>-lightning.yaml`` merged, the folder itself left untouched)."""
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.integration.test_train_cli import TINY, data_overrides, run_dir, train

pytestmark = pytest.mark.slow


def digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_reference_train_form_and_authors_run_folder(repo_root, toy_root, tmp_path):
    logroot = tmp_path / "logs"
    out = train(repo_root, "--base", "configs/toy/codebook.yaml", "-t", "True", "lightning.trainer.max_steps=2",
                "--logdir", str(logroot), *TINY, *data_overrides(toy_root))
    assert out.returncode == 0, out.stderr[-3000:]
    run = run_dir(logroot)
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 2

    # the same run laid out as an authors' release: epoch_*.ckpt, <time>-project.yaml + <time>-lightning.yaml
    authors = tmp_path / "release" / "2021-06-06T19-42-53_toy_codebook"
    (authors / "checkpoints").mkdir(parents=True)
    shutil.copy(run / "checkpoints" / "last.ckpt", authors / "checkpoints" / "epoch_000001.ckpt")
    (authors / "configs").mkdir()
    project = yaml.safe_load(next((run / "configs").glob("*-project.yaml")).read_text())
    lightning = project.pop("lightning")
    lightning["trainer"].update({"distributed_backend": "ddp", "max_steps": 4})  # Lightning 1.x keys
    (authors / "configs" / "2021-06-06T19-42-53-project.yaml").write_text(yaml.safe_dump(project))
    (authors / "configs" / "2021-06-06T19-42-53-lightning.yaml").write_text(yaml.safe_dump({"lightning": lightning}))
    before = digest(authors)

    out = train(repo_root, "-r", str(authors), "-t", "True", "--logdir", str(logroot))
    assert out.returncode == 0, out.stderr[-3000:]
    assert digest(authors) == before, "resuming wrote into the authors' run folder"
    (new,) = [p for p in logroot.iterdir() if p != run]
    assert new.name.endswith("_toy_codebook") and not new.name.startswith("2021")
    resumed = torch.load(new / "checkpoints" / "last.ckpt", weights_only=False)
    assert resumed["global_step"] == 4  # max_steps of the lightning yaml (resumed from step 2; GAN: 2 steps a batch)
    assert "distributed_backend" in out.stderr  # the Lightning-1.x key is mapped with a note


def test_gpus_without_gpus_is_a_one_line_error(repo_root, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = train(repo_root, "--base", "configs/vas_codebook.yaml", "-t", "True", "--gpus", "0,",
                "--logdir", str(tmp_path / "logs"), timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "Traceback" not in out.stderr
    assert "--gpus 0," in out.stderr and "0 CUDA device" in out.stderr
    assert not (tmp_path / "logs").exists()


def test_missing_value_names_key_and_file(repo_root, tmp_path):
    out = train(repo_root, "--base", "configs/toy/transformer.yaml", "-t", "--logdir", str(tmp_path / "logs"),
                timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert ("missing value for model.params.first_stage_config.params.ckpt_path "
            "(in configs/toy/transformer.yaml)") in out.stderr

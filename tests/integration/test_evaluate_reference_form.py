"""`python evaluate.py config=evaluation/configs/eval_melception_vas.yaml ...` (the reference's command)
end to end on toy mels with a tiny Melception: the same numbers as our own evaluate.py form."""
import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from evaluation.features import load_stats

from tests.integration.test_evaluate import REPO, setup  # noqa: F401  (the toy mels + tiny Melception)

pytestmark = pytest.mark.slow


def data_block(spec_dir, split):
    """A reference-style data block (train.* data module, VAS dataset targets) of a run folder."""
    return {"target": "train.SpectrogramDataModuleFromConfig", "params": {
        "batch_size": 2, "num_workers": 0, "spec_dir_path": spec_dir, "mel_num": 80, "spec_len": 171,
        "spec_crop_len": 160, "random_crop": False,
        "validation": {"target": "specvqgan.data.vas.VASSpecsValidation",
                       "params": {"specs_dataset_cfg": {"split_path": str(split)}}}}}


def run(*args):
    res = subprocess.run([sys.executable, "evaluate.py", *args], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def test_reference_config_form_gives_our_numbers(setup, tmp_path):  # noqa: F811
    root, gen, toy, ckpt = setup
    mels = f"{toy}/features/*/melspec_2s_22050hz"
    exp = tmp_path / "2021-06-09T15-17-18_toy_transformer"  # a run folder whose data paths moved
    (exp / "configs").mkdir(parents=True)
    (exp / "configs" / "2021-06-09T15-17-18-project.yaml").write_text(
        yaml.safe_dump({"data": data_block("./data/vas/features/*/melspec_10s_22050hz", toy / "toy_valid.txt")}))
    (exp / "configs" / "2021-06-09T15-17-18-lightning.yaml").write_text(
        yaml.safe_dump({"lightning": {"trainer": {"gpus": "0,", "distributed_backend": "ddp"}}}))
    stats = tmp_path / "stats"  # StandardNormalizeAudio reads <cache_path>/train_means_stds_<specs_dir name>.txt
    stats.mkdir()
    np.savetxt(stats / "train_means_stds_melspec_2s_22050hz.txt", load_stats(), fmt="%0.8f")  # the checkpoint's
    res = run("config=evaluation/configs/eval_melception_vas.yaml", f"input1.params.root={gen}",
              f"input2.path_to_exp={exp}", f"patch.spec_dir_path={mels}", f"patch.specs_dir={mels}",
              f"patch.cache_path={stats}",
              f"feature_extractor.params.feature_extractor_weights_path={ckpt}", "extraction_cfg.batch_size=8",
              f"out={tmp_path / 'reference_form.json'}", "no_cache=true")
    assert "patched spec_dir_path" in res.stderr
    ref = json.loads((tmp_path / "reference_form.json").read_text())

    config = tmp_path / "toy_data.yaml"
    config.write_text(yaml.safe_dump({"data": data_block(mels, toy / "toy_valid.txt")}))
    run("--generated", str(gen), "--reference", str(config), "--melception", str(ckpt), "--device", "cpu",
        "--no-cache", "--out", str(tmp_path / "our_form.json"))
    ours = json.loads((tmp_path / "our_form.json").read_text())
    assert set(ref["metrics"]) == {"fid", "kid_mean", "kid_std", "isc_mean", "isc_std", "mkl"}
    for key, value in ours["metrics"].items():
        assert ref["metrics"][key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
    assert ref["counts"] == ours["counts"] and ref["counts"]["paired"] == 12
    assert ref["config"]["kid_subsets"] == 100 and ref["config"]["kid_subset_size"] == 1000
    assert ref["config"]["isc_splits"] == 10 and ref["config"]["stats"].endswith("train_means_stds_melspec_2s_22050hz.txt")


def test_reference_form_errors_are_one_line(tmp_path):
    res = subprocess.run([sys.executable, "evaluate.py", "config=evaluation/configs/eval_melception_vas.yaml",
                          f"input2.path_to_exp={tmp_path}"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "input1.params.root=Please specify the path to generated samples is not a folder" in res.stderr

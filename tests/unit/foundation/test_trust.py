"""Trust boundary (docs/checkpoints.md): checkpoints, configs and feature pickles a user brings never run
code. Every payload here would create a marker file if it ran; the tests assert it does not exist."""
import argparse
import os
import pathlib
import pickle

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from specvqgan import checkpoint as C
from specvqgan.config import ConfigError, get_obj_from_str, load_config


class Payload:
    """Unpickling this runs ``touch <marker>``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def payload_ckpt(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "hyper_parameters": Payload(marker)}, path)
    return path, marker


def lightning12_checkpoint(state_dict: dict) -> dict:
    """What a Lightning 1.2 ``.ckpt`` of the authors holds: callback *classes* as dict keys, a Namespace of
    hyper-parameters with paths, numpy statistics, a numpy scalar and dtype."""
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

    return {"epoch": 3, "global_step": 7, "pytorch-lightning_version": "1.2.10", "state_dict": state_dict,
            "callbacks": {ModelCheckpoint: {"monitor": "val/rec_loss", "best_model_score": torch.tensor(0.5),
                                            "best_model_path": "/scratch/logs/x/checkpoints/epoch=3.ckpt",
                                            "dirpath": pathlib.PosixPath("/scratch/logs/x/checkpoints")},
                          EarlyStopping: {"wait_count": 2, "stopped_epoch": 0, "best_score": torch.tensor(0.4),
                                          "patience": 3}},
            "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-6, "params": [0]}]}],
            "lr_schedulers": [], "hparams_name": "args",
            "hyper_parameters": argparse.Namespace(base=[pathlib.Path("configs/vas_codebook.yaml")], seed=23),
            "stats": {"means": np.arange(4, dtype=np.float32), "stds": np.ones((2, 2)), "n": np.int64(5),
                      "scale": np.float64(0.5), "dtype": np.dtype("float32")}}


def test_lightning12_checkpoint_loads_without_opt_in(tmp_path):
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

    path = tmp_path / "last.ckpt"
    torch.save(lightning12_checkpoint({"w": torch.arange(3.0)}), path)
    ck = C.read(path)
    assert set(ck["callbacks"]) == {ModelCheckpoint, EarlyStopping}
    assert ck["callbacks"][ModelCheckpoint]["dirpath"] == pathlib.Path("/scratch/logs/x/checkpoints")
    assert ck["hyper_parameters"].base == [pathlib.Path("configs/vas_codebook.yaml")]
    np.testing.assert_array_equal(ck["stats"]["means"], np.arange(4, dtype=np.float32))
    assert ck["stats"]["n"] == 5 and ck["stats"]["dtype"] == np.float32 and ck["stats"]["scale"] == 0.5
    assert torch.equal(C.read_state_dict(path)["w"], torch.arange(3.0))


def test_payload_checkpoint_is_refused_naming_file_and_global(payload_ckpt):
    path, marker = payload_ckpt
    with pytest.raises(C.UntrustedCheckpointError) as err:
        C.read(path)
    msg = str(err.value)
    assert str(path) in msg and "system" in msg and "--trust-checkpoint" in msg and "trust=True" in msg
    assert "\n" not in msg
    assert not marker.exists()


def test_outside_globals_need_the_opt_in(tmp_path):
    """A harmless global outside the allow-list (fractions.Fraction) loads only when trusted."""
    from fractions import Fraction

    path = tmp_path / "f.pt"
    torch.save({"x": Fraction(1, 3)}, path)
    with pytest.raises(C.UntrustedCheckpointError, match="fractions.Fraction"):
        C.read(path)
    assert C.read(path, trust=True)["x"] == Fraction(1, 3)
    with C.trusted(tmp_path):           # a trusted folder trusts the files in it, only inside the block
        assert C.read(path)["x"] == Fraction(1, 3)
    with pytest.raises(C.UntrustedCheckpointError):
        C.read(path)


def test_allow_list_is_narrow():
    names = set(C.ALLOWED_NAMES)
    assert "argparse.Namespace" in names and "pathlib.PosixPath" in names
    assert "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint" in names
    assert not any(n.startswith(("os.", "posix.", "subprocess.", "builtins.", "torch.hub", "functools."))
                   for n in names)


def test_not_a_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(C.CheckpointError, match=r"junk\.pt: cannot read") as err:
        C.read(tmp_path / "junk.pt")
    assert not isinstance(err.value, C.UntrustedCheckpointError)
    with pytest.raises(FileNotFoundError, match="nothere"):
        C.read(tmp_path / "nothere.pt")


def _loaders():
    from evaluation.features import read_melception_checkpoint
    from feature_extraction.weights import load_resnet50
    from specvqgan.models.loading import load_codebook
    from specvqgan.losses.lpaps import read_lpaps_weights
    from specvqgan.models.cond_transformer import Net2NetTransformer
    from vocoder.inference import load_generator

    return [load_codebook, Net2NetTransformer.from_checkpoint, load_generator, read_melception_checkpoint,
            load_resnet50, read_lpaps_weights, C.build_model, C.read_config, C.read_state_dict]


def test_every_loader_refuses_a_payload(payload_ckpt):
    path, marker = payload_ckpt
    for load in _loaders():
        with pytest.raises(C.UntrustedCheckpointError, match="evil.ckpt"):
            load(path)
    assert not marker.exists()


def test_lightning_resume_path_refuses_a_payload(payload_ckpt):
    path, marker = payload_ckpt
    with pytest.raises(C.UntrustedCheckpointError, match="evil.ckpt"):
        C.safe_checkpoint_io().load_checkpoint(path)
    assert not marker.exists()


# ----------------------------------------------------------------------------- configs
@pytest.mark.parametrize("target", [
    "pytorch_lightning.trainer.connectors.signal_connector.call",  # re-export of subprocess.call
    "torch.hub.load", "torch.load", "torch.save", "torch.utils.cpp_extension.load_inline",
    "torch.nn.modules.module.OrderedDict",                          # a class, but collections'
    "os.system", "builtins.eval"])
def test_config_targets_outside_the_rules_are_refused(target):
    with pytest.raises(ConfigError, match="refus|not a class"):
        get_obj_from_str(target, "test")


@pytest.mark.parametrize("target", ["torch.nn.Linear", "torch.optim.AdamW", "pytorch_lightning.callbacks.ModelCheckpoint",
                                    "pytorch_lightning.loggers.TensorBoardLogger", "train.ImageLogger",
                                    "specvqgan.modules.losses.DummyLoss"])
def test_allowed_and_reference_targets_resolve(target):
    assert isinstance(get_obj_from_str(target, "test"), type)


def test_yaml_object_tags_do_not_run(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.yaml"
    path.write_text(f"model: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError, match="evil.yaml"):
        load_config(path)
    assert not marker.exists()


def _authors_run(tmp_path, first_stage_target: str, marker) -> pathlib.Path:
    """An authors'-layout run whose project.yaml hides a payload in a nested target."""
    run = tmp_path / "2021-06-20T16-35-20_vas_transformer"
    (run / "checkpoints").mkdir(parents=True)
    (run / "configs").mkdir()
    torch.save(lightning12_checkpoint({"w": torch.zeros(1)}), run / "checkpoints" / "last.ckpt")
    project = {"model": {"target": "specvqgan.models.cond_transformer.Net2NetTransformer", "params": {
        "first_stage_config": {"target": first_stage_target,
                               "params": {"args": f"touch {marker}", "shell": True, "ckpt_path": "x"}},
        "cond_stage_config": {"target": "specvqgan.modules.conditioning.RawFeatsStage"},
        "transformer_config": {"target": "torch.nn.Identity"}}}}
    (run / "configs" / "2021-06-20T16-35-20-project.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(project)))
    (run / "configs" / "2021-06-20T16-35-20-lightning.yaml").write_text("lightning:\n  trainer:\n    gpus: 0,\n")
    return run / "checkpoints" / "last.ckpt"


@pytest.mark.parametrize("target", ["pytorch_lightning.trainer.connectors.signal_connector.call",
                                    "subprocess.call"])
def test_nested_target_in_a_release_yaml_does_not_run(tmp_path, target):
    from specvqgan.models.cond_transformer import Net2NetTransformer

    marker = tmp_path / "ran"
    ckpt = _authors_run(tmp_path, target, marker)
    assert C.read_config(ckpt)["lightning"]["trainer"]["gpus"] == "0,"   # the lightning.yaml is merged
    with pytest.raises(ConfigError, match="first_stage_config"):
        Net2NetTransformer.from_checkpoint(str(ckpt))
    with pytest.raises(ConfigError):
        C.build_model(ckpt)
    assert not marker.exists()


def test_run_config_files_merge_order(tmp_path):
    (tmp_path / "configs").mkdir()
    for name in ("2021-01-02T00-00-00-project", "2021-01-01T00-00-00-lightning", "2021-01-01T00-00-00-project",
                 "notes"):
        (tmp_path / "configs" / f"{name}.yaml").write_text("a: 1\n")
    assert [p.stem for p in C.run_config_files(tmp_path)] == [
        "2021-01-01T00-00-00-project", "2021-01-01T00-00-00-lightning", "2021-01-02T00-00-00-project"]


# ----------------------------------------------------------------------------- feature pickles
def test_feature_pickle_payload_does_not_run(tmp_path):
    from specvqgan.data.clips import load_feats

    good = tmp_path / "good.pkl"
    good.write_bytes(pickle.dumps(np.ones((43, 12), np.float32)))
    assert load_feats(str(good), 12).shape == (43, 12)
    marker = tmp_path / "ran"
    for name, obj in {"evil.pkl": Payload(marker), "nested.pkl": [np.ones(2), {"k": Payload(marker)}]}.items():
        (tmp_path / name).write_bytes(pickle.dumps(obj))
        with pytest.raises(ValueError, match=rf"{name}.*system"):
            load_feats(str(tmp_path / name))
    (tmp_path / "obj.pkl").write_bytes(pickle.dumps(np.array([[1, "a"]], dtype=object)))
    with pytest.raises(ValueError, match=r"obj\.pkl.*object"):
        load_feats(str(tmp_path / "obj.pkl"))
    assert not marker.exists()

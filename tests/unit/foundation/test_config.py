"""Config merging, overrides and instantiate_from_config errors that name the key and the file."""
import pytest
import torch
from omegaconf import OmegaConf

from specvqgan import aliases
from specvqgan.config import ConfigError, instantiate_from_config, load_config, source_of


def write(path, text):
    path.write_text(text)
    return path


@pytest.fixture
def two_files(tmp_path):
    a = write(tmp_path / "a.yaml", "model:\n  target: torch.nn.Conv1d\n  params: {in_channels: 3, out_channels: 4, kernel_size: 1}\n"
                                   "lightning:\n  trainer: {max_steps: 10}\n")
    b = write(tmp_path / "b.yaml", "model:\n  params: {out_channels: 8}\n")
    return a, b


def test_merge_left_to_right_then_overrides(two_files):
    a, b = two_files
    cfg = load_config([a, b], ["model.params.kernel_size=3", "lightning.trainer.max_steps=5"])
    assert cfg.model.params.out_channels == 8 and cfg.model.params.in_channels == 3
    assert cfg.lightning.trainer.max_steps == 5
    conv = instantiate_from_config(cfg.model)
    assert isinstance(conv, torch.nn.Conv1d) and conv.kernel_size == (3,) and conv.out_channels == 8
    assert source_of(cfg.model, "params.out_channels") == str(b)
    assert source_of(cfg.model, "params.in_channels") == str(a)


def test_unknown_param_names_key_and_file(two_files, tmp_path):
    a, _ = two_files
    typo = write(tmp_path / "typo.yaml", "model:\n  params: {kernal_size: 3}\n")
    cfg = load_config([a, typo])
    with pytest.raises(ConfigError) as err:
        instantiate_from_config(cfg.model)
    msg = str(err.value)
    assert "model.params.kernal_size" in msg and str(typo) in msg and "kernel_size" in msg


def test_unknown_param_from_override_names_the_override(two_files):
    cfg = load_config([two_files[0]], ["model.params.biass=false"])
    with pytest.raises(ConfigError, match=r"model\.params\.biass.*override"):
        instantiate_from_config(cfg.model)


def test_missing_target_and_foreign_target(tmp_path):
    f = write(tmp_path / "no_target.yaml", "model:\n  params: {a: 1}\n")
    with pytest.raises(ConfigError, match=r"missing key `target` at `model`.*no_target\.yaml"):
        instantiate_from_config(load_config(f).model)
    g = write(tmp_path / "evil.yaml", "model:\n  target: os.system\n  params: {command: ls}\n")
    with pytest.raises(ConfigError, match=r"`model\.target`.*evil\.yaml.*outside this project"):
        instantiate_from_config(load_config(g).model)
    h = write(tmp_path / "nope.yaml", "model:\n  target: specvqgan.no_such_module.Thing\n")
    with pytest.raises(ConfigError, match=r"nope\.yaml.*cannot be imported"):
        instantiate_from_config(load_config(h).model)


def test_missing_required_param(tmp_path):
    f = write(tmp_path / "m.yaml", "model:\n  target: torch.nn.Linear\n  params: {in_features: 3}\n")
    with pytest.raises(ConfigError, match=r"out_features.*m\.yaml"):
        instantiate_from_config(load_config(f).model)


def test_alias_table_resolves_reference_paths(monkeypatch):
    monkeypatch.setitem(aliases.REFERENCE_ALIASES, "specvqgan.reference.Linear", "torch.nn.Linear")
    lin = instantiate_from_config({"target": "specvqgan.reference.Linear", "params": {"in_features": 2, "out_features": 3}})
    assert isinstance(lin, torch.nn.Linear)


def test_nested_configs_are_passed_as_dictconfig(tmp_path):
    f = write(tmp_path / "n.yaml", "model:\n  target: torch.nn.Sequential\n")
    assert isinstance(instantiate_from_config(load_config(f).model), torch.nn.Sequential)
    cfg = OmegaConf.create({"target": "torch.nn.Identity", "params": {"anything": {"nested": 1}}})
    assert isinstance(instantiate_from_config(cfg), torch.nn.Identity)  # Identity takes **kwargs


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")
    bad = write(tmp_path / "bad.yaml", "model: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(bad)
    with pytest.raises(ConfigError, match="key=value"):
        load_config(write(tmp_path / "ok.yaml", "a: 1\n"), ["novalue"])


def test_every_shipped_config_parses(repo_root):
    for path in sorted((repo_root / "configs").rglob("*.yaml")):
        cfg = load_config(path)
        assert "model" in cfg or "data" in cfg, path

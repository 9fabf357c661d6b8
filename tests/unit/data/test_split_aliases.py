"""The former one-line Train/Validation/Test dataset classes are alias entries that fix `split` (and unpack
the reference's single sub-config): each old name builds the same dataset as the base class, and the
config errors still name the key and the file."""
import inspect
import re

import numpy as np
import pytest
import yaml
from omegaconf import OmegaConf

from specvqgan import aliases
from specvqgan.config import ConfigError, get_obj_from_str, instantiate_from_config, load_config
from specvqgan.data.toy import ToySpecsCondOnFeats, ToyWave
from specvqgan.data.vas import VASSpecs, VASSpecsCondOnFeats

SUFFIX = {"Train": "train", "Validation": "valid", "Test": "test"}


@pytest.mark.parametrize("name", sorted(aliases.BINDINGS))
def test_every_split_name_fixes_a_split_the_class_takes(name):
    alias = aliases.BINDINGS[name]
    cls = get_obj_from_str(name)
    assert inspect.isclass(cls) and f"{cls.__module__}.{cls.__qualname__}" == alias.target
    suffix = re.search(r"(Train|Validation|Test)$", name)
    assert alias.bind.get("split") == (SUFFIX[suffix.group(1)] if suffix else None)
    assert alias.bind.get("require_labels", False) == ("AndClass" in name), name
    params = inspect.signature(cls).parameters
    assert set(alias.bind) | set(alias.outer) <= set(params), name
    assert alias.unpack is None or alias.unpack not in params


def test_every_config_target_resolves(repo_root):
    """Our configs keep their class names (no vocabulary change): each `target:` imports or aliases."""
    seen = set()
    for path in sorted((repo_root / "configs").rglob("*.yaml")):
        seen |= set(re.findall(r"target:\s*([\w.]+)", path.read_text()))
    for target in sorted(seen):
        get_obj_from_str(target)
    assert {"specvqgan.data.vas.VASSpecsCondOnFeatsTrain", "specvqgan.data.toy.ToySpecsValidation"} <= seen


def test_old_names_build_the_base_class_split(vas, toy_root):
    specs = {"spec_dir_path": vas["mels"], "split_path": vas["split"]}
    old = instantiate_from_config({"target": "specvqgan.data.vas.VASSpecsValidation",
                                   "params": {"specs_dataset_cfg": specs}})
    new = VASSpecs("valid", **specs)
    assert type(old) is VASSpecs and old.split == "valid" and old.dataset == new.dataset
    np.testing.assert_array_equal(old[1]["image"], new[1]["image"])
    feats = {"rgb_feats_dir_path": vas["rgb"], "flow_feats_dir_path": vas["flow"], "split_path": vas["split"]}
    pair = instantiate_from_config({"target": "specvqgan.data.vas.VASSpecsCondOnFeatsTrain",
                                    "params": {"specs_dataset_cfg": specs, "condition_dataset_cfg": feats}})
    assert type(pair) is VASSpecsCondOnFeats and pair.specs_dataset.split == pair.feats_dataset.split == "train"
    toy = instantiate_from_config({"target": "specvqgan.data.toy.ToySpecsCondOnFeatsAndClassValidation",
                                   "params": {"data_root": str(toy_root)}})
    assert type(toy) is ToySpecsCondOnFeats and toy.specs_dataset.split == "valid" and toy[0]["label"] == "bell"
    same = instantiate_from_config({"target": "specvqgan.data.toy.ToySpecsCondOnFeats",  # the `split:` form
                                    "params": {"split": "valid", "data_root": str(toy_root), "require_labels": True}})
    assert same.specs_dataset.dataset == toy.specs_dataset.dataset
    np.testing.assert_array_equal(same[0]["feature"], toy[0]["feature"])
    wave = instantiate_from_config({"target": "specvqgan.data.toy.ToyWaveTrain",
                                    "params": {"data_root": str(toy_root), "wave_dataset_cfg": {"augment": False}}})
    assert type(wave) is ToyWave and wave.random_crop and not wave.augment  # train: random crops by default


def write_cfg(tmp_path, target, params):
    path = tmp_path / "data.yaml"
    path.write_text(yaml.safe_dump({"data": {"target": target, "params": params}}))
    return load_config(path).data, str(path)


def test_bound_and_unknown_params_name_key_and_file(vas, tmp_path):
    specs = {"spec_dir_path": vas["mels"], "split_path": vas["split"]}
    cases = [  # (target, params, message pattern)
        ("specvqgan.data.vas.VASSpecsValidation", {"specs_dataset_cfg": {**specs, "spec_crop": 8}},
         r"unknown param `data\.params\.specs_dataset_cfg\.spec_crop` \(in {f}\).*did you mean 'spec_crop_len'"),
        ("specvqgan.data.vas.VASSpecsValidation", {"specs_dataset_cfg": specs, "mel_num": 80},
         r"unknown param `data\.params\.mel_num` \(in {f}\).*accepted: \['specs_dataset_cfg'\]"),
        ("specvqgan.data.vas.VASSpecsValidation", {"specs_dataset_cfg": {**specs, "split": "train"}},
         r"`data\.params\.specs_dataset_cfg\.split` \(in {f}\) is fixed to 'valid'.*VASSpecs'"),
        ("specvqgan.data.vas.VASSpecsCondOnFeatsTrain", {"specs_dataset_cfg": specs, "condition_dataset_cfg": {},
                                                         "split": "valid"},
         r"`data\.params\.split` \(in {f}\) is fixed to 'train'"),
        ("specvqgan.data.vas.VASSpecsCondOnFeatsTrain", {"specs_dataset_cfg": specs, "condition_dataset_cfg": {},
                                                         "require_label": True},
         r"unknown param `data\.params\.require_label` \(in {f}\).*accepted: \['align_random_crop', "
         r"'condition_dataset_cfg', 'specs_dataset_cfg'\]"),
        ("specvqgan.data.vas.VASSpecsValidation", {"specs_dataset_cfg": {"split_path": vas["split"]}},
         r"missing required param\(s\) \['spec_dir_path'\].*`data\.params\.specs_dataset_cfg` \(in {f}\)"),
    ]
    for target, params, pattern in cases:
        cfg, f = write_cfg(tmp_path, target, params)
        with pytest.raises(ConfigError, match=pattern.format(f=re.escape(f))):
            instantiate_from_config(cfg)


def test_aliases_only_build_project_classes(monkeypatch, tmp_path):
    """An alias entry is a class path + fixed params: it cannot name a function or a foreign class."""
    name = "specvqgan.data.vas.EvilTrain"
    monkeypatch.setitem(aliases.FORMER_ALIASES, name, "os.system")
    monkeypatch.setitem(aliases.BINDINGS, name, aliases.Alias("os.system", {"split": "train"}, "specs_dataset_cfg"))
    with pytest.raises(ConfigError, match="outside this project"):
        instantiate_from_config(OmegaConf.create({"target": name, "params": {"specs_dataset_cfg": {"command": "ls"}}}))
    bad = tmp_path / "targets.yaml"
    bad.write_text("supported: {}\nunsupported: {}\nformer:\n  a.B: {target: a.C, bind: {split: train}, run: x}\n")
    with pytest.raises(ValueError, match=r"entry 'a\.B' must be a class path or a mapping"):
        aliases._load(bad)

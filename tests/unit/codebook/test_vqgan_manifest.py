"""Paper-size codebooks: state_dict keys/shapes/dtypes and parameter counts equal the reference
manifests (so the released checkpoints load with strict=True), and our YAMLs hold the paper's values.
The models are built on the meta device: same structure, no memory, no init time."""
import json

import pytest
import torch
from omegaconf import OmegaConf

from specvqgan.config import instantiate_from_config, load_config

CONFIGS = {"vas_codebook": "configs/vas_codebook.yaml", "vggsound_codebook": "configs/vggsound_codebook.yaml"}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def built(request, repo_root, reference_dir):
    manifest = json.loads((reference_dir / "manifests" / f"{request.param}.json").read_text())
    cfg = load_config(repo_root / CONFIGS[request.param])
    # no VGGish-ish checkpoint in tests: LPAPS keeps random weights (same keys and shapes)
    built_cfg = load_config(repo_root / CONFIGS[request.param], ["model.params.lossconfig.params.perceptual_weight=0",
                                                                 "model.params.lossconfig.params.perceptual_ckpt=null"])
    with torch.device("meta"):
        model = instantiate_from_config(built_cfg.model)
    return manifest, cfg, model


def test_state_dict_equals_manifest(built):
    manifest, _, model = built
    ours = {k: (list(v.shape), str(v.dtype).replace("torch.", "")) for k, v in model.state_dict().items()}
    ref = {k: (v["shape"], v["dtype"]) for k, v in manifest["state_dict"].items()}
    assert sorted(set(ref) - set(ours)) == [], "keys missing from our model"
    assert sorted(set(ours) - set(ref)) == [], "keys our model has but the reference has not"
    assert {k: v for k, v in ours.items() if v != ref[k]} == {}
    assert list(ours) == list(ref)  # same order, too
    assert len(ours) == manifest["num_state_dict_keys"]


def test_parameter_counts_equal_manifest(built):
    manifest, _, model = built
    assert sum(p.numel() for p in model.parameters()) == manifest["num_parameters"]
    assert sum(t.numel() for t in model.state_dict().values()) == manifest["num_state_dict_elements"]


def test_config_holds_paper_values(built):
    manifest, cfg, _ = built
    ours = OmegaConf.to_container(cfg.model.params, resolve=True)
    ref = manifest["model_params"]
    assert ours["ddconfig"] == ref["ddconfig"]
    assert (ours["n_embed"], ours["embed_dim"]) == (ref["n_embed"], ref["embed_dim"])
    ref_loss = {k: v for k, v in ref["lossconfig"]["params"].items()}
    assert {k: ours["lossconfig"]["params"][k] for k in ref_loss} == ref_loss
    assert cfg.model.base_learning_rate == (1e-6 if ref["n_embed"] == 128 else 4.5e-6)

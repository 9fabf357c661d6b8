"""State-dict keys/shapes and parameter counts of the paper-size models equal the reference manifests
(built on the meta device: no memory, no init cost). Our keys are the reference's minus the causal-mask
buffers ``transformer.blocks.N.attn.mask``, which the load hook drops from reference checkpoints."""
import json

import pytest
import torch
from omegaconf import OmegaConf

from specvqgan.config import instantiate_from_config, load_config

NO_CKPT = ["model.params.first_stage_config.params.ckpt_path=null"]


def _manifest(reference_dir, name):
    return json.loads((reference_dir / "manifests" / f"{name}.json").read_text())


def _build(cfg):
    with torch.device("meta"):
        return instantiate_from_config(cfg)


def _check(model, manifest, shape_overrides=None):
    ref = {k: v["shape"] for k, v in manifest["state_dict"].items() if not k.endswith(".attn.mask")}
    ref.update(shape_overrides or {})
    sd = model.state_dict()
    assert list(sd) == list(ref)  # same keys, same order
    assert {k: list(v.shape) for k, v in sd.items()} == ref
    assert sum(p.numel() for p in model.parameters()) == manifest["num_parameters"]


@pytest.mark.parametrize("name", ["vas_transformer", "vggsound_transformer"])
def test_reference_config_unchanged(reference_dir, name):
    """The reference YAML's model block (reference targets, hand-typed block size) instantiates as is."""
    m = _manifest(reference_dir, name)
    model = _build(OmegaConf.create({"target": "specvqgan.models.cond_transformer.Net2NetTransformer",
                                     "params": m["model_params"]}))
    _check(model, m)


@pytest.mark.parametrize("name", ["vas_transformer", "vggsound_transformer"])
def test_our_config(reference_dir, repo_root, name):
    """Our YAML (derived block size, permuter H/W, widths) gives the same model."""
    m = _manifest(reference_dir, name)
    _check(_build(load_config(repo_root / "configs" / f"{name}.yaml", NO_CKPT).model), m)


@pytest.mark.parametrize("name", ["vas_transformer", "vggsound_transformer"])
def test_five_feats_variant(reference_dir, repo_root, name):
    m = _manifest(reference_dir, name)
    diff = _manifest(reference_dir, f"{name}_5feats_diff")
    cfg = load_config([repo_root / "configs" / f"{name}.yaml",
                       repo_root / "configs" / "transformer_variants" / "feats5.yaml"], NO_CKPT)
    model = _build(cfg.model)
    shapes = {k: v["shape"] for k, v in diff["keys_whose_shape_differs_from_212feats"].items()
              if not k.endswith(".attn.mask")}
    assert shapes == {"transformer.pos_emb": [1, 270, 1024]}
    m["num_parameters"] = diff["num_parameters"]
    _check(model, m, shapes)

"""Melception: reference keys/shapes, golden outputs, strict load of the reference layout, aux head."""
import json

import pytest
import torch

from evaluation.features import read_melception_checkpoint
from evaluation.reference_inputs import MelceptionExtractor
from specvqgan.modules.classifiers.melception import Melception
from melception_recipe import recipe_state_dict


def test_state_dict_matches_manifest(reference_dir):
    manifest = json.loads((reference_dir / "manifests" / "melception.json").read_text())
    with torch.device("meta"):  # shapes only: no 25M-parameter init
        model = Melception(num_classes=309)
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    ref = {k: v["shape"] for k, v in manifest["state_dict"].items()}
    assert list(ours) == list(ref)
    assert ours == ref
    assert sum(p.numel() for p in model.parameters()) == manifest["num_parameters"]
    assert model.Conv2d_1a_3x3.bn.eps == 1e-3
    assert isinstance(model.maxpool1, torch.nn.Identity) and isinstance(model.maxpool2, torch.nn.Identity)


@pytest.mark.slow
def test_golden_outputs_from_reference_layout_file(golden_melception, tmp_path):
    """Recipe weights -> {'model': sd} file -> reference constructor (strict load) -> golden outputs.
    One of the two golden clips: a full-size forward costs ~2 s per clip on an idle core."""
    g = {k: (v[:1] if k in ("mel", "pool_features", "logits", "logits_unbiased") else v)
         for k, v in golden_melception.items()}
    sd = recipe_state_dict(g["state_dict_keys_shapes"])
    for key in ("Conv2d_1a_3x3.conv.weight", "Mixed_7c.branch_pool.bn.running_var", "fc.bias"):
        assert sd[key].double().sum().item() == pytest.approx(g["weight_checksums"][key]["sum"], rel=1e-9)
    path = tmp_path / "melception-ref.pt"
    torch.save({"model": sd}, path)
    model = MelceptionExtractor(num_classes=309, features_list=["logits_unbiased", "2048", "logits"],
                                feature_extractor_weights_path=str(path))
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    with torch.no_grad():
        out = model.convert_features_tuple_to_dict(model(g["mel"]))
    torch.testing.assert_close(out["2048"], g["pool_features"], atol=1e-4, rtol=0)
    torch.testing.assert_close(out["logits_unbiased"], g["logits_unbiased"], atol=1e-4, rtol=0)
    torch.testing.assert_close(out["logits"], g["logits"], atol=1e-4, rtol=0)
    # our public API on the same weights: features() and the plain forward in eval
    with torch.no_grad():
        feats = model.features(g["mel"])
        logits = Melception.forward(model, g["mel"])
    assert torch.equal(feats["pool"], out["2048"])
    torch.testing.assert_close(logits, feats["logits"], atol=1e-5, rtol=1e-5)


def test_reference_layout_strict_load_rejects_missing_keys(tmp_path):
    sd = Melception(num_classes=5, width=0.0625).state_dict()
    sd.pop("AuxLogits.fc.bias")
    torch.save({"model": sd}, tmp_path / "bad.pt")
    with pytest.raises(RuntimeError, match="AuxLogits.fc.bias"):
        MelceptionExtractor(num_classes=5, feature_extractor_weights_path=str(tmp_path / "bad.pt"))


def test_unknown_layout_is_a_clear_error(tmp_path):
    torch.save({"weights": {}}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="x.pt is not a Melception checkpoint"):
        read_melception_checkpoint(tmp_path / "x.pt")
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        read_melception_checkpoint(tmp_path / "nope.pt")


def test_small_width_shapes_aux_and_gradients(recipe):
    torch.manual_seed(0)
    model = Melception(num_classes=7, width=0.0625)
    model.load_state_dict(recipe(model))
    x = torch.randn(2, 80, 112)
    model.train()
    logits, aux = model(x)
    assert logits.shape == aux.shape == (2, 7)
    (logits.sum() + aux.sum()).backward()
    assert model.AuxLogits.fc.weight.grad.abs().sum() > 0
    assert model.Conv2d_1a_3x3.conv.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        f = model.features(x)
    assert f["pool"].shape == (2, model.pool_dim) and model.pool_dim == 128
    torch.testing.assert_close(f["logits"], f["logits_unbiased"] + model.fc.bias)
    assert not torch.allclose(f["logits"][0], f["logits"][1])  # outputs depend on the input
    with pytest.raises(ValueError, match=r"\(B, n_mels, T\)"):
        model.features(x[0])


def test_reference_eval_config_target_instantiates():
    """The reference eval configs' `feature_extractor` block resolves to our class through the aliases."""
    from specvqgan.config import instantiate_from_config

    model = instantiate_from_config({"target": "evaluation.feature_extractors.melception.Melception",
                                     "params": {"num_classes": 309, "features_list": ["2048", "logits"]}})
    assert isinstance(model, MelceptionExtractor) and model.features_list == ["2048", "logits"]
    with pytest.raises(ValueError, match="unknown feature"):
        MelceptionExtractor(features_list=["768"])

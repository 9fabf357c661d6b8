"""specvqgan.video_condition: what the pipeline derives from a transformer's training config (the paper
configs, shrunk to tiny widths): feature type, clip duration, crop and 1/5/212-frame resampling, class
conditioning, and the errors when a checkpoint does not tell or needs more."""
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from specvqgan.config import instantiate_from_config, load_config
from specvqgan.pipeline import GenerationError, VideoToSound
from specvqgan.shapes import resample_indices
from specvqgan.video_condition import condition_spec, window_features
from vocoder.inference import GriffinLimVocoder

TINY = [f"model.params.transformer_config.params.GPT_config.{k}" for k in ("n_layer=1", "n_head=2", "n_embd=16")] + \
    [f"model.params.first_stage_config.params.{k}" for k in (
        "ckpt_path=null", "embed_dim=8", "ddconfig.ch=32", "ddconfig.z_channels=8", "ddconfig.num_res_blocks=1",
        "ddconfig.attn_resolutions=[]")]


def build(repo_root, *yamls, overrides=()):
    """(tiny model, resolved run config dict) of configs/<yamls> merged left to right."""
    cfg = load_config([repo_root / "configs" / y for y in yamls], TINY + list(overrides))
    return instantiate_from_config(cfg.model), OmegaConf.to_container(cfg, resolve=True)


@pytest.mark.parametrize("yamls,feature,streams,n_feats", [
    (("vas_transformer.yaml",), "bninception", ("rgb_bninception", "flow_bninception"), 212),
    (("vas_transformer.yaml", "transformer_variants/feats5.yaml"), "bninception",
     ("rgb_bninception", "flow_bninception"), 5),
    (("vas_transformer.yaml", "transformer_variants/vas_resnet50.yaml"), "resnet50", ("resnet50",), 212),
    (("vggsound_transformer.yaml", "transformer_variants/feats1.yaml"), "bninception",
     ("rgb_bninception", "flow_bninception"), 1),
])
def test_paper_configs(repo_root, yamls, feature, streams, n_feats):
    model, run = build(repo_root, *yamls)
    spec = condition_spec(model, run, path="x.ckpt")
    assert (spec.feature, spec.streams, spec.n_feats, spec.feat_depth) == (feature, streams, n_feats, 2048)
    assert (spec.duration, spec.feat_len, spec.feat_crop_len, spec.needs_class) == (10.0, 215, 212, False)
    assert model.first_stage_permuter.W * 4 == spec.feat_crop_len
    feats = np.arange(230, dtype=np.float32)[:, None].repeat(2048, 1)        # row index as the value
    rows = window_features(feats, spec)[:, 0]
    np.testing.assert_array_equal(rows, 1 + resample_indices(n_feats, 212))  # centre crop 1:213, then resample
    # a window starting at latent column 3 reads the features 3 columns (12 rows) later
    np.testing.assert_array_equal(window_features(feats, spec, 3)[:, 0], 13 + resample_indices(n_feats, 212))
    # the model takes exactly this condition
    cond = model.get_input(model.cond_stage_key, {"feature": torch.from_numpy(window_features(feats, spec))[None]})
    assert tuple(cond.shape) == (1, 2048, n_feats)


def test_toy_config_and_model_only_checkpoints(repo_root):
    model, run = build(repo_root, "toy/transformer.yaml")
    spec = condition_spec(model, run)
    assert (spec.feature, spec.duration, spec.feat_len, spec.feat_crop_len, spec.n_feats) == ("color", 2.0, 43, 40, 40)
    assert condition_spec(model, {"model": run["model"]}) == spec             # exported: depth 48 -> colour
    narrow, run12 = build(repo_root, "toy/transformer.yaml",
                          overrides=["model.params.transformer_config.params.feat_embedding_config.params.in_channels=12"])
    with pytest.raises(GenerationError, match="takes 12-d features but 'color' features are 48-d"):
        condition_spec(narrow, run12, path="narrow.ckpt")
    paper, run = build(repo_root, "vas_transformer.yaml")
    with pytest.raises(GenerationError, match="feature='resnet50' or 'bninception'") as err:
        condition_spec(paper, {"model": run["model"]}, path="paper.pt")
    assert "paper.pt" in str(err.value)
    spec = condition_spec(paper, {"model": run["model"]}, feature="resnet50")
    assert (spec.feature, spec.duration, spec.n_feats) == ("resnet50", 10.0, 212)


def test_random_feature_model_and_mismatch(repo_root):
    model, run = build(repo_root, "vas_transformer.yaml", "transformer_variants/nofeats.yaml")
    spec = condition_spec(model, run)
    assert spec.trained_on_noise and spec.n_feats == 1
    # a data config whose resampling disagrees with the model's n_feats is refused
    run["data"]["params"]["feat_sampler_cfg"]["params"]["feat_sample_size"] = 5
    with pytest.raises(GenerationError, match="5 feature frames but the model takes 1"):
        condition_spec(model, run, path="m.ckpt")


def test_class_conditioned_models_need_a_class(repo_root, tmp_path):
    model, run = build(repo_root, "vas_transformer_class.yaml")
    spec = condition_spec(model, run)
    assert spec.needs_class and spec.feature is None and spec.duration == 10.0
    pipe = VideoToSound(model, GriffinLimVocoder(), spec, checkpoint="class.ckpt")
    with pytest.raises(GenerationError, match="class-conditioned.*class_id") as err:
        pipe.generate(tmp_path / "in.mp4", tmp_path)
    assert "class.ckpt" in str(err.value)

    model, run = build(repo_root, "vas_transformer.yaml", "transformer_variants/vas_feats_class.yaml")
    spec = condition_spec(model, run)
    assert spec.needs_class and spec.feature == "bninception"
    # pretrained features need their weights (or random ones, explicitly)
    with pytest.raises(GenerationError, match="feature-weights"):
        VideoToSound(model, GriffinLimVocoder(), spec, checkpoint="fc.ckpt")
    pipe = VideoToSound(model, GriffinLimVocoder(), spec, random_feature_weights=True)
    from specvqgan.pipeline import Plan
    plan = Plan(tmp_path / "in.mp4", 10.0, 861, 54, np.zeros((217, 2048), np.float32))
    cond = pipe.condition(plan, 1, class_id=3)
    assert tuple(cond["feature"].shape) == (1, 2048, 212) and cond["target"].tolist() == [[3]]

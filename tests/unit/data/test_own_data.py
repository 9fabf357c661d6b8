"""Own videos as a dataset (``specvqgan.own_data``): staging with and without class folders, stratified /
random / user splits, and the train.py overrides derived from the clip length (built into real models)."""
import pytest
from omegaconf import OmegaConf

from specvqgan.config import instantiate_from_config, load_config
from specvqgan.own_data import FLAT_CLASS, OwnShapes, overrides, split_clips, stage_videos, user_split


def _touch(root, *rels):
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")


def test_staging_classes_nested_and_flat(tmp_path):
    vids = tmp_path / "v"
    _touch(vids, "dog/a.mp4", "dog/sub dir/a.MKV", "cat/b.mov", "loose.webm")
    rows = stage_videos(vids, tmp_path / "root")
    assert sorted(rows) == ["all/loose", "cat/b", "dog/a", "dog/sub_dir__a"]
    assert (tmp_path / "root/videos/dog/sub_dir__a.mkv").resolve() == (vids / "dog/sub dir/a.MKV").resolve()
    assert (tmp_path / "root/sources.tsv").read_text().splitlines()[0] == f"all/loose\t{(vids / 'loose.webm').resolve()}"
    assert stage_videos(vids, tmp_path / "root") == rows  # idempotent
    flat = tmp_path / "flat"
    _touch(flat, "x.mp4", "y.avi")
    assert sorted(stage_videos(flat, tmp_path / "root2")) == [f"{FLAT_CLASS}/x", f"{FLAT_CLASS}/y"]


def test_splits_stratified_random_and_user(tmp_path):
    clips = [f"dog/{i}" for i in range(10)] + [f"cat/{i}" for i in range(3)] + ["owl/0"]
    train, valid = split_clips(clips, 0.2, seed=1)
    assert sorted(train + valid) == sorted(clips) and not set(train) & set(valid)
    assert sum(c.startswith("dog/") for c in valid) == 2 and sum(c.startswith("cat/") for c in valid) == 1
    assert "owl/0" in train  # a class with one clip stays in train
    assert split_clips(clips, 0.2, seed=1) == (train, valid) and split_clips(clips, 0.2, seed=2) != (train, valid)
    flat_train, flat_valid = split_clips([f"all/{i}" for i in range(10)], 0.3)
    assert len(flat_valid) == 3 and len(flat_train) == 7
    vids = tmp_path / "v"
    _touch(vids, "dog/a.mp4", "cat/b.mov")
    rows = stage_videos(vids, tmp_path / "root")
    (tmp_path / "list.txt").write_text("dog/a.mp4\ncat/b\n")
    assert user_split(tmp_path / "list.txt", rows, vids) == ["dog/a", "cat/b"]
    (tmp_path / "bad.txt").write_text("dog/zzz\n")
    with pytest.raises(ValueError, match=r"bad.txt: 'dog/zzz' is not a video under"):
        user_split(tmp_path / "bad.txt", rows, vids)


@pytest.mark.parametrize("duration", [3.0, 5.5])
def test_overrides_size_the_toy_models_for_any_clip_length(repo_root, duration):
    shapes = OwnShapes(duration, feat_depth=2048)
    cfg = load_config(repo_root / "configs/toy/transformer.yaml", [
        *overrides("transformer", shapes, "resnet50", n_classes=3),
        "model.params.first_stage_config.params.ckpt_path=null",
        "model.params.transformer_config.params.GPT_config.n_layer=1"])
    assert cfg.data.params.train.params.condition_dataset_cfg.feat_name == "resnet50"
    model = instantiate_from_config(cfg.model)
    assert (model.first_stage_permuter.H, model.first_stage_permuter.W) == (5, shapes.latent_width)
    assert model.transformer.config.block_size == shapes.n_feats + 5 * shapes.latent_width
    codebook = load_config(repo_root / "configs/toy/codebook.yaml", overrides("codebook", shapes, "color", 3))
    assert OmegaConf.select(codebook, "model.params.ddconfig.attn_resolutions") == [shapes.latent_width]
    mel = load_config(repo_root / "configs/toy/melception.yaml", overrides("melception", shapes, "color", 3))
    assert mel.model.params.num_classes == 3 and mel.data.params.validation.params.duration == duration


def test_init_codebook_fine_tunes_a_released_codebook(repo_root, reference_dir, tmp_path):
    """--init-codebook: the golden tiny codebook in the authors' run layout (no config in the .ckpt) becomes
    the codebook to fine-tune at a 2 s clip length (its weights loaded, the toy loss around it) and the
    transformer's first stage (that architecture, read from models/codebook.ckpt)."""
    import torch

    from specvqgan.own_data import init_codebook_configs

    golden = torch.load(reference_dir / "golden/codebook_tiny.pt", weights_only=False)
    params = dict(load_config([reference_dir / "golden/codebook_tiny.yaml"]).constructor_params)
    run = tmp_path / "2021-05-19T22-16-54_vggsound_codebook"
    (run / "checkpoints").mkdir(parents=True)
    (run / "configs").mkdir()
    torch.save({"state_dict": golden["state_dict"]}, run / "checkpoints/last.ckpt")
    (run / "configs/2021-05-19T22-16-54-project.yaml").write_text(OmegaConf.to_yaml(
        {"model": {"base_learning_rate": 4.5e-6, "target": "specvqgan.models.vqgan.VQModel", "params": params}}))
    shapes = OwnShapes(2.0, 48)
    cb_yaml, tr_yaml = init_codebook_configs(str(run / "checkpoints/last.ckpt"), tmp_path / "cfg", shapes,
                                             tmp_path / "models")
    cfg = load_config([repo_root / "configs/toy/codebook.yaml", cb_yaml], overrides("codebook", shapes, "color", 2))
    assert cfg.model.params.lossconfig.target.endswith("VQLPAPSWithDiscriminator") and cfg.model.params.n_embed == 128
    torch.manual_seed(0)
    model = instantiate_from_config(cfg.model)
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in golden["state_dict"].items() if not k.startswith("loss."))
    (tmp_path / "models").mkdir()
    torch.save({"state_dict": model.state_dict()}, tmp_path / "models/codebook.ckpt")
    tr = load_config([repo_root / "configs/toy/transformer.yaml", tr_yaml], [
        *overrides("transformer", shapes, "color", 2), "model.params.transformer_config.params.GPT_config.n_layer=1"])
    gpt = instantiate_from_config(tr.model)
    assert gpt.transformer.config.vocab_size == 128 and gpt.first_stage_permuter.W == shapes.latent_width
    assert torch.equal(gpt.first_stage_model.quantize.embedding.weight, loaded["quantize.embedding.weight"])
    with pytest.raises(ValueError, match="not a codebook checkpoint"):
        bad = tmp_path / "bad.ckpt"
        torch.save({"state_dict": {}, "config": {"model": {"target": "vocoder.model.MelGAN"}, "data": {}}}, bad)
        init_codebook_configs(str(bad), tmp_path / "cfg2", shapes, tmp_path / "models")

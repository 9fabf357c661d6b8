"""Every class path of the reference implementation in specvqgan/reference_targets.yaml resolves to one
of our classes and builds (or is listed as unsupported and fails with its reason)."""
import importlib

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from specvqgan.aliases import REFERENCE_ALIASES, UNSUPPORTED_TARGETS
from specvqgan.config import ConfigError, get_obj_from_str, instantiate_from_config

GPT = {"vocab_size": 16, "block_size": 12, "n_layer": 1, "n_head": 2, "n_embd": 8}
CONV = {"target": "torch.nn.Conv1d", "params": {"in_channels": 6, "out_channels": 8, "kernel_size": 1}}
EMB = {"target": "torch.nn.Embedding", "params": {"num_embeddings": 3, "embedding_dim": 8}}
DD = {"double_z": False, "z_channels": 32, "resolution": 32, "in_channels": 1, "out_ch": 1, "ch": 32,
      "ch_mult": [1, 1], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}
DD1 = {**DD, "in_channels": 6, "out_ch": 6}
DUMMY = {"target": "specvqgan.modules.losses.DummyLoss"}
LOSS = {"disc_start": 0, "disc_in_channels": 1, "perceptual_weight": 0}
SPECS = {"mel_num": 80, "spec_len": 860, "spec_crop_len": 848, "random_crop": False}
VAS = "data/vas/features/*/"

# reference path -> params that build it (classes built by their own tests are in BUILT_ELSEWHERE)
PARAMS = {
    "specvqgan.models.vqgan.VQModel": {"ddconfig": DD, "lossconfig": DUMMY, "n_embed": 4, "embed_dim": 32},
    "specvqgan.models.vqgan.VQModel1d": {"ddconfig": DD1, "lossconfig": DUMMY, "n_embed": 4, "embed_dim": 32},
    "specvqgan.modules.diffusionmodules.model.Encoder": DD,
    "specvqgan.modules.diffusionmodules.model.Decoder": DD,
    "specvqgan.modules.diffusionmodules.model.Encoder1d": DD1,
    "specvqgan.modules.diffusionmodules.model.Decoder1d": DD1,
    "specvqgan.modules.vqvae.quantize.VectorQuantizer": {"n_e": 4, "e_dim": 8, "beta": 0.25},
    "specvqgan.modules.vqvae.quantize.VectorQuantizer1d": {"n_e": 4, "e_dim": 8},
    "specvqgan.modules.losses.DummyLoss": {},
    "specvqgan.modules.losses.vqperceptual.DummyLoss": {},
    "specvqgan.modules.losses.vqperceptual.VQLPAPSWithDiscriminator": LOSS,
    "specvqgan.modules.losses.vqperceptual.VQLPAPSWithDiscriminator1dSpecs": {**LOSS, "disc_in_channels": 80},
    "specvqgan.modules.losses.vqperceptual.VQLPAPSWithDiscriminator1dFeats": {"disc_start": 0, "disc_in_channels": 64},
    "specvqgan.modules.discriminator.model.NLayerDiscriminator": {"input_nc": 1},
    "specvqgan.modules.discriminator.model.NLayerDiscriminator1dFeats": {"input_nc": 64, "n_layers": 2},
    "specvqgan.modules.discriminator.model.NLayerDiscriminator1dSpecs": {"input_nc": 80},
    "specvqgan.modules.misc.raw_feats.RawFeatsStage": {},
    "specvqgan.modules.misc.class_cond.ClassOnlyStage": {},
    "specvqgan.modules.misc.feats_class.FeatsClassStage": {},
    "specvqgan.modules.transformer.mingpt.GPT": GPT,
    "specvqgan.modules.transformer.mingpt.GPTFeats": {"feat_embedding_config": CONV, "GPT_config": GPT},
    "specvqgan.modules.transformer.mingpt.GPTClass": {"token_embedding_config": EMB, "GPT_config": GPT},
    "specvqgan.modules.transformer.mingpt.GPTFeatsClass": {"feat_embedding_config": CONV,
                                                           "token_embedding_config": EMB, "GPT_config": GPT},
    "specvqgan.modules.transformer.permuter.Identity": {},
    "specvqgan.modules.transformer.permuter.ColumnMajor": {"H": 2, "W": 3},
    "specvqgan.data.vas.CropImage": {"cropped_shape": [80, 848]},
    "specvqgan.data.vas.CropFeats": {"cropped_shape": [212, 2048]},
    "specvqgan.data.vas.ResampleFrames": {"feat_sample_size": 5},
    "specvqgan.modules.losses.vggishish.transforms.Crop": {"cropped_shape": [80, 848]},
    "specvqgan.modules.losses.vggishish.transforms.StandardNormalizeAudio": {"specs_dir": "x/melspec_10s_22050hz"},
    "evaluation.datasets.transforms.FromMinusOneOneToZeroOne": {},
    "evaluation.datasets.transforms.CropNoDict": {"cropped_shape": [80, 848]},
    "evaluation.datasets.transforms.GetInputFromBatchByKey": {"input_key": "image"},
    "evaluation.datasets.transforms.ToFloat32": {},
    "train.DataModuleFromConfig": {"batch_size": 2},
    "train.SpectrogramDataModuleFromConfig": {"batch_size": 2, "num_workers": 0},
    "train.ConditionedSpectrogramDataModuleFromConfig": {"batch_size": 2, "num_workers": 0},
    "train.SetupCallback": {"resume": "", "now": "t", "logdir": "l", "ckptdir": "l/c", "cfgdir": "l/g",
                            "config": {}, "lightning_config": {}},
    "train.VocoderGriffinLim": {},
    "train.ImageLogger": {"batch_frequency": 2, "max_images": 1, "for_specs": False},
    "train.LearningRateMonitor": {"logging_interval": "step"},
    "vocoder.modules.Generator": {"input_size": 80, "ngf": 8, "n_residual_layers": 1},
    "vocoder.mel2wav.modules.Generator": {"input_size": 80, "ngf": 8, "n_residual_layers": 1},
    "vocoder.modules.Discriminator": {"num_D": 1, "ndf": 4, "n_layers": 1, "downsampling_factor": 2},
    "vocoder.mel2wav.modules.Discriminator": {"num_D": 1, "ndf": 4, "n_layers": 1, "downsampling_factor": 2},
    "torch.nn.Conv1d": CONV["params"],
    "pytorch_lightning.callbacks.ModelCheckpoint": {"monitor": "val/loss", "mode": "min"},
    "pytorch_lightning.callbacks.EarlyStopping": {"monitor": "val/loss", "mode": "min", "patience": 2},
}

# built from real files below or in the tests named here
BUILT_ELSEWHERE = {
    "specvqgan.models.cond_transformer.Net2NetTransformer": "tests/unit/transformer/test_golden.py",
    "specvqgan.modules.losses.lpaps.LPAPS": "tests/unit/losses/test_lpaps.py",
    "specvqgan.modules.losses.vggishish.model.VGGishish": "tests/unit/losses/test_vggishish.py",
    "evaluation.feature_extractors.melception.Melception": "tests/unit/evaluation/test_melception.py",
    "evaluation.datasets.fakes.FakesFolder": "test_fakes_folder_and_eval_transforms",
    "train.VocoderMelGan": "tests/unit/foundation/test_media_logging.py",
    "train.WrappedDataset": "test_vas_datasets_from_reference_params",
}
DATASETS = {p for p in REFERENCE_ALIASES if p.startswith(("specvqgan.data.vas.VAS", "specvqgan.data.vggsound.VGGSound"))}


def test_supported_paths_resolve_to_our_classes():
    for ref, ours in REFERENCE_ALIASES.items():
        obj = get_obj_from_str(ref)
        module, _, name = ours.rpartition(".")
        assert obj is getattr(importlib.import_module(module), name), ref
        assert isinstance(obj, type), f"{ref} -> {ours} is not a class"
        assert obj.__module__.startswith(("specvqgan", "evaluation", "vocoder", "torch", "pytorch_lightning")), ref


def test_every_supported_path_has_a_build_check():
    unchecked = set(REFERENCE_ALIASES) - set(PARAMS) - set(BUILT_ELSEWHERE) - DATASETS
    assert not unchecked, f"reference paths without a build check: {sorted(unchecked)}"


@pytest.mark.parametrize("ref", sorted(PARAMS))
def test_reference_target_instantiates(ref, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    obj = instantiate_from_config(OmegaConf.create({"target": ref, "params": PARAMS[ref]}))
    assert isinstance(obj, get_obj_from_str(ref))


@pytest.mark.parametrize("ref", sorted(UNSUPPORTED_TARGETS))
def test_unsupported_paths_fail_with_their_reason(ref):
    with pytest.raises(ConfigError, match="not supported") as err:
        instantiate_from_config({"target": ref})
    assert UNSUPPORTED_TARGETS[ref] in str(err.value)


def test_guessed_paths_are_not_aliases():
    """Only paths of the reference tree: its features+class stage lives in misc/feats_class.py."""
    for guess in ("specvqgan.modules.misc.feats_class_cond.FeatsClassStage",
                  "specvqgan.modules.misc.class_cond.FeatsClassStage",
                  "specvqgan.modules.misc.raw_feats.FeatsClassStage"):
        assert guess not in REFERENCE_ALIASES and guess not in UNSUPPORTED_TARGETS
        with pytest.raises(ConfigError):
            instantiate_from_config({"target": guess})


def test_one_d_losses_train_their_discriminators():
    """The 1-D losses score (B, D, L) features / (B, 1, F, T) mels with 1-D PatchGANs (reference layout)."""
    feats = instantiate_from_config({"target": "specvqgan.modules.losses.vqperceptual.VQLPAPSWithDiscriminator1dFeats",
                                     "params": {"disc_start": 0, "disc_in_channels": 256, "disc_num_layers": 2}})
    shapes = {k: tuple(v.shape) for k, v in feats.discriminator.state_dict().items() if k.endswith("weight")}
    assert shapes["main.0.weight"] == (128, 256, 4) and shapes["main.11.weight"] == (1, 16, 4)
    x = torch.randn(2, 256, 212)
    w = torch.nn.Parameter(torch.ones(1))
    loss, log = feats(torch.tensor(0.5), x, x * w, 0, global_step=1, last_layer=w)
    assert loss.requires_grad and log["train/p_loss"] == 0
    d_loss, _ = feats(torch.tensor(0.5), x, x * w, 1, global_step=1)
    d_loss.backward()
    assert feats.discriminator.main[0].weight.grad is not None
    specs = instantiate_from_config({"target": "specvqgan.modules.losses.vqperceptual.VQLPAPSWithDiscriminator1dSpecs",
                                     "params": {**LOSS, "disc_in_channels": 80}})
    assert specs.discriminator(torch.randn(2, 1, 80, 848)).shape == (2, 1, 104)
    with pytest.raises(ValueError, match="perceptual_weight must be 0"):
        instantiate_from_config({"target": "specvqgan.modules.losses.vqperceptual.VQLPAPSWithDiscriminator1dFeats",
                                 "params": {"disc_start": 0, "perceptual_weight": 1.0}})


def test_vas_datasets_from_reference_params(reference_dir, tmp_path):
    """The reference data block (train.ConditionedSpectrogramDataModuleFromConfig + VAS targets) builds
    every split class from shared keys, on the shipped VAS samples."""
    split = tmp_path / "vas_valid.txt"
    split.write_text("dog/video_02754\ndrum/video_02480\n")
    root = f"{reference_dir}/{VAS}"
    cond = {"split_path": str(split)}
    for name in ("VASSpecsCondOnFeatsValidation", "VASSpecsCondOnClassValidation",
                 "VASSpecsCondOnFeatsAndClassValidation"):
        data = instantiate_from_config(OmegaConf.create({
            "target": "train.ConditionedSpectrogramDataModuleFromConfig",
            "params": {"batch_size": 2, "num_workers": 0, "spec_dir_path": root + "melspec_10s_22050hz", **SPECS,
                       "rgb_feats_dir_path": root + "feature_rgb_bninception_dim1024_21.5fps",
                       "flow_feats_dir_path": root + "feature_flow_bninception_dim1024_21.5fps",
                       "feat_depth": 2048, "feat_len": 215, "feat_crop_len": 212, "wrap": True,
                       "feat_sampler_cfg": {"target": "specvqgan.data.vas.ResampleFrames",
                                            "params": {"feat_sample_size": 5}},
                       "validation": {"target": f"specvqgan.data.vas.{name}",
                                      "params": {"specs_dataset_cfg": {"split_path": str(split)},
                                                 "condition_dataset_cfg": cond}}}}))
        data.setup()
        item = data.datasets["validation"][0]
        assert type(data.datasets["validation"]).__name__ == "WrappedDataset"
        assert item["image"].shape == (80, 848) and item["label"] == "dog"
        if "Feats" in name:
            assert item["feature"].shape == (5, 2048)


def test_fakes_folder_and_eval_transforms(tmp_path):
    """FakesFolder + the reference eval transform chain: (image + 1) / 2, standardize, float32."""
    mel = np.random.RandomState(0).rand(80, 848).astype(np.float32)
    (tmp_path / "dog").mkdir()
    np.save(tmp_path / "dog" / "video_1_sample_0.npy", mel)
    (tmp_path / "notes.txt").write_text("not a sample")
    ds = instantiate_from_config({"target": "evaluation.datasets.fakes.FakesFolder",
                                  "params": {"root": str(tmp_path), "extensions": ".npy"}})
    assert len(ds) == 1 and ds[0]["file_path_"].endswith("video_1_sample_0.npy")
    norm = instantiate_from_config({"target": "specvqgan.modules.losses.vggishish.transforms.StandardNormalizeAudio",
                                    "params": {"specs_dir": "./data/vggsound/melspec_10s_22050hz",
                                               "cache_path": str(tmp_path)}})
    stats = np.loadtxt(norm.stats_path)
    batch = {"image": torch.from_numpy(mel)[None] * 2 - 1}
    for t in ({"target": "evaluation.datasets.transforms.FromMinusOneOneToZeroOne"}, None,
              {"target": "evaluation.datasets.transforms.GetInputFromBatchByKey", "params": {"input_key": "image"}},
              {"target": "evaluation.datasets.transforms.ToFloat32"}):
        batch = norm(batch) if t is None else instantiate_from_config(t)(batch)
    expected = (mel.astype(np.float64) - stats[:, :1]) / stats[:, 1:]
    assert batch.dtype == torch.float32
    np.testing.assert_allclose(batch[0].numpy(), expected, rtol=1e-6, atol=1e-5)
    with pytest.raises(FileNotFoundError, match="train_means_stds_my_mels.txt"):
        instantiate_from_config({"target": "specvqgan.modules.losses.vggishish.transforms.StandardNormalizeAudio",
                                 "params": {"specs_dir": "./my_mels", "cache_path": str(tmp_path)}})


def test_features_and_class_transformer_from_reference_config(reference_dir):
    """A features + class transformer written as in the reference (misc.feats_class.FeatsClassStage,
    GPTFeatsClass, cond_stage_key [feature, target]) on the golden tiny codebook: the first stage
    reproduces the golden tokens and the class token changes the prediction."""
    golden = OmegaConf.load(reference_dir / "golden" / "transformer_tiny.yaml").constructor_params
    codebook = torch.load(reference_dir / "golden" / "codebook_tiny.pt")
    gpt = {**golden.transformer_config.params.GPT_config, "block_size": 478}  # 212 feats + class + 265 - 1
    cfg = OmegaConf.create({"target": "specvqgan.models.cond_transformer.Net2NetTransformer", "params": {
        **golden, "cond_stage_key": ["feature", "target"],
        "cond_stage_config": {"target": "specvqgan.modules.misc.feats_class.FeatsClassStage"},
        "transformer_config": {"target": "specvqgan.modules.transformer.mingpt.GPTFeatsClass", "params": {
            "feat_embedding_config": golden.transformer_config.params.feat_embedding_config,
            "token_embedding_config": {"target": "torch.nn.Embedding",
                                       "params": {"num_embeddings": 8, "embedding_dim": 64}},
            "GPT_config": gpt}}}})
    torch.manual_seed(0)
    model = instantiate_from_config(cfg).eval()
    model.first_stage_model.load_state_dict(codebook["state_dict"])
    feats = torch.load(reference_dir / "golden" / "transformer_tiny.pt")["feats"]  # (1, 2048, 212)
    batch = {"image": codebook["input"][0:1, 0], "feature": feats.permute(0, 2, 1), "target": torch.tensor([2])}
    x, c = model.get_xc(batch)
    assert set(c) == {"feature", "target"} and c["target"].shape == (1, 1) and torch.equal(c["feature"], feats)
    with torch.no_grad():
        logits, target = model(x, c)
        other, _ = model(x, {**c, "target": torch.tensor([[5]])})
    assert torch.equal(target, torch.load(reference_dir / "golden" / "transformer_tiny.pt")["tokens"])
    assert logits.shape == (1, 265, 128) and not torch.allclose(logits, other)


def test_reference_vocoder_path_falls_back_to_the_release_cache(tmp_path, monkeypatch):
    """The reference YAMLs' `train.VocoderMelGan` names ./vocoder/logs/vggsound/ (a folder of its repo):
    absent here, the melgan_vggsound release in the cache is used, or the error says how to fetch it."""
    monkeypatch.setenv("SPECVQGAN_CACHE", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="python -m specvqgan.download melgan_vggsound"):
        instantiate_from_config({"target": "train.VocoderMelGan", "params": {"ckpt_vocoder": "./vocoder/logs/vggsound/"}})


def test_codebook_loss_without_perceptual_ckpt_names_the_fix(tmp_path, monkeypatch):
    """The reference codebook configs set no LPAPS checkpoint (the reference downloaded one): here the cached
    vggishish16 release is used, and without it the one-line error says how to proceed."""
    monkeypatch.setenv("SPECVQGAN_CACHE", str(tmp_path))
    with pytest.raises(ConfigError, match=r"perceptual_weight: 0.*python -m specvqgan.download vggishish16"):
        instantiate_from_config({"target": "specvqgan.modules.losses.vqperceptual.VQLPAPSWithDiscriminator",
                                 "params": {"disc_start": 0, "disc_in_channels": 1, "perceptual_weight": 1.0}})


def test_lightning_1x_trainer_keys_are_mapped(monkeypatch):
    """`gpus` / `distributed_backend` / `resume_from_checkpoint` of the reference's lightning.trainer (and
    `--gpus`) -> Lightning 2 accelerator / devices / strategy; absent GPUs are a ConfigError with the fix."""
    from specvqgan.reference import translate_trainer_args

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert translate_trainer_args({"gpus": "0,1,2,3", "distributed_backend": "ddp", "sync_batchnorm": True,
                                   "resume_from_checkpoint": "x.ckpt"}) == {
        "accelerator": "gpu", "devices": [0, 1, 2, 3], "strategy": "ddp", "sync_batchnorm": True}
    assert translate_trainer_args({"gpus": "0,", "distributed_backend": "ddp"}) == {"accelerator": "gpu", "devices": [0]}
    assert translate_trainer_args({"gpus": None, "max_steps": 3}) == {"max_steps": 3}
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(ConfigError, match=r"gpus='0,' asks for GPU\(s\) \[0\].*lightning.trainer.gpus=null"):
        translate_trainer_args({"gpus": "0,"})


def test_setup_callback_writes_the_reference_run_layout(tmp_path):
    """train.SetupCallback: rank 0 creates the run folders and saves <now>-project.yaml and <now>-lightning.yaml."""
    from types import SimpleNamespace

    run = tmp_path / "logs" / "2021-06-06T19-42-53_vas_codebook"
    cb = instantiate_from_config({"target": "train.SetupCallback", "params": {
        "resume": "", "now": "2021-06-06T19-42-53", "logdir": str(run), "ckptdir": str(run / "checkpoints"),
        "cfgdir": str(run / "configs"), "config": {"model": {"target": "x"}},
        "lightning_config": {"trainer": {"gpus": "0,"}}}})
    cb.on_fit_start(SimpleNamespace(global_rank=1), None)
    assert not run.exists()
    cb.on_fit_start(SimpleNamespace(global_rank=0), None)
    assert (run / "checkpoints").is_dir()
    assert OmegaConf.load(run / "configs" / "2021-06-06T19-42-53-project.yaml").model.target == "x"
    assert OmegaConf.load(run / "configs" / "2021-06-06T19-42-53-lightning.yaml").lightning.trainer.gpus == "0,"

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from pytorch_lightning.utilities.model_helpers import is_overridden

from specvqgan.config import instantiate_from_config
from specvqgan.data.datamodule import DataModule

TOY_YAML = """
data:
  target: specvqgan.data.datamodule.DataModule
  params:
    batch_size: 2
    num_workers: 0
    train:
      target: specvqgan.data.toy.ToySpecsCondOnFeatsTrain
      params:
        data_root: {root}
        condition_dataset_cfg:
          feat_sampler_cfg: {{target: specvqgan.data.vas.ResampleFrames, params: {{feat_sample_size: 5}}}}
    validation:
      target: specvqgan.data.toy.ToySpecsCondOnFeatsValidation
      params:
        data_root: {root}
"""

# the `data:` block of the reference configs/vas_transformer.yaml, with the paths moved
REFERENCE_VAS_TRANSFORMER = """
data:
  target: train.ConditionedSpectrogramDataModuleFromConfig
  params:
    batch_size: 2
    num_workers: 0
    spec_dir_path: '{ref}/data/vas/features/*/melspec_10s_22050hz'
    sample_rate: 22050
    mel_num: 80
    spec_len: 860
    spec_crop_len: 848
    random_crop: False
    rgb_feats_dir_path: '{ref}/data/vas/features/*/feature_rgb_bninception_dim1024_21.5fps'
    flow_feats_dir_path: '{ref}/data/vas/features/*/feature_flow_bninception_dim1024_21.5fps'
    feat_depth: 2048
    feat_len: 215
    feat_crop_len: 212
    feat_sampler_cfg:
      target: specvqgan.data.vas.ResampleFrames
      params:
        feat_sample_size: 212
    train:
      target: specvqgan.data.vas.VASSpecsCondOnFeatsTrain
      params:
        specs_dataset_cfg:
          split_path: '{split}'
        condition_dataset_cfg:
          split_path: '{split}'
    validation:
      target: specvqgan.data.vas.VASSpecsCondOnFeatsValidation
      params:
        specs_dataset_cfg:
          split_path: '{split}'
        condition_dataset_cfg:
          split_path: '{split}'
"""

# the `data:` block of the reference configs/vggsound_codebook.yaml (null sub-configs), paths moved
REFERENCE_VGGSOUND_CODEBOOK = """
data:
  target: train.SpectrogramDataModuleFromConfig
  params:
    batch_size: 3
    num_workers: 0
    spec_dir_path: '{ref}/data/vggsound/melspec_10s_22050hz'
    sample_rate: 22050
    mel_num: 80
    spec_len: 860
    spec_crop_len: 848
    random_crop: False
    test:
      target: specvqgan.data.vggsound.VGGSoundSpecsTest
      params:
        specs_dataset_cfg:
"""


def test_datamodule_from_yaml(toy_root):
    cfg = OmegaConf.create(TOY_YAML.format(root=toy_root))
    dm = instantiate_from_config(cfg.data)
    assert isinstance(dm, DataModule) and dm.batch_size == 2
    assert is_overridden("train_dataloader", dm) and is_overridden("val_dataloader", dm)
    assert not is_overridden("test_dataloader", dm)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert tuple(batch["image"].shape) == (2, 80, 160) and tuple(batch["feature"].shape) == (2, 5, 12)
    assert batch["target"].dtype == torch.int64
    assert sum(len(b["image"]) for b in dm.val_dataloader()) == 2


def test_reference_transformer_data_block(reference_dir, vas):
    cfg = OmegaConf.create(REFERENCE_VAS_TRANSFORMER.format(ref=reference_dir, split=vas["split"]))
    dm = instantiate_from_config(cfg.data)
    dm.setup()
    batch = next(iter(dm.val_dataloader()))
    golden = torch.load(reference_dir / "golden/transformer_tiny.pt")["feats"]
    assert torch.equal(batch["feature"][:1].permute(0, 2, 1), golden)
    assert tuple(batch["image"].shape) == (2, 80, 848) and batch["label"] == ["dog", "drum"]


def test_reference_codebook_data_block(reference_dir):
    cfg = OmegaConf.create(REFERENCE_VGGSOUND_CODEBOOK.format(ref=reference_dir))
    dm = instantiate_from_config(cfg.data)
    with pytest.raises(FileNotFoundError, match="split list not found: data/vggsound_test.txt"):
        dm.setup()  # the reference default, relative to the working directory
    # the reference split list names 14512 clips, 12 are shipped: reported, not silently dropped
    specs_cfg = {"split_path": str(reference_dir / "data/vggsound_test.txt")}
    cfg.data.params.test.params.specs_dataset_cfg = specs_cfg
    with pytest.raises(FileNotFoundError, match="14500 of 14512 clips"):
        instantiate_from_config(cfg.data).setup()
    cfg.data.params.skip_missing = True  # passed on to every split
    dm = instantiate_from_config(cfg.data)
    dm.setup()
    batches = list(dm.test_dataloader())
    assert [tuple(b["image"].shape) for b in batches] == [(3, 80, 848)] * 4


class _TinyModel(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(12, 1)

    def training_step(self, batch, _):
        return self.lin(batch["feature"]).mean() ** 2 + 0 * batch["image"].mean()

    def validation_step(self, batch, _):
        self.log("val/loss", self.lin(batch["feature"]).mean() ** 2)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_lightning_fit_uses_the_loaders(toy_root, tmp_path):
    cfg = OmegaConf.create(TOY_YAML.format(root=toy_root))
    dm = instantiate_from_config(cfg.data)
    trainer = pl.Trainer(max_steps=2, limit_val_batches=1, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path)
    trainer.fit(_TinyModel(), datamodule=dm)
    assert trainer.global_step == 2 and "val/loss" in trainer.callback_metrics

"""VQModel training with manual optimization (generator + discriminator, Adam(0.5, 0.9)) on tiny mels."""
import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from specvqgan.models.vqgan import VQModel

pytestmark = pytest.mark.slow  # one ~20 s training run shared by the tests below

DDCONFIG = dict(double_z=False, z_channels=16, resolution=32, in_channels=1, out_ch=1, ch=32,
                ch_mult=[1, 1, 1, 1, 2], num_res_blocks=1, attn_resolutions=[2], dropout=0.0)
LOSS = {"target": "specvqgan.losses.vqperceptual.VQLPAPSWithDiscriminator",
        "params": dict(disc_start=6, disc_in_channels=1, disc_weight=0.8, codebook_weight=1.0,
                       min_adapt_weight=1.0, max_adapt_weight=1.0, perceptual_weight=0.0, disc_ndf=16)}


def toy_mels(n=8, frames=32, seed=0):
    """Mels in [-1, 1] made of a few horizontal harmonic bands with onsets: structured, learnable."""
    g = torch.Generator().manual_seed(seed)
    mels = torch.full((n, 80, frames), -1.0)
    for i in range(n):
        f0 = int(torch.randint(4, 20, (1,), generator=g))
        start = int(torch.randint(0, frames // 2, (1,), generator=g))
        for h in range(1, 4):
            if f0 * h < 80:
                mels[i, f0 * h - 1:f0 * h + 1, start:] = 1.0 - 0.4 * h
    return [{"image": m} for m in mels]


class ToyData(pl.LightningDataModule):
    """Holds ``batch_size`` so ``BaseModel.scaled_lr`` sees it, as with the project's DataModule."""

    def __init__(self, data, batch_size=4):
        super().__init__()
        self.data, self.batch_size = data, batch_size

    def train_dataloader(self):
        return DataLoader(self.data, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.data, batch_size=self.batch_size)


def rec_l1(model, data):
    model.eval()
    with torch.no_grad():
        x = model.get_input(torch.utils.data.default_collate(data), "image")
        return (model(x)[0] - x).abs().mean().item()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    pl.seed_everything(0)
    data = toy_mels()
    model = VQModel(DDCONFIG, LOSS, n_embed=16, embed_dim=16)
    model.base_learning_rate = 2.5e-4  # x batch 4 = 1e-3
    l1_start = rec_l1(model, data)
    disc_before = [p.detach().clone() for p in model.loss.discriminator.parameters()]
    logdir = tmp_path_factory.mktemp("vq")
    trainer = pl.Trainer(max_steps=2 * 40, accelerator="cpu", devices=1, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         check_val_every_n_epoch=5, default_root_dir=logdir,
                         logger=pl.loggers.TensorBoardLogger(logdir, name="", version="tb"))
    trainer.fit(model, datamodule=ToyData(data))
    return dict(model=model, trainer=trainer, data=data, l1_start=l1_start, disc_before=disc_before, logdir=logdir)


def test_training_lowers_reconstruction_loss(trained):
    l1_end = rec_l1(trained["model"], trained["data"])
    print(f"reconstruction L1: {trained['l1_start']:.4f} -> {l1_end:.4f}")
    assert l1_end < 0.6 * trained["l1_start"], (trained["l1_start"], l1_end)


def test_both_optimizers_step_and_disc_starts_late(trained):
    model, trainer = trained["model"], trained["trainer"]
    opts = model.optimizers()
    assert len(opts) == 2 and all(o.optimizer.defaults["betas"] == (0.5, 0.9) for o in opts)
    assert opts[0].optimizer.defaults["lr"] == pytest.approx(1e-3)
    assert trainer.global_step == 80 and model.batch_step == 40  # two optimizer steps per batch
    moved = any(not torch.equal(a, b) for a, b in zip(trained["disc_before"], model.loss.discriminator.parameters()))
    assert moved  # the discriminator trained after disc_start (step 6)
    metrics = trainer.callback_metrics
    for key in ("train/aeloss", "train/disc_loss", "train/rec_loss", "train/perplexity", "train/code_usage",
                "val/rec_loss", "val/aeloss", "val/perplexity", "val/code_usage"):
        assert key in metrics, key
    assert 0 < metrics["val/code_usage"] <= 1 and metrics["val/perplexity"] >= 1


def test_media_logged_to_tensorboard(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(trained["logdir"] / "tb"), size_guidance={"images": 0, "audio": 0}).Reload()
    tags = events.Tags()
    assert "val/inputs_0" in tags["images"] and "val/reconstructions_0" in tags["images"]
    assert "val/reconstructions_0" in tags["audio"]
    assert "val/code_hits" in tags["histograms"]

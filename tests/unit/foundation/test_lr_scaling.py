"""The paper's learning-rate rule: base_lr x batch size x devices x gradient accumulation."""
import pytorch_lightning as pl
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from specvqgan.checkpoint import CheckpointError, build_model as load_model, export as export_checkpoint
from specvqgan.models.base import BaseModel


class Tiny(BaseModel):
    def __init__(self, dim: int = 3):
        super().__init__()
        self.lin = torch.nn.Linear(dim, 1)
        self.seen_lr = None

    def training_step(self, batch, batch_idx):
        return self.lin(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        self.seen_lr = self.scaled_lr()
        return torch.optim.SGD(self.parameters(), lr=self.seen_lr)


class DM(pl.LightningDataModule):
    def __init__(self, batch_size):
        super().__init__()
        self.batch_size = batch_size

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.randn(16, 3)), batch_size=self.batch_size)


def fit(model, accumulate=1, **kw):
    trainer = pl.Trainer(max_steps=1, accumulate_grad_batches=accumulate, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(model, **kw)
    return model.seen_lr


def test_scaled_by_batch_and_accumulation():
    model = Tiny()
    model.base_learning_rate = 1e-3
    assert abs(fit(model, accumulate=2, datamodule=DM(4)) - 8e-3) < 1e-12
    model = Tiny()
    model.base_learning_rate = 1e-3
    loader = DataLoader(TensorDataset(torch.randn(16, 3)), batch_size=5)
    assert abs(fit(model, train_dataloaders=loader) - 5e-3) < 1e-12


def test_outside_a_trainer_is_the_base_rate():
    model = Tiny()
    model.base_learning_rate = 2e-4
    assert model.scaled_lr() == 2e-4


def test_export_and_load_self_describing_checkpoint(tmp_path):
    model = Tiny(dim=3)
    path = export_checkpoint(model, {"target": "torch.nn.Linear", "params": {"in_features": 3, "out_features": 1}},
                             tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="lin.weight"):  # Tiny's keys are lin.*: strict load refuses
        load_model(path)
    lin = torch.nn.Linear(3, 1)
    path = export_checkpoint(lin, {"target": "torch.nn.Linear", "params": {"in_features": 3, "out_features": 1}},
                             tmp_path / "lin.pt")
    again = load_model(path)
    assert torch.equal(again.weight, lin.weight)


def test_resume_rescales_the_restored_learning_rate(tmp_path):
    """A checkpoint from another setup (here batch 4 -> 2; the same holds for devices) resumes at the lr of
    the new setup, not at the one stored with the optimizer state."""
    from specvqgan.training import RescaleLR

    def trainer(steps):
        return pl.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                          enable_model_summary=False, accelerator="cpu", callbacks=[RescaleLR()])

    model = Tiny()
    model.base_learning_rate = 1e-3
    first = trainer(1)
    first.fit(model, datamodule=DM(4))
    first.save_checkpoint(tmp_path / "a.ckpt")
    assert first.optimizers[0].param_groups[0]["lr"] == 4e-3
    model = Tiny()
    model.base_learning_rate = 1e-3
    second = trainer(2)
    second.fit(model, datamodule=DM(2), ckpt_path=tmp_path / "a.ckpt", weights_only=False)
    assert second.global_step == 2 and second.optimizers[0].param_groups[0]["lr"] == 2e-3

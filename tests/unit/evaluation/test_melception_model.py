"""MelceptionClassifier: aux loss (fixed vs reference behaviour), stats, training lowers the loss, export."""
import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from evaluation.features import load_melception
from evaluation.model import MelceptionClassifier
from specvqgan.modules.classifiers.vggishish import compute_mel_stats


def _batch(n=8, t=80, seed=0):
    """Two separable classes: energy in the low vs the high mel bins; image in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 80, t, generator=g) * 0.3
    y = torch.arange(n) % 2
    x[y == 0, :40] += 0.6
    x[y == 1, 40:] += 0.6
    return {"image": 2 * x - 1, "target": y}


def _model(**kw):
    torch.manual_seed(0)
    m = MelceptionClassifier(num_classes=2, width=0.0625, **kw)
    m.set_stats(np.full(80, 0.5), np.full(80, 0.25))
    return m


@pytest.mark.parametrize("reference_aux_loss", [False, True])
def test_aux_loss(reference_aux_loss):
    m = _model(reference_aux_loss=reference_aux_loss).train()
    b = _batch()
    logits, aux = m(b["image"])
    loss, _ = m.loss((logits, aux), b["target"])
    ce = torch.nn.functional.cross_entropy
    want = ce(logits, b["target"]) + (0 if reference_aux_loss else 0.4 * ce(aux, b["target"]))
    torch.testing.assert_close(loss, want)
    loss.backward()
    aux_grad = m.model.AuxLogits.fc.weight.grad
    assert (aux_grad is None or aux_grad.abs().sum() == 0) == reference_aux_loss


def test_training_lowers_the_loss():
    m = _model(dropout=0.0).train()
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    b = _batch()
    losses = []
    for _ in range(8):
        loss, _ = m.loss(m(b["image"]), b["target"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


class _Data(pl.LightningDataModule):
    def __init__(self):
        super().__init__()
        b = _batch(8)
        self.items = [{"image": b["image"][i], "target": int(b["target"][i])} for i in range(8)]
        self.batch_size = 4

    def train_dataloader(self):
        return torch.utils.data.DataLoader(self.items, batch_size=4, shuffle=True)

    def val_dataloader(self):
        return torch.utils.data.DataLoader(self.items, batch_size=4)


def test_fit_computes_stats_and_exports(tmp_path):
    torch.manual_seed(0)
    m = MelceptionClassifier(num_classes=2, width=0.0625)
    m.base_learning_rate = 1e-4
    assert not m.has_stats
    with pytest.raises(RuntimeError, match="no mel stats"):
        m(_batch()["image"])
    dm = _Data()
    trainer = pl.Trainer(max_steps=2, limit_val_batches=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(m, datamodule=dm)
    means, stds = compute_mel_stats((it["image"] + 1) / 2 for it in dm.items)
    assert np.allclose(m.train_means.numpy(), means) and np.allclose(m.train_stds.numpy(), stds)
    assert "val/loss" in trainer.callback_metrics and "val/acc" in trainer.callback_metrics
    # Lightning checkpoint and the authors' layout both load for evaluation, with the stats
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    m.export_reference(tmp_path / "melception.pt")
    x01 = (_batch(2)["image"] + 1) / 2
    m.eval()
    with torch.no_grad():
        want = m.model.features(m.standardize(2 * x01 - 1))
    for path in (tmp_path / "last.ckpt", tmp_path / "melception.pt"):
        scorer = load_melception(path)
        assert np.allclose(scorer.stats[:, 0].numpy(), means)
        torch.testing.assert_close(scorer(x01)["logits"], want["logits"], atol=1e-5, rtol=1e-5)

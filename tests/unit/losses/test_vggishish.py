"""VGGish-ish classifier: layout helpers, mel stats, and its LightningModule (stats + training)."""
import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from specvqgan.models.vggishish import VGGishishClassifier
from specvqgan.audio import load_mel_stats_txt
from specvqgan.modules.classifiers.vggishish import VGGishish, compute_mel_stats, infer_conv_layers

TINY = dict(conv_layers=[8, 'MP', 16, 'MP', 16], hidden_dim=32, num_classes=3)


class BandDataset(torch.utils.data.Dataset):
    """Class c = a bright band at mel rows 20c..20c+8 over noise; items as the spec datasets give them."""

    def __init__(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.targets = torch.arange(n) % 3
        mels = torch.rand(n, 80, 32, generator=g) * 0.4
        for i, c in enumerate(self.targets):
            mels[i, 20 * c:20 * c + 8] += 0.5
        self.images = 2 * mels - 1

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return {'image': self.images[i], 'target': int(self.targets[i]), 'label': str(int(self.targets[i]))}


class BandData(pl.LightningDataModule):
    def __init__(self, batch_size=8):
        super().__init__()
        self.batch_size = batch_size
        self.train, self.valid = BandDataset(48, 0), BandDataset(12, 1)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(self.train, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return torch.utils.data.DataLoader(self.valid, batch_size=self.batch_size)


class LossRecorder(pl.Callback):
    def __init__(self):
        self.losses = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.losses.append(float(outputs['loss']))


def _trainer(tmp_path, max_epochs, callbacks=(), checkpoint=False):
    return pl.Trainer(max_epochs=max_epochs, accelerator='cpu', devices=1, logger=False,
                      enable_checkpointing=checkpoint, enable_progress_bar=False, enable_model_summary=False,
                      num_sanity_val_steps=1, default_root_dir=tmp_path, callbacks=list(callbacks))


def test_vggishish_shapes_and_bad_layouts():
    model = VGGishish(**TINY)
    assert model(torch.zeros(2, 80, 48)).shape == (2, 3)
    assert model.classifier[0].in_features == 16 * 5 * 10
    with pytest.raises(ValueError, match="positive ints or 'MP'"):
        VGGishish(conv_layers=[8, 'M', 16])
    with pytest.raises(ValueError, match='no conv layer'):
        VGGishish(conv_layers=['MP'])
    with pytest.raises(ValueError, match=r'\(B, F, T\)'):
        model(torch.zeros(2, 1, 80, 48))


@pytest.mark.parametrize('layers,bn', [(['MP', 4, 4, 'MP', 'MP', 8, 'MP', 8], False), ([4, 'MP', 8, 8], True)])
def test_infer_conv_layers_round_trip(layers, bn):
    sd = VGGishish(conv_layers=layers, use_bn=bn, num_classes=2, hidden_dim=4).state_dict()
    assert infer_conv_layers(sd) == (layers, bn)
    with pytest.raises(ValueError, match='no conv weights'):
        infer_conv_layers({'classifier.0.weight': torch.zeros(2, 2)})


def test_mel_stats_are_averages_of_per_clip_stats(tmp_path):
    rng = np.random.default_rng(0)
    clips = [rng.uniform(0, 1, (80, 20 + 5 * i)) for i in range(4)]
    means, stds = compute_mel_stats(clips)
    np.testing.assert_allclose(means, np.mean([c.mean(1) for c in clips], 0))
    np.testing.assert_allclose(stds, np.mean([c.std(1) for c in clips], 0))
    # batched input gives the same as per-clip input
    b_means, b_stds = compute_mel_stats([np.stack([c[:, :20] for c in clips])])
    np.testing.assert_allclose(b_stds, np.mean([c[:, :20].std(1) for c in clips], 0))
    with pytest.raises(ValueError, match='no spectrograms'):
        compute_mel_stats([])
    bad = tmp_path / 'stats.txt'
    np.savetxt(bad, np.zeros((80, 3)))
    with pytest.raises(ValueError, match='stats.txt: expected F rows'):
        load_mel_stats_txt(bad)


def test_forward_needs_stats():
    model = VGGishishClassifier(**TINY)
    with pytest.raises(RuntimeError, match='no mel stats'):
        model(torch.zeros(1, 80, 32))
    with pytest.raises(KeyError, match='meta_path'):
        model.training_step({'image': torch.zeros(1, 80, 32)}, 0)


def test_fit_computes_stats_learns_and_checkpoint_restores_them(tmp_path, monkeypatch):
    torch.manual_seed(0)
    data = BandData()
    model = VGGishishClassifier(**TINY)
    model.base_learning_rate = 2e-4  # x batch 8 = 1.6e-3
    rec = LossRecorder()
    trainer = _trainer(tmp_path, max_epochs=8, callbacks=[rec])
    trainer.fit(model, datamodule=data)
    # stats of the training split, computed the reference way on [0, 1] mels
    means, stds = compute_mel_stats([(data.train.images[i] + 1) / 2 for i in range(len(data.train))])
    torch.testing.assert_close(model.train_means, torch.from_numpy(means))
    torch.testing.assert_close(model.train_stds, torch.from_numpy(stds))
    # training lowers the loss (first vs last epoch, 6 steps each)
    assert np.mean(rec.losses[-6:]) < 0.5 * np.mean(rec.losses[:6]), rec.losses
    assert trainer.callback_metrics['val/acc'] > 0.9
    # the checkpoint carries the stats: a fresh module gets them back by a strict load
    ckpt = tmp_path / 'vggishish.ckpt'
    trainer.save_checkpoint(ckpt)
    sd = torch.load(ckpt, weights_only=False)['state_dict']
    assert set(sd) == {f'model.{k}' for k in model.model.state_dict()} | {'train_means', 'train_stds'}
    fresh = VGGishishClassifier(**TINY)
    fresh.load_state_dict(sd, strict=True)
    assert fresh.has_stats and torch.equal(fresh.train_stds, model.train_stds)
    x = data.valid.images[:4]
    torch.testing.assert_close(fresh.eval()(x), model.eval()(x))
    # resuming restores them instead of recomputing
    monkeypatch.setattr(VGGishishClassifier, 'compute_stats', lambda *a: pytest.fail('stats recomputed'))
    resumed = VGGishishClassifier(**TINY)
    _trainer(tmp_path, max_epochs=9).fit(resumed, datamodule=data, ckpt_path=ckpt)
    assert torch.equal(resumed.train_means, model.train_means)


def test_stats_path_gives_reference_stats(tmp_path, reference_dir):
    stats = np.asarray(torch.load(reference_dir / 'golden' / 'melception.pt', weights_only=True)['train_means_stds'])
    f = tmp_path / 'train_means_stds_melspec_10s_22050hz.txt'
    np.savetxt(f, stats, fmt='%0.8f')
    model = VGGishishClassifier(**TINY, stats_path=str(f))
    np.testing.assert_allclose(model.train_means.numpy(), stats[:, 0], rtol=1e-6)
    x = torch.rand(1, 80, 4) * 2 - 1
    expected = ((x + 1) / 2 - torch.from_numpy(stats[:, 0]).float()[:, None]) / torch.from_numpy(stats[:, 1]).float()[:, None]
    torch.testing.assert_close(model.standardize(x), expected)

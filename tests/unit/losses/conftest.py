"""Fixtures for the loss tests: tiny VGGish-ish classifiers (random weights, known stats) and mels."""
import numpy as np
import pytest
import torch

from specvqgan.models.vggishish import VGGishishClassifier

#: 5 conv blocks (so LPAPS has 5 scales) on a small budget.
TINY_CONV = [8, 'MP', 8, 'MP', 16, 'MP', 16, 'MP', 16]


def _tiny_classifier(seed: int = 0, n_mels: int = 80, num_classes: int = 3) -> VGGishishClassifier:
    torch.manual_seed(seed)
    model = VGGishishClassifier(conv_layers=TINY_CONV, num_classes=num_classes, hidden_dim=16, n_mels=n_mels)
    rng = np.random.default_rng(seed)
    model.set_stats(rng.uniform(0.2, 0.6, n_mels), rng.uniform(0.05, 0.2, n_mels))
    return model


def _mels(b: int = 2, t: int = 64, seed: int = 0) -> torch.Tensor:
    """(b, 1, 80, t) mels in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 1, 80, t, generator=g) * 2 - 1


@pytest.fixture(scope='session')
def tiny_classifier():
    """Factory: tiny_classifier(seed=0, n_mels=80, num_classes=3) -> VGGishishClassifier with stats."""
    return _tiny_classifier


@pytest.fixture(scope='session')
def make_mels():
    """Factory: make_mels(b=2, t=64, seed=0) -> (b, 1, 80, t) in [-1, 1]."""
    return _mels


@pytest.fixture(scope='session')
def classifier_ckpt(tmp_path_factory):
    """(path, model): a Lightning-layout checkpoint (`{'state_dict': ...}`) of a tiny classifier."""
    path = tmp_path_factory.mktemp('vggishish') / 'tiny.ckpt'
    model = _tiny_classifier()
    torch.save({'state_dict': model.state_dict(), 'epoch': 0}, path)
    return path, model

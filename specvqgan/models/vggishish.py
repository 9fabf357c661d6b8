"""Training the VGGish-ish spectrogram classifier (the LPAPS feature extractor; paper Sec. 3.1).

`VGGishishClassifier` wraps `specvqgan.modules.classifiers.vggishish.VGGishish` (keys `model.*`) and
keeps the per-mel-bin standardization stats of its training split as buffers `train_means`,
`train_stds` (F,) (`specvqgan.models.mel_stats.MelStatsMixin`), so the checkpoint is all LPAPS needs
(`LPAPS(ckpt_path=...)`). The stats are computed from the training dataset at the start of fit (unless
given by `stats_path` or restored from a checkpoint), the way the reference `StandardNormalizeAudio` did.
Optimizer: Adam (reference: lr 3e-4, betas (0.9, 0.999), no weight decay); early stopping on val/loss
is configured in the YAML.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from specvqgan.models.base import BaseModel
from specvqgan.models.mel_stats import MelClassifierMixin
from specvqgan.modules.classifiers.vggishish import VGG16_CONV_LAYERS, VGGishish


class VGGishishClassifier(MelClassifierMixin, BaseModel):
    """LightningModule: standardized mel -> VGGishish -> class logits, cross-entropy training.

    Args:
        conv_layers, use_bn, num_classes, hidden_dim, pool_size: VGGishish layout (paper: VGG16 list,
            no BN, 309 classes, 4096, (5, 10)).
        n_mels: mel bins (length of the stats).
        input_key: batch key of the (B, F, T) mel in [-1, 1] (datasets give 'image').
        target_key: batch key of the int class targets.
        betas, weight_decay: Adam settings. The learning rate is `scaled_lr()` (base_learning_rate x batch
            x devices x accumulation).
        stats_path: reference 80x2 `mean std` text file to use instead of computing the stats.
        stats_batch_size: batch size of the one pass over the training set that computes the stats.
    """

    log_top5 = True

    def __init__(self, conv_layers: Sequence = VGG16_CONV_LAYERS, use_bn: bool = False, num_classes: int = 309,
                 hidden_dim: int = 4096, pool_size: Sequence[int] = (5, 10), n_mels: int = 80,
                 input_key: str = 'image', target_key: str = 'target', betas: Sequence[float] = (0.9, 0.999),
                 weight_decay: float = 0.0, stats_path: str | None = None, stats_batch_size: int = 32):
        super().__init__()
        self.model = VGGishish(list(conv_layers), use_bn, num_classes, hidden_dim, tuple(pool_size))
        self.input_key, self.target_key = input_key, target_key
        self.betas, self.weight_decay = tuple(betas), weight_decay
        self.stats_batch_size = stats_batch_size
        self.num_classes = num_classes
        self._init_mel_stats(n_mels, stats_path)  # buffers train_means/train_stds, read by LPAPS

    # ---- model ------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (Tensor): (B, F, T) mel in [-1, 1] -> logits (B, num_classes)."""
        return self.model(self.standardize(x.float()))

    def _step(self, batch: dict, split: str) -> torch.Tensor:
        x, y = self._batch_xy(batch, split)
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self._log_classification(split, loss, logits, y)
        return loss

"""Training Melception, the classifier behind FID/KID/IS/MKL (paper section 5: InceptionV3 trained
on VGGSound mels, Adam 3e-4, batch 48, early stopping on the validation loss).

`MelceptionClassifier` wraps :class:`specvqgan.modules.classifiers.melception.Melception` (keys ``model.*``, so
``model.<reference key>``) and keeps the per-mel-bin standardization stats of its training split as
buffers ``train_means``/``train_stds`` (F,) (:class:`specvqgan.models.mel_stats.MelStatsMixin`), so the checkpoint is all :func:`evaluation.features.
load_melception` needs. The stats are computed at the start of fit from the training dataset (as the
reference ``StandardNormalizeAudio``: average of per-clip per-bin means and stds) unless given by
``stats_path`` or restored from a checkpoint.

Aux loss: InceptionV3's recipe is ``CE(logits) + 0.4 CE(aux_logits)``. The reference training loop
computed that sum and then overwrote it with ``CE(logits)``, so its auxiliary head never trained; we
train it (``aux_weight``), and ``reference_aux_loss=True`` restores the reference behaviour.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from evaluation.features import export_reference_checkpoint
from specvqgan.modules.classifiers.melception import Melception
from specvqgan.models.base import BaseModel
from specvqgan.models.mel_stats import MelClassifierMixin



class MelceptionClassifier(MelClassifierMixin, BaseModel):
    """LightningModule: (B, F, T) mel in [-1, 1] -> standardize -> Melception -> logits; cross-entropy.

    Args:
        num_classes: classes (309 for VGGSound, 8 for VAS/toy).
        width: Melception channel multiplier (1.0 = paper; small values for the toy data).
        aux_logits: build and train the auxiliary head (the released checkpoint has it).
        aux_weight: weight of the auxiliary cross-entropy (0.4, InceptionV3).
        reference_aux_loss: reproduce the reference bug (aux loss computed, then discarded).
        dropout: dropout before ``fc``.
        n_mels: mel bins (length of the stats).
        input_key / target_key: batch keys of the mel (datasets give 'image') and the int class.
        betas, weight_decay: Adam settings; lr = ``scaled_lr()`` (base_learning_rate x batch x devices x
            accumulation; base 6.25e-6 x 48 = the paper's 3e-4).
        stats_path: an 80x2 ``mean std`` text file to use instead of computing the stats.
        stats_batch_size: batch size of the one pass over the training set that computes the stats.
    """

    def __init__(self, num_classes: int = 309, width: float = 1.0, aux_logits: bool = True,
                 aux_weight: float = 0.4, reference_aux_loss: bool = False, dropout: float = 0.5,
                 n_mels: int = 80, input_key: str = "image", target_key: str = "target",
                 betas: Sequence[float] = (0.9, 0.999), weight_decay: float = 0.0,
                 stats_path: str | None = None, stats_batch_size: int = 32) -> None:
        super().__init__()
        self.model = Melception(num_classes=num_classes, aux_logits=aux_logits, dropout=dropout, width=width)
        self.num_classes = num_classes
        self.aux_weight, self.reference_aux_loss = float(aux_weight), bool(reference_aux_loss)
        self.input_key, self.target_key = input_key, target_key
        self.betas, self.weight_decay = tuple(betas), float(weight_decay)
        self.stats_batch_size = stats_batch_size
        self._init_mel_stats(n_mels, stats_path)

    # ---- model ------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor):
        """x (B, F, T) mel in [-1, 1] -> logits (B, C); in training with aux: (logits, aux_logits)."""
        return self.model(self.standardize(x))

    def loss(self, out, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits or (logits, aux), targets) -> (loss, logits)."""
        logits, aux = out if isinstance(out, tuple) else (out, None)
        loss = F.cross_entropy(logits, y)
        if aux is not None and not self.reference_aux_loss:
            loss = loss + self.aux_weight * F.cross_entropy(aux, y)
        return loss, logits

    def _step(self, batch: dict, split: str) -> torch.Tensor:
        x, y = self._batch_xy(batch, split)
        loss, logits = self.loss(self(x), y)
        self._log_classification(split, loss, logits, y)
        return loss

    def export_reference(self, path: str | Path) -> Path:
        """Write ``{'model': Melception state_dict, 'train_means_stds': (F, 2)}`` (the authors' layout)."""
        stats = torch.stack([self.train_means, self.train_stds], 1).cpu().numpy() if self.has_stats else None
        return export_reference_checkpoint(self.model, stats, path)

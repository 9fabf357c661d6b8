"""Melception: InceptionV3 adapted to mel spectrograms (paper section 5, "Evaluation metrics").

The network is torchvision's ``Inception3`` (same module names, so the authors' released checkpoint
``melception-21-05-10T09-28-40.pt`` loads with ``strict=True``) with three changes made by the
reference implementation:

* ``Conv2d_1a_3x3`` takes 1 input channel (a mel spectrogram) instead of RGB;
* ``maxpool1``/``maxpool2`` are identities (a mel is only 80 bins high);
* 309 output classes (VGGSound) by default.

For an (80, 848) mel the feature maps are (32, 39, 423) after ``Conv2d_1a_3x3``, (192, 35, 419) after
``Conv2d_4a_3x3``, (768, 17, 209) after ``Mixed_6e`` and (2048, 8, 104) after ``Mixed_7c``.

``width`` < 1 scales every channel count (a "debug"/toy model); ``width=1`` is the paper model.
BatchNorm eps is 0.001 as in torchvision.
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Melception", "BasicConv2d"]


class BasicConv2d(nn.Module):
    """conv (no bias) -> BatchNorm(eps=1e-3) -> ReLU. Keys: ``conv.weight``, ``bn.*``."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


def _avg3(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)


class InceptionA(nn.Module):
    """1x1 | 1x1->5x5 | 1x1->3x3->3x3 | avgpool->1x1 (Mixed_5b..5d)."""

    def __init__(self, in_channels: int, pool_features: int, w) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, w(64), kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, w(48), kernel_size=1)
        self.branch5x5_2 = BasicConv2d(w(48), w(64), kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, w(64), kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(w(64), w(96), kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(w(96), w(96), kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)
        self.out_channels = 2 * w(64) + w(96) + pool_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_avg3(x))
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):
    """Grid reduction (stride 2): 3x3 | 1x1->3x3->3x3 | maxpool (Mixed_6a)."""

    def __init__(self, in_channels: int, w) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, w(384), kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, w(64), kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(w(64), w(96), kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(w(96), w(96), kernel_size=3, stride=2)
        self.out_channels = w(384) + w(96) + in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, bd, bp], 1)


class InceptionC(nn.Module):
    """Factorised 7x7 convolutions (Mixed_6b..6e); ``c7`` is the bottleneck width."""

    def __init__(self, in_channels: int, c7: int, w) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, w(192), kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, w(192), kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, w(192), kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, w(192), kernel_size=1)
        self.out_channels = 4 * w(192)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = layer(bd)
        bp = self.branch_pool(_avg3(x))
        return torch.cat([b1, b7, bd, bp], 1)


class InceptionD(nn.Module):
    """Grid reduction (stride 2): 1x1->3x3 | 1x1->1x7->7x1->3x3 | maxpool (Mixed_7a)."""

    def __init__(self, in_channels: int, w) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, w(192), kernel_size=1)
        self.branch3x3_2 = BasicConv2d(w(192), w(320), kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, w(192), kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(w(192), w(192), kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(w(192), w(192), kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(w(192), w(192), kernel_size=3, stride=2)
        self.out_channels = w(320) + w(192) + in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = layer(b7)
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b7, bp], 1)


class InceptionE(nn.Module):
    """Expanded filter bank with split 1x3/3x1 outputs (Mixed_7b, 7c)."""

    def __init__(self, in_channels: int, w) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, w(320), kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, w(384), kernel_size=1)
        self.branch3x3_2a = BasicConv2d(w(384), w(384), kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(w(384), w(384), kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, w(448), kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(w(448), w(384), kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(w(384), w(384), kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(w(384), w(384), kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, w(192), kernel_size=1)
        self.out_channels = w(320) + 4 * w(384) + w(192)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        bp = self.branch_pool(_avg3(x))
        return torch.cat([b1, b3, bd, bp], 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier on the ``Mixed_6e`` output (training only): avgpool 5/3 -> 1x1 -> 5x5 -> fc."""

    def __init__(self, in_channels: int, num_classes: int, w) -> None:
        super().__init__()
        self.conv0 = BasicConv2d(in_channels, w(128), kernel_size=1)
        self.conv1 = BasicConv2d(w(128), w(768), kernel_size=5)
        self.conv1.stddev = 0.01
        self.fc = nn.Linear(w(768), num_classes)
        self.fc.stddev = 0.001

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) with H, W >= 17 -> logits (B, num_classes)."""
        x = F.avg_pool2d(x, kernel_size=5, stride=3)
        x = self.conv1(self.conv0(x))
        x = F.adaptive_avg_pool2d(x, (1, 1))
        return self.fc(torch.flatten(x, 1))


class Melception(nn.Module):
    """InceptionV3 for (B, 80, T) mels (T >= 80 or so; 848 for 10 s clips).

    Args:
        num_classes: classifier outputs (309 VGGSound classes in the paper).
        aux_logits: build ``AuxLogits`` (present in the released checkpoint; used only in training).
        dropout: dropout before ``fc`` (0.5 as torchvision).
        width: channel multiplier; 1.0 is the paper model (2048-d pool), < 1 a small debug/toy model.
        init_weights: torchvision's init (truncated normal, std 0.1; BN weight 1, bias 0).
    """

    def __init__(self, num_classes: int = 309, aux_logits: bool = True, dropout: float = 0.5,
                 width: float = 1.0, init_weights: bool = True) -> None:
        super().__init__()
        if width <= 0:
            raise ValueError(f"Melception width must be > 0, got {width}")

        def w(c: int) -> int:
            return max(1, int(round(c * width)))

        self.num_classes = num_classes
        self.width = width
        self.aux_logits = aux_logits
        self.Conv2d_1a_3x3 = BasicConv2d(1, w(32), kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(w(32), w(32), kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(w(32), w(64), kernel_size=3, padding=1)
        self.maxpool1 = nn.Identity()
        self.Conv2d_3b_1x1 = BasicConv2d(w(64), w(80), kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(w(80), w(192), kernel_size=3)
        self.maxpool2 = nn.Identity()
        self.Mixed_5b = InceptionA(w(192), w(32), w)
        self.Mixed_5c = InceptionA(self.Mixed_5b.out_channels, w(64), w)
        self.Mixed_5d = InceptionA(self.Mixed_5c.out_channels, w(64), w)
        self.Mixed_6a = InceptionB(self.Mixed_5d.out_channels, w)
        self.Mixed_6b = InceptionC(self.Mixed_6a.out_channels, w(128), w)
        self.Mixed_6c = InceptionC(self.Mixed_6b.out_channels, w(160), w)
        self.Mixed_6d = InceptionC(self.Mixed_6c.out_channels, w(160), w)
        self.Mixed_6e = InceptionC(self.Mixed_6d.out_channels, w(192), w)
        self.AuxLogits = InceptionAux(self.Mixed_6e.out_channels, num_classes, w) if aux_logits else None
        self.Mixed_7a = InceptionD(self.Mixed_6e.out_channels, w)
        self.Mixed_7b = InceptionE(self.Mixed_7a.out_channels, w)
        self.Mixed_7c = InceptionE(self.Mixed_7b.out_channels, w)
        self.pool_dim = self.Mixed_7c.out_channels
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(self.pool_dim, num_classes)
        if init_weights:
            self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """torchvision's Inception3 init: trunc-normal(std=m.stddev or 0.1, +-2 std) for conv/fc."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                std = float(getattr(m, "stddev", 0.1))
                nn.init.trunc_normal_(m.weight, mean=0.0, std=std, a=-2 * std, b=2 * std)
                if isinstance(m, nn.Linear):
                    nn.init.zeros_(m.bias)  # torchvision leaves fc.bias at its default; zero is tidier
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _trunk(self, x: torch.Tensor):
        """x (B, 80, T) -> (Mixed_6e map (B, 768, 17, T'), Mixed_7c map (B, 2048, 8, T''))."""
        if x.dim() != 3:
            raise ValueError(f"Melception expects mels of shape (B, n_mels, T), got {tuple(x.shape)}")
        x = x.unsqueeze(1)
        for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
                     "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a",
                     "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
            x = getattr(self, name)(x)
        mid = x
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))
        return mid, x

    def features(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Evaluation outputs of standardized mels.

        Args:
            x: (B, 80, T) float32 mels, standardized per mel bin (see ``evaluation.features``).
        Returns:
            dict with ``pool`` (B, pool_dim=2048): avgpool -> dropout -> flatten (FID/KID);
            ``logits_unbiased`` (B, num_classes) = pool @ fc.weight.T (IS);
            ``logits`` (B, num_classes) = logits_unbiased + fc.bias (MKL).
        """
        _, x = self._trunk(x)
        pool = torch.flatten(self.dropout(self.avgpool(x)), 1)
        logits_unbiased = pool.mm(self.fc.weight.T)
        logits = logits_unbiased + self.fc.bias.unsqueeze(0)
        return {"logits": logits, "logits_unbiased": logits_unbiased, "pool": pool}

    def forward(self, x: torch.Tensor):
        """x (B, 80, T) -> logits (B, num_classes); in training with ``aux_logits`` also the aux logits."""
        mid, x = self._trunk(x)
        logits = self.fc(torch.flatten(self.dropout(self.avgpool(x)), 1))
        if self.training and self.AuxLogits is not None:
            return logits, self.AuxLogits(mid)
        return logits

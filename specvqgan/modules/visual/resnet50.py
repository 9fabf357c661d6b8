"""ResNet-50 (He et al. 2016) with torchvision's exact module names, for the paper's 2048-d RGB features.

The paper (section 4, "ResNet-50 features") conditions the transformer on the global-average-pooled output
of an ImageNet ResNet-50 (torchvision ``resnet50(pretrained=True)`` with ``fc = Identity`` in the reference
``feature_extraction/demo_utils.py``). torchvision is not usable here, so the network is written out;
:meth:`ResNet50.state_dict` has exactly torchvision's 320 keys and shapes (``conv1``, ``bn1``,
``layer1..4.<i>.{conv,bn}{1,2,3}``, ``layer<k>.0.downsample.{0,1}``, ``fc``), so the official ImageNet
file (``resnet50-19c8e357.pth`` or ``resnet50-0676ba61.pth``) loads with ``strict=True`` by path
(:func:`feature_extraction.weights.load_resnet50`); nothing is ever downloaded.

``fc`` is kept (1000-way ImageNet classifier) so the official file loads unchanged; :meth:`ResNet50.forward`
returns its logits like torchvision, :meth:`ResNet50.features` returns the 2048-d pooled vector that the
extractor stores (the reference's ``fc = Identity`` output).
"""
from __future__ import annotations

import torch
from torch import nn

BLOCKS = (3, 4, 6, 3)     # bottlenecks per stage (ResNet-50)
WIDTHS = (64, 128, 256, 512)
EXPANSION = 4
FEAT_DIM = 2048
N_PARAMS = 25_557_032     # torchvision resnet50: sum of parameter numel (buffers excluded)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride here, torchvision "ResNet v1.5") -> 1x1 (x4 channels) + identity/projection."""

    def __init__(self, in_ch: int, width: int, stride: int = 1):
        super().__init__()
        out_ch = width * EXPANSION
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet50(nn.Module):
    """ResNet-50 with torchvision's state-dict layout.

    Args:
        num_classes: size of ``fc`` (1000 for the ImageNet file).
        seed: if given, the random initialisation (torchvision's: Kaiming-normal fan-out convs, BN weight 1
            and bias 0, default Linear) is drawn from this seed without touching the global RNG, so
            "random weights" runs are reproducible.
    """

    def __init__(self, num_classes: int = 1000, seed: int | None = None):
        super().__init__()
        with torch.random.fork_rng(enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            self._build(num_classes)
            self._init_weights()

    def _build(self, num_classes: int) -> None:
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_ch = 64
        for i, (n, width) in enumerate(zip(BLOCKS, WIDTHS)):
            blocks = []
            for b in range(n):
                blocks.append(Bottleneck(in_ch, width, 2 if i > 0 and b == 0 else 1))
                in_ch = width * EXPANSION
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(FEAT_DIM, num_classes)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                m.reset_parameters()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) ImageNet-normalised RGB -> (B, 2048) global-average-pooled (post-ReLU, >= 0)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, num_classes) logits (torchvision's ``resnet50`` forward)."""
        return self.fc(self.features(x))

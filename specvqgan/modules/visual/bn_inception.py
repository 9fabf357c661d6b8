"""BN-Inception (Ioffe & Szegedy 2015) in the TSN layout, for the paper's RGB + optical-flow features.

The paper's default visual condition (section 4) is the RegNet recipe (Chen et al. 2020): a TSN
(Wang et al. 2016) BN-Inception with ImageNet weights (``bn_inception-9f5701afb96c8044.pth`` from
tsn-pytorch's model zoo) gives a 1024-d global-average-pooled vector per frame for RGB, and a second copy
whose first convolution is averaged over its 3 input channels and repeated for 2 flow channels (TSN's
``_construct_flow_model``; the flow stream is *initialised from ImageNet*, not trained on flow) gives
1024-d per flow frame. RGB 1024 ++ flow 1024 = the 2048-d condition.

Module names follow the Caffe prototxt that tsn-pytorch builds from ``bn_inception.yaml`` and that Cadene's
``pretrainedmodels.bninception`` writes out (``conv1_7x7_s2``, ``conv1_7x7_s2_bn``, ``inception_3a_1x1``,
``inception_3a_double_3x3_2_bn``, ``inception_5b_pool_proj``, ..., ``last_linear``): every convolution
has a bias, every BN is a standard ``BatchNorm2d`` (eps 1e-5), all poolings use Caffe's ``ceil_mode``.
:func:`feature_extraction.weights.load_bninception_state_dict` reads either release: the TSN file stores BN tensors as ``(1, C)`` and
names the classifier ``fc`` (converted here), Cadene's file already matches; ``module.``/``base_model.``
prefixes of TSN training checkpoints are dropped.

Input (both releases, Caffe convention): **BGR** in [0, 255] minus ``[104, 117, 128]``, std 1, 224 x 224
(RegNet: frames resized to 340 x 256, then to 224 x 224; no crop). Flow: x/y displacements clipped to
+-20, mapped to [0, 255] and minus 128 (see :mod:`feature_extraction.flow`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FEAT_DIM = 1024
BGR_MEAN = (104.0, 117.0, 128.0)     # TSN input_mean for BNInception (RGB modality), channel order B, G, R
FLOW_MEAN = 128.0                    # TSN input_mean for the Flow modality

# Inception modules: (name, in_ch, 1x1, (3x3 reduce, 3x3), (double reduce, double_1, double_2), pool, proj)
# 1x1 = 0: no 1x1 branch; proj = 0: the pool output is concatenated as is (the stride-2 modules 3c, 4e,
# whose 3x3 / double_3x3_2 / max pool have stride 2). Channels from bn_inception.yaml.
INCEPTION = (
    ("3a", 192, 64, (64, 64), (64, 96, 96), "avg", 32),
    ("3b", 256, 64, (64, 96), (64, 96, 96), "avg", 64),
    ("3c", 320, 0, (128, 160), (64, 96, 96), "max", 0),
    ("4a", 576, 224, (64, 96), (96, 128, 128), "avg", 128),
    ("4b", 576, 192, (96, 128), (96, 128, 128), "avg", 128),
    ("4c", 576, 160, (128, 160), (128, 160, 160), "avg", 128),
    ("4d", 608, 96, (128, 192), (160, 192, 192), "avg", 128),
    ("4e", 608, 0, (128, 192), (192, 256, 256), "max", 0),
    ("5a", 1056, 352, (192, 320), (160, 224, 224), "avg", 128),
    ("5b", 1024, 352, (192, 320), (192, 224, 224), "max", 128),
)


class BNInception(nn.Module):
    """BN-Inception with the TSN / ``pretrainedmodels`` state-dict keys.

    Args:
        in_channels: 3 for RGB, 2 for one (x, y) optical-flow pair (the TSN flow stream with new_length 1,
            as RegNet feeds ``view(-1, 2, H, W)``).
        num_classes: size of ``last_linear`` (1000 for the ImageNet file).
        seed: draw the random initialisation from this seed without touching the global RNG.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 1000, seed: int | None = None):
        super().__init__()
        self.in_channels = in_channels
        with torch.random.fork_rng(enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            self._conv_bn("conv1_7x7_s2", in_channels, 64, 7, 2, 3)
            self._conv_bn("conv2_3x3_reduce", 64, 64, 1)
            self._conv_bn("conv2_3x3", 64, 192, 3, 1, 1)
            for name, cin, c1, (r3, c3), (rd, d1, d2), pool, proj in INCEPTION:
                p, stride = f"inception_{name}_", 2 if proj == 0 else 1
                if c1:
                    self._conv_bn(p + "1x1", cin, c1, 1)
                self._conv_bn(p + "3x3_reduce", cin, r3, 1)
                self._conv_bn(p + "3x3", r3, c3, 3, stride, 1)
                self._conv_bn(p + "double_3x3_reduce", cin, rd, 1)
                self._conv_bn(p + "double_3x3_1", rd, d1, 3, 1, 1)
                self._conv_bn(p + "double_3x3_2", d1, d2, 3, stride, 1)
                if proj:
                    self._conv_bn(p + "pool_proj", cin, proj, 1)
            self.last_linear = nn.Linear(FEAT_DIM, num_classes)

    def _conv_bn(self, name: str, cin: int, cout: int, k: int, stride: int = 1, pad: int = 0) -> None:
        setattr(self, name, nn.Conv2d(cin, cout, k, stride, pad, bias=True))
        setattr(self, name + "_bn", nn.BatchNorm2d(cout))

    def _cbr(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return F.relu(getattr(self, name + "_bn")(getattr(self, name)(x)))

    def _inception(self, spec: tuple, x: torch.Tensor) -> torch.Tensor:
        name, _, c1, _, _, pool, proj = spec
        p, stride = f"inception_{name}_", 2 if proj == 0 else 1
        out = [self._cbr(p + "1x1", x)] if c1 else []
        out.append(self._cbr(p + "3x3", self._cbr(p + "3x3_reduce", x)))
        d = self._cbr(p + "double_3x3_1", self._cbr(p + "double_3x3_reduce", x))
        out.append(self._cbr(p + "double_3x3_2", d))
        if pool == "max":   # Caffe max pooling: padding 1 only for the stride-1 pool of 5b
            y = F.max_pool2d(x, 3, stride, 1 if stride == 1 else 0, ceil_mode=True)
        else:               # Caffe average pooling counts the zero padding (count_include_pad)
            y = F.avg_pool2d(x, 3, 1, 1, ceil_mode=True, count_include_pad=True)
        out.append(self._cbr(p + "pool_proj", y) if proj else y)
        return torch.cat(out, 1)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, 224, 224) -> (B, 1024, 7, 7) ``inception_5b_output``."""
        x = F.max_pool2d(self._cbr("conv1_7x7_s2", x), 3, 2, ceil_mode=True)           # pool1_3x3_s2
        x = self._cbr("conv2_3x3", self._cbr("conv2_3x3_reduce", x))
        x = F.max_pool2d(x, 3, 2, ceil_mode=True)                                      # pool2_3x3_s2
        for spec in INCEPTION:
            x = self._inception(spec, x)
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) mean-subtracted input -> (B, 1024) global-average-pooled features (>= 0).

        At 224 x 224 this equals the yaml's ``global_pool`` (7 x 7 average, stride 1); other sizes are
        averaged over the whole map (Cadene's ``logits``)."""
        return self.feature_map(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, num_classes) logits."""
        return self.last_linear(self.features(x))

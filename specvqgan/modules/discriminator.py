"""PatchGAN discriminator of the spectrogram VQGAN (paper Sec. 3.1, following Esser et al.'s VQGAN).

`NLayerDiscriminator(input_nc=1, ndf=64, n_layers=3)` is the paper model: 4x4 convs, stride 2 for the
first `n_layers` convs, BatchNorm (or ActNorm) + LeakyReLU(0.2), one logit per patch. State-dict keys
(`main.<i>.*` incl. BatchNorm running stats) equal the reference's.
"""
from __future__ import annotations

import torch
from torch import nn


def weights_init(m: nn.Module) -> None:
    """DCGAN init used by the reference: convs N(0, 0.02), BatchNorm weight N(1, 0.02) and bias 0."""
    classname = m.__class__.__name__
    if classname.find('Conv') != -1:
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif classname.find('BatchNorm') != -1:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class ActNorm(nn.Module):
    """Per-channel affine layer initialised from the first training batch (data-dependent init).

    `h = scale * (x + loc)`; on the first forward in training mode `loc = -mean`, `scale = 1/(std + 1e-6)`
    over (B, H, W) per channel. Keys: `loc`, `scale` (1, C, 1, 1) and the uint8 buffer `initialized`.
    """

    def __init__(self, num_features: int):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(1, num_features, 1, 1))
        self.scale = nn.Parameter(torch.ones(1, num_features, 1, 1))
        self.register_buffer('initialized', torch.tensor(0, dtype=torch.uint8))

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        flat = x.transpose(0, 1).reshape(x.shape[1], -1)
        self.loc.copy_(-flat.mean(1).view(1, -1, 1, 1))
        self.scale.copy_(1 / (flat.std(1).view(1, -1, 1, 1) + 1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (Tensor): (B, C, H, W) -> (B, C, H, W)."""
        if self.training and self.initialized.item() == 0:
            self.initialize(x)
            self.initialized.fill_(1)
        return self.scale * (x + self.loc)


class NLayerDiscriminator(nn.Module):
    """PatchGAN discriminator (pix2pix layout).

    Args:
        input_nc: input channels (1 for spectrograms).
        ndf: channels of the first conv; doubled per layer up to 8 * ndf.
        n_layers: number of stride-2 convs after the first one minus one (3 in the paper).
        use_actnorm: ActNorm instead of BatchNorm.
    Shapes: (B, input_nc, H, W) -> (B, 1, H', W') patch logits; for n_layers=3 and (80, 848) input:
    (B, 1, 8, 104).
    """

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3, use_actnorm: bool = False):
        super().__init__()
        norm_layer = ActNorm if use_actnorm else nn.BatchNorm2d
        use_bias = use_actnorm  # BatchNorm has its own affine shift
        kw, padw = 4, 1
        seq: list[nn.Module] = [nn.Conv2d(input_nc, ndf, kernel_size=kw, stride=2, padding=padw),
                                nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            seq += [nn.Conv2d(ndf * prev, ndf * mult, kernel_size=kw, stride=stride, padding=padw, bias=use_bias),
                    norm_layer(ndf * mult),
                    nn.LeakyReLU(0.2, True)]
        seq.append(nn.Conv2d(ndf * mult, 1, kernel_size=kw, stride=1, padding=padw))
        self.main = nn.Sequential(*seq)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (Tensor): (B, input_nc, H, W) -> patch logits (B, 1, H', W')."""
        return self.main(x)


def _conv1d_stack(widths: list[int], strides: list[int], use_bias: bool) -> nn.Sequential:
    """``Conv1d(k=4, p=1)`` layers through ``widths``; every layer but the first and the last logit layer is
    followed by BatchNorm1d, all but the last by LeakyReLU(0.2) (indices match the reference ``main.<i>``)."""
    seq: list[nn.Module] = [nn.Conv1d(widths[0], widths[1], kernel_size=4, stride=strides[0], padding=1),
                            nn.LeakyReLU(0.2, True)]
    for i in range(1, len(widths) - 2):
        seq += [nn.Conv1d(widths[i], widths[i + 1], kernel_size=4, stride=strides[i], padding=1, bias=use_bias),
                nn.BatchNorm1d(widths[i + 1]), nn.LeakyReLU(0.2, True)]
    seq.append(nn.Conv1d(widths[-2], widths[-1], kernel_size=4, stride=1, padding=1))
    return nn.Sequential(*seq)


class NLayerDiscriminator1dFeats(nn.Module):
    """1-D PatchGAN over visual-feature sequences (reference ``NLayerDiscriminator1dFeats``, used by the
    1-D feature codebook's ``VQLPAPSWithDiscriminator1dFeats``): channels shrink from ``input_nc``
    (input_nc//2, then ``max(prev // 2**n, 8)``); ``ndf`` is accepted and ignored, as in the reference.

    Shapes: (B, input_nc, L) -> (B, 1, L') patch logits.
    """

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3, use_actnorm: bool = False):
        super().__init__()
        if use_actnorm:
            raise ValueError("NLayerDiscriminator1dFeats: use_actnorm is not supported for 1-D inputs")
        widths, strides, n = [input_nc, input_nc // 2], [2], 1
        for n in range(1, n_layers):
            widths.append(max(widths[-1] // 2 ** n, 8))
            strides.append(2)
        for _ in range(2):
            widths.append(max(widths[-1] // 2 ** n, 8))
            strides.append(1)
        self.main = _conv1d_stack(widths + [1], strides, use_bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (Tensor): (B, input_nc, L) -> (B, 1, L')."""
        return self.main(x)


class NLayerDiscriminator1dSpecs(nn.Module):
    """1-D PatchGAN over spectrograms with the mel bins as channels (reference
    ``NLayerDiscriminator1dSpecs``, used by ``VQLPAPSWithDiscriminator1dSpecs``): ``ndf * min(2**n, 8)``
    channels, stride 2 for the first ``n_layers`` convs.

    Shapes: (B, 1, F, T) or (B, F, T) with F = input_nc -> (B, 1, T') patch logits.
    """

    def __init__(self, input_nc: int = 80, ndf: int = 64, n_layers: int = 3, use_actnorm: bool = False):
        super().__init__()
        if use_actnorm:
            raise ValueError("NLayerDiscriminator1dSpecs: use_actnorm is not supported for 1-D inputs")
        widths = [input_nc] + [ndf * min(2 ** n, 8) for n in range(n_layers + 1)] + [1]
        self.main = _conv1d_stack(widths, [2] * n_layers + [1], use_bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (Tensor): (B, 1, F, T) or (B, F, T) -> (B, 1, T')."""
        return self.main(x.squeeze(1) if x.dim() == 4 else x)

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

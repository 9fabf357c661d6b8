"""MelGAN generator and multi-scale discriminator (Kumar et al., NeurIPS 2019).

SpecVQGAN (Iashin & Rahtu, BMVC 2021, Sec. 3.4 and Appendix) trains MelGAN on VGGSound to turn
80-band log-mel spectrograms in [0, 1] (see ``specvqgan.audio``) into 22050 Hz waveforms.

State-dict keys and shapes equal the reference's ``vocoder.modules.Generator`` (legacy
``torch.nn.utils.weight_norm``: ``weight_g`` / ``weight_v``, ``dim=0``), so the released
``best_netG.pt`` loads with ``strict=True`` (see ``../shared/reference/manifests/melgan_generator.json``).
Weight norm is implemented here as small Conv subclasses (no deprecated API, same keys and key order);
:meth:`Generator.remove_weight_norm` folds it away for inference.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LRELU_SLOPE", "WNConv1d", "WNConvTranspose1d", "ResnetBlock", "Generator", "NLayerDiscriminator",
           "Discriminator", "remove_weight_norm", "folded_weight"]

LRELU_SLOPE = 0.2  # every LeakyReLU of the generator and the discriminator


def _norm_dim0(v: torch.Tensor) -> torch.Tensor:
    """L2 norm over every dim but 0, keepdim: (C0, C1, K) -> (C0, 1, 1)."""
    return v.norm(p=2, dim=tuple(range(1, v.dim())), keepdim=True)


class _WeightNormMixin:
    """Replace ``weight`` by ``weight_g`` (C0, 1, 1) and ``weight_v`` (weight shape), w = g v / ||v||.

    Matches ``torch.nn.utils.weight_norm(module, dim=0)``: same parameter names, same order in
    ``state_dict()`` (``bias``, ``weight_g``, ``weight_v``) and g initialised to ||v||. Mixed in before
    the plain conv class ``_plain``, whose constructor arguments it takes.
    """

    _plain: type

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        weight = self.weight.detach()
        del self.weight
        self.weight_g = nn.Parameter(_norm_dim0(weight))
        self.weight_v = nn.Parameter(weight.clone())

    def normalized_weight(self) -> torch.Tensor:
        return self.weight_v * (self.weight_g / _norm_dim0(self.weight_v))

    def to_plain(self) -> nn.Module:
        """An equivalent plain conv (``_plain``) holding the folded weight g v / ||v|| (for inference)."""
        extra = {"output_padding": self.output_padding} if self._plain is nn.ConvTranspose1d else {}
        conv = self._plain(self.in_channels, self.out_channels, self.kernel_size, stride=self.stride,
                           padding=self.padding, dilation=self.dilation, groups=self.groups,
                           bias=self.bias is not None, padding_mode=self.padding_mode,
                           device=self.weight_v.device, dtype=self.weight_v.dtype, **extra)
        with torch.no_grad():
            conv.weight.copy_(self.normalized_weight())
            if self.bias is not None:
                conv.bias.copy_(self.bias)
        return conv


class WNConv1d(_WeightNormMixin, nn.Conv1d):
    """``nn.Conv1d`` with weight normalisation. x (B, C_in, L) -> (B, C_out, L')."""

    _plain = nn.Conv1d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.normalized_weight(), self.bias)


class WNConvTranspose1d(_WeightNormMixin, nn.ConvTranspose1d):
    """``nn.ConvTranspose1d`` with weight normalisation (g has shape (C_in, 1, 1), as in the reference)."""

    _plain = nn.ConvTranspose1d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose1d(x, self.normalized_weight(), self.bias, self.stride, self.padding,
                                  self.output_padding, self.groups, self.dilation)


def folded_weight(conv: nn.Module) -> torch.Tensor:
    """The weight a (WN) conv applies, detached: g v / ||v|| for weight-norm convs, else ``conv.weight``."""
    if isinstance(conv, _WeightNormMixin):
        return conv.normalized_weight().detach()
    return conv.weight.detach()


def remove_weight_norm(module: nn.Module) -> nn.Module:
    """Replace, in place and recursively, every WN conv of ``module`` by its folded plain conv.

    The output is unchanged up to float rounding (~1e-7); the state dict then has ``weight`` keys.
    """
    for name, child in list(module.named_children()):
        if isinstance(child, (WNConv1d, WNConvTranspose1d)):
            setattr(module, name, child.to_plain())
        else:
            remove_weight_norm(child)
    return module


class ResnetBlock(nn.Module):
    """Dilated residual block: x + conv1x1(lrelu(conv3_d(pad_d(lrelu(x))))) with a 1x1 shortcut.

    x (B, dim, L) -> (B, dim, L). Keys: ``block.2`` (k3, dilation d), ``block.4`` (k1), ``shortcut``.
    """

    def __init__(self, dim: int, dilation: int = 1):
        super().__init__()
        self.block = nn.Sequential(
            nn.LeakyReLU(LRELU_SLOPE),
            nn.ReflectionPad1d(dilation),
            WNConv1d(dim, dim, kernel_size=3, dilation=dilation),
            nn.LeakyReLU(LRELU_SLOPE),
            WNConv1d(dim, dim, kernel_size=1),
        )
        self.shortcut = WNConv1d(dim, dim, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.block(x)


class Generator(nn.Module):
    """MelGAN generator: mel (B, input_size, T) in [0, 1] -> waveform (B, 1, T * prod(ratios)) in [-1, 1].

    conv k7 (input_size -> 2^len(ratios) * ngf), then per ratio r: LeakyReLU, transposed conv
    (k 2r, stride r, halves channels), ``n_residual_layers`` residual blocks with dilations 1, 3, 9, ...;
    finally LeakyReLU, conv k7 (ngf -> 1), tanh. Reflection padding keeps lengths exact.
    Paper size: ``Generator(80, ngf=32, n_residual_layers=3)`` with ratios (8, 8, 2, 2) = hop 256,
    4,266,050 parameters. ``ratios`` is configurable only for tiny test models; the reference hard-codes it.
    """

    def __init__(self, input_size: int = 80, ngf: int = 32, n_residual_layers: int = 3,
                 ratios: Sequence[int] = (8, 8, 2, 2)):
        super().__init__()
        ratios = [int(r) for r in ratios]
        self.input_size = int(input_size)
        self.hop_length = math.prod(ratios)
        mult = 2 ** len(ratios)
        if ngf < 1 or n_residual_layers < 0:
            raise ValueError(f"Generator: bad ngf={ngf} / n_residual_layers={n_residual_layers}")
        layers: list[nn.Module] = [
            nn.ReflectionPad1d(3),
            WNConv1d(input_size, mult * ngf, kernel_size=7, padding=0),
        ]
        for r in ratios:
            layers += [
                nn.LeakyReLU(LRELU_SLOPE),
                WNConvTranspose1d(mult * ngf, mult * ngf // 2, kernel_size=2 * r, stride=r,
                                  padding=r // 2 + r % 2, output_padding=r % 2),
            ]
            layers += [ResnetBlock(mult * ngf // 2, dilation=3 ** j) for j in range(n_residual_layers)]
            mult //= 2
        layers += [
            nn.LeakyReLU(LRELU_SLOPE),
            nn.ReflectionPad1d(3),
            WNConv1d(ngf, 1, kernel_size=7, padding=0),
            nn.Tanh(),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, input_size, T) float in [0, 1] -> wav (B, 1, T * hop_length)."""
        if mel.dim() != 3 or mel.shape[1] != self.input_size:
            raise ValueError(f"Generator expects mel of shape (B, {self.input_size}, T), "
                             f"got {tuple(mel.shape)}")
        return self.model(mel)

    def remove_weight_norm(self) -> "Generator":
        """Fold weight norm into plain convs (inference only; keys become ``weight``). Returns self."""
        remove_weight_norm(self)
        return self


class NLayerDiscriminator(nn.Module):
    """One MelGAN discriminator scale: wav (B, 1, L) -> list of n_layers + 3 feature maps (B, C_i, L_i).

    The last map (B, 1, L / factor^n_layers) is the patch-wise score; the others feed feature matching.
    Layers: conv k15 (1 -> ndf); n_layers grouped strided convs (k 10f+1, stride f, channels x f up to
    1024, groups = C_in / 4); conv k5; conv k3 -> 1. LeakyReLU 0.2 after all but the last.
    The k5 conv takes the channels of the last strided conv (the reference wrote ``nf_prev``, which equals
    them only when the 1024 cap is reached, as in the paper configuration; same keys and shapes there).
    """

    def __init__(self, ndf: int = 16, n_layers: int = 4, downsampling_factor: int = 4):
        super().__init__()
        model = nn.ModuleDict()
        model["layer_0"] = nn.Sequential(
            nn.ReflectionPad1d(7),
            WNConv1d(1, ndf, kernel_size=15),
            nn.LeakyReLU(LRELU_SLOPE, True),
        )
        nf, stride = ndf, downsampling_factor
        nf_prev = nf
        for n in range(1, n_layers + 1):
            nf_prev, nf = nf, min(nf * stride, 1024)
            model[f"layer_{n}"] = nn.Sequential(
                WNConv1d(nf_prev, nf, kernel_size=stride * 10 + 1, stride=stride,
                         padding=stride * 5, groups=max(nf_prev // 4, 1)),
                nn.LeakyReLU(LRELU_SLOPE, True),
            )
        nf_out = min(nf * 2, 1024)
        model[f"layer_{n_layers + 1}"] = nn.Sequential(
            WNConv1d(nf, nf_out, kernel_size=5, stride=1, padding=2),
            nn.LeakyReLU(LRELU_SLOPE, True),
        )
        model[f"layer_{n_layers + 2}"] = WNConv1d(nf_out, 1, kernel_size=3, stride=1, padding=1)
        self.model = model

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for layer in self.model.values():
            x = layer(x)
            feats.append(x)
        return feats


class Discriminator(nn.Module):
    """Multi-scale discriminator: ``num_D`` NLayerDiscriminators on the waveform average-pooled by 2^i.

    wav (B, 1, L) -> list over scales of lists of feature maps (last = score map).
    Paper/reference: num_D 3, ndf 16, n_layers 4, downsampling_factor 4.
    """

    def __init__(self, num_D: int = 3, ndf: int = 16, n_layers: int = 4, downsampling_factor: int = 4):
        super().__init__()
        self.model = nn.ModuleDict({f"disc_{i}": NLayerDiscriminator(ndf, n_layers, downsampling_factor)
                                    for i in range(num_D)})
        self.downsample = nn.AvgPool1d(4, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        results = []
        for disc in self.model.values():
            results.append(disc(x))
            x = self.downsample(x)
        return results

"""Building blocks of the spectrogram VQGAN encoder/decoder (paper Sec. 3.1, Fig. 2).

The blocks follow the taming-transformers / DDPM design the paper builds on: pre-activation
residual blocks with GroupNorm (32 groups) and swish, single-head self-attention over all latent
positions, stride-2 convolution for down-sampling and nearest-neighbour up-sampling followed by a
3x3 convolution. Every block works on 2D maps ``(B, C, H, W)`` (``dims=2``, the paper's codebook)
or on 1D sequences ``(B, C, L)`` (``dims=1``, the 1D codebook variant). Submodule names equal the
reference's, so released checkpoints load with ``strict=True``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv(dims: int) -> type[nn.Module]:
    if dims not in (1, 2):
        raise ValueError(f"dims must be 1 or 2, got {dims}")
    return nn.Conv2d if dims == 2 else nn.Conv1d


def swish(x: torch.Tensor) -> torch.Tensor:
    """Swish / SiLU non-linearity ``x * sigmoid(x)``."""
    return x * torch.sigmoid(x)


def normalize(channels: int) -> nn.GroupNorm:
    """GroupNorm with 32 groups and eps 1e-6 (as in the reference)."""
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    """Pre-activation residual block: ``x + conv2(drop(swish(norm2(conv1(swish(norm1(x)))))))``.

    A 1x1 ``nin_shortcut`` (or a 3x3 ``conv_shortcut``) maps the skip path when the channel count
    changes. Input/output ``(B, C_in, *S) -> (B, C_out, *S)``.
    """

    def __init__(self, *, in_channels: int, out_channels: int | None = None, conv_shortcut: bool = False,
                 dropout: float = 0.0, dims: int = 2):
        super().__init__()
        conv = _conv(dims)
        out_channels = in_channels if out_channels is None else out_channels
        self.in_channels, self.out_channels = in_channels, out_channels
        self.use_conv_shortcut = conv_shortcut
        self.norm1 = normalize(in_channels)
        self.conv1 = conv(in_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.norm2 = normalize(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = conv(out_channels, out_channels, kernel_size=3, stride=1, padding=1)
        if in_channels != out_channels:
            if conv_shortcut:
                self.conv_shortcut = conv(in_channels, out_channels, kernel_size=3, stride=1, padding=1)
            else:
                self.nin_shortcut = conv(in_channels, out_channels, kernel_size=1, stride=1, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(self.dropout(swish(self.norm2(h))))
        if self.in_channels != self.out_channels:
            x = self.conv_shortcut(x) if self.use_conv_shortcut else self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all positions with a residual connection.

    ``(B, C, *S) -> (B, C, *S)``; queries, keys and values are 1x1 convs, scale ``C ** -0.5``.
    """

    def __init__(self, in_channels: int, dims: int = 2):
        super().__init__()
        conv = _conv(dims)
        self.in_channels = in_channels
        self.norm = normalize(in_channels)
        self.q = conv(in_channels, in_channels, kernel_size=1, stride=1, padding=0)
        self.k = conv(in_channels, in_channels, kernel_size=1, stride=1, padding=0)
        self.v = conv(in_channels, in_channels, kernel_size=1, stride=1, padding=0)
        self.proj_out = conv(in_channels, in_channels, kernel_size=1, stride=1, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        b, c = x.shape[:2]
        # (B, C, N) -> (B, 1, N, C): one head, N = number of positions
        q, k, v = (t.reshape(b, c, -1).transpose(1, 2).unsqueeze(1) for t in (self.q(h), self.k(h), self.v(h)))
        h = F.scaled_dot_product_attention(q, k, v)  # (B, 1, N, C)
        h = h.squeeze(1).transpose(1, 2).reshape(x.shape)
        return x + self.proj_out(h)


class Downsample(nn.Module):
    """Halve the spatial size: zero-pad right/bottom by one then a stride-2 3x3 conv (2D), pad
    one on both sides then a stride-2 conv (1D), or 2x average pooling when ``with_conv=False``.

    ``(B, C, H, W) -> (B, C, floor(H/2), floor(W/2))``.
    """

    def __init__(self, in_channels: int, with_conv: bool = True, dims: int = 2):
        super().__init__()
        self.with_conv = with_conv
        if with_conv:
            self.conv = _conv(dims)(in_channels, in_channels, kernel_size=3, stride=2, padding=0)
            self.pad = (0, 1, 0, 1) if dims == 2 else (1, 1)
        else:
            self.avg_pool = nn.AvgPool2d(2, 2) if dims == 2 else nn.AvgPool1d(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_conv:
            return self.conv(F.pad(x, self.pad, mode="constant", value=0.0))
        return self.avg_pool(x)


class Upsample(nn.Module):
    """Double the spatial size by nearest-neighbour interpolation, then (optionally) a 3x3 conv.

    ``(B, C, *S) -> (B, C, *2S)``.
    """

    def __init__(self, in_channels: int, with_conv: bool = True, dims: int = 2):
        super().__init__()
        self.with_conv = with_conv
        if with_conv:
            self.conv = _conv(dims)(in_channels, in_channels, kernel_size=3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.conv(x) if self.with_conv else x

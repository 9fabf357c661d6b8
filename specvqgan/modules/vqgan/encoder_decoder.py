"""Spectrogram VQGAN encoder and decoder (paper Sec. 3.1; architecture of Esser et al., 2021).

The encoder maps a mel spectrogram ``(B, 1, F, T)`` to a latent grid ``(B, z_channels, F/16, T/16)``
(for ``len(ch_mult) == 5``; 80 x 848 -> 5 x 53); the decoder inverts it. Both take the reference
``ddconfig`` keys as keyword arguments, so ``Encoder(**ddconfig)`` / ``Decoder(**ddconfig)`` work with
the authors' YAMLs. Self-attention is inserted at every level whose *time* size (tracked from
``resolution``, the spectrogram width, exactly as the reference does) is in ``attn_resolutions``, plus
once in the middle. The 1D variants treat the input as a sequence ``(B, C, L)``.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from specvqgan.modules.vqgan.blocks import AttnBlock, Downsample, ResnetBlock, Upsample, _conv, normalize, swish


def _mid(channels: int, dropout: float, dims: int) -> nn.Module:
    mid = nn.Module()
    mid.block_1 = ResnetBlock(in_channels=channels, out_channels=channels, dropout=dropout, dims=dims)
    mid.attn_1 = AttnBlock(channels, dims=dims)
    mid.block_2 = ResnetBlock(in_channels=channels, out_channels=channels, dropout=dropout, dims=dims)
    return mid


def _run_mid(mid: nn.Module, h: torch.Tensor) -> torch.Tensor:
    return mid.block_2(mid.attn_1(mid.block_1(h)))


def _level(block_in: int, block_out: int, n_blocks: int, with_attn: bool, dropout: float,
           dims: int) -> tuple[nn.Module, int]:
    """One resolution level: ``n_blocks`` ResnetBlocks (``block_in -> block_out``, then ``block_out``), each
    followed by an AttnBlock when ``with_attn`` (keys ``block.i``, ``attn.i``). Returns (level, its out channels)."""
    level = nn.Module()
    level.block, level.attn = nn.ModuleList(), nn.ModuleList()
    for _ in range(n_blocks):
        level.block.append(ResnetBlock(in_channels=block_in, out_channels=block_out, dropout=dropout, dims=dims))
        block_in = block_out
        if with_attn:
            level.attn.append(AttnBlock(block_in, dims=dims))
    return level, block_in


def _run_level(level: nn.Module, h: torch.Tensor) -> torch.Tensor:
    for i, block in enumerate(level.block):
        h = block(h)
        if len(level.attn) > 0:
            h = level.attn[i](h)
    return h


class Encoder(nn.Module):
    """Conv encoder: ``conv_in``, ``len(ch_mult)`` levels of ``num_res_blocks`` ResnetBlocks (+ attention)
    with a Downsample between levels, a middle block (res-attn-res), GroupNorm, swish, ``conv_out``.

    Args (the reference ``ddconfig``): ``ch`` base channels, ``ch_mult`` channel multipliers per level,
    ``num_res_blocks``, ``attn_resolutions`` time sizes that get attention, ``dropout``,
    ``resamp_with_conv``, ``in_channels`` (1 for a spectrogram), ``resolution`` (input width T),
    ``z_channels``, ``double_z`` (output ``2*z_channels``). ``out_ch`` is accepted and unused so the
    same ``ddconfig`` builds both halves.
    Shapes: ``(B, in_channels, F, T) -> (B, z_channels, F / 2**(L-1), T / 2**(L-1))`` (floor at each level).
    """

    dims = 2

    def __init__(self, *, ch: int, ch_mult: Sequence[int] = (1, 2, 4, 8), num_res_blocks: int,
                 attn_resolutions: Sequence[int], in_channels: int, resolution: int, z_channels: int,
                 dropout: float = 0.0, resamp_with_conv: bool = True, double_z: bool = True,
                 out_ch: int | None = None):
        super().__init__()
        dims = self.dims
        self.ch, self.num_resolutions, self.num_res_blocks = ch, len(ch_mult), num_res_blocks
        self.resolution, self.in_channels = resolution, in_channels
        self.conv_in = _conv(dims)(in_channels, ch, kernel_size=3, stride=1, padding=1)

        curr_res = resolution
        in_ch_mult = (1,) + tuple(ch_mult)
        self.down = nn.ModuleList()
        for i_level in range(self.num_resolutions):
            down, block_in = _level(ch * in_ch_mult[i_level], ch * ch_mult[i_level], num_res_blocks,
                                    curr_res in attn_resolutions, dropout, dims)
            if i_level != self.num_resolutions - 1:
                down.downsample = Downsample(block_in, resamp_with_conv, dims=dims)
                curr_res = curr_res // 2
            self.down.append(down)

        self.mid = _mid(block_in, dropout, dims)
        self.norm_out = normalize(block_in)
        self.conv_out = _conv(dims)(block_in, 2 * z_channels if double_z else z_channels,
                                    kernel_size=3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for i_level, down in enumerate(self.down):
            h = _run_level(down, h)
            if i_level != self.num_resolutions - 1:
                h = down.downsample(h)
        h = _run_mid(self.mid, h)
        return self.conv_out(swish(self.norm_out(h)))


class Decoder(nn.Module):
    """Conv decoder mirroring :class:`Encoder`: ``conv_in`` (z -> ``ch*ch_mult[-1]``), middle block, levels
    with ``num_res_blocks + 1`` ResnetBlocks (+ attention) and nearest-neighbour Upsample + conv between
    levels, GroupNorm, swish, ``conv_out`` to ``out_ch``. Levels are stored as ``up.0 ... up.{L-1}`` and run
    from ``L-1`` down to 0. ``in_channels`` and ``double_z`` are accepted and unused (shared ``ddconfig``).
    ``give_pre_end`` returns the features before the output head.
    Shapes: ``(B, z_channels, f, t) -> (B, out_ch, f * 2**(L-1), t * 2**(L-1))``.
    """

    dims = 2

    def __init__(self, *, ch: int, out_ch: int, ch_mult: Sequence[int] = (1, 2, 4, 8), num_res_blocks: int,
                 attn_resolutions: Sequence[int], resolution: int, z_channels: int, dropout: float = 0.0,
                 resamp_with_conv: bool = True, give_pre_end: bool = False, in_channels: int | None = None,
                 double_z: bool | None = None):
        super().__init__()
        dims = self.dims
        self.ch, self.num_resolutions, self.num_res_blocks = ch, len(ch_mult), num_res_blocks
        self.resolution, self.give_pre_end = resolution, give_pre_end

        block_in = ch * ch_mult[-1]
        curr_res = resolution // 2 ** (self.num_resolutions - 1)
        self.conv_in = _conv(dims)(z_channels, block_in, kernel_size=3, stride=1, padding=1)
        self.mid = _mid(block_in, dropout, dims)

        ups = []
        for i_level in reversed(range(self.num_resolutions)):
            up, block_in = _level(block_in, ch * ch_mult[i_level], num_res_blocks + 1,
                                  curr_res in attn_resolutions, dropout, dims)
            if i_level != 0:
                up.upsample = Upsample(block_in, resamp_with_conv, dims=dims)
                curr_res = curr_res * 2
            ups.insert(0, up)
        self.up = nn.ModuleList(ups)

        self.norm_out = normalize(block_in)
        self.conv_out = _conv(dims)(block_in, out_ch, kernel_size=3, stride=1, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        self.last_z_shape = z.shape
        h = _run_mid(self.mid, self.conv_in(z))
        for i_level in reversed(range(self.num_resolutions)):
            h = _run_level(self.up[i_level], h)
            if i_level != 0:
                h = self.up[i_level].upsample(h)
        if self.give_pre_end:
            return h
        return self.conv_out(swish(self.norm_out(h)))


class Encoder1d(Encoder):
    """:class:`Encoder` over sequences: ``(B, in_channels, L) -> (B, z_channels, L / 2**(levels-1))``."""

    dims = 1


class Decoder1d(Decoder):
    """:class:`Decoder` over sequences: ``(B, z_channels, l) -> (B, out_ch, l * 2**(levels-1))``."""

    dims = 1

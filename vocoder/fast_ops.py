"""fp32 / bf16 building blocks of :class:`vocoder.fast.FastGenerator`: GEMM operands and time-major ops.

Activations are time-major ``(T, C)``: a 1x1 conv is ``X @ W``, a time shift a row offset (the dilated k3
conv is three accumulating GEMMs on shifted views of one padded buffer, or Winograd F(2,3)), and a
``ConvTranspose1d(k=2r, stride r)`` is one GEMM per input row to ``r`` output phases plus two half-width
GEMMs for the taps that reach the neighbouring rows (:func:`upsample`). ``lib`` arguments are the C kernels
of :mod:`vocoder.fast_native` (or ``None``: the same computation in torch ops).
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from vocoder.modules import LRELU_SLOPE as SLOPE
from vocoder.modules import ResnetBlock, folded_weight

__all__ = ["SLOPE", "Block", "Stage", "stage_geometry", "pack_stage", "pack_block", "row_ranges", "stage_chunk",
           "upsample", "lrelu_window", "reflect_rows", "res_block", "k3_winograd"]


def lrelu_into(x: torch.Tensor, out: torch.Tensor) -> None:
    torch._C._nn.leaky_relu(x, SLOPE, out=out)


@dataclass
class Block:
    """One residual block as GEMM operands: taps (3 x (C, C)), b3 (C,), w1 / ws (C, C), b_out (C,)."""
    dilation: int
    taps: list[torch.Tensor]
    b3: torch.Tensor
    w1: torch.Tensor
    ws: torch.Tensor
    b_out: torch.Tensor
    wino: list[torch.Tensor] | None = None  # F(2,3): T0, (T0+T1+T2)/2, (T0-T1+T2)/2, -T2


@dataclass
class Stage:
    """Transposed conv (ratio r, C_in -> C_out) as polyphase GEMMs, then its residual blocks.

    w_mid (C_in, r*C_out): row m -> phases of output block m; w_prev (C_in, n_prev*C_out): row m-1 ->
    the first n_prev phases of block m; w_next (C_in, (r-n_prev)*C_out): row m+1 -> the other phases.
    """
    ratio: int
    c_out: int
    n_prev: int
    w_mid: torch.Tensor
    w_prev: torch.Tensor
    w_next: torch.Tensor
    bias: torch.Tensor
    blocks: list
    dtype: torch.dtype = torch.float32  # activation dtype of the stage (fp32 for int8 stages)
    int8: bool = False  # GEMM operands are int8 QWeights (vocoder.fast_int8; blocks are QBlocks)


def stage_geometry(conv: nn.Module) -> tuple[int, int, int]:
    """(r, p, n_prev) of a MelGAN transposed conv (k 2r, stride r, padding p = r//2 + r%2): output
    n = r*i + tap - p, so phases q < n_prev = r - p also take row m-1 (tap r + p + q), the others row m+1
    (tap q + p - r)."""
    r, k, p = conv.stride[0], conv.kernel_size[0], conv.padding[0]
    if k != 2 * r or p != r // 2 + r % 2 or conv.output_padding[0] != r % 2 or conv.dilation[0] != 1:
        raise ValueError(f"FastGenerator expects MelGAN transposed convs (k 2r, padding r//2 + r%2), got {conv}")
    return r, p, r - p


def pack_stage(conv: nn.Module, cast: Callable[[torch.Tensor], torch.Tensor], dtype: torch.dtype) -> Stage:
    """The polyphase GEMM operands of a (WN) transposed conv, each passed through ``cast``."""
    r, p, n_prev = stage_geometry(conv)
    w = folded_weight(conv)  # (C_in, C_out, 2r)
    c_in, c_out = w.shape[:2]

    def taps(lo: int, hi: int) -> torch.Tensor:
        return cast(w[:, :, lo:hi].permute(0, 2, 1).reshape(c_in, -1))  # (C_in, n_taps*C_out)

    return Stage(ratio=r, c_out=c_out, n_prev=n_prev, w_mid=taps(p, p + r), w_prev=taps(r + p, 2 * r),
                 w_next=taps(0, p), bias=cast(conv.bias.repeat(r)), blocks=[], dtype=dtype)


def pack_block(block: ResnetBlock, cast: Callable[[torch.Tensor], torch.Tensor],
               winograd_channels: int | None) -> Block:
    """The GEMM operands of a residual block (Winograd F(2,3) ones from ``winograd_channels`` channels)."""
    conv3, conv1 = block.block[2], block.block[4]
    t0, t1, t2 = (t.t().double() for t in folded_weight(conv3).unbind(-1))  # (C_in, C_out) each
    wino = None
    if winograd_channels is not None and t0.shape[0] >= winograd_channels:
        wino = [cast(t) for t in (t0, (t0 + t1 + t2) / 2, (t0 - t1 + t2) / 2, -t2)]
    return Block(dilation=conv3.dilation[0], taps=[cast(t) for t in (t0, t1, t2)],
                 b3=cast(conv3.bias), w1=cast(folded_weight(conv1)[:, :, 0].t()),
                 ws=cast(folded_weight(block.shortcut)[:, :, 0].t()),
                 b_out=cast(conv1.bias + block.shortcut.bias), wino=wino)


def row_ranges(st: Stage, n_out: int, lo: int, hi: int) -> list[tuple[int, int]]:
    """The rows each block of a stage must produce for output rows [lo, hi), last block first,
    then the samples the transposed conv must produce."""
    ranges = [(lo, hi)]
    for blk in reversed(st.blocks):
        a, b = ranges[-1]
        ranges.append((max(0, a - blk.dilation), min(n_out, b + blk.dilation)))
    return ranges


def stage_chunk(st: Stage, x: torch.Tensor, out: torch.Tensor, lo: int, hi: int,
                lib: ctypes.CDLL | None) -> None:
    """Rows [lo, hi) of a stage output ``out`` (L * r, C_out) from its input x (L, C_in):
    lrelu, transposed conv, residual blocks, each computing only the rows the next one reads."""
    n_out, r = out.shape[0], st.ratio
    ranges = row_ranges(st, n_out, lo, hi)
    r0, r1 = ranges[-1][0] // r, -(-ranges[-1][1] // r)  # input rows of the transposed conv
    xp = lrelu_window(x, 0, x.shape[0], r0, r1, 1, zero_pad=True, lib=lib).to(st.w_mid.dtype)
    y = upsample(st, xp).to(st.dtype)  # samples [r0 * r, r1 * r)
    start = r0 * r
    for j, blk in enumerate(st.blocks):
        o_lo, o_hi = ranges[len(st.blocks) - 1 - j]
        dst = out[lo:hi] if j == len(st.blocks) - 1 else None
        y = res_block(blk, y, start, o_lo, o_hi, n_out, dst, lib)
        start = o_lo
    if not st.blocks:
        out[lo:hi] = y[lo - start: hi - start]


def upsample(st: Stage, xp: torch.Tensor) -> torch.Tensor:
    """Transposed conv by phases: xp (n + 2, C_in) = lrelu'd input rows with one neighbour row each side
    -> (n * r, C_out), the output samples of the n middle rows."""
    y = torch.addmm(st.bias, xp[1:-1], st.w_mid)  # (n, r * C_out)
    split = st.n_prev * st.c_out
    if split:
        y[:, :split].addmm_(xp[:-2], st.w_prev)
    if split < y.shape[1]:
        y[:, split:].addmm_(xp[2:], st.w_next)
    return y.view(-1, st.c_out)


def lrelu_window(x: torch.Tensor, start: int, n: int, lo: int, hi: int, pad: int, extra: int = 0,
                 zero_pad: bool = False, lib: ctypes.CDLL | None = None) -> torch.Tensor:
    """LeakyReLU of samples [lo - pad, hi + pad) of a signal of n samples, as a new (hi - lo + 2 pad + extra, C).

    x (rows, C) holds samples [start, start + rows) (every sample of [0, n) the window reads). Samples
    outside [0, n) are reflected (``zero_pad``: zeros); the ``extra`` rows at the end are zeros.
    ``lib``: the C kernels (one pass; fp32 / bf16), else torch ops (2-4 passes).
    """
    w_lo, w_hi = lo - pad, hi + pad
    if lib is not None and x.dtype in (torch.float32, torch.bfloat16) and x.is_contiguous():
        p = x.new_empty(w_hi - w_lo + extra, x.shape[1])
        if lib.lrelu_window(x.data_ptr(), x.dtype == torch.bfloat16, x.shape[1], start, n, lo, hi, pad, zero_pad,
                            extra, SLOPE, p.data_ptr()):
            raise ValueError(f"a signal of {n} samples is too short for reflection padding {pad}")
        return p
    core_lo, core_hi = max(w_lo, 0), min(w_hi, n)
    p = x.new_empty(w_hi - w_lo + extra, x.shape[1])
    lrelu_into(x[core_lo - start: core_hi - start], p[core_lo - w_lo: core_hi - w_lo])
    left, right = core_lo - w_lo, w_hi - core_hi
    if zero_pad:
        p[:left] = 0
        p[core_hi - w_lo:] = 0
    elif left or right:
        if max(left, right) >= core_hi - core_lo:
            raise ValueError(f"a signal of {n} samples is too short for reflection padding {pad}")
        reflect_fill(p[: w_hi - w_lo], left, core_hi - w_lo)
    if extra:
        p[w_hi - w_lo:] = 0
    return p


def reflect_fill(p: torch.Tensor, core_lo: int, core_hi: int) -> None:
    """Fill rows [0, core_lo) and [core_hi, len(p)) of p (N, C) by reflection about rows core_lo, core_hi - 1."""
    right = p.shape[0] - core_hi
    if core_lo:
        p[:core_lo] = p[core_lo + 1: 2 * core_lo + 1].flip(0)
    if right:
        p[core_hi:] = p[core_hi - 1 - right: core_hi - 1].flip(0)


def reflect_rows(x: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """x (N, C) -> (N + left + right, C) reflection-padded along time (rows)."""
    p = x.new_empty(x.shape[0] + left + right, x.shape[1])
    p[left: left + x.shape[0]] = x
    reflect_fill(p, left, left + x.shape[0])
    return p


def res_block(blk: Block, x: torch.Tensor, start: int, lo: int, hi: int, n: int,
              out: torch.Tensor | None, lib: ctypes.CDLL | None = None) -> torch.Tensor:
    """Residual block on time-major rows: x holds samples [start, start + len(x)) of a signal of n samples.

    Returns (or writes into ``out``) the block output for samples [lo, hi):
    ``x @ ws + lrelu(conv3_d(reflect_d(lrelu(x)))) @ w1 + b``; reflection only at the signal ends 0 / n.
    """
    d, m = blk.dilation, hi - lo
    n_tiles = -(-m // (2 * d))  # Winograd tiles: output rows 2 d k + j and 2 d k + j + d, j < d
    # lrelu'd input of the k3 conv (+ zero rows completing the last Winograd tile; their outputs are dropped)
    p = lrelu_window(x, start, n, lo, hi, d, extra=2 * d * n_tiles - m if blk.wino else 0, lib=lib)
    p = p.to(blk.taps[0].dtype)  # bf16 k3 / 1x1 GEMMs on an fp32 residual stream (FastGenerator res32_stages)
    if blk.wino:
        h = k3_winograd(blk, p, n_tiles, lib)[:m]
    else:
        h = torch.addmm(blk.b3, p[:m], blk.taps[0])
        h.addmm_(p[d: d + m], blk.taps[1])
        h.addmm_(p[2 * d: 2 * d + m], blk.taps[2])
        torch._C._nn.leaky_relu_(h, SLOPE)
    y = torch.addmm(blk.b_out, x[lo - start: hi - start], blk.ws, out=out)
    return y.addmm_(h, blk.w1) if h.dtype == y.dtype else y.add_(h @ blk.w1)


def k3_winograd(blk: Block, p: torch.Tensor, n_tiles: int, lib: ctypes.CDLL | None = None) -> torch.Tensor:
    """lrelu(k3 conv, dilation d) by Winograd F(2,3): 4 GEMMs per 2 output rows instead of 6.

    p (2 d (n_tiles + 1), C): lrelu'd padded input (row i = input of output row i - d ... i + d).
    Output rows i = 2 d k + j and i + d (k < n_tiles, j < d) use d0..d3 = p rows i, i+d, i+2d, i+3d:
    y_i = m1 + m2 + m3, y_{i+d} = m2 - m3 - m4 with m1 = (d0-d2) T0, m2 = (d1+d2)(T0+T1+T2)/2,
    m3 = (d2-d1)(T0-T1+T2)/2, m4 = (d1-d3) T2. Returns (2 d n_tiles, C) after LeakyReLU.
    """
    d, c = blk.dilation, p.shape[1]
    rows = n_tiles * d
    g0, g1, g2, g3 = blk.wino
    if lib is not None:  # the transforms in two C passes (one rounding each in bf16)
        a = p.new_empty(4, rows, c)
        bf16 = p.dtype == torch.bfloat16
        lib.wino_in(p.data_ptr(), bf16, n_tiles, d, c, *(a[i].data_ptr() for i in range(4)))
        m = p.new_empty(4, rows, c)
        torch.mm(a[0], g0, out=m[0])
        torch.addmm(blk.b3, a[1], g1, out=m[1])
        torch.mm(a[2], g2, out=m[2])
        torch.mm(a[3], g3, out=m[3])
        h = p.new_empty(2 * rows, c)
        lib.wino_out(*(m[i].data_ptr() for i in range(4)), bf16, n_tiles, d, c, SLOPE, h.data_ptr())
        return h
    pb = p.view(n_tiles + 1, 2, d, c)
    d0, d1, d2, d3 = pb[:-1, 0], pb[:-1, 1], pb[1:, 0], pb[1:, 1]  # (n_tiles, d, C) views
    m2 = torch.addmm(blk.b3, torch.add(d1, d2).view(rows, c), g1)  # bias once in both outputs
    m3 = torch.sub(d2, d1).view(rows, c) @ g2
    y1 = torch.sub(m2, m3).addmm_(torch.sub(d1, d3).view(rows, c), g3)
    y0 = m2.add_(m3).addmm_(torch.sub(d0, d2).view(rows, c), g0)
    h = p.new_empty(n_tiles, 2, d, c)
    lrelu_into(y0.view(n_tiles, d, c), h[:, 0])
    lrelu_into(y1.view(n_tiles, d, c), h[:, 1])
    return h.view(2 * d * n_tiles, c)

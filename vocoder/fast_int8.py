"""int8 path of :class:`vocoder.fast.FastGenerator` (``dtype=torch.int8``): oneDNN ``qlinear`` GEMMs.

The stages with at least ``int8_channels`` output channels run their GEMMs as u8 x s8 with int32
accumulation (AVX512-VNNI): weights symmetric int8 per output channel (:func:`quantize_weight`), every GEMM
input asymmetric uint8 with a per-chunk scale from its min / max (:func:`quantize`), activations between
GEMMs in fp32; bias, dequantization, LeakyReLU (k3 conv) and the residual sum (1x1 conv into the shortcut's
output) are fused into the GEMMs; the dilated conv's three taps are one K = 3C GEMM. With the C kernels
(:mod:`vocoder.fast_native`) one pass per block writes all its uint8 inputs and a second quantizes the k3
output; without them the same in torch ops. Not exact: see docs/vocoder.md for the error.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass

import torch
from torch import nn

from vocoder.fast_ops import SLOPE, Stage, lrelu_window, row_ranges, stage_geometry
from vocoder.modules import ResnetBlock, folded_weight

__all__ = ["HAS_QLINEAR", "QWeight", "QBlock", "QAct", "pack_stage_int8", "pack_block_int8", "stage_chunk_int8",
           "quantize_weight", "qparams", "quantize", "qmm"]

HAS_QLINEAR = hasattr(torch.ops.onednn, "qlinear_pointwise") and hasattr(torch.ops.onednn, "qlinear_prepack")


@dataclass
class QWeight:
    """An int8 GEMM operand for oneDNN ``qlinear``: ``packed`` = prepacked int8 (N, K) weight (symmetric,
    per-output-channel ``scale`` (N,) fp32, zero points ``zp`` (N,) int64), ``bias`` (N,) fp32 or None."""
    packed: torch.Tensor
    scale: torch.Tensor
    zp: torch.Tensor
    bias: torch.Tensor | None


@dataclass
class QBlock:
    """int8 residual block: k3 = the dilated conv's three taps stacked along K (3C -> C, bias b3),
    w1 = the 1x1 conv (C -> C, no bias), ws = the shortcut (C -> C, bias b1 + b_shortcut)."""
    dilation: int
    k3: QWeight
    w1: QWeight
    ws: QWeight


@dataclass
class QAct:
    """A uint8 GEMM input: ``u8`` (N, K) holds round(x / scale) + zp of an fp32 x (N, K)."""
    u8: torch.Tensor
    scale: float
    zp: int

    def rows(self, a: int, b: int) -> "QAct":
        return QAct(self.u8[a:b], self.scale, self.zp)


def quantize_weight(w: torch.Tensor, bias: torch.Tensor | None) -> QWeight:
    """w (K, N) fp32 -> symmetric int8 per output channel n (scale max_k |w[k, n]| / 127), prepacked."""
    w = w.detach().double()
    scale = (w.abs().amax(0) / 127).clamp_min(1e-12)  # (N,)
    q = torch.round(w / scale).clamp_(-127, 127).to(torch.int8).t().contiguous()  # (N, K)
    return QWeight(packed=torch.ops.onednn.qlinear_prepack(q, None), scale=scale.float(),
                   zp=torch.zeros(q.shape[0], dtype=torch.long),
                   bias=None if bias is None else bias.detach().float().contiguous())


def pack_stage_int8(conv: nn.Module) -> Stage:
    """The polyphase stage (see :func:`vocoder.fast_ops.pack_stage`) with int8 GEMM operands and fp32
    activations."""
    r, p, n_prev = stage_geometry(conv)
    w = folded_weight(conv)
    c_in, c_out = w.shape[:2]

    def taps(lo: int, hi: int, bias: torch.Tensor | None) -> QWeight | None:
        if hi <= lo:
            return None
        return quantize_weight(w[:, :, lo:hi].permute(0, 2, 1).reshape(c_in, -1), bias)

    bias = conv.bias.detach().float().repeat(r)
    return Stage(ratio=r, c_out=c_out, n_prev=n_prev, w_mid=taps(p, p + r, bias),
                 w_prev=taps(r + p, 2 * r, None), w_next=taps(0, p, None), bias=bias, blocks=[],
                 dtype=torch.float32, int8=True)


def pack_block_int8(block: ResnetBlock) -> QBlock:
    conv3, conv1 = block.block[2], block.block[4]
    t = [tap.t() for tap in folded_weight(conv3).unbind(-1)]  # (C_in, C_out) each, stacked: (3 C_in, C_out)
    return QBlock(dilation=conv3.dilation[0], k3=quantize_weight(torch.cat(t, 0), conv3.bias),
                  w1=quantize_weight(folded_weight(conv1)[:, :, 0].t(), None),
                  ws=quantize_weight(folded_weight(block.shortcut)[:, :, 0].t(), conv1.bias + block.shortcut.bias))


def lrelu_f(v: float) -> float:
    return v if v >= 0 else SLOPE * v


def minmax(x: torch.Tensor) -> tuple[float, float]:
    lo, hi = torch.aminmax(x)
    return float(lo), float(hi)


def qparams(lo: float, hi: float) -> tuple[float, int]:
    """Asymmetric uint8 scale and zero point for values in [lo, hi] (0 always representable);
    the same float32 arithmetic as ``qparams`` in csrc/melgan.cpp."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = float(torch.tensor(hi - lo, dtype=torch.float32) / 255) if hi > lo else 1.0
    return scale, min(255, max(0, round(-lo / scale)))


def quantize(x: torch.Tensor, lo: float, hi: float) -> QAct:
    """x (N, K) fp32 with values in [lo, hi] -> asymmetric uint8 (pure torch; csrc/melgan.cpp does it in
    one pass)."""
    scale, zp = qparams(lo, hi)
    u8 = torch.addcmul(torch.tensor(float(zp)), x, torch.tensor(1.0 / scale)).round_().clamp_(0, 255)
    return QAct(u8.to(torch.uint8), scale, zp)


def qmm(a: QAct, w: QWeight, acc: torch.Tensor | None = None, lrelu: bool = False,
        dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(N, C_out) = dequant(a) @ dequant(w) + bias (then LeakyReLU) in ``dtype``; with ``acc``
    (contiguous fp32) added in place instead."""
    if acc is None:
        return torch.ops.onednn.qlinear_pointwise(a.u8, a.scale, a.zp, w.packed, w.scale, w.zp, w.bias,
                                                  1.0, 0, dtype, "leaky_relu" if lrelu else "none",
                                                  [SLOPE] if lrelu else [], "")
    return torch.ops.onednn.qlinear_pointwise.binary(a.u8, a.scale, a.zp, w.packed, w.scale, w.zp, acc, w.bias,
                                                     1.0, 0, torch.float32, 1.0, 0, "sum", 1.0, "none", [], "")


def stage_chunk_int8(st: Stage, x: torch.Tensor, out: torch.Tensor, lo: int, hi: int,
                     lib: ctypes.CDLL | None) -> None:
    """:func:`vocoder.fast_ops.stage_chunk` with int8 GEMMs: every GEMM input is quantized to uint8 per
    chunk (asymmetric, scale from its min / max), weights are int8 per output channel, GEMMs accumulate in
    int32 and write fp32 (bias, dequantization and sums fused by oneDNN)."""
    n_out, r = out.shape[0], st.ratio
    ranges = row_ranges(st, n_out, lo, hi)
    r0, r1 = ranges[-1][0] // r, -(-ranges[-1][1] // r)
    if lib is not None:
        win = torch.empty(r1 - r0 + 2, x.shape[1], dtype=torch.uint8)
        params = torch.empty(4)
        lib.quant_block_input(x.data_ptr(), x.shape[1], 0, x.shape[0], r0, r1, 1, 1, SLOPE,
                              win.data_ptr(), None, None, params.data_ptr())
        sp, zp = params[:2].tolist()
        xq = QAct(win, sp, int(zp))
    else:
        lo_x, hi_x = minmax(x[max(r0 - 1, 0): min(r1 + 1, x.shape[0])])
        xp = lrelu_window(x, 0, x.shape[0], r0, r1, 1, zero_pad=True)
        xq = quantize(xp, lrelu_f(lo_x), lrelu_f(hi_x))
    y = upsample_int8(st, xq)
    start = r0 * r
    for j, blk in enumerate(st.blocks):
        o_lo, o_hi = ranges[len(st.blocks) - 1 - j]
        y = res_block_int8(blk, y, start, o_lo, o_hi, n_out, lib)
        start = o_lo
    out[lo:hi] = y[lo - start: hi - start]


def upsample_int8(st: Stage, xp: QAct) -> torch.Tensor:
    """:func:`vocoder.fast_ops.upsample` with int8 operands: xp (n + 2, C_in) quantized -> fp32 (n * r, C_out)."""
    n = xp.u8.shape[0] - 2
    y = qmm(xp.rows(1, n + 1), st.w_mid)  # (n, r * C_out), bias included
    split = st.n_prev * st.c_out
    if st.w_prev is not None:
        y[:, :split] += qmm(xp.rows(0, n), st.w_prev)
    if st.w_next is not None:
        y[:, split:] += qmm(xp.rows(2, n + 2), st.w_next)
    return y.view(-1, st.c_out)


def res_block_int8(blk: QBlock, x: torch.Tensor, start: int, lo: int, hi: int, n: int,
                   lib: ctypes.CDLL | None) -> torch.Tensor:
    """:func:`vocoder.fast_ops.res_block` with int8 GEMMs: x fp32 holds samples [start, start + len(x));
    returns fp32 (hi - lo, C), the block output for samples [lo, hi). ``lib``: the C quantization kernels
    (one pass builds every uint8 GEMM input), else the same in torch ops. (Reusing workspace buffers
    for the uint8 inputs instead of fresh tensors measured no faster.)"""
    d, m, c = blk.dilation, hi - lo, x.shape[1]
    if lib is not None:
        cols, xq = torch.empty(m, 3 * c, dtype=torch.uint8), torch.empty(m, c, dtype=torch.uint8)
        params = torch.empty(4)
        if lib.quant_block_input(x.data_ptr(), c, start, n, lo, hi, d, 0, SLOPE, None, cols.data_ptr(),
                                 xq.data_ptr(), params.data_ptr()):
            raise ValueError(f"a signal of {n} samples is too short for reflection padding {d}")
        sp, zpp, sx, zpx = params.tolist()
        cols, xq = QAct(cols, sp, int(zpp)), QAct(xq, sx, int(zpx))
    else:
        w_lo, w_hi = max(lo - d, 0), min(hi + d, n)
        lo_x, hi_x = minmax(x[w_lo - start: w_hi - start])  # every sample the block reads
        p = quantize(lrelu_window(x, start, n, lo, hi, d), lrelu_f(lo_x), lrelu_f(hi_x))  # (m + 2d, C)
        cols = QAct(torch.cat([p.u8[0:m], p.u8[d:d + m], p.u8[2 * d: 2 * d + m]], 1), p.scale, p.zp)
        xq = quantize(x[lo - start: hi - start], lo_x, hi_x)
    # lrelu(conv3 + b3) (m, C): bf16 where the C kernel quantizes it (~3% faster, same error), else fp32
    h = qmm(cols, blk.k3, lrelu=True, dtype=torch.bfloat16 if lib is not None else torch.float32)
    if lib is not None:
        hq = torch.empty(m, c, dtype=torch.uint8)
        (lib.quant_rows_bf16 if h.dtype == torch.bfloat16 else lib.quant_rows)(h.data_ptr(), h.numel(), hq.data_ptr(),
                                                                               params.data_ptr())
        sh, zph = params[:2].tolist()
        hq = QAct(hq, sh, int(zph))
    else:
        hq = quantize(h, *minmax(h))
    y = qmm(xq, blk.ws)  # + b_out
    return qmm(hq, blk.w1, y)

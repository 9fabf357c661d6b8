"""Inference-only MelGAN generator for CPU: every conv as a time-major GEMM, stage by stage in chunks.

:class:`FastGenerator` computes exactly what :class:`vocoder.modules.Generator` computes (fp32: within
~1e-6) with a different memory layout and schedule, because on CPU the generator is bound by how well
its ~39 GMAC per 10 s of audio map onto the matrix-multiply units:

* **time-major activations** ``(T, C)``: a 1x1 conv is ``X @ W`` with a tall ``X`` (the shape BLAS
  runs fastest, ~2x the ``W @ X`` channels-first form for 32-64 channels in bf16); a time shift is a row
  offset, so the dilated k3 conv is three accumulating GEMMs on shifted views of one padded buffer
  (no im2col copy), and the residual shortcut + 1x1 conv accumulate into one output;
* **polyphase transposed convs**: ``ConvTranspose1d(k=2r, stride r)`` is, per input row, one GEMM to
  ``r`` output phases (``(L, C_in) @ (C_in, r * C_out)``) plus two half-width GEMMs for the taps that
  reach the neighbouring rows; the ``(L, r, C_out)`` result *is* the upsampled ``(L * r, C_out)``
  signal in time-major layout (no zero stuffing, no interleaving copy);
* **chunked stages**: the transposed conv and its residual stack run on chunks of about
  ``chunk_bytes`` of activations (L2-sized), each computing exactly its output rows from the rows it
  needs (the dilations' context is recomputed, reflection padding applies only at the true signal
  ends), so the intermediate tensors of a stage never leave the cache;
* Winograd F(2,3) for the dilated k3 convs of the wide (128/256-channel) stacks;
* biases are folded into the GEMMs (``addmm``), weight norm is folded at construction.

Precision: ``torch.float32`` (default, exact) or ``torch.bfloat16`` (weights and activations in bf16,
GEMMs accumulate in fp32 inside oneDNN/MKL; ~2x faster on CPUs with AVX512-BF16/AMX, not exact).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import torch
from torch import nn

from vocoder.modules import Generator, ResnetBlock, WNConv1d, WNConvTranspose1d

__all__ = ["FastGenerator"]

SLOPE = 0.2  # LeakyReLU slope of the MelGAN generator


def _weight(conv: nn.Module) -> torch.Tensor:
    """Folded weight of a (WN) conv: g v / ||v|| for weight-norm convs, else ``conv.weight``."""
    if isinstance(conv, (WNConv1d, WNConvTranspose1d)):
        return conv.normalized_weight().detach()
    return conv.weight.detach()


def _lrelu_into(x: torch.Tensor, out: torch.Tensor) -> None:
    torch._C._nn.leaky_relu(x, SLOPE, out=out)


@dataclass
class _Block:
    """One residual block as GEMM operands: taps (3 x (C, C)), b3 (C,), w1 / ws (C, C), b_out (C,)."""
    dilation: int
    taps: list[torch.Tensor]
    b3: torch.Tensor
    w1: torch.Tensor
    ws: torch.Tensor
    b_out: torch.Tensor
    wino: list[torch.Tensor] | None = None  # F(2,3): T0, (T0+T1+T2)/2, (T0-T1+T2)/2, -T2


@dataclass
class _Stage:
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
    blocks: list[_Block]


class FastGenerator:
    """Inference-only twin of a :class:`Generator` (weights copied and folded at construction).

    Args:
        generator: the trained generator (weight norm folded or not; any ngf / ratios / residual layers).
        dtype: ``torch.float32`` (exact to ~1e-6) or ``torch.bfloat16``.
        chunk_bytes: target size of a chunk's activations (time rows x channels) inside a stage; 1 MiB
            keeps a chunk's working set in a 1-2 MiB L2 cache and amortises the fixed cost of each GEMM
            call (~2 us fp32, ~18 us bf16 through oneDNN). ``None``: whole stages at once.
        winograd_channels: run the dilated k3 convs of residual blocks with at least this many channels
            by Winograd F(2,3) (4 GEMMs per 2 outputs instead of 6; exact in fp32 to ~1e-7). It pays only
            where the GEMMs dominate (128-256 channels: ~3-5% of the total here); below, the extra
            transform passes cost more than the saved FLOPs. ``None``: never.

    Call: mel (B, C_mel, T) -> float32 wav (B, 1, T * hop), the output of ``generator(mel)``.
    Stage outputs alternate between two workspace buffers kept between calls (largest stage output,
    T * hop * ngf values each: 28 MB in fp32 for 10 s): fresh multi-MB buffers would cost page faults
    comparable to a whole stage. Calls are serialised by a lock.
    """

    def __init__(self, generator: Generator, dtype: torch.dtype = torch.float32,
                 chunk_bytes: int | None = 1 << 20, winograd_channels: int | None = 128):
        if dtype not in (torch.float32, torch.bfloat16):
            raise ValueError(f"FastGenerator supports float32 and bfloat16, got {dtype}")
        self.dtype, self.winograd_channels = dtype, winograd_channels
        self.chunk_elems = None if chunk_bytes is None else max(1, chunk_bytes // dtype.itemsize)
        self.hop_length, self.input_size = generator.hop_length, generator.input_size
        self._work: dict[int, torch.Tensor] = {}
        self._lock = threading.Lock()
        layers = list(generator.model)
        with torch.no_grad():
            pre = layers[1]
            w = _weight(pre)  # (C0, C_mel, k)
            self.pre_k = w.shape[-1]
            self.pre_w = self._cast(w.permute(1, 2, 0).reshape(-1, w.shape[0]))  # (C_mel*k, C0), rows (c, k)
            self.pre_b = self._cast(pre.bias)
            self.stages: list[_Stage] = []
            for layer in layers[2:]:
                if isinstance(layer, (nn.ConvTranspose1d, WNConvTranspose1d)):
                    self.stages.append(self._stage(layer))
                elif isinstance(layer, ResnetBlock):
                    self.stages[-1].blocks.append(self._block(layer))
            post = layers[-2]
            w = _weight(post)  # (1, C, k)
            self.post_k = w.shape[-1]
            self.post_w = self._cast(w[0])  # (C, k)
            self.post_b = float(post.bias[0])

    def _cast(self, t: torch.Tensor) -> torch.Tensor:
        return t.detach().to(self.dtype).contiguous()

    def _stage(self, conv: nn.Module) -> _Stage:
        r, k, p = conv.stride[0], conv.kernel_size[0], conv.padding[0]
        if k != 2 * r or p != r // 2 + r % 2 or conv.output_padding[0] != r % 2 or conv.dilation[0] != 1:
            raise ValueError(f"FastGenerator expects MelGAN transposed convs (k 2r, padding r//2 + r%2), got {conv}")
        w = _weight(conv)  # (C_in, C_out, 2r); output n = r*i + tap - p
        c_in, c_out = w.shape[:2]
        n_prev = r - p  # phases q < r - p also take row m-1 (tap r + p + q); the others row m+1 (tap q + p - r)

        def taps(lo: int, hi: int) -> torch.Tensor:
            return self._cast(w[:, :, lo:hi].permute(0, 2, 1).reshape(c_in, -1))  # (C_in, n_taps*C_out)

        return _Stage(ratio=r, c_out=c_out, n_prev=n_prev, w_mid=taps(p, p + r), w_prev=taps(r + p, 2 * r),
                      w_next=taps(0, p), bias=self._cast(conv.bias.repeat(r)), blocks=[])

    def _block(self, block: ResnetBlock) -> _Block:
        conv3, conv1 = block.block[2], block.block[4]
        t0, t1, t2 = (t.t().double() for t in _weight(conv3).unbind(-1))  # (C_in, C_out) each
        wino = None
        if self.winograd_channels is not None and t0.shape[0] >= self.winograd_channels:
            wino = [self._cast(t) for t in (t0, (t0 + t1 + t2) / 2, (t0 - t1 + t2) / 2, -t2)]
        return _Block(dilation=conv3.dilation[0], taps=[self._cast(t) for t in (t0, t1, t2)],
                      b3=self._cast(conv3.bias), w1=self._cast(_weight(conv1)[:, :, 0].t()),
                      ws=self._cast(_weight(block.shortcut)[:, :, 0].t()),
                      b_out=self._cast(conv1.bias + block.shortcut.bias), wino=wino)

    @torch.inference_mode()
    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, C_mel, T) -> float32 wav (B, 1, T * hop_length)."""
        if mel.dim() != 3 or mel.shape[1] != self.input_size:
            raise ValueError(f"FastGenerator expects mel of shape (B, {self.input_size}, T), got {tuple(mel.shape)}")
        if mel.device.type != "cpu":
            raise ValueError(f"FastGenerator runs on the CPU, got a mel on {mel.device}")
        with self._lock:
            return torch.stack([self._one(m.to(self.dtype)) for m in mel])[:, None]

    def _buffer(self, key: int, rows: int, cols: int) -> torch.Tensor:
        """A (rows, cols) view of workspace buffer ``key`` (grown when too small, reused otherwise)."""
        buf = self._work.get(key)
        if buf is None or buf.numel() < rows * cols:
            buf = self._work[key] = torch.empty(rows * cols, dtype=self.dtype)
        return buf[: rows * cols].view(rows, cols)

    def _one(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (C_mel, T) -> wav (T * hop,) float32."""
        pad, n = self.pre_k // 2, mel.shape[1]
        x = _reflect_rows(mel.t().contiguous(), pad, pad)  # (T + 2 pad, C_mel)
        cols = x.unfold(0, self.pre_k, 1).reshape(n, -1)  # (T, C_mel * k) in (c, k) order
        x = torch.addmm(self.pre_b, cols, self.pre_w)  # (T, C0)
        for i, stage in enumerate(self.stages):
            out = self._buffer(i % 2, x.shape[0] * stage.ratio, stage.c_out)
            for lo, hi in self._chunks(out.shape[0], stage.c_out, stage.ratio):
                self._stage_chunk(stage, x, out, lo, hi)
            x = out
        wav = torch.empty(x.shape[0])
        for lo, hi in self._chunks(x.shape[0], x.shape[1], 1):
            self._post(x, wav, lo, hi)
        return wav

    def _chunks(self, n: int, channels: int, multiple: int) -> list[tuple[int, int]]:
        """[lo, hi) row ranges of about ``chunk_elems / channels`` rows (a multiple of ``multiple``)."""
        step = n if self.chunk_elems is None else max(multiple, self.chunk_elems // channels // multiple * multiple)
        return [(lo, min(n, lo + step)) for lo in range(0, n, step)]

    def _stage_chunk(self, st: _Stage, x: torch.Tensor, out: torch.Tensor, lo: int, hi: int) -> None:
        """Rows [lo, hi) of a stage output ``out`` (L * r, C_out) from its input x (L, C_in):
        lrelu, transposed conv, residual blocks, each computing only the rows the next one reads."""
        n_out, r = out.shape[0], st.ratio
        ranges = [(lo, hi)]  # the rows each block must produce, last block first
        for blk in reversed(st.blocks):
            a, b = ranges[-1]
            ranges.append((max(0, a - blk.dilation), min(n_out, b + blk.dilation)))
        r0, r1 = ranges[-1][0] // r, -(-ranges[-1][1] // r)  # input rows of the transposed conv
        y = _upsample(st, _lrelu_window(x, 0, x.shape[0], r0, r1, 1, zero_pad=True))  # samples [r0 * r, r1 * r)
        start = r0 * r
        for j, blk in enumerate(st.blocks):
            o_lo, o_hi = ranges[len(st.blocks) - 1 - j]
            dst = out[lo:hi] if j == len(st.blocks) - 1 else None
            y = _res_block(blk, y, start, o_lo, o_hi, n_out, dst)
            start = o_lo
        if not st.blocks:
            out[lo:hi] = y[lo - start: hi - start]

    def _post(self, x: torch.Tensor, wav: torch.Tensor, lo: int, hi: int) -> None:
        """wav[lo:hi] = tanh(conv_k(reflect(lrelu(x))))[lo:hi] for x (N, C) pre-activation, wav (N,) float32."""
        k = self.post_k
        p = _lrelu_window(x, 0, x.shape[0], lo, hi, k // 2)  # (hi - lo + k - 1, C)
        z = (p @ self.post_w).float()  # (rows, k): output t is sum_j z[t + j, j]
        torch.sum(z.as_strided((hi - lo, k), (k, k + 1)), 1, out=wav[lo:hi])
        torch.tanh_(wav[lo:hi].add_(self.post_b))


def _upsample(st: _Stage, xp: torch.Tensor) -> torch.Tensor:
    """Transposed conv by phases: xp (n + 2, C_in) = lrelu'd input rows with one neighbour row each side
    -> (n * r, C_out), the output samples of the n middle rows."""
    y = torch.addmm(st.bias, xp[1:-1], st.w_mid)  # (n, r * C_out)
    split = st.n_prev * st.c_out
    if split:
        y[:, :split].addmm_(xp[:-2], st.w_prev)
    if split < y.shape[1]:
        y[:, split:].addmm_(xp[2:], st.w_next)
    return y.view(-1, st.c_out)


def _lrelu_window(x: torch.Tensor, start: int, n: int, lo: int, hi: int, pad: int, extra: int = 0,
                  zero_pad: bool = False) -> torch.Tensor:
    """LeakyReLU of samples [lo - pad, hi + pad) of a signal of n samples, as a new (hi - lo + 2 pad + extra, C).

    x (rows, C) holds samples [start, start + rows) (every sample of [0, n) the window reads). Samples
    outside [0, n) are reflected (``zero_pad``: zeros); the ``extra`` rows at the end are zeros.
    """
    w_lo, w_hi = lo - pad, hi + pad
    core_lo, core_hi = max(w_lo, 0), min(w_hi, n)
    p = x.new_empty(w_hi - w_lo + extra, x.shape[1])
    _lrelu_into(x[core_lo - start: core_hi - start], p[core_lo - w_lo: core_hi - w_lo])
    left, right = core_lo - w_lo, w_hi - core_hi
    if zero_pad:
        p[:left] = 0
        p[core_hi - w_lo:] = 0
    elif left or right:
        if max(left, right) >= core_hi - core_lo:
            raise ValueError(f"a signal of {n} samples is too short for reflection padding {pad}")
        _reflect_fill(p[: w_hi - w_lo], left, core_hi - w_lo)
    if extra:
        p[w_hi - w_lo:] = 0
    return p


def _reflect_fill(p: torch.Tensor, core_lo: int, core_hi: int) -> None:
    """Fill rows [0, core_lo) and [core_hi, len(p)) of p (N, C) by reflection about rows core_lo, core_hi - 1."""
    right = p.shape[0] - core_hi
    if core_lo:
        p[:core_lo] = p[core_lo + 1: 2 * core_lo + 1].flip(0)
    if right:
        p[core_hi:] = p[core_hi - 1 - right: core_hi - 1].flip(0)


def _reflect_rows(x: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """x (N, C) -> (N + left + right, C) reflection-padded along time (rows)."""
    p = x.new_empty(x.shape[0] + left + right, x.shape[1])
    p[left: left + x.shape[0]] = x
    _reflect_fill(p, left, left + x.shape[0])
    return p


def _res_block(blk: _Block, x: torch.Tensor, start: int, lo: int, hi: int, n: int,
               out: torch.Tensor | None) -> torch.Tensor:
    """Residual block on time-major rows: x holds samples [start, start + len(x)) of a signal of n samples.

    Returns (or writes into ``out``) the block output for samples [lo, hi):
    ``x @ ws + lrelu(conv3_d(reflect_d(lrelu(x)))) @ w1 + b``; reflection only at the signal ends 0 / n.
    """
    d, m = blk.dilation, hi - lo
    n_tiles = -(-m // (2 * d))  # Winograd tiles: output rows 2 d k + j and 2 d k + j + d, j < d
    # lrelu'd input of the k3 conv (+ zero rows completing the last Winograd tile; their outputs are dropped)
    p = _lrelu_window(x, start, n, lo, hi, d, extra=2 * d * n_tiles - m if blk.wino else 0)
    if blk.wino:
        h = _k3_winograd(blk, p, n_tiles)[:m]
    else:
        h = torch.addmm(blk.b3, p[:m], blk.taps[0])
        h.addmm_(p[d: d + m], blk.taps[1])
        h.addmm_(p[2 * d: 2 * d + m], blk.taps[2])
        torch._C._nn.leaky_relu_(h, SLOPE)
    y = torch.addmm(blk.b_out, x[lo - start: hi - start], blk.ws, out=out)
    return y.addmm_(h, blk.w1)


def _k3_winograd(blk: _Block, p: torch.Tensor, n_tiles: int) -> torch.Tensor:
    """lrelu(k3 conv, dilation d) by Winograd F(2,3): 4 GEMMs per 2 output rows instead of 6.

    p (2 d (n_tiles + 1), C): lrelu'd padded input (row i = input of output row i - d ... i + d).
    Output rows i = 2 d k + j and i + d (k < n_tiles, j < d) use d0..d3 = p rows i, i+d, i+2d, i+3d:
    y_i = m1 + m2 + m3, y_{i+d} = m2 - m3 - m4 with m1 = (d0-d2) T0, m2 = (d1+d2)(T0+T1+T2)/2,
    m3 = (d2-d1)(T0-T1+T2)/2, m4 = (d1-d3) T2. Returns (2 d n_tiles, C) after LeakyReLU.
    """
    d, c = blk.dilation, p.shape[1]
    pb = p.view(n_tiles + 1, 2, d, c)
    d0, d1, d2, d3 = pb[:-1, 0], pb[:-1, 1], pb[1:, 0], pb[1:, 1]  # (n_tiles, d, C) views
    rows = n_tiles * d
    g0, g1, g2, g3 = blk.wino
    m2 = torch.addmm(blk.b3, torch.add(d1, d2).view(rows, c), g1)  # bias once in both outputs
    m3 = torch.sub(d2, d1).view(rows, c) @ g2
    y1 = torch.sub(m2, m3).addmm_(torch.sub(d1, d3).view(rows, c), g3)
    y0 = m2.add_(m3).addmm_(torch.sub(d0, d2).view(rows, c), g0)
    h = p.new_empty(n_tiles, 2, d, c)
    _lrelu_into(y0.view(n_tiles, d, c), h[:, 0])
    _lrelu_into(y1.view(n_tiles, d, c), h[:, 1])
    return h.view(2 * d * n_tiles, c)

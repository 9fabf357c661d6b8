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
* biases are folded into the GEMMs (``addmm``), weight norm is folded at construction;
* **C kernels** (``vocoder/csrc/melgan.cpp``, compiled on first use by :mod:`specvqgan.native`; without
  a compiler every caller falls back to torch ops): LeakyReLU + reflection/zero padding of a window in
  one pass, the Winograd input/output transforms (+ LeakyReLU) in one pass each, and the last conv
  (LeakyReLU, k7 conv to one channel, reflection) in one pass without temporaries.

Precision: ``torch.float32`` (default, exact), ``torch.bfloat16`` (weights and activations in bf16,
GEMMs accumulate in fp32 inside oneDNN/MKL; not exact) or ``torch.int8`` (explicit opt-in, below).

**int8** (``dtype=torch.int8``, ``MelGANVocoder(precision="int8")``): the stages with at least
``int8_channels`` output channels (default: all) run their GEMMs through oneDNN ``qlinear`` (u8 x s8,
int32 accumulation, AVX512-VNNI: ~2x the bf16 GEMM rate here): weights symmetric int8 per output
channel, every GEMM input asymmetric uint8 with a per-chunk scale from its min / max, activations
between GEMMs in fp32; bias, dequantization, LeakyReLU (k3 conv) and the residual sum (1x1 conv
into the shortcut's output) are fused into the GEMMs; the dilated conv's three taps are one
K = 3C GEMM. One C pass per block writes all its uint8 inputs (LeakyReLU, padding, the taps side by
side, the shortcut input); a second quantizes the k3 output. Not exact: on random (default-init)
weights about the error of bf16 (max |diff| 1.3e-3, SNR 52 dB vs fp32), on the golden weights and
mel max |diff| 4e-2 on a peak of 0.43, SNR 25 dB (bf16: 1.1e-2, 35 dB): the shortcut inputs (the
residual stream) are the most sensitive (25.8 dB with all activations quantized alone, 31.9 dB with
only the weights quantized).

Measured (1 thread, AMD EPYC Zen4 with AVX512-BF16/VNNI, no AMX; paper generator, 10 s of audio;
variants interleaved in one process, medians of 7; the machine was shared, so +-10% between runs):

==========================================================  ===========  ===========  ===========
variant                                                     fp32 (s)     bf16 (s)     int8 (s)
==========================================================  ===========  ===========  ===========
torch ops only (``native=False``; = before the C kernels)   0.88         0.45         0.64 [1]
C kernels: LeakyReLU windows, Winograd transforms, last     0.88 (+-0)   0.44 (-4%)   -
conv (15 -> 4 ms fp32; bf16 SNR 51.5 -> 56 dB: one rounding)
int8 + the C quantization passes (default with a compiler)  -            -            0.32
==========================================================  ===========  ===========  ===========

[1] the pure-torch fallback of the quantization (0.37 with ``torch.quantize_per_tensor``, deprecated:
not used). In the int8 path (0.32 s): qlinear GEMMs ~72%, the C quantization passes ~18%, the rest
~10%. Within it: chunks of 1 MiB of uint8 rather than of fp32 activations (4x the rows: the qlinear
calls go from ~200 to ~300 GFLOP/s) 0.47 -> 0.39 s; the k3 output in bf16 -3%; the k3 taps as one
K = 3C GEMM with fused LeakyReLU -1%; int8 for all stages vs only >= 64 channels: within noise.

Tried, did not pay: bf16 GEMMs with oneDNN fused post-ops (``mkldnn._linear_pointwise`` +
leaky_relu: the same time as ``addmm`` + a LeakyReLU pass; with an im2col K = 3C copy -10% on the
32/64-channel k3 convs only, < 2% in all); Winograd for the 32/64-channel stacks in bf16 even with the
C transforms (within noise); workspace buffers / glibc malloc tunables against page faults (within
noise); ``qlinear`` fuses a sum *or* a LeakyReLU, not both, and its in-place sum needs a contiguous
``other`` (a column slice gives wrong results); one K = 2C GEMM for the 1x1 conv + shortcut needs a
common activation scale (-2 dB). bf16 is GEMM-bound (~90% of its time at ~185 of a ~200 GFLOP/s
peak): below ~0.4 s at 1 thread only int8 gets there.
"""
from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from pathlib import Path

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
class _QWeight:
    """An int8 GEMM operand for oneDNN ``qlinear``: ``packed`` = prepacked int8 (N, K) weight (symmetric,
    per-output-channel ``scale`` (N,) fp32, zero points ``zp`` (N,) int64), ``bias`` (N,) fp32 or None."""
    packed: torch.Tensor
    scale: torch.Tensor
    zp: torch.Tensor
    bias: torch.Tensor | None


@dataclass
class _QBlock:
    """int8 residual block: k3 = the dilated conv's three taps stacked along K (3C -> C, bias b3),
    w1 = the 1x1 conv (C -> C, no bias), ws = the shortcut (C -> C, bias b1 + b_shortcut)."""
    dilation: int
    k3: _QWeight
    w1: _QWeight
    ws: _QWeight


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
    blocks: list
    dtype: torch.dtype = torch.float32  # activation dtype of the stage (fp32 for int8 stages)
    int8: bool = False  # GEMM operands are _QWeight (w_mid, w_prev, w_next; blocks are _QBlock)


class FastGenerator:
    """Inference-only twin of a :class:`Generator` (weights copied and folded at construction).

    Args:
        generator: the trained generator (weight norm folded or not; any ngf / ratios / residual layers).
        dtype: ``torch.float32`` (exact to ~1e-6), ``torch.bfloat16`` or ``torch.int8`` (int8 GEMMs for
            the stages with at least ``int8_channels`` output channels, fp32 activations there; the
            other stages and the first conv run bf16; see the module docstring for its error).
        chunk_bytes: target size of a chunk's activations (time rows x channels) inside a stage; 1 MiB
            keeps a chunk's working set in a 1-2 MiB L2 cache and amortises the fixed cost of each GEMM
            call (~2 us fp32, ~18 us bf16 through oneDNN). ``None``: whole stages at once.
        winograd_channels: run the dilated k3 convs of residual blocks with at least this many channels
            by Winograd F(2,3) (4 GEMMs per 2 outputs instead of 6; exact in fp32 to ~1e-7). It pays only
            where the GEMMs dominate (128-256 channels: ~3-5% of the total here); below, the extra
            transform passes cost more than the saved FLOPs. ``None``: never. (Not used by int8 stages.)
        int8_channels: with ``dtype=torch.int8``, the narrowest stage (output channels) that runs int8.
        native: use the C kernels of ``vocoder/csrc/melgan.cpp`` where they can be built (else, or with
            ``False``, the same computations in torch ops; fp32 results agree to ~1e-7).

    Call: mel (B, C_mel, T) -> float32 wav (B, 1, T * hop), the output of ``generator(mel)``.
    int8 chunks hold ``chunk_bytes`` of uint8 GEMM input (4x the rows of an fp32 chunk).
    Stage outputs alternate between two workspace buffers kept between calls (largest stage output,
    T * hop * ngf values each: 28 MB in fp32 for 10 s): fresh multi-MB buffers would cost page faults
    comparable to a whole stage. Calls are serialised by a lock.
    """

    def __init__(self, generator: Generator, dtype: torch.dtype = torch.float32,
                 chunk_bytes: int | None = 1 << 20, winograd_channels: int | None = 128,
                 int8_channels: int = 32, native: bool = True):
        if dtype not in (torch.float32, torch.bfloat16, torch.int8):
            raise ValueError(f"FastGenerator supports float32 and bfloat16 (or int8 GEMMs), got {dtype}")
        if dtype == torch.int8 and not _HAS_QLINEAR:
            raise ValueError("FastGenerator int8 needs oneDNN qlinear ops (torch.ops.onednn.qlinear_pointwise)")
        self.int8 = dtype == torch.int8
        # float dtype of the float stages (and the first conv): bf16 beside int8 stages
        self.dtype = torch.bfloat16 if self.int8 else dtype
        self.winograd_channels, self.chunk_bytes = winograd_channels, chunk_bytes
        self._lib = _quant_lib() if native else None
        self.hop_length, self.input_size = generator.hop_length, generator.input_size
        self._work: dict[tuple, torch.Tensor] = {}
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
                    q = self.int8 and layer.out_channels >= int8_channels
                    self.stages.append(self._stage_int8(layer) if q else self._stage(layer))
                elif isinstance(layer, ResnetBlock):
                    st = self.stages[-1]
                    st.blocks.append(self._block_int8(layer) if st.int8 else self._block(layer))
            post = layers[-2]
            w = _weight(post)  # (1, C, k)
            self.post_k = w.shape[-1]
            last = self.stages[-1].dtype if self.stages else self.dtype
            self.post_w = w[0].detach().to(last).contiguous()  # (C, k) in the last stage's activation dtype
            self.post_w32 = w[0].detach().float().contiguous()  # (C, k) for the C kernel
            self.post_b = float(post.bias[0])

    def _chunk_elems(self, dtype: torch.dtype) -> int | None:
        return None if self.chunk_bytes is None else max(1, self.chunk_bytes // dtype.itemsize)

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
                      w_next=taps(0, p), bias=self._cast(conv.bias.repeat(r)), blocks=[], dtype=self.dtype)

    def _stage_int8(self, conv: nn.Module) -> _Stage:
        """The polyphase stage with int8 GEMM operands (_QWeight) and fp32 activations."""
        st = self._stage(conv)
        w = _weight(conv)
        c_in, c_out, r, p = w.shape[0], w.shape[1], st.ratio, conv.padding[0]

        def taps(lo: int, hi: int, bias: torch.Tensor | None) -> _QWeight | None:
            if hi <= lo:
                return None
            return _quantize_weight(w[:, :, lo:hi].permute(0, 2, 1).reshape(c_in, -1), bias)

        bias = conv.bias.detach().float().repeat(r)
        return _Stage(ratio=r, c_out=c_out, n_prev=st.n_prev, w_mid=taps(p, p + r, bias),
                      w_prev=taps(r + p, 2 * r, None), w_next=taps(0, p, None), bias=bias, blocks=[],
                      dtype=torch.float32, int8=True)

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

    def _block_int8(self, block: ResnetBlock) -> _QBlock:
        conv3, conv1 = block.block[2], block.block[4]
        t = [tap.t() for tap in _weight(conv3).unbind(-1)]  # (C_in, C_out) each, stacked: (3 C_in, C_out)
        return _QBlock(dilation=conv3.dilation[0], k3=_quantize_weight(torch.cat(t, 0), conv3.bias),
                       w1=_quantize_weight(_weight(conv1)[:, :, 0].t(), None),
                       ws=_quantize_weight(_weight(block.shortcut)[:, :, 0].t(), conv1.bias + block.shortcut.bias))

    @torch.inference_mode()
    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, C_mel, T) -> float32 wav (B, 1, T * hop_length)."""
        if mel.dim() != 3 or mel.shape[1] != self.input_size:
            raise ValueError(f"FastGenerator expects mel of shape (B, {self.input_size}, T), got {tuple(mel.shape)}")
        if mel.device.type != "cpu":
            raise ValueError(f"FastGenerator runs on the CPU, got a mel on {mel.device}")
        with self._lock:
            return torch.stack([self._one(m.to(self.dtype)) for m in mel])[:, None]

    def _buffer(self, key: int, rows: int, cols: int, dtype: torch.dtype) -> torch.Tensor:
        """A (rows, cols) view of workspace buffer ``key`` (grown when too small, reused otherwise)."""
        buf = self._work.get((key, dtype))
        if buf is None or buf.numel() < rows * cols:
            buf = self._work[key, dtype] = torch.empty(rows * cols, dtype=dtype)
        return buf[: rows * cols].view(rows, cols)

    def _one(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (C_mel, T) -> wav (T * hop,) float32."""
        pad, n = self.pre_k // 2, mel.shape[1]
        x = _reflect_rows(mel.t().contiguous(), pad, pad)  # (T + 2 pad, C_mel)
        cols = x.unfold(0, self.pre_k, 1).reshape(n, -1)  # (T, C_mel * k) in (c, k) order
        x = torch.addmm(self.pre_b, cols, self.pre_w)  # (T, C0)
        for i, stage in enumerate(self.stages):
            out = self._buffer(i % 2, x.shape[0] * stage.ratio, stage.c_out, stage.dtype)
            chunk = self._stage_chunk_int8 if stage.int8 else self._stage_chunk
            if stage.int8 and x.dtype != torch.float32:
                x = x.float()  # (L, C_in): the int8 stages quantize fp32 activations
            gemm_in = torch.uint8 if stage.int8 else stage.dtype  # chunk_bytes counts GEMM input bytes
            for lo, hi in self._chunks(out.shape[0], stage.c_out, stage.ratio, gemm_in):
                chunk(stage, x, out, lo, hi)
            x = out
        wav = torch.empty(x.shape[0])
        if self._lib is not None and x.dtype in (torch.float32, torch.bfloat16):  # one pass, no temporaries
            if self._lib.post_conv(x.data_ptr(), x.dtype == torch.bfloat16, x.shape[0], x.shape[1],
                                   self.post_w32.data_ptr(), self.post_k, self.post_b, SLOPE, wav.data_ptr()):
                raise ValueError(f"a signal of {x.shape[0]} samples is too short for reflection padding")
            return wav.tanh_()
        for lo, hi in self._chunks(x.shape[0], x.shape[1], 1, x.dtype):
            self._post(x, wav, lo, hi)
        return wav

    def _chunks(self, n: int, channels: int, multiple: int, dtype: torch.dtype) -> list[tuple[int, int]]:
        """[lo, hi) row ranges of about ``chunk_bytes / itemsize / channels`` rows (a multiple of ``multiple``)."""
        elems = self._chunk_elems(dtype)
        step = n if elems is None else max(multiple, elems // channels // multiple * multiple)
        return [(lo, min(n, lo + step)) for lo in range(0, n, step)]

    def _row_ranges(self, st: _Stage, n_out: int, lo: int, hi: int) -> list[tuple[int, int]]:
        """The rows each block of a stage must produce for output rows [lo, hi), last block first,
        then the samples the transposed conv must produce."""
        ranges = [(lo, hi)]
        for blk in reversed(st.blocks):
            a, b = ranges[-1]
            ranges.append((max(0, a - blk.dilation), min(n_out, b + blk.dilation)))
        return ranges

    def _stage_chunk(self, st: _Stage, x: torch.Tensor, out: torch.Tensor, lo: int, hi: int) -> None:
        """Rows [lo, hi) of a stage output ``out`` (L * r, C_out) from its input x (L, C_in):
        lrelu, transposed conv, residual blocks, each computing only the rows the next one reads."""
        n_out, r = out.shape[0], st.ratio
        ranges = self._row_ranges(st, n_out, lo, hi)
        r0, r1 = ranges[-1][0] // r, -(-ranges[-1][1] // r)  # input rows of the transposed conv
        xp = _lrelu_window(x, 0, x.shape[0], r0, r1, 1, zero_pad=True, lib=self._lib).to(st.dtype)
        y = _upsample(st, xp)  # samples [r0 * r, r1 * r)
        start = r0 * r
        for j, blk in enumerate(st.blocks):
            o_lo, o_hi = ranges[len(st.blocks) - 1 - j]
            dst = out[lo:hi] if j == len(st.blocks) - 1 else None
            y = _res_block(blk, y, start, o_lo, o_hi, n_out, dst, self._lib)
            start = o_lo
        if not st.blocks:
            out[lo:hi] = y[lo - start: hi - start]

    def _stage_chunk_int8(self, st: _Stage, x: torch.Tensor, out: torch.Tensor, lo: int, hi: int) -> None:
        """:meth:`_stage_chunk` with int8 GEMMs: every GEMM input is quantized to uint8 per chunk
        (asymmetric, scale from its min / max), weights are int8 per output channel, GEMMs
        accumulate in int32 and write fp32 (bias, dequantization and sums fused by oneDNN)."""
        n_out, r = out.shape[0], st.ratio
        ranges = self._row_ranges(st, n_out, lo, hi)
        r0, r1 = ranges[-1][0] // r, -(-ranges[-1][1] // r)
        if self._lib is not None:
            win = torch.empty(r1 - r0 + 2, x.shape[1], dtype=torch.uint8)
            params = torch.empty(4)
            self._lib.quant_block_input(x.data_ptr(), x.shape[1], 0, x.shape[0], r0, r1, 1, 1, SLOPE,
                                        win.data_ptr(), None, None, params.data_ptr())
            sp, zp = params[:2].tolist()
            xq = _QAct(win, sp, int(zp))
        else:
            lo_x, hi_x = _minmax(x[max(r0 - 1, 0): min(r1 + 1, x.shape[0])])
            xp = _lrelu_window(x, 0, x.shape[0], r0, r1, 1, zero_pad=True)
            xq = _quantize(xp, _lrelu_f(lo_x), _lrelu_f(hi_x))
        y = _upsample_int8(st, xq)
        start = r0 * r
        for j, blk in enumerate(st.blocks):
            o_lo, o_hi = ranges[len(st.blocks) - 1 - j]
            y = _res_block_int8(blk, y, start, o_lo, o_hi, n_out, self._lib)
            start = o_lo
        out[lo:hi] = y[lo - start: hi - start]

    def _post(self, x: torch.Tensor, wav: torch.Tensor, lo: int, hi: int) -> None:
        """wav[lo:hi] = tanh(conv_k(reflect(lrelu(x))))[lo:hi] for x (N, C) pre-activation, wav (N,) float32."""
        k = self.post_k
        p = _lrelu_window(x, 0, x.shape[0], lo, hi, k // 2)  # (hi - lo + k - 1, C)
        z = (p.to(self.post_w.dtype) @ self.post_w).float()  # (rows, k): output t is sum_j z[t + j, j]
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
               out: torch.Tensor | None, lib: ctypes.CDLL | None = None) -> torch.Tensor:
    """Residual block on time-major rows: x holds samples [start, start + len(x)) of a signal of n samples.

    Returns (or writes into ``out``) the block output for samples [lo, hi):
    ``x @ ws + lrelu(conv3_d(reflect_d(lrelu(x)))) @ w1 + b``; reflection only at the signal ends 0 / n.
    """
    d, m = blk.dilation, hi - lo
    n_tiles = -(-m // (2 * d))  # Winograd tiles: output rows 2 d k + j and 2 d k + j + d, j < d
    # lrelu'd input of the k3 conv (+ zero rows completing the last Winograd tile; their outputs are dropped)
    p = _lrelu_window(x, start, n, lo, hi, d, extra=2 * d * n_tiles - m if blk.wino else 0, lib=lib)
    if blk.wino:
        h = _k3_winograd(blk, p, n_tiles, lib)[:m]
    else:
        h = torch.addmm(blk.b3, p[:m], blk.taps[0])
        h.addmm_(p[d: d + m], blk.taps[1])
        h.addmm_(p[2 * d: 2 * d + m], blk.taps[2])
        torch._C._nn.leaky_relu_(h, SLOPE)
    y = torch.addmm(blk.b_out, x[lo - start: hi - start], blk.ws, out=out)
    return y.addmm_(h, blk.w1)


def _k3_winograd(blk: _Block, p: torch.Tensor, n_tiles: int, lib: ctypes.CDLL | None = None) -> torch.Tensor:
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
    _lrelu_into(y0.view(n_tiles, d, c), h[:, 0])
    _lrelu_into(y1.view(n_tiles, d, c), h[:, 1])
    return h.view(2 * d * n_tiles, c)


# ---------------------------------------------------------------------------------------------- int8 GEMMs
_i64, _ptr, _f32, _int = ctypes.c_int64, ctypes.c_void_p, ctypes.c_float, ctypes.c_int
_SIGNATURES = {  # function: (restype, argtypes) of vocoder/csrc/melgan.cpp
    "quant_block_input": (_int, [_ptr, _i64, _i64, _i64, _i64, _i64, _i64, _int, _f32, _ptr, _ptr, _ptr, _ptr]),
    "quant_rows": (None, [_ptr, _i64, _ptr, _ptr]),
    "quant_rows_bf16": (None, [_ptr, _i64, _ptr, _ptr]),
    "post_conv": (_int, [_ptr, _int, _i64, _i64, _ptr, _i64, _f32, _f32, _ptr]),
    "lrelu_window": (_int, [_ptr, _int, _i64, _i64, _i64, _i64, _i64, _i64, _int, _i64, _f32, _ptr]),
    "wino_in": (None, [_ptr, _int, _i64, _i64, _i64, _ptr, _ptr, _ptr, _ptr]),
    "wino_out": (None, [_ptr, _ptr, _ptr, _ptr, _int, _i64, _i64, _i64, _f32, _ptr]),
}


def _quant_lib() -> ctypes.CDLL | None:
    """The C kernels (vocoder/csrc/melgan.cpp, built once per process by specvqgan.native), or None."""
    from specvqgan.native import load_library
    return load_library("vocoder_melgan", Path(__file__).parent / "csrc" / "melgan.cpp", _SIGNATURES)


_HAS_QLINEAR = hasattr(torch.ops.onednn, "qlinear_pointwise") and hasattr(torch.ops.onednn, "qlinear_prepack")


def _quantize_weight(w: torch.Tensor, bias: torch.Tensor | None) -> _QWeight:
    """w (K, N) fp32 -> symmetric int8 per output channel n (scale max_k |w[k, n]| / 127), prepacked."""
    w = w.detach().double()
    scale = (w.abs().amax(0) / 127).clamp_min(1e-12)  # (N,)
    q = torch.round(w / scale).clamp_(-127, 127).to(torch.int8).t().contiguous()  # (N, K)
    return _QWeight(packed=torch.ops.onednn.qlinear_prepack(q, None), scale=scale.float(),
                    zp=torch.zeros(q.shape[0], dtype=torch.long),
                    bias=None if bias is None else bias.detach().float().contiguous())


def _lrelu_f(v: float) -> float:
    return v if v >= 0 else SLOPE * v


def _minmax(x: torch.Tensor) -> tuple[float, float]:
    lo, hi = torch.aminmax(x)
    return float(lo), float(hi)


@dataclass
class _QAct:
    """A uint8 GEMM input: ``u8`` (N, K) holds round(x / scale) + zp of an fp32 x (N, K)."""
    u8: torch.Tensor
    scale: float
    zp: int

    def rows(self, a: int, b: int) -> "_QAct":
        return _QAct(self.u8[a:b], self.scale, self.zp)


def _qparams(lo: float, hi: float) -> tuple[float, int]:
    """Asymmetric uint8 scale and zero point for values in [lo, hi] (0 always representable);
    the same float32 arithmetic as ``qparams`` in csrc/quant.cpp."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = float(torch.tensor(hi - lo, dtype=torch.float32) / 255) if hi > lo else 1.0
    return scale, min(255, max(0, round(-lo / scale)))


def _quantize(x: torch.Tensor, lo: float, hi: float) -> _QAct:
    """x (N, K) fp32 with values in [lo, hi] -> asymmetric uint8 (pure torch; csrc/quant.cpp does it in
    one pass)."""
    scale, zp = _qparams(lo, hi)
    u8 = torch.addcmul(torch.tensor(float(zp)), x, torch.tensor(1.0 / scale)).round_().clamp_(0, 255)
    return _QAct(u8.to(torch.uint8), scale, zp)


def _qmm(a: _QAct, w: _QWeight, acc: torch.Tensor | None = None, lrelu: bool = False,
         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(N, C_out) = dequant(a) @ dequant(w) + bias (then LeakyReLU) in ``dtype``; with ``acc``
    (contiguous fp32) added in place instead."""
    if acc is None:
        return torch.ops.onednn.qlinear_pointwise(a.u8, a.scale, a.zp, w.packed, w.scale, w.zp, w.bias,
                                                  1.0, 0, dtype, "leaky_relu" if lrelu else "none",
                                                  [SLOPE] if lrelu else [], "")
    return torch.ops.onednn.qlinear_pointwise.binary(a.u8, a.scale, a.zp, w.packed, w.scale, w.zp, acc, w.bias,
                                                     1.0, 0, torch.float32, 1.0, 0, "sum", 1.0, "none", [], "")


def _upsample_int8(st: _Stage, xp: _QAct) -> torch.Tensor:
    """:func:`_upsample` with int8 operands: xp (n + 2, C_in) quantized -> fp32 (n * r, C_out)."""
    n = xp.u8.shape[0] - 2
    y = _qmm(xp.rows(1, n + 1), st.w_mid)  # (n, r * C_out), bias included
    split = st.n_prev * st.c_out
    if st.w_prev is not None:
        y[:, :split] += _qmm(xp.rows(0, n), st.w_prev)
    if st.w_next is not None:
        y[:, split:] += _qmm(xp.rows(2, n + 2), st.w_next)
    return y.view(-1, st.c_out)


def _res_block_int8(blk: _QBlock, x: torch.Tensor, start: int, lo: int, hi: int, n: int,
                    lib: ctypes.CDLL | None) -> torch.Tensor:
    """:func:`_res_block` with int8 GEMMs: x fp32 holds samples [start, start + len(x)); returns
    fp32 (hi - lo, C), the block output for samples [lo, hi). ``lib``: the C quantization kernels
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
        cols, xq = _QAct(cols, sp, int(zpp)), _QAct(xq, sx, int(zpx))
    else:
        w_lo, w_hi = max(lo - d, 0), min(hi + d, n)
        lo_x, hi_x = _minmax(x[w_lo - start: w_hi - start])  # every sample the block reads
        p = _quantize(_lrelu_window(x, start, n, lo, hi, d), _lrelu_f(lo_x), _lrelu_f(hi_x))  # (m + 2d, C)
        cols = _QAct(torch.cat([p.u8[0:m], p.u8[d:d + m], p.u8[2 * d: 2 * d + m]], 1), p.scale, p.zp)
        xq = _quantize(x[lo - start: hi - start], lo_x, hi_x)
    # lrelu(conv3 + b3) (m, C): bf16 where the C kernel quantizes it (~3% faster, same error), else fp32
    h = _qmm(cols, blk.k3, lrelu=True, dtype=torch.bfloat16 if lib is not None else torch.float32)
    if lib is not None:
        hq = torch.empty(m, c, dtype=torch.uint8)
        (lib.quant_rows_bf16 if h.dtype == torch.bfloat16 else lib.quant_rows)(h.data_ptr(), h.numel(), hq.data_ptr(),
                                                                               params.data_ptr())
        sh, zph = params[:2].tolist()
        hq = _QAct(hq, sh, int(zph))
    else:
        hq = _quantize(h, *_minmax(h))
    y = _qmm(xq, blk.ws)  # + b_out
    return _qmm(hq, blk.w1, y)

"""Inference-only MelGAN generator for CPU: every conv as a time-major GEMM, stage by stage in chunks.

:class:`FastGenerator` computes exactly what :class:`vocoder.modules.Generator` computes (fp32: within
~1e-6) with a different memory layout and schedule, because on CPU the generator is bound by how well
its ~39 GMAC per 10 s of audio map onto the matrix-multiply units:

* **time-major activations** ``(T, C)`` and **polyphase transposed convs** (:mod:`vocoder.fast_ops`):
  a 1x1 conv is ``X @ W`` with a tall ``X`` (~2x the channels-first ``W @ X`` for 32-64 channels in
  bf16), the dilated k3 conv three accumulating GEMMs on shifted views of one padded buffer (Winograd
  F(2,3) in the wide stacks), the transposed conv's ``(L, r, C_out)`` GEMM output *is* the upsampled
  signal;
* **chunked stages**: the transposed conv and its residual stack run on chunks of about ``chunk_bytes``
  of activations (L2-sized), each computing exactly its output rows from the rows it needs (the
  dilations' context is recomputed, reflection padding applies only at the true signal ends);
* weight norm and biases are folded once at construction; **C kernels** (:mod:`vocoder.fast_native`)
  for LeakyReLU + padding windows, the Winograd transforms, the int8 quantization passes and the last
  conv, each in one pass (torch ops without a compiler);
* precision ``torch.float32`` (default, exact), ``torch.bfloat16`` (GEMMs accumulate in fp32 inside
  oneDNN/MKL), ``torch.int8`` (:mod:`vocoder.fast_int8`), or fp32 with chosen stages in bf16
  (``bf16_stages``) or with bf16 GEMMs on an fp32 residual stream and fp32 shortcuts (``res32_stages``);
  :func:`mixed_stages` picks both for the "mixed" precision of :class:`vocoder.MelGANVocoder`. Speed and
  error of each: docs/vocoder.md, docs/benchmarks.md (``scripts/benchmark_vocoder.py``).
"""
from __future__ import annotations

import threading
import time

import torch
from torch import nn

from vocoder.fast_int8 import HAS_QLINEAR, pack_block_int8, pack_stage_int8, stage_chunk_int8
from vocoder.fast_native import load_kernels
from vocoder.fast_ops import SLOPE, Stage, lrelu_window, pack_block, pack_stage, reflect_rows, stage_chunk
from vocoder.modules import Generator, ResnetBlock, WNConvTranspose1d, folded_weight

__all__ = ["FastGenerator", "heaviest_stage", "mixed_stages"]


def heaviest_stage(generator: Generator) -> int:
    """Index of the upsampling stage whose residual blocks do the most multiply-adds (C_out^2 x its length;
    paper generator: 1, the 128-channel stage at 64x the mel rate, ~40 % of the generator's FLOPs)."""
    stages = [m for m in generator.model if isinstance(m, (nn.ConvTranspose1d, WNConvTranspose1d))]
    if not stages:
        raise ValueError("the generator has no upsampling stage")
    cost, length = [], 1
    for conv in stages:
        length *= conv.stride[0]
        cost.append(conv.out_channels ** 2 * length)
    return max(range(len(cost)), key=cost.__getitem__)


def mixed_stages(generator: Generator) -> dict[str, tuple[int, ...]]:
    """The ``bf16_stages`` / ``res32_stages`` of the "mixed" precision: the stages before the heaviest one
    in bf16, the heaviest with bf16 GEMMs on an fp32 residual stream and fp32 shortcuts, the rest fp32.
    Paper generator: stage 0 (256 channels) bf16, stage 1 (128) res32, stages 2-3 (64, 32) fp32; chosen by
    the per-stage search of docs/benchmarks.md (the fastest with >= 40 dB SNR against fp32 on the golden
    weights, with a margin: 40.9 dB on 3 VGGSound mels; the bf16 GEMMs of the 32/64-channel stages cost
    the most SNR per second saved)."""
    k = heaviest_stage(generator)
    return {"bf16_stages": tuple(range(k)), "res32_stages": (k,)}


class FastGenerator:
    """Inference-only twin of a :class:`Generator` (weights copied and folded at construction).

    Args:
        generator: the trained generator (weight norm folded or not; any ngf / ratios / residual layers).
        dtype: ``torch.float32`` (exact to ~1e-6), ``torch.bfloat16`` or ``torch.int8`` (int8 GEMMs for
            the stages with at least ``int8_channels`` output channels, fp32 activations there; the
            other stages and the first conv run bf16; see docs/vocoder.md for its error).
        chunk_bytes: target size of a chunk's activations (time rows x channels) inside a stage; 1 MiB
            keeps a chunk's working set in a 1-2 MiB L2 cache and amortises the fixed cost of each GEMM
            call (~2 us fp32, ~18 us bf16 through oneDNN). ``None``: whole stages at once.
        winograd_channels: run the dilated k3 convs of residual blocks with at least this many channels
            by Winograd F(2,3) (4 GEMMs per 2 outputs instead of 6; exact in fp32 to ~1e-7). It pays only
            where the GEMMs dominate (128-256 channels: ~3-5% of the total here); below, the extra
            transform passes cost more than the saved FLOPs. ``None``: never. (Not used by int8 stages.)
        int8_channels: with ``dtype=torch.int8``, the narrowest stage (output channels) that runs int8.
        bf16_stages: with ``dtype=torch.float32``, the indices of the upsampling stages (transposed conv + its
            residual blocks) that run in bf16 (GEMMs accumulate in fp32; the stage output is stored in bf16).
        res32_stages: with ``dtype=torch.float32``, stages whose transposed conv, k3 and 1x1 convs run bf16
            GEMMs (inputs rounded to bf16, fp32 accumulation) while the residual stream, the shortcut 1x1
            convs (the most rounding-sensitive layers) and the stage output stay fp32.
        native: use the C kernels of ``vocoder/csrc/melgan.cpp`` where they can be built (else, or with
            ``False``, the same computations in torch ops; fp32 results agree to ~1e-7).

    Call: mel (B, C_mel, T) -> float32 wav (B, 1, T * hop_length), the output of ``generator(mel)``.
    int8 chunks hold ``chunk_bytes`` of uint8 GEMM input (4x the rows of an fp32 chunk).
    Stage outputs alternate between two workspace buffers kept between calls (largest stage output,
    T * hop * ngf values each: 28 MB in fp32 for 10 s): fresh multi-MB buffers would cost page faults
    comparable to a whole stage. Calls are serialised by a lock.
    """

    def __init__(self, generator: Generator, dtype: torch.dtype = torch.float32,
                 chunk_bytes: int | None = 1 << 20, winograd_channels: int | None = 128,
                 int8_channels: int = 32, bf16_stages: tuple[int, ...] = (), res32_stages: tuple[int, ...] = (),
                 native: bool = True):
        if dtype not in (torch.float32, torch.bfloat16, torch.int8):
            raise ValueError(f"FastGenerator supports float32 and bfloat16 (or int8 GEMMs), got {dtype}")
        if dtype == torch.int8 and not HAS_QLINEAR:
            raise ValueError("FastGenerator int8 needs oneDNN qlinear ops (torch.ops.onednn.qlinear_pointwise)")
        if bf16_stages and dtype != torch.float32:
            raise ValueError(f"FastGenerator bf16_stages needs dtype float32, got {dtype}")
        if res32_stages and dtype != torch.float32:
            raise ValueError(f"FastGenerator res32_stages needs dtype float32, got {dtype}")
        if set(bf16_stages) & set(res32_stages):
            raise ValueError(f"FastGenerator: stages {sorted(set(bf16_stages) & set(res32_stages))} are in both "
                             f"bf16_stages and res32_stages")
        self.int8, self.bf16_stages, self.res32_stages = dtype == torch.int8, tuple(bf16_stages), tuple(res32_stages)
        # float dtype of the float stages (and the first conv): bf16 beside int8 stages
        self.dtype = torch.bfloat16 if self.int8 else dtype
        self.winograd_channels, self.chunk_bytes = winograd_channels, chunk_bytes
        self._lib = load_kernels() if native else None
        self.hop_length, self.input_size = generator.hop_length, generator.input_size
        self._work: dict[tuple, torch.Tensor] = {}
        self._lock = threading.Lock()
        #: set to a list of zeros (one per stage) to accumulate each stage's CPU seconds (process time; benchmarks)
        self.stage_seconds: list[float] | None = None
        layers = list(generator.model)
        with torch.no_grad():
            pre = layers[1]
            w = folded_weight(pre)  # (C0, C_mel, k)
            self.pre_k = w.shape[-1]
            self.pre_w = self._cast(w.permute(1, 2, 0).reshape(-1, w.shape[0]))  # (C_mel*k, C0), rows (c, k)
            self.pre_b = self._cast(pre.bias)
            self.stages: list[Stage] = []
            for layer in layers[2:]:
                if isinstance(layer, (nn.ConvTranspose1d, WNConvTranspose1d)):
                    q = self.int8 and layer.out_channels >= int8_channels
                    dt = torch.bfloat16 if len(self.stages) in self.bf16_stages else self.dtype
                    gemm = torch.bfloat16 if len(self.stages) in self.res32_stages else dt  # GEMM operand dtype
                    self.stages.append(pack_stage_int8(layer) if q else pack_stage(layer, _caster(gemm), dt))
                elif isinstance(layer, ResnetBlock):
                    st = self.stages[-1]
                    if st.int8:
                        st.blocks.append(pack_block_int8(layer))
                        continue
                    blk = pack_block(layer, _caster(st.w_mid.dtype), self.winograd_channels)
                    if st.w_mid.dtype != st.dtype:  # res32: the shortcut and the residual sum stay fp32
                        blk.ws = folded_weight(layer.shortcut)[:, :, 0].t().float().contiguous()
                        blk.b_out = (layer.block[4].bias + layer.shortcut.bias).detach().float()
                    st.blocks.append(blk)
            post = layers[-2]
            w = folded_weight(post)  # (1, C, k)
            self.post_k = w.shape[-1]
            last = self.stages[-1].dtype if self.stages else self.dtype
            self.post_w = w[0].detach().to(last).contiguous()  # (C, k) in the last stage's activation dtype
            self.post_w32 = w[0].detach().float().contiguous()  # (C, k) for the C kernel
            self.post_b = float(post.bias[0])

    def _chunk_elems(self, dtype: torch.dtype) -> int | None:
        return None if self.chunk_bytes is None else max(1, self.chunk_bytes // dtype.itemsize)

    def _cast(self, t: torch.Tensor) -> torch.Tensor:
        return _caster(self.dtype)(t)

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
        x = reflect_rows(mel.t().contiguous(), pad, pad)  # (T + 2 pad, C_mel)
        cols = x.unfold(0, self.pre_k, 1).reshape(n, -1)  # (T, C_mel * k) in (c, k) order
        x = torch.addmm(self.pre_b, cols, self.pre_w)  # (T, C0)
        for i, stage in enumerate(self.stages):
            start = time.process_time() if self.stage_seconds is not None else 0.0
            out = self._buffer(i % 2, x.shape[0] * stage.ratio, stage.c_out, stage.dtype)
            chunk = stage_chunk_int8 if stage.int8 else stage_chunk
            if stage.int8 and x.dtype != torch.float32:
                x = x.float()  # (L, C_in): the int8 stages quantize fp32 activations
            gemm_in = torch.uint8 if stage.int8 else stage.dtype  # chunk_bytes counts GEMM input bytes
            for lo, hi in self._chunks(out.shape[0], stage.c_out, stage.ratio, gemm_in):
                chunk(stage, x, out, lo, hi, self._lib)
            x = out
            if self.stage_seconds is not None:
                self.stage_seconds[i] += time.process_time() - start
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

    def _post(self, x: torch.Tensor, wav: torch.Tensor, lo: int, hi: int) -> None:
        """wav[lo:hi] = tanh(conv_k(reflect(lrelu(x))))[lo:hi] for x (N, C) pre-activation, wav (N,) float32."""
        k = self.post_k
        p = lrelu_window(x, 0, x.shape[0], lo, hi, k // 2)  # (hi - lo + k - 1, C)
        z = (p.to(self.post_w.dtype) @ self.post_w).float()  # (rows, k): output t is sum_j z[t + j, j]
        torch.sum(z.as_strided((hi - lo, k), (k, k + 1)), 1, out=wav[lo:hi])
        torch.tanh_(wav[lo:hi].add_(self.post_b))


def _caster(dtype: torch.dtype):
    """t -> a contiguous detached copy of t in ``dtype`` (GEMM operands)."""
    return lambda t: t.detach().to(dtype).contiguous()

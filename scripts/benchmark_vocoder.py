#!/usr/bin/env python
"""Vocoder speed: seconds to vocode 10 s of audio (860 mel frames) with the paper-size MelGAN generator.

    python scripts/benchmark_vocoder.py [--repeats 5] [--threads 2] [--compile] [--skip-batch8]
                                        [--headline mixed|fp32|bf16|int8] [--golden PATH] [--stage-search]

Rows (CPU; CUDA rows for the eager module when a GPU is present):
  reference      the reference forward: weight norm recomputed every call, eager fp32, ``no_grad``;
  eager fp32     ``nn.Module`` with weight norm folded (``MelGANVocoder(backend="eager")``);
  eager bf16     the same in bf16;
  fast fp32      ``vocoder.fast.FastGenerator`` (``precision="fp32"``): time-major GEMMs, polyphase
                 transposed convs, chunked stages, Winograd F(2,3) for the 128/256-channel k3 convs; exact;
  fast fp32 no Winograd   the same with direct k3 convs everywhere;
  fast mixed     ``precision="mixed"`` (the default, ``"auto"``, on CPU; ``vocoder.fast.mixed_stages``): stage 0
                 (256 channels) in bf16, stage 1 (128) bf16 GEMMs with fp32 shortcuts and residual stream,
                 stages 2-3 fp32; >= 40 dB SNR against fp32 on the golden weights;
  fast bf16      ``precision="bf16"`` (explicit opt-in; not exact: its max error is printed; no Winograd);
  fast int8      ``precision="int8"`` (explicit opt-in, CPU): int8 GEMMs (oneDNN qlinear, AVX512-VNNI) with
                 uint8 activations quantized per chunk (C kernels ``vocoder/csrc/melgan.cpp``); not exact;
  compile fp32   ``torch.compile`` of the folded module (``--compile``; compile time printed).
Each figure is the median of ``--repeats`` timed runs after a warm-up, the variants interleaved run by run
(so machine load hits them alike); ``min`` is the fastest run. ``max|diff|`` and SNR are against the
reference output (random weights); the ``golden SNR`` lines: each fast CPU precision against fast fp32 on the
golden weights and mel (``--golden``, default ``../shared/reference/golden/melgan.pt``; skipped when absent).
GFLOP/s = generator FLOPs (counted from the layer shapes) / time; ``--peak`` also times a
2048^3 matmul in fp32, bf16 and int8 for comparison. Random weights (timing does not depend on them).
``--stage-search``: instead of the above, the per-stage precision search behind "mixed": every assignment of
fp32 / bf16 / res32 (bf16 GEMMs, fp32 shortcut and residual stream) to the 4 stages, its SNR against fp32
(golden weights; the minimum over the golden mel and 2 more VGGSound mels) and its time per 10 s estimated
as the sum of per-stage CPU seconds (``FastGenerator.stage_seconds``, medians of ``--repeats``; run it with
``--threads 1``, where CPU and wall time agree); prints the assignments no faster one beats in SNR.
The last line is machine-readable (paper size, batch 1, CPU, the default (mixed) path unless ``--headline``):
``seconds_per_10s=<x> realtime_factor=<y>``.
"""
from __future__ import annotations

import argparse
import importlib.util
import itertools
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from specvqgan import checkpoint
from specvqgan.audio import MEL_FRAMES_10S
from vocoder.fast import FastGenerator
from vocoder.inference import GriffinLimVocoder, MelGANVocoder
from vocoder.modules import Generator

CLIP_SECONDS = 10.0
HEADLINE = {"mixed": "fast mixed (default)", "fp32": "fast fp32", "bf16": "fast bf16", "int8": "fast int8"}
GOLDEN = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference" / "golden" / "melgan.pt"


def generator_flops(generator: Generator, frames: int) -> float:
    """Multiply-adds x 2 of one forward pass on ``frames`` mel frames (convs and transposed convs only)."""
    flops, length = 0.0, frames
    for m in generator.modules():
        if isinstance(m, torch.nn.ConvTranspose1d):
            length *= m.stride[0]
            flops += 2.0 * m.in_channels * m.out_channels * m.kernel_size[0] / m.stride[0] * length
        elif isinstance(m, torch.nn.Conv1d):
            flops += 2.0 * m.in_channels * m.out_channels * m.kernel_size[0] * length
    return flops


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of an n^3 matmul (int8: ``torch._int_mm``, int32 accumulation)."""
    if dtype == torch.int8:
        a, b = (torch.randint(-127, 128, (n, n), dtype=torch.int8) for _ in range(2))
        mm = torch._int_mm
    else:
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        mm = torch.matmul
    mm(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        mm(a, b)
        times.append(time.perf_counter() - start)
    return 2 * n ** 3 / statistics.median(times) / 1e9


def time_interleaved(fns: dict, repeats: int) -> dict:
    """{name: fn} -> {name: (median s, min s, last output)}: one warm-up each, then round-robin runs."""
    outs = {name: fn() for name, fn in fns.items()}
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            start = time.perf_counter()
            outs[name] = fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(t), min(t), outs[name]) for name, t in times.items()}


def snr_db(out: torch.Tensor, ref: torch.Tensor) -> float:
    noise = (out - ref).pow(2).sum().item()
    return float("inf") if noise == 0 else 10 * torch.log10(ref.pow(2).sum() / noise).item()


def variants(generator: Generator, device: str, with_compile: bool) -> dict:
    """name -> MelGANVocoder-like object with .vocode (built outside the timing)."""
    out = {"eager fp32": MelGANVocoder(generator, device=device, chunk_frames=None, backend="eager"),
           "eager bf16": MelGANVocoder(generator, device=device, precision="bf16", chunk_frames=None,
                                       backend="eager")}
    if device == "cpu":
        out["fast mixed (default)"] = MelGANVocoder(generator, precision="auto", chunk_frames=None)
        out["fast fp32"] = MelGANVocoder(generator, chunk_frames=None)
        out["fast fp32 no Winograd"] = MelGANVocoder(generator, chunk_frames=None,
                                                     fast_options={"winograd_channels": None})
        out["fast bf16"] = MelGANVocoder(generator, precision="bf16", chunk_frames=None)
        out["fast int8"] = MelGANVocoder(generator, precision="int8", chunk_frames=None)
    if with_compile:
        voc = MelGANVocoder(generator, device=device, chunk_frames=None, backend="eager")
        voc.generator = torch.compile(voc.generator)
        start = time.perf_counter()
        voc.vocode(torch.rand(1, 80, MEL_FRAMES_10S, device=device))
        print(f"torch.compile ({device}): first call {time.perf_counter() - start:.1f} s")
        out["compile fp32"] = voc
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    parser.add_argument("--skip-batch8", action="store_true")
    parser.add_argument("--peak", action="store_true", help="also time a 2048^3 matmul (fp32, bf16, int8)")
    parser.add_argument("--headline", choices=tuple(HEADLINE), default="mixed",
                        help="precision of the fast CPU path reported on the last line")
    parser.add_argument("--golden", type=Path, default=GOLDEN,
                        help="golden melgan.pt: SNR of each precision against fp32 on its weights and mel")
    parser.add_argument("--stage-search", action="store_true",
                        help="only the per-stage fp32 / bf16 / res32 search (SNR on the golden weights, time)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.stage_search:
        return stage_search(args.golden, args.repeats)
    torch.manual_seed(0)
    generator = Generator(80, ngf=32, n_residual_layers=3).eval()  # 4,266,050 parameters
    gflop = generator_flops(generator, MEL_FRAMES_10S) / 1e9
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, devices {devices}, "
          f"median of {args.repeats}; paper generator: {gflop:.1f} GFLOP per 10 s clip")
    if args.peak:
        print(f"matmul 2048^3: fp32 {matmul_peak(torch.float32):.0f} GFLOP/s, "
              f"bf16 {matmul_peak(torch.bfloat16):.0f} GFLOP/s, int8 {matmul_peak(torch.int8):.0f} GFLOP/s")
    print(f"{'variant':22s} {'device':6s} {'batch':>5s} {'s/10s':>7s} {'min':>7s} {'x realtime':>10s} "
          f"{'GFLOP/s':>8s} {'max|diff|':>9s} {'SNR dB':>7s}")
    headline = None
    for device in devices:
        for batch in (1,) if args.skip_batch8 else (1, 8):
            mel = torch.rand(batch, 80, MEL_FRAMES_10S, device=device)
            reference = generator.to(device)
            fns = {"reference": lambda: _no_grad(reference, mel)}
            for name, voc in variants(generator, device, args.compile).items():
                fns[name] = (lambda v: lambda: v.vocode(mel))(voc)
            results = time_interleaved(fns, args.repeats if batch == 1 else min(args.repeats, 3))
            ref_out = results["reference"][2]
            for name, (median, fastest, out) in results.items():
                per_clip, diff = median / batch, (out.to(device) - ref_out).abs().max().item()
                print(f"{name:22s} {device:6s} {batch:5d} {per_clip:7.3f} {fastest / batch:7.3f} "
                      f"{CLIP_SECONDS / per_clip:10.1f} {gflop / per_clip:8.1f} {diff:9.2e} "
                      f"{snr_db(out.to(device).float(), ref_out.float()):7.1f}")
                if device == "cpu" and batch == 1 and name == HEADLINE[args.headline]:
                    headline = per_clip
    generator.cpu()
    mel = torch.rand(80, MEL_FRAMES_10S)
    gl = time_interleaved({"gl": lambda: GriffinLimVocoder(n_iter=32).vocode(mel)}, 1)["gl"][0]
    print(f"{'Griffin-Lim (32 it.)':22s} {'cpu':6s} {1:5d} {gl:7.3f} {gl:7.3f} {CLIP_SECONDS / gl:10.1f}")
    if args.golden.is_file():
        golden_snr(args.golden)
    print(f"headline: {HEADLINE[args.headline]}, paper generator, batch 1, CPU, {torch.get_num_threads()} threads")
    print(f"seconds_per_10s={headline:.4f} realtime_factor={CLIP_SECONDS / headline:.2f}")


def golden_generator(path: Path) -> tuple[Generator, dict]:
    """The paper generator with the golden weights (the recipe of tests/unit/vocoder/melgan_golden.py;
    deterministic, not trained) and the golden file (its ``mel`` (1, 80, 256), ``wav``)."""
    spec = importlib.util.spec_from_file_location("melgan_golden", Path(__file__).resolve().parents[1] / "tests" /
                                                  "unit" / "vocoder" / "melgan_golden.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    golden = checkpoint.read(path, what="golden MelGAN file")
    generator = Generator(80, ngf=32, n_residual_layers=3).eval()
    generator.load_state_dict(recipe.golden_state_dict(golden), strict=True)
    return generator, golden


def stage_search(path: Path, repeats: int) -> None:
    """Every fp32 (f) / bf16 (b) / res32 (r) assignment of the stages: SNR vs fp32 on the golden weights
    (minimum over 3 mels) and the summed per-stage seconds per 10 s; prints the Pareto front."""
    generator, golden = golden_generator(path)
    mels = [golden["mel"]] + [torch.from_numpy(np.load(p)[:, 6:6 + 256].astype(np.float32))[None]
                              for p in sorted((path.parent.parent / "data" / "vggsound" /
                                               "melspec_10s_22050hz").glob("*_mel.npy"))[1:3]]
    n = len(FastGenerator(generator).stages)
    fast = {m: FastGenerator(generator, winograd_channels=128 if m == "f" else None,
                             **{"b": {"bf16_stages": tuple(range(n))}, "r": {"res32_stages": tuple(range(n))},
                                "f": {}}[m]) for m in "fbr"}
    mel = torch.rand(1, 80, MEL_FRAMES_10S)
    runs = {m: [] for m in fast}
    for f in fast.values():
        f(mel)
    for _ in range(repeats):  # interleaved, so machine load hits the modes alike
        for m, f in fast.items():
            f.stage_seconds = [0.0] * n
            f(mel)
            runs[m].append(f.stage_seconds)
    seconds = {m: [statistics.median(r[i] for r in runs[m]) for i in range(n)] for m in fast}
    for m in fast:
        print(f"stage CPU seconds per 10 s, all {m}: " + " ".join(f"{t:.3f}" for t in seconds[m]))
    refs = [fast["f"](m) for m in mels]
    rows = []
    for combo in itertools.product("fbr", repeat=n):
        stages = {"bf16_stages": tuple(i for i, c in enumerate(combo) if c == "b"),
                  "res32_stages": tuple(i for i, c in enumerate(combo) if c == "r")}
        f = FastGenerator(generator, winograd_channels=128 if set(combo) == {"f"} else None, **stages)
        snr = min(snr_db(f(m), r) for m, r in zip(mels, refs))
        rows.append((sum(seconds[c][i] for i, c in enumerate(combo)), snr, "".join(combo)))
    best = -1.0
    print(f"{'stages':8s} {'s/10s':>6s} {'golden SNR':>10s}   (Pareto front: no faster assignment has a higher SNR)")
    for t, snr, combo in sorted(rows):
        if snr > best:
            best = snr
            print(f"{combo:8s} {t:6.3f} {snr:8.1f} dB")


def golden_snr(path: Path) -> None:
    """SNR (dB) of each fast CPU precision against fast fp32 on the golden weights and mel (1, 80, 256)."""
    generator, golden = golden_generator(path)
    ref = MelGANVocoder(generator).vocode(golden["mel"])
    print(f"golden fp32 vs the reference wav: max|diff| {(ref - golden['wav'][:, 0]).abs().max().item():.1e}")
    for precision in ("mixed", "bf16", "int8"):
        out = MelGANVocoder(generator, precision=precision).vocode(golden["mel"])
        print(f"golden SNR {precision:5s} {snr_db(out, ref):6.1f} dB  max|diff| {(out - ref).abs().max().item():.1e}")


def _no_grad(module: torch.nn.Module, mel: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module(mel)[:, 0]


if __name__ == "__main__":
    main()

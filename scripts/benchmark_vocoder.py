#!/usr/bin/env python
"""Vocoder speed: seconds to vocode 10 s of audio (860 mel frames) with the paper-size MelGAN generator.

    python scripts/benchmark_vocoder.py [--repeats 3] [--threads 2] [--compile] [--skip-batch8]

Rows: the reference path (weight norm computed every call, eager fp32), our default ``MelGANVocoder``
(weight norm folded, ``inference_mode``), bf16, optionally ``torch.compile``; batch 1 and batch 8
(seconds per 10 s clip), on CPU and on CUDA when available; Griffin-Lim (32 iterations) for comparison.
Each figure is the best of ``--repeats`` timed runs after one warm-up; the max abs difference to the
reference output is printed for every MelGAN variant. Random weights (timing does not depend on them).
The last line is machine-readable (paper size, batch 1, CPU, default fp32 path):
``seconds_per_10s=<x> realtime_factor=<y>``.
"""
from __future__ import annotations

import argparse
import time

import torch

from specvqgan.audio import MEL_FRAMES_10S
from vocoder.inference import GriffinLimVocoder, MelGANVocoder
from vocoder.modules import Generator

CLIP_SECONDS = 10.0


def best_time(fn, repeats: int) -> tuple[float, torch.Tensor]:
    out = fn()  # warm-up (allocations, oneDNN kernel selection, compilation)
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    parser.add_argument("--skip-batch8", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    generator = Generator(80, ngf=32, n_residual_layers=3).eval()  # 4,266,050 parameters
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, devices {devices}, "
          f"best of {args.repeats}")
    print(f"{'variant':34s} {'device':6s} {'batch':>5s} {'s/10s':>8s} {'x realtime':>10s} {'max|diff|':>10s}")
    headline = None
    for device in devices:
        for batch in (1,) if args.skip_batch8 else (1, 8):
            mel = torch.rand(batch, 80, MEL_FRAMES_10S, device=device)
            reference = generator.to(device)
            with torch.no_grad():
                ref_time, ref_out = best_time(lambda: reference(mel)[:, 0], args.repeats)
            rows = [("reference (weight norm, no_grad)", ref_time, 0.0)]
            variants = {"fp32 (default)": dict(precision="fp32"), "bf16": dict(precision="bf16")}
            for name, kwargs in variants.items():
                voc = MelGANVocoder(generator, device=device, chunk_frames=None, **kwargs)
                seconds, out = best_time(lambda: voc.vocode(mel), args.repeats)
                rows.append((name, seconds, (out.to(device) - ref_out).abs().max().item()))
                if name.startswith("fp32") and device == "cpu" and batch == 1:
                    headline = seconds
            if args.compile:
                voc = MelGANVocoder(generator, device=device, chunk_frames=None)
                voc.generator = torch.compile(voc.generator)
                seconds, out = best_time(lambda: voc.vocode(mel), args.repeats)
                rows.append(("fp32 + torch.compile", seconds, (out.to(device) - ref_out).abs().max().item()))
            for name, seconds, diff in rows:
                per_clip = seconds / batch
                print(f"{name:34s} {device:6s} {batch:5d} {per_clip:8.3f} {CLIP_SECONDS / per_clip:10.1f} {diff:10.2e}")
    generator.cpu()
    mel = torch.rand(80, MEL_FRAMES_10S)
    gl_time, _ = best_time(lambda: GriffinLimVocoder(n_iter=32).vocode(mel), 1)
    print(f"{'Griffin-Lim (32 iterations)':34s} {'cpu':6s} {1:5d} {gl_time:8.3f} {CLIP_SECONDS / gl_time:10.1f}")
    print(f"seconds_per_10s={headline:.4f} realtime_factor={CLIP_SECONDS / headline:.2f}")


if __name__ == "__main__":
    main()

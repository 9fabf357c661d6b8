#!/usr/bin/env python
"""Visual feature extraction speed: frames/s of each pretrained extractor (decoding excluded).

    python scripts/benchmark_extraction.py [--frames 32] [--batch-sizes 1 16 32] [--threads 2]
                                           [--device cpu] [--flow-frames 8]

For ResNet-50 (256 -> 224 crop), BN-Inception RGB and BN-Inception flow (network only, 224 x 224) it runs
``--frames`` random 21.5 fps frames at each batch size (one warm-up call first) and prints frames/s; then
the optical flow (TV-L1 when cv2.optflow is present, Farneback) on ``--flow-frames`` 340 x 256 frames.
Random weights: timing does not depend on them. A 10 s clip is 215 frames, so seconds per clip =
215 / (frames/s) per stage.
"""
from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch

from feature_extraction.weights import load_bninception
from feature_extraction.flow import flow_images
from feature_extraction.visual import BNInceptionFeatures, ResNet50Features


def frames_per_s(fn, n: int) -> float:
    fn()                                   # warm-up: network load, oneDNN kernel selection
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=32, help="frames per timed call (default 32)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 32])
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--flow-frames", type=int, default=8, help="frames for the optical-flow timing")
    a = p.parse_args()
    logging.getLogger("feature_extraction").setLevel(logging.ERROR)   # no "random weights" warnings
    if a.threads:
        torch.set_num_threads(a.threads)
    rng = np.random.default_rng(0)
    print(f"device={a.device} torch_threads={torch.get_num_threads()} frames={a.frames}")
    print(f"{'extractor':<24}{'batch':>6}{'frames/s':>10}{'s per 10 s clip':>17}")
    for bs in a.batch_sizes:
        rows = []
        r50 = ResNet50Features(batch_size=bs, device=a.device)
        f = rng.integers(0, 256, (a.frames, *r50.frame_size_for(455, 256), 3), dtype=np.uint8)
        rows.append(("resnet50", frames_per_s(lambda: r50(f), a.frames)))
        rgb = BNInceptionFeatures(batch_size=bs, device=a.device, streams=("rgb",))
        f = rng.integers(0, 256, (a.frames, *rgb.decode_size, 3), dtype=np.uint8)
        rows.append(("rgb_bninception", frames_per_s(lambda: rgb(f), a.frames)))
        flow = BNInceptionFeatures(batch_size=bs, device=a.device, streams=("flow",))
        net = flow._net("flow_bninception", lambda: load_bninception(None, 2))   # the network alone
        imgs = rng.integers(0, 256, (a.frames, *flow.decode_size, 2), dtype=np.uint8)
        rows.append(("flow_bninception (net)",
                     frames_per_s(lambda: flow._run(net, flow._batches(imgs, flow.preprocess_flow)), a.frames)))
        for name, fps in rows:
            print(f"{name:<24}{bs:>6}{fps:>10.1f}{215 / fps:>17.1f}", flush=True)
    import cv2

    cv2.setNumThreads(a.threads or 0)
    # a smooth texture drifting 2 px per frame (white noise is unrealistic and much slower for TV-L1)
    tex = cv2.GaussianBlur(rng.random((300, 400)).astype(np.float32), (0, 0), 3)
    tex = (255 * (tex - tex.min()) / (tex.max() - tex.min())).astype(np.uint8)
    frames = np.stack([np.repeat(tex[20:276, 2 * k:2 * k + 340, None], 3, -1) for k in range(a.flow_frames)])
    for method in (["tvl1"] if hasattr(cv2, "optflow") else []) + ["farneback"]:
        fps = frames_per_s(lambda: flow_images(frames, method), a.flow_frames)
        print(f"{'flow ' + method + ' (340x256)':<24}{'-':>6}{fps:>10.1f}{215 / fps:>17.1f}", flush=True)


if __name__ == "__main__":
    main()

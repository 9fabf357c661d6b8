#!/usr/bin/env python
"""Optical flow for BN-Inception flow features: speed of each method and agreement with default TV-L1.

    python scripts/benchmark_flow.py [--videos DIR] [--clips 6] [--every 5]
                                     [--methods tvl1_fast farneback] [--weights bn_inception.pth]
                                     [--regnet-resize] [--threads 2]

For the first ``--clips`` reference videos (sorted; default folder ``../shared/reference/data``) it decodes
the 215 frames of 10 s at 340 x 256 (the extraction's decode), computes the flow rows 1, 1 + every, ...
with OpenCV's default TV-L1 (``tvl1_opencv``, the reference) and with each ``--methods`` entry (a name of
``feature_extraction.flow.METHODS`` or ``tvl1:Name=value,...``, OpenCV DualTVL1 setters, e.g.
``tvl1:Epsilon=0.03,WarpingsNumber=3``; ``tvl1`` itself runs the native kernel where it builds), and
compares them with the reference:

* ``cpu_s/pair``: process CPU seconds per frame pair; ``wall_s/10s``: wall seconds for the 214 pairs of
  a 10 s clip on ``--threads`` threads (extrapolated from the sampled rows); ``equal``: share of the flow
  images identical to the reference's;
* ``input_rel``: relative L2 error of the flow network's input (224 x 224, minus 128);
* ``cos mean/min``: cosine similarity of the 1024-d flow features, per row;
* ``cond_rel``: relative L2 error of the 2048-d [RGB, flow] rows a 212-feature transformer reads.

Yardsticks, always printed: ``jpeg95`` (the TV-L1 images after the JPEG quality-95 round trip that
RegNet's extraction writes them through), ``zero`` (no motion: all 128); ``--regnet-resize`` adds
``tvl1@cv2`` (TV-L1 on frames resized as RegNet does, cv2 bilinear from the source size, instead of our
ffmpeg area scaling). Without ``--weights`` the network has random (seeded) weights: the cosines then
measure agreement through a random BN-Inception, a proxy. Last line: ``method=<name> cos_mean=... ``
for each method, machine-readable.
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch

from feature_extraction import flow as flowmod
from feature_extraction.weights import load_bninception
from feature_extraction.extract import FEAT_FPS
from feature_extraction.media import probe, read_frames
from feature_extraction.visual import BNInceptionFeatures

DEFAULT_VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "data"
REF = "tvl1_opencv"   # the reference: OpenCV's DualTVL1 with its default parameters


def method_name(spec: str) -> str:
    """Register ``tvl1:Name=value,...`` as a temporary TV-L1 preset; -> the method name to pass on."""
    if ":" not in spec:
        return spec
    base, params = spec.split(":", 1)
    if base != "tvl1":
        raise SystemExit(f"only tvl1 takes parameters, got {spec!r}")
    kv = dict(p.split("=") for p in params.split(","))
    flowmod.TVL1_PRESETS[spec] = {k: (int(v) if v.isdigit() else float(v)) for k, v in kv.items()}
    return spec


def jpeg95(images: np.ndarray) -> np.ndarray:
    import cv2

    def rt(ch):
        return cv2.imdecode(cv2.imencode(".jpg", np.ascontiguousarray(ch), [cv2.IMWRITE_JPEG_QUALITY, 95])[1],
                            cv2.IMREAD_GRAYSCALE)
    return np.stack([np.stack([rt(im[..., 0]), rt(im[..., 1])], -1) for im in images])


def regnet_frames(video: Path, n: int) -> np.ndarray:
    """The 21.5 fps frames at the source size, resized to 340 x 256 with cv2 (bilinear), as RegNet does."""
    import cv2

    info = probe(video)
    frames = read_frames(video, n / FEAT_FPS, FEAT_FPS, (info.height, info.width), loop=True, info=info)
    return np.stack([cv2.resize(f, (340, 256)) for f in frames])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS)
    p.add_argument("--clips", type=int, default=6)
    p.add_argument("--every", type=int, default=5, help="sample flow rows 1, 1 + every, ... (default 5)")
    p.add_argument("--methods", nargs="+", default=["tvl1", "tvl1_fast", "farneback"])
    p.add_argument("--weights", help="BN-Inception weights (default: random, seeded)")
    p.add_argument("--regnet-resize", action="store_true", help="add the tvl1@cv2 yardstick")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    logging.getLogger("feature_extraction").setLevel(logging.ERROR)
    import cv2

    cv2.setNumThreads(a.threads)
    torch.set_num_threads(a.threads)
    methods = [method_name(m) for m in a.methods]
    videos = sorted(a.videos.rglob("*.mp4"))[:a.clips]
    ex = BNInceptionFeatures(weights=a.weights)
    rgb_net = ex._net("rgb_bninception", lambda: load_bninception(a.weights, 3, seed=ex.seed))
    flow_net = ex._net("flow_bninception", lambda: load_bninception(a.weights, 2, seed=ex.seed))
    n = 215
    rows = np.arange(1, n, a.every)
    names = [REF, *methods, "jpeg95", "zero"] + (["tvl1@cv2"] if a.regnet_resize else [])
    stats = {m: {"cpu": 0.0, "wall": 0.0, "pairs": 0, "in": [], "f": [], "eq": []} for m in names}
    rgbs = []

    def feats(net, images, prep):
        return ex._run(net, ex._batches(images, prep))

    for video in videos:
        frames = read_frames(video, n / FEAT_FPS, FEAT_FPS, ex.decode_size, loop=True)
        ids = np.arange(n)
        rgbs.append(feats(rgb_net, frames[rows], ex.preprocess_rgb))
        images = {}
        for m in [REF, *methods]:
            c0, w0 = time.process_time(), time.perf_counter()
            images[m] = flowmod.flow_rows(frames, ids, rows, m, threads=a.threads)
            s = stats[m]
            s["cpu"] += time.process_time() - c0
            s["wall"] += time.perf_counter() - w0
            s["pairs"] += len(rows)
        images["jpeg95"] = jpeg95(images[REF])
        images["zero"] = np.full_like(images[REF], 128)
        if a.regnet_resize:
            images["tvl1@cv2"] = flowmod.flow_rows(regnet_frames(video, n), ids, rows, "tvl1", threads=a.threads)
        x_ref = ex.preprocess_flow(torch.from_numpy(images[REF]))
        for m in names:
            x = ex.preprocess_flow(torch.from_numpy(images[m]))
            stats[m]["in"].append(float((x - x_ref).norm() / x_ref.norm()))
            stats[m]["eq"].append(float((images[m] == images[REF]).all(axis=(1, 2, 3)).mean()))
            stats[m]["f"].append(feats(flow_net, images[m], ex.preprocess_flow))
        print(f"{video.name}: input_rel " + " ".join(f"{m}={stats[m]['in'][-1]:.3f}" for m in names), flush=True)

    # Centred: features minus the mean reference feature (a constant offset is absorbed by the
    # transformer's input layer; a random network's features are almost all offset).
    f_ref = np.concatenate(stats[REF]["f"])
    mu_flow, rgb = f_ref.mean(0), np.concatenate(rgbs)
    cond_ref = np.concatenate([rgb - rgb.mean(0), f_ref - mu_flow], 1)
    print(f"clips={len(videos)} rows/clip={len(rows)} threads={a.threads} "
          f"weights={'random' if a.weights is None else Path(a.weights).name}")
    print(f"{'method':<34}{'cpu_s/pair':>11}{'wall_s/10s':>11}{'equal':>7}{'input_rel':>10}{'cos mean':>10}"
          f"{'cos min':>9}{'cond_rel':>10}")
    last = []
    for m in names:
        s = stats[m]
        cpu = f"{s['cpu'] / s['pairs']:.3f}" if s["pairs"] else "-"
        wall = f"{s['wall'] / s['pairs'] * (n - 1):.1f}" if s["pairs"] else "-"
        f = np.concatenate(s["f"])
        cos = ((f - mu_flow) * (f_ref - mu_flow)).sum(1) / (np.linalg.norm(f - mu_flow, axis=1)
                                                          * np.linalg.norm(f_ref - mu_flow, axis=1))
        cond = np.linalg.norm(f - f_ref, axis=1) / np.linalg.norm(cond_ref, axis=1)
        print(f"{m:<34}{cpu:>11}{wall:>11}{np.mean(s['eq']):>7.2f}{np.mean(s['in']):>10.4f}{cos.mean():>10.4f}"
              f"{cos.min():>9.4f}{cond.mean():>10.4f}")
        last.append(f"method={m} cos_mean={cos.mean():.4f} cos_min={cos.min():.4f} cpu_s_per_pair={cpu}")
    print(" ; ".join(last))


if __name__ == "__main__":
    main()

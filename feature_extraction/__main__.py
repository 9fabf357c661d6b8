"""CLI: ``python -m feature_extraction --videos DIR --out DIR --duration SECONDS [--feature NAME]``.

``--feature`` is ``color`` (toy data) or a pretrained network (``resnet50``, ``bninception`` = RGB + flow,
``rgb_bninception``, ``flow_bninception``) whose weight file is given with ``--weights``.

Prints a summary and the failure list; exits 0 unless ``--strict`` is given and some video failed
(exit 1), or the input folder has no videos (exit 2).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from feature_extraction.extract import FEATURES, ExtractConfig, extract_folder, failures_file, resolve_video_list
from feature_extraction.flow import METHODS
from feature_extraction.visual import PRECISIONS
from specvqgan.distributed import parse_shard
from specvqgan.provenance import ProvenanceError
from specvqgan.video_files import VIDEO_EXTENSIONS, find_videos


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m feature_extraction",
                                description="Extract 22050 Hz mono audio, mel spectrograms and 21.5 fps "
                                            "visual features from a folder of videos (reference layout).")
    p.add_argument("--videos", required=True, help="folder of videos (searched recursively; sub-folders "
                                                   "such as classes are mirrored under --out)")
    p.add_argument("--out", required=True, help="output root, e.g. data/toy/features")
    p.add_argument("--duration", type=float, default=2.0,
                   help="loop/trim every clip to this many seconds (default: 2, the toy default; "
                        "the paper uses 10)")
    p.add_argument("--feature", choices=sorted(FEATURES), default="color",
                   help="visual feature; 'color' is a pooled colour grid meant for the toy data only; "
                        "resnet50 (2048-d), bninception (RGB + flow, 1024-d each), rgb_bninception, "
                        "flow_bninception need --weights")
    p.add_argument("--video-list", help="text file of videos to extract, relative to --videos, with or "
                                        "without extension (e.g. a split list: dog/video_02754)")
    p.add_argument("--weights", help="weight file of the pretrained network: torchvision resnet50 "
                                     "(resnet50-19c8e357.pth) or ImageNet BN-Inception "
                                     "(bn_inception-9f5701afb96c8044.pth); never downloaded")
    p.add_argument("--flow-weights", help="weights of the BN-Inception flow stream (default: --weights, "
                                          "first conv averaged to 2 channels as in RegNet/TSN)")
    p.add_argument("--random-weights", action="store_true",
                   help="run a pretrained feature with random (seeded) weights: tests/benchmarks only")
    p.add_argument("--flow-method", choices=METHODS, default="tvl1",
                   help="optical flow: tvl1 (reference, exact; pairs on all cv2 threads), tvl1_fast (TV-L1 "
                        "stopped earlier, ~2.4x faster, close but not equal: docs/benchmarks.md) or farneback "
                        "(a different estimator)")
    p.add_argument("--batch-size", type=int, default=32, help="frames per forward pass (default: 32)")
    p.add_argument("--device", default="cpu", help="torch device of the networks (default: cpu)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="of the pretrained networks: fp32 (default, the reference) or bf16 (~2x fewer CPU-s with "
                        "AMX/AVX512-BF16, features within ~0.3%% of fp32's)")
    p.add_argument("--min-clip-duration", type=float, default=1.0,
                   help="report (do not loop) sources shorter than this many seconds (default: 1)")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="parallel processes")
    p.add_argument("--allow-truncated", action="store_true",
                   help="pad truncated streams (more than 2 frames or 0.1 s of audio missing) with a warning "
                        "instead of reporting the video as failed")
    p.add_argument("--shard", default=None, help="i/n: this machine extracts videos i, i+n, ... of the sorted "
                                                 "list (default: torchrun's or SLURM's rank/world size, else 0/1)")
    p.add_argument("--overwrite", action="store_true", help="recompute videos whose outputs exist")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--strict", action="store_true", help="exit with status 1 if any video failed")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        shard = parse_shard(a.shard)
        cfg = ExtractConfig(duration=a.duration, feature=a.feature, min_clip_duration=a.min_clip_duration,
                            overwrite=a.overwrite, weights=a.weights, random_weights=a.random_weights,
                            batch_size=a.batch_size, flow_method=a.flow_method, flow_weights=a.flow_weights,
                            device=a.device, allow_truncated=a.allow_truncated, precision=a.precision)
        if a.video_list is None and not find_videos(a.videos):
            print(f"error: no videos ({', '.join(VIDEO_EXTENSIONS)}) under {a.videos}", file=sys.stderr)
            return 2
        if a.video_list is not None and not any(resolve_video_list(a.videos, a.video_list)):
            print(f"error: {a.video_list} lists no videos", file=sys.stderr)
            return 2
    except (ValueError, FileNotFoundError) as err:
        p.error(str(err))
    t0 = time.time()
    try:
        results = extract_folder(a.videos, a.out, cfg, workers=a.workers, progress=not a.no_progress,
                                 video_list=a.video_list, shard=shard)
    except ProvenanceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    counts = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed")}
    where = "" if shard[1] == 1 else f"shard {shard[0]}/{shard[1]}: "
    print(f"{where}{len(results)} videos in {time.time() - t0:.1f} s: {counts['done']} extracted, "
          f"{counts['skipped']} skipped (outputs exist), {counts['failed']} failed; outputs under {a.out}")
    failed = [r for r in results if r.status == "failed"]
    if failed:
        print(f"failures (also in {failures_file(a.out, cfg.duration, shard)}):")
        for r in failed:
            print(f"  {r.video}: {r.reason}")
    return 1 if failed and a.strict else 0


if __name__ == "__main__":
    sys.exit(main())

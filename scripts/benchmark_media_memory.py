#!/usr/bin/env python
"""Peak memory of extracting visual features from a long video with an extreme frame size (bounded decoding).

    python scripts/benchmark_media_memory.py [--kind thin|4k] [--minutes 10] [--source-fps 25] [--network]

Makes a ``--minutes`` long test video with the imageio-ffmpeg binary (``thin``: 4096 x 2 pixels; ``4k``:
3840 x 2160, best with a low ``--source-fps``), then runs :func:`feature_extraction.extract.extract_visual`
on all of it (the generate.py path: ``--minutes`` of 21.5 fps frames) with the ResNet-50 extractor's frame
size rule (shorter side 256, ratio capped at 4:1 and centre-cropped inside ffmpeg) in a fresh process, and
prints that process's peak RSS, ffmpeg's peak RSS, and what holding every frame at the uncapped
torchvision size would take (the decoder before this change). Without ``--network`` the ResNet-50 forward
is replaced by a per-frame mean (the decoding, chunking and feature buffers are real; the network adds its
fixed per-batch activations: ~1 GB at batch 32 on CPU); ``--network`` runs the real randomly initialised
ResNet-50 (hours on a CPU for 10 minutes). The last line is JSON.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = {"thin": (4096, 2), "4k": (3840, 2160)}


def make_video(path: Path, kind: str, minutes: float, fps: float) -> None:
    from feature_extraction.media import ffmpeg_exe

    w, h = SIZES[kind]
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    f"testsrc2=s={w}x{h}:r={fps:g}:d={minutes * 60:g}", "-c:v", "libx264", "-preset", "ultrafast",
                    "-pix_fmt", "yuv420p", str(path)], check=True, timeout=3600)


def child(video: str, seconds: float, network: bool) -> dict:
    """Run in a fresh process: extract and report peak RSS (this process, and its ffmpeg children)."""
    import numpy as np

    import feature_extraction.extract as extract
    from feature_extraction.visual import ResNet50Features

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    class MeanOnly(ResNet50Features):        # the real size rule and chunking; a trivial "network"
        def __call__(self, frames):
            return {"resnet50": np.repeat(frames.mean(axis=(1, 2, 3), dtype=np.float32)[:, None], 2048, axis=1)}

    ex = ResNet50Features(batch_size=32) if network else MeanOnly(batch_size=32)
    extract._build_extractor = lambda *a: ex
    cfg = extract.ExtractConfig(duration=seconds, feature="resnet50", random_weights=True, batch_size=32)
    t0 = time.perf_counter()
    feats = extract.extract_visual(video, cfg)["feature_resnet50"]
    return dict(rows=len(feats), seconds=round(time.perf_counter() - t0, 1), rss_after_imports_mb=round(base),
                peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                ffmpeg_peak_rss_mb=round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kind", choices=sorted(SIZES), default="thin")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--source-fps", type=float, default=25.0)
    p.add_argument("--network", action="store_true", help="run the real (random) ResNet-50")
    p.add_argument("--child", nargs=2, metavar=("VIDEO", "SECONDS"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        print(json.dumps(child(a.child[0], float(a.child[1]), a.network)))
        return
    from feature_extraction.visual import ResNet50Features

    with tempfile.TemporaryDirectory(prefix="bench_media_") as tmp:
        video = Path(tmp) / f"{a.kind}.mp4"
        t0 = time.perf_counter()
        make_video(video, a.kind, a.minutes, a.source_fps)
        made = time.perf_counter() - t0
        seconds = a.minutes * 60
        proc = subprocess.run([sys.executable, __file__, *(["--network"] if a.network else []), "--child", str(video),
                               str(seconds)], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            sys.exit(f"error: the extraction failed: {proc.stderr.strip().splitlines()[-1:]}")
        res = json.loads(proc.stdout.strip().splitlines()[-1])
    w, h = SIZES[a.kind]
    old = ResNet50Features()
    old.max_aspect = float("inf")                             # the size rule before the 4:1 cap
    oh, ow = old.frame_size_for(w, h)
    capped = ResNet50Features().frame_size_for(w, h)
    n = int(round(seconds * 21.5))
    res.update(kind=a.kind, source=f"{w}x{h}", minutes=a.minutes, source_fps=a.source_fps, network=a.network,
               decode_size=f"{capped[1]}x{capped[0]}", uncapped_decode_size=f"{ow}x{oh}",
               uncapped_all_frames_gb=round(n * oh * ow * 3 / 2 ** 30, 1), video_made_s=round(made, 1))
    print(f"{a.kind} {w}x{h}, {a.minutes:g} min at {a.source_fps:g} fps -> {res['rows']} feature rows in "
          f"{res['seconds']} s: peak RSS {res['peak_rss_mb']} MB (after imports {res['rss_after_imports_mb']} MB), "
          f"ffmpeg peak {res['ffmpeg_peak_rss_mb']} MB; frames decoded at {res['decode_size']} (uncapped "
          f"{res['uncapped_decode_size']}: {res['uncapped_all_frames_gb']} GB for all frames at once)")
    print(json.dumps(res))


if __name__ == "__main__":
    main()

"""Generate sound for videos with a trained SpecVQGAN transformer (thin CLI over ``specvqgan.pipeline``).

    python scripts/generate.py --video in.mp4 [more.mp4 ...] --transformer logs/<run>/checkpoints/last.ckpt \
        [--vocoder CKPT] [--samples 3] [--top-k K] [--temperature T] [--seed S] [--duration D] --out DIR

Writes ``<out>/<video stem>_sample_<k>.{wav,mp4,png,npy}`` and prints each written file. Exit code 2 with
a one-line message on bad input (checkpoint, options); with several videos a failing video is reported
(``FAILED <video>: <reason>``), the others are still processed, and the exit code is 2.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--video", nargs="+", required=True, help="input video file(s)")
    p.add_argument("--transformer", required=True, help="transformer checkpoint (train.py .ckpt or exported)")
    p.add_argument("--vocoder", default=None, help="MelGAN checkpoint (default: Griffin-Lim)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--samples", type=int, default=3, help="soundtracks per video")
    p.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling threshold")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--duration", type=float, default=None,
                   help="seconds to generate (default: the whole video; longer than the trained clip -> "
                        "sliding window)")
    p.add_argument("--class-id", type=int, default=None, help="class index for class-conditioned models")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "int8"),
                   help="GPT inference precision (int8: CPU only)")
    p.add_argument("--feature-weights", default=None,
                   help="weights of the visual network the model was trained with (ResNet-50 / BN-Inception)")
    p.add_argument("--feature", default=None,
                   help="visual feature name if the checkpoint does not record it (resnet50, bninception)")
    p.add_argument("--random-features", action="store_true",
                   help="control: replace the visual features by uniform noise")
    p.add_argument("--no-mp4", action="store_true", help="do not write the .mp4 files")
    p.add_argument("--skip-existing", action="store_true",
                   help="skip videos whose outputs all exist (resume an interrupted run with the same options)")
    p.add_argument("--progress", action="store_true", help="show a sampling progress bar")
    p.add_argument("--omp-wait-policy", default="default", choices=("default", "passive", "active"),
                   help="OpenMP idle threads: libgomp's default (fastest on a quiet machine) or passive (a CPU "
                        "shared with other busy processes, where spinning threads starve the small ops)")
    p.add_argument("-v", "--verbose", action="store_true", help="log timings and details")
    args = p.parse_args(argv)
    if args.samples < 1:
        p.error(f"--samples must be >= 1, got {args.samples}")
    if args.temperature <= 0:
        p.error(f"--temperature must be > 0, got {args.temperature}")
    if args.duration is not None and args.duration <= 0:
        p.error(f"--duration must be > 0, got {args.duration}")
    stems = {}
    for video in args.video:
        stems.setdefault(Path(video).stem, []).append(video)
    clash = [v for v in stems.values() if len(v) > 1]
    if clash:
        p.error(f"videos {', '.join(clash[0])} have the same name: their outputs <out>/<name>_sample_<k>.* "
                f"would overwrite each other; rename one or run them with different --out")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.omp_wait_policy != "default":  # before torch starts OpenMP (no effect once torch is imported)
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    from feature_extraction.media import MediaError
    from specvqgan.config import ConfigError
    from specvqgan.pipeline import VideoToSound, output_paths

    bad_input = (MediaError, ConfigError, FileNotFoundError, ValueError)
    try:
        pipe = VideoToSound.from_checkpoints(
            args.transformer, args.vocoder, device=args.device, precision=args.precision,
            feature_weights=args.feature_weights, feature=args.feature)
    except bad_input as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    failed = 0
    for video in args.video:
        wanted = [q for k in range(args.samples) for q in output_paths(video, args.out, k)
                  if not (args.no_mp4 and q.suffix == ".mp4")]
        if args.skip_existing and all(q.is_file() for q in wanted):
            print(f"# {video}: skipped (outputs exist)")
            continue
        try:
            res = pipe.generate(video, args.out, samples=args.samples, top_k=args.top_k, top_p=args.top_p,
                                temperature=args.temperature, seed=args.seed, duration=args.duration,
                                random_features=args.random_features, class_id=args.class_id,
                                progress=args.progress, write_mp4=not args.no_mp4)
        except bad_input as err:
            failed += 1
            msg = str(err) if str(video) in str(err) else f"{video}: {err}"
            print(f"FAILED {msg}", file=sys.stderr)
            continue
        for paths in zip(res.wav_paths, res.mel_paths, res.png_paths, *([res.mp4_paths] if res.mp4_paths else [])):
            for path in paths:
                print(path)
        print(f"# {video}: {len(res.wav_paths)} sample(s) of {res.duration:.2f} s "
              f"({', '.join(f'{k} {v:.1f} s' for k, v in res.seconds.items())})")
    if failed:
        print(f"error: {failed} of {len(args.video)} video(s) failed", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

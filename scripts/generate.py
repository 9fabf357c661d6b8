"""Generate sound for videos with a trained SpecVQGAN transformer (thin CLI over ``specvqgan.pipeline``).

    python scripts/generate.py --model vggsound --download --video in.mp4 --out out/     # the authors' model
    python scripts/generate.py --video my_videos/ --transformer logs/<run>/checkpoints/last.ckpt \
        [--vocoder CKPT] [--samples 3] [--top-k K] [--temperature T] [--seed S] [--duration D] --out DIR

``--model`` takes a release name or alias (``python -m specvqgan.download --list``): its transformer, MelGAN
and feature-network weights come from the download cache; ``--download`` fetches what is missing (nothing
is downloaded without it: the error prints the download command, exit code 2). ``--video`` takes files,
folders (searched recursively) and list files (a video path per line); the models are loaded once for all. Writes ``<out>/[<sub-folder>/]<video stem>_sample_<k>
.{wav,mp4,png,npy}``, prints each written file, shows a progress bar over the videos on a terminal and
ends with the list of failed videos (exit code 2 if any; the others are still processed). Exit code 2 with a
one-line message on bad input (checkpoint, options). ``--av-benchmark DIR`` also writes the folders
av-benchmark pairs by name (:mod:`specvqgan.av_benchmark`).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path


def parse_args(argv=None) -> argparse.Namespace:
    from specvqgan.checkpoint import add_trust_argument  # no torch import: OMP_WAIT_POLICY is set later

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--video", nargs="+", required=True,
                   help="input video file(s), folder(s) (recursive) and/or list file(s) (.txt/.lst/.list: a path "
                        "per line, relative to the list)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--transformer", help="transformer checkpoint (train.py .ckpt or exported) or inference "
                                             "bundle (python -m specvqgan.export, docs/export.md)")
    which.add_argument("--model", help="the authors' release name or alias, e.g. vggsound (python -m "
                                       "specvqgan.download --list); brings its MelGAN and feature weights")
    p.add_argument("--download", action="store_true", help="with --model: fetch missing files into the cache")
    p.add_argument("--cache-dir", default=None, help="download cache (default: $SPECVQGAN_CACHE or "
                                                     "~/.cache/specvqgan)")
    p.add_argument("--base-url", default=None, help="download mirror (python -m specvqgan.download --base-url)")
    p.add_argument("--allow-http", action="store_true", help="accept a plain-http --base-url (no transport security)")
    p.add_argument("--vocoder", default=None, help="MelGAN checkpoint (default: Griffin-Lim; --model: its MelGAN)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--samples", type=int, default=3, help="soundtracks per video")
    p.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling threshold")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--guidance-scale", type=float, default=1.0,
                   help="classifier-free guidance (1: off; > 1 follows the video more closely; models trained "
                        "with p_uncond > 0, docs/guidance.md)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--duration", type=float, default=None,
                   help="seconds to generate (default: the whole video; longer than the trained clip -> "
                        "sliding window)")
    p.add_argument("--max-seconds", type=float, default=600.0,
                   help="refuse videos longer than this (or a longer --duration); 0 = no limit")
    p.add_argument("--allow-truncated", action="store_true",
                   help="pad a truncated video stream (a counted warning) instead of failing it")
    p.add_argument("--class-id", type=int, default=None, help="class index for class-conditioned models")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1")
    p.add_argument("--precision", default=None, choices=("fp32", "bf16", "int8"),
                   help="GPT inference precision (int8: CPU only); default: fp32, or the bundle's own")
    p.add_argument("--vocoder-precision", default="auto", choices=("auto", "fp32", "mixed", "bf16", "int8"),
                   help="MelGAN precision (auto: mixed on a CPU with native bf16, >= 40 dB SNR vs fp32 and "
                        "faster; fp32 exact; docs/vocoder.md)")
    p.add_argument("--decoder-precision", default="auto", choices=("auto", "fp32", "bf16"),
                   help="codebook decoder precision (auto: bf16 with a bf16/int8 GPT on a device with native bf16, "
                        "e.g. a CPU with AMX; else fp32)")
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
    p.add_argument("--av-benchmark", default=None, metavar="DIR",
                   help="also write av-benchmark folders: DIR/{gt_audio,pred_audio/sample_<k>,video/sample_<k>}")
    p.add_argument("--audio-format", default="flac", choices=("wav", "flac"), help="--av-benchmark audio files")
    p.add_argument("-v", "--verbose", action="store_true", help="log timings and details")
    add_trust_argument(p)
    args = p.parse_args(argv)
    if args.samples < 1:
        p.error(f"--samples must be >= 1, got {args.samples}")
    if args.temperature <= 0:
        p.error(f"--temperature must be > 0, got {args.temperature}")
    if args.duration is not None and args.duration <= 0:
        p.error(f"--duration must be > 0, got {args.duration}")
    if args.max_seconds < 0:
        p.error(f"--max-seconds must be >= 0, got {args.max_seconds}")
    if args.download and not args.model:
        p.error("--download needs --model (a release name); a --transformer path is never downloaded")
    return args


def load_pipeline(args):
    """The VideoToSound of ``--transformer`` or ``--model`` (MissingRelease etc. propagate)."""
    from specvqgan.pipeline import VideoToSound

    common = dict(device=args.device, precision=args.precision, feature=args.feature, trust=args.trust_checkpoint,
                  vocoder_precision=args.vocoder_precision)
    if args.model:
        from specvqgan.pretrained import resolve_model

        found = resolve_model(args.model, args.cache_dir, download=args.download, base_url=args.base_url,
                              allow_http=args.allow_http)
        args.random_features = args.random_features or found.random_features
        args.vocoder = args.vocoder or found.vocoder
        return VideoToSound.from_checkpoints(
            found.transformer, args.vocoder or found.vocoder, feature_weights=args.feature_weights or
            found.feature_weights, random_feature_weights=found.random_features, **common)
    return VideoToSound.from_checkpoints(args.transformer, args.vocoder, feature_weights=args.feature_weights,
                                         **common)


def main(argv=None) -> int:
    args = parse_args(argv)
    from specvqgan.provenance import hash_ahead

    hash_ahead(args.transformer, args.vocoder, args.feature_weights)   # for the provenance record, meanwhile
    if args.omp_wait_policy != "default":  # before torch starts OpenMP (no effect once torch is imported)
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    from tqdm import tqdm

    from feature_extraction.media import MediaError
    from specvqgan.config import ConfigError
    from specvqgan.download import DownloadError
    from specvqgan.outputs import output_paths, write_sound
    from specvqgan.video_files import list_videos

    bad_input = (MediaError, ConfigError, FileNotFoundError, ValueError)
    try:
        items = list_videos(args.video)
        pipe = load_pipeline(args)
    except KeyError as err:  # unknown release name
        print(f"error: {err.args[0]}", file=sys.stderr)
        return 2
    except (*bad_input, DownloadError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    pipe.allow_truncated = args.allow_truncated
    pipe.decoder_precision = args.decoder_precision
    args.precision = pipe.precision     # the default: fp32, or a bundle's own
    from specvqgan.provenance import ProvenanceError, claim_folder, record_folder

    made_by = produced_by(args, pipe)
    try:        # --skip-existing skips only outputs made the same way (other ones are redone without it)
        claim_folder(args.out, made_by, overwrite=not args.skip_existing,
                     redo="run without --skip-existing to redo them")
    except ProvenanceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    failed = []
    bar = tqdm(items, desc="videos", unit="video", disable=True if len(items) < 2 else None, file=sys.stderr)
    for item in bar:
        video, out = item.video, Path(args.out) / item.subdir
        wanted = [q for k in range(args.samples) for q in output_paths(video, out, k)
                  if not (args.no_mp4 and q.suffix == ".mp4")]
        if args.av_benchmark:
            from specvqgan.av_benchmark import bench_paths
            wanted += [bench_paths(args.av_benchmark, item.name, k, args.audio_format)["pred"]
                       for k in range(args.samples)]
        if args.skip_existing and all(q.is_file() for q in wanted):
            print(f"# {video}: skipped (outputs exist)")
            continue
        try:
            check_length(video, args)
            sound = pipe.compute(video, samples=args.samples, top_k=args.top_k, top_p=args.top_p,
                                 temperature=args.temperature, seed=args.seed, duration=args.duration,
                                 random_features=args.random_features, class_id=args.class_id,
                                 progress=args.progress, guidance_scale=args.guidance_scale)
            res = write_sound(sound, out, mp4=not args.no_mp4)
            if args.av_benchmark:
                export_sample(args, item, res)
        except bad_input as err:
            msg = str(err) if str(video) in str(err) else f"{video}: {err}"
            failed.append(msg)
            bar.write(f"FAILED {msg}", file=sys.stderr)
            continue
        for paths in zip(res.wav_paths, res.mel_paths, res.png_paths, *([res.mp4_paths] if res.mp4_paths else [])):
            for path in paths:
                print(path)
        print(f"# {video}: {len(res.wav_paths)} sample(s) of {res.duration:.2f} s "
              f"({', '.join(f'{k} {v:.1f} s' for k, v in res.seconds.items())})")
    record_folder(args.out, made_by)
    if failed:
        print(f"error: {len(failed)} of {len(items)} video(s) failed:", file=sys.stderr)
        for msg in failed:
            print(f"  {msg}", file=sys.stderr)
        return 2
    return 0


def produced_by(args, pipe) -> dict:
    """What the outputs depend on (``<out>/_provenance.json``, :mod:`specvqgan.provenance`): checkpoint,
    vocoder and feature-weight sha256 and the options that change the files."""
    from specvqgan.provenance import path_sha256

    return dict(transformer_sha256=path_sha256(pipe.checkpoint), vocoder_sha256=path_sha256(args.vocoder),
                feature_weights_sha256=path_sha256(pipe.feature_weights),
                **{k: getattr(args, k) for k in ("samples", "top_k", "top_p", "temperature", "seed", "duration",
                                                 "class_id", "precision", "random_features", "allow_truncated")},
                **({"guidance_scale": args.guidance_scale} if args.guidance_scale != 1 else {}),
                **({"decoder_precision": pipe.decoder_precision} if pipe.decoder_precision != "fp32" else {}),
                **({"vocoder_precision": pipe.vocoder.precision} if getattr(pipe.vocoder, "precision", "fp32") != "fp32"
                   else {}))


def check_length(video, args) -> None:
    """Refuse (ValueError naming ``video``) more than ``--max-seconds`` of sound: a long ``--duration``,
    or by default a video that long (memory and time grow with it)."""
    from feature_extraction.media import probe

    if not args.max_seconds:
        return
    length = args.duration if args.duration is not None else probe(video).duration
    if length is not None and length > args.max_seconds:
        what = f"--duration {length:g} s is" if args.duration is not None else f"the video is {length:.1f} s,"
        raise ValueError(f"{video}: {what} over --max-seconds {args.max_seconds:g}; pass --duration S for its "
                         f"first S seconds, or raise --max-seconds")


def export_sample(args, item, res) -> None:
    """av-benchmark copies of one video's samples (:mod:`specvqgan.av_benchmark`)."""
    from specvqgan.av_benchmark import write_sample

    for k, wav in enumerate(res.wavs):
        muxed = res.mp4_paths[k] if res.mp4_paths else None
        write_sample(args.av_benchmark, item.name, k, wav, item.video, fmt=args.audio_format, muxed=muxed,
                     loop_video=True)  # a video shorter than the sound repeats (as in the pipeline's mp4)


def exit_now(code: int) -> None:
    """End the process without the interpreter's teardown (about 1 s of freeing torch / oneDNN / model state
    after the work is done): every output is already written and closed (atomic renames), so only the
    standard streams and the log handlers need flushing."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())

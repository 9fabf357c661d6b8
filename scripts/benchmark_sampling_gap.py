"""Where the pipeline's sampling time goes beside the bare sampler (paper-size release, in-process).

    python scripts/benchmark_sampling_gap.py --workdir /tmp/specvqgan-bench      # the model of benchmark_generate.py
    python scripts/benchmark_sampling_gap.py --transformer RUN/checkpoints/X.ckpt --feature-weights resnet50.pth
    python scripts/benchmark_sampling_gap.py --quality-codebook CODEBOOK.ckpt     # bf16 decoder error only

Times, interleaved ``--reps`` times on one ``VideoToSound`` (int8 GPT) and one video's condition:
  * the bare sampler: ``sample_tokens`` of the trained 5 x 53 = 265 tokens;
  * the pipeline's tokens: ``Net2NetTransformer.generate(decode=False)`` for the video's length (a 10 s video is
    861 mel frames = 54 columns, one past the trained 53: the sliding window moves once at the end);
  * the codebook decoder (``VideoToSound.decode``) in fp32 and in bf16, and the bf16 mel's error against fp32.
``--quality-codebook CKPT`` instead measures the bf16 decoder's error on a (trained) codebook checkpoint: the mels
of the reference VGGSound clips cut to its width, encoded, then decoded in fp32 and in bf16.
Process CPU seconds are reported beside wall seconds: on a CPU shared with other busy processes they vary far
less than wall time. The last line is machine-readable:
    bare_cpu=<s> tokens_cpu=<s> decoder_fp32_cpu=<s> decoder_bf16_cpu=<s> gap_fp32=<ratio> gap_bf16=<ratio>
(gap = (pipeline tokens + decoder) / bare sampler, CPU seconds, medians).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    from benchmark_generate import REAL_VIDEO, build_release, synthetic_video

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="/tmp/specvqgan-bench", help="where benchmark_generate.py builds its model")
    p.add_argument("--transformer", default=None, help="a real transformer checkpoint instead of the built one")
    p.add_argument("--feature-weights", default=None, help="ResNet-50 weights for --transformer")
    p.add_argument("--video", default=str(REAL_VIDEO), help="input video (default: a VGGSound clip)")
    p.add_argument("--precision", default="int8", choices=("fp32", "bf16", "int8"), help="the GPT's precision")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quality-codebook", default=None, help="only: bf16 decoder error on this codebook checkpoint")
    args = p.parse_args()
    if args.quality_codebook:
        return decoder_quality(Path(args.quality_codebook), REAL_VIDEO.parent, args.threads)

    import torch

    from specvqgan.pipeline import VideoToSound
    from specvqgan.sampling import sample_tokens

    torch.set_num_threads(args.threads)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    ckpt, resnet = ((Path(args.transformer), Path(args.feature_weights)) if args.transformer
                    else build_release(workdir))
    video = args.video if Path(args.video).is_file() else synthetic_video(workdir / "synthetic_10s.mp4")
    pipe = VideoToSound.from_checkpoints(ckpt, None, precision=args.precision, feature_weights=resnet)
    plan = pipe.prepare(video)
    times: dict[str, list] = {}
    mels = {}

    def timed(name, fn):
        cpu, wall = time.process_time(), time.perf_counter()
        out = fn()
        times.setdefault(name, []).append((time.process_time() - cpu, time.perf_counter() - wall))
        return out

    def decode(precision, tokens):
        pipe.decoder_precision = precision
        return pipe.decode(tokens, plan.total_cols)

    with torch.inference_mode():
        cond = pipe.condition(plan, 0)
        cond_at = (lambda s: pipe.condition(plan, s)) if plan.total_cols > pipe.W else cond
        for rep in range(args.reps):
            timed("bare sampler (265 tokens)", lambda: sample_tokens(pipe.gpt, cond, pipe.H * pipe.W, seed=rep))
            tokens = timed(f"pipeline tokens ({plan.total_cols} columns)", lambda: pipe.model.generate(
                cond_at, total_cols=plan.total_cols, seed=rep, gpt=pipe.gpt, decode=False)[0])
            for precision in ("fp32", "bf16"):
                mel = timed(f"codebook decoder {precision}", lambda: decode(precision, tokens))
                mels[precision] = ((mel.float() + 1) / 2).clamp(0, 1).numpy()
    med = {k: (float(np.median([c for c, _ in v])), float(np.median([w for _, w in v]))) for k, v in times.items()}
    print(f"CPU, {args.threads} threads, {args.precision} GPT; video {video}; model {ckpt}; {args.reps} reps, medians")
    print(f"\n{'part':40} {'CPU s':>8} {'wall s':>8}")
    for name, (cpu, wall) in med.items():
        print(f"{name:40} {cpu:8.2f} {wall:8.2f}")
    print(f"bf16 vs fp32 decoder, mel in [0, 1] (last rep): {mel_error(mels['fp32'], mels['bf16'])}")
    bare, tok = med["bare sampler (265 tokens)"][0], med[f"pipeline tokens ({plan.total_cols} columns)"][0]
    fp32, bf16 = med["codebook decoder fp32"][0], med["codebook decoder bf16"][0]
    print(f"bare_cpu={bare:.2f} tokens_cpu={tok:.2f} decoder_fp32_cpu={fp32:.2f} decoder_bf16_cpu={bf16:.2f} "
          f"gap_fp32={(tok + fp32) / bare:.2f} gap_bf16={(tok + bf16) / bare:.2f}")


def mel_error(a: np.ndarray, b: np.ndarray) -> str:
    """Error of mel ``b`` against ``a`` (both in [0, 1], 1 = 100 dB)."""
    snr = 10 * np.log10((a ** 2).sum() / max(((a - b) ** 2).sum(), 1e-30))
    return f"max |diff| {np.abs(a - b).max():.4f}, mean {np.abs(a - b).mean():.5f}, SNR {snr:.1f} dB"


def decoder_quality(ckpt: Path, videos: Path, threads: int) -> None:
    """Print the bf16 (channels-last autocast) decoder's mel error against fp32 on real mels."""
    import copy

    import torch

    from feature_extraction.media import read_audio
    from specvqgan.audio import SR, wav_to_mel
    from specvqgan.checkpoint import build_model

    torch.set_num_threads(threads)
    model = build_model(ckpt).eval()
    width = int(model.decoder.resolution)          # the trained mel width (848 for 10 s)
    mels = []
    for video in sorted(videos.glob("*.mp4"))[:4]:
        mel = wav_to_mel(read_audio(video, 10.0, SR), SR)
        mels += [mel[:, s:s + width] for s in range(0, mel.shape[1] - width + 1, width)]
    x = torch.from_numpy(np.stack(mels)).float()[:, None] * 2 - 1
    fast = copy.deepcopy(model).to(memory_format=torch.channels_last)
    with torch.inference_mode():
        quant = model.encode(x)[0]
        ref = ((model.decode(quant) + 1) / 2).clamp(0, 1).numpy()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = ((fast.decode(quant).float() + 1) / 2).clamp(0, 1).numpy()
    print(f"{ckpt}: {len(mels)} mels of {width} frames; bf16 vs fp32 decoder: {mel_error(ref, low)}")
    print(f"(fp32 reconstruction vs input: {mel_error((x.numpy() + 1) / 2, ref)})")


if __name__ == "__main__":
    main()

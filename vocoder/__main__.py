"""Vocode a saved mel spectrogram: ``python -m vocoder mel.npy out.wav [--ckpt C]``.

``mel.npy`` holds (80, T) (or (B, 80, T): one wav per item, suffixed ``_<i>``) on the [0, 1] scale
(``--input-range -1,1`` for codebook/transformer outputs). Without ``--ckpt`` the Griffin-Lim fallback
is used. ``--ckpt``: a folder with ``best_netG.pt`` + ``args.yml``, a ``best_netG.pt``, or our
``.ckpt`` / exported ``.pt``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    from specvqgan.checkpoint import add_trust_argument

    parser = argparse.ArgumentParser(prog="python -m vocoder", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mel", type=Path, help="input .npy mel spectrogram (80, T) or (B, 80, T)")
    parser.add_argument("out", type=Path, help="output .wav (22050 Hz, 16-bit)")
    parser.add_argument("--ckpt", default=None, help="MelGAN checkpoint (default: Griffin-Lim)")
    parser.add_argument("--input-range", default="0,1", choices=["0,1", "-1,1"], help="scale of the mel values")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "mixed", "bf16", "int8"],
                        help="MelGAN precision: auto (default) = mixed on a CPU with native bf16, else fp32; "
                             "fp32 exact; mixed >= 40 dB SNR vs fp32; bf16 / int8 faster, not exact (docs/vocoder.md)")
    parser.add_argument("--device", default="cpu", help="torch device for MelGAN (cpu, cuda)")
    parser.add_argument("--backend", default="auto", choices=["auto", "fast", "eager"],
                        help="MelGAN implementation: auto = vocoder.fast on CPU, the nn.Module elsewhere")
    parser.add_argument("--n-iter", type=int, default=32, help="Griffin-Lim iterations")
    add_trust_argument(parser)
    args = parser.parse_args(argv)

    from specvqgan.audio import SR, save_audio
    from vocoder.inference import GriffinLimVocoder, MelGANVocoder

    if not args.mel.is_file():
        print(f"error: mel file not found: {args.mel}", file=sys.stderr)
        return 2
    try:
        from specvqgan.checks import require_finite

        mel = require_finite(np.load(args.mel, allow_pickle=False), str(args.mel), "mel values")
        if args.ckpt:
            vocoder = MelGANVocoder.from_checkpoint(args.ckpt, trust=args.trust_checkpoint, precision=args.precision,
                                                    device=args.device, backend=args.backend)
        else:
            vocoder = GriffinLimVocoder(n_iter=args.n_iter)
        start = time.perf_counter()
        wav = vocoder.vocode(mel, input_range=args.input_range)
        seconds = time.perf_counter() - start
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    outs = [args.out] if wav.ndim == 1 else [args.out.with_name(f"{args.out.stem}_{i}{args.out.suffix}")
                                              for i in range(len(wav))]
    for path, w in zip(outs, wav if wav.ndim == 2 else [wav]):
        save_audio(path, w, SR)
        print(f"wrote {path} ({len(w) / SR:.2f} s at {SR} Hz)")
    print(f"vocoded with {type(vocoder).__name__} in {seconds:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Neural audio codec from a spectrogram codebook (paper Sec. 6.4 / Table 5: SpecVQGAN as a codec).

Audio at any sample rate and length -> 22050 Hz log-mel (``specvqgan.audio``) -> VQGAN codebook
indices (a 5 x T/16 grid; ``log2(n_embed)`` bits each) -> back to a mel -> waveform (Griffin-Lim, or a
MelGAN vocoder) -> the input's sample rate. The bitrate is ``log2(n_embed) * tokens / seconds``.

Command line::

    python -m specvqgan.codec encode in.wav codes.npz --ckpt codebook.pt
    python -m specvqgan.codec decode codes.npz out.wav --ckpt codebook.pt [--vocoder melgan.pt]

Python::

    codec = SpectrogramCodec.from_checkpoint("codebook.pt")
    codes = codec.encode(wav, sr)          # Codes: indices (F', T') + metadata
    wav_hat, sr = codec.decode(codes)
"""
from __future__ import annotations

import argparse
import logging
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from specvqgan.audio import HOP, SR, load_audio, mel_to_wav, resample, save_audio, to_mono, wav_to_mel
from specvqgan.checks import require_finite
from specvqgan.checkpoint import add_trust_argument, trusted_by
from specvqgan.models.loading import load_codebook

log = logging.getLogger(__name__)

# What a codes file may declare (larger values are refused before anything is allocated).
MIN_SR, MAX_SR = 1000, 384_000
MAX_SECONDS = 3600
MAX_EMBED = 2 ** 20
MAX_DOWNSAMPLE = 64          # mel frames per index column


class CodesError(ValueError):
    """A codes file (or :class:`Codes`) is inconsistent or does not fit the codebook; names the file."""


@dataclass
class Codes:
    """An encoded clip. ``indices`` (F', T') int64 codebook indices (row-major, mel rows x time),
    ``n_embed`` codebook size, ``sr`` / ``n_samples`` of the original audio, ``mel_frames`` of its mel
    before padding to a multiple of the down-sampling factor."""

    indices: np.ndarray
    n_embed: int
    sr: int
    n_samples: int
    mel_frames: int

    @property
    def seconds(self) -> float:
        return self.n_samples / self.sr

    @property
    def bits(self) -> float:
        """Total payload: ``log2(n_embed)`` bits per token (fixed-length code)."""
        return self.indices.size * math.log2(self.n_embed)

    @property
    def bitrate(self) -> float:
        """Bits per second of input audio."""
        return self.bits / self.seconds

    def save(self, path: str | Path) -> None:
        dtype = np.uint16 if self.n_embed <= 2 ** 16 else np.int64
        with open(path, "wb") as f:  # exactly this path (np.savez would append .npz)
            np.savez(f, indices=self.indices.astype(dtype), n_embed=self.n_embed, sr=self.sr,
                     n_samples=self.n_samples, mel_frames=self.mel_frames)

    def validate(self, where: str = "codes") -> "Codes":
        """Check that the fields agree (raises :class:`CodesError` ``"<where>: ..."``): 2-D integer indices in
        [0, n_embed), a sample rate in [MIN_SR, MAX_SR], at most MAX_SECONDS of audio, and ``mel_frames``
        matching both ``n_samples`` (22050 Hz mels, hop 256) and the number of index columns."""
        def bad(msg):
            raise CodesError(f"{where}: {msg}")

        ind = np.asarray(self.indices)
        if ind.ndim != 2 or ind.size == 0 or ind.dtype.kind not in "iu":
            bad(f"indices must be a non-empty 2-D integer grid, got shape {ind.shape} {ind.dtype}")
        if not 2 <= self.n_embed <= MAX_EMBED:
            bad(f"codebook size n_embed={self.n_embed} is outside [2, {MAX_EMBED}]")
        if ind.min() < 0 or ind.max() >= self.n_embed:
            bad(f"indices span [{ind.min()}, {ind.max()}], outside the codebook's [0, {self.n_embed - 1}]")
        if not MIN_SR <= self.sr <= MAX_SR:
            bad(f"sample rate {self.sr} Hz is outside [{MIN_SR}, {MAX_SR}]")
        if not 0 < self.n_samples <= MAX_SECONDS * self.sr:
            bad(f"length {self.n_samples} samples is outside (0, {MAX_SECONDS} s]")
        frames = 1 + round(self.n_samples * SR / self.sr) // HOP
        if abs(self.mel_frames - frames) > 2:
            bad(f"mel_frames={self.mel_frames} does not match {self.n_samples} samples at {self.sr} Hz "
                f"(~{frames} frames)")
        if not 0 < self.mel_frames <= ind.shape[1] * MAX_DOWNSAMPLE or ind.shape[1] > self.mel_frames:
            bad(f"mel_frames={self.mel_frames} does not match {ind.shape[1]} index columns")
        return self

    @classmethod
    def load(cls, path: str | Path) -> "Codes":
        """Read and :meth:`validate` a codes file (``np.load`` without pickles)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"codes file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as f:
                missing = {"indices", "n_embed", "sr", "n_samples", "mel_frames"} - set(f.files)
                if missing:
                    raise CodesError(f"{path} is not a codes file: missing {sorted(missing)}")
                ind = f["indices"]
                if ind.dtype.kind not in "iu":
                    raise CodesError(f"{path}: indices must be integers, got {ind.dtype}")
                codes = cls(indices=ind.astype(np.int64), n_embed=int(f["n_embed"]), sr=int(f["sr"]),
                            n_samples=int(f["n_samples"]), mel_frames=int(f["mel_frames"]))
        except CodesError:
            raise
        except Exception as err:  # not a zip, a pickled member, a non-scalar field ...
            raise CodesError(f"{path}: cannot read as a codes file ({type(err).__name__}: {err})") from err
        return codes.validate(str(path))


class SpectrogramCodec:
    """Wraps a trained codebook (``VQModel``) and a vocoder (Griffin-Lim by default) into a codec.

    Args:
        model: a VQModel (2D) in eval mode. vocoder: ``mel (80, T) [0, 1] -> wav (T*256,)`` at 22050 Hz
            (e.g. ``vocoder.inference.MelGANVocoder``); ``None`` uses Griffin-Lim (``specvqgan.audio.mel_to_wav``).
    """

    def __init__(self, model: torch.nn.Module, vocoder: Callable[[np.ndarray], np.ndarray] | None = None):
        self.model = model.eval()
        self.vocoder = vocoder or mel_to_wav
        self.n_embed = int(model.quantize.n_e)
        self.downsample = 2 ** (model.encoder.num_resolutions - 1)

    @classmethod
    def from_checkpoint(cls, ckpt: str | Path, vocoder: str | Path | None = None,
                        config: str | Path | None = None, trust: bool = False) -> "SpectrogramCodec":
        """Codebook from ``ckpt`` (see :func:`load_codebook`); MelGAN from ``vocoder`` (a checkpoint or a
        reference ``best_netG.pt`` + ``args.yml`` folder, see ``vocoder.inference``) or Griffin-Lim.
        ``trust``: read both files in full (:func:`specvqgan.checkpoint.read`)."""
        from specvqgan.checkpoint import trusted
        voc = None
        with trusted(*((ckpt, vocoder) if trust else ())):
            if vocoder is not None:
                from vocoder.inference import load_vocoder

                voc = load_vocoder(vocoder)
            return cls(load_codebook(ckpt, config), voc)

    @torch.inference_mode()
    def encode(self, wav: np.ndarray, sr: int) -> Codes:
        """``wav`` (L,) or (C, L) float at ``sr`` Hz -> :class:`Codes` (indices (F/16, ceil(T/16)))."""
        wav = to_mono(wav)
        if wav.size == 0:
            raise ValueError("cannot encode an empty waveform")
        mel = wav_to_mel(resample(wav, sr, SR), SR)  # (80, T) in [0, 1]
        frames = mel.shape[1]
        pad = -frames % self.downsample
        mel = np.pad(mel, ((0, 0), (0, pad)))  # pad with silence (0 = -80 dB)
        x = torch.from_numpy(2 * mel - 1)[None, None].float()
        indices = self.model.encode_to_indices(x)[0].cpu().numpy()
        return Codes(indices=indices, n_embed=self.n_embed, sr=int(sr), n_samples=len(wav), mel_frames=frames)

    @torch.inference_mode()
    def decode_mel(self, codes: Codes, where: str = "codes") -> np.ndarray:
        """:class:`Codes` -> mel (80, mel_frames) in [0, 1]. Raises :class:`CodesError` ``"<where>: ..."``
        when the codes do not fit this codebook (size, rows, columns) or decode to NaN / Inf."""
        codes.validate(where)
        if codes.n_embed != self.n_embed:
            raise CodesError(f"{where}: codes were made with a codebook of {codes.n_embed} entries, this model "
                             f"has {self.n_embed}")
        rows = 80 // self.downsample
        if codes.indices.shape[0] != rows or codes.indices.shape[1] != -(-codes.mel_frames // self.downsample):
            raise CodesError(f"{where}: {codes.indices.shape[0]}x{codes.indices.shape[1]} indices for "
                             f"{codes.mel_frames} mel frames; this codebook expects {rows}x"
                             f"{-(-codes.mel_frames // self.downsample)}")
        x = self.model.decode_from_indices(torch.from_numpy(codes.indices).long()[None])
        mel = ((x[0, 0].cpu().numpy() + 1) / 2).clip(0, 1)[:, :codes.mel_frames]
        return require_finite(mel, where, "decoded mel values")

    def decode(self, codes: Codes, where: str = "codes") -> tuple[np.ndarray, int]:
        """:class:`Codes` -> (wav (n_samples,), sr) at the original sample rate (errors name ``where``)."""
        wav = require_finite(np.asarray(self.vocoder(self.decode_mel(codes, where))), where, "waveform samples")
        wav = resample(np.asarray(wav, np.float32), SR, codes.sr)
        wav = np.pad(wav, (0, max(0, codes.n_samples - len(wav))))[:codes.n_samples]
        return wav.astype(np.float32), codes.sr


def _describe(codes: Codes) -> str:
    return (f"{codes.indices.shape[0]}x{codes.indices.shape[1]} tokens, {math.log2(codes.n_embed):g} bits each, "
            f"{codes.seconds:.2f} s -> bitrate {codes.bitrate:.1f} bit/s ({codes.bitrate / 1000:.3f} kbps)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m specvqgan.codec", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    enc = sub.add_parser("encode", help="audio file -> codes .npz")
    enc.add_argument("input"), enc.add_argument("output")
    dec = sub.add_parser("decode", help="codes .npz -> wav")
    dec.add_argument("input"), dec.add_argument("output")
    dec.add_argument("--vocoder", default=None,
                     help="MelGAN checkpoint or reference folder (best_netG.pt + args.yml); default: Griffin-Lim")
    for p in (enc, dec):
        p.add_argument("--ckpt", required=True, help="codebook checkpoint (.ckpt from train.py or exported .pt)")
        p.add_argument("--config", default=None, help="YAML with the model config if the checkpoint has none")
        add_trust_argument(p)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        with trusted_by(args, args.ckpt, getattr(args, "vocoder", None)):
            codec = SpectrogramCodec.from_checkpoint(args.ckpt, getattr(args, "vocoder", None), args.config)
        if args.cmd == "encode":
            import soundfile as sf
            info = sf.info(args.input) if Path(args.input).is_file() else None
            sr = info.samplerate if info else SR
            codes = codec.encode(load_audio(args.input, sr=sr), sr)
            codes.save(args.output)
        else:
            codes = Codes.load(args.input)
            wav, sr = codec.decode(codes, args.input)
            save_audio(args.output, wav, sr)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.cmd}d {args.input} -> {args.output}: {_describe(codes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Encode ``.mp4`` clips with PyAV (libx264 + AAC): the toy dataset's videos, test and benchmark inputs."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np


def write_mp4(path: str | Path, frames: np.ndarray | None, fps: float, wav: np.ndarray | None, sr: int,
              crf: int = 23, audio_bitrate: int = 96_000) -> None:
    """Encode an H.264 (yuv420p) + AAC ``.mp4`` with PyAV. Deterministic for the same inputs.

    Args:
        frames: (T, H, W, 3) uint8 RGB (H, W even), or None for an audio-only file.
        fps: video frame rate (a float such as 25 or 21.5 is turned into an exact fraction).
        wav: (L,) mono or (C, L) multi-channel float waveform in [-1, 1], or None for a silent video
            (no audio stream at all).
        sr: audio sample rate.
    """
    import av

    if frames is None and wav is None:
        raise ValueError(f"{path}: nothing to write (no frames and no audio)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4") as out:
        vs = as_ = None
        if frames is not None:
            frames = np.asarray(frames, dtype=np.uint8)
            if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[1] % 2 or frames.shape[2] % 2:
                raise ValueError(f"{path}: frames must be (T, H, W, 3) with even H, W; got {frames.shape}")
            vs = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            vs.width, vs.height, vs.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
            vs.codec_context.thread_count = 1          # deterministic, parallelism is across clips
            vs.options = {"crf": str(crf), "preset": "veryfast"}
        if wav is not None:
            wav = np.asarray(wav, dtype=np.float32)
            wav = wav[None] if wav.ndim == 1 else wav
            layout = {1: "mono", 2: "stereo"}.get(wav.shape[0])
            if layout is None:
                raise ValueError(f"{path}: audio must be (L,) or (1|2, L); got {wav.shape}")
            as_ = out.add_stream("aac", rate=sr, layout=layout)
            as_.bit_rate = audio_bitrate
            as_.options = {"aac_coder": "fast"}
        if vs is not None:
            for frame in frames:
                out.mux(vs.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            out.mux(vs.encode(None))
        if as_ is not None:
            chunk = 1024                                   # the AAC frame size
            for start in range(0, wav.shape[1], chunk):
                part = np.ascontiguousarray(np.clip(wav[:, start:start + chunk], -1.0, 1.0))
                af = av.AudioFrame.from_ndarray(part, format="fltp", layout=layout)
                af.sample_rate, af.pts = sr, start
                out.mux(as_.encode(af))
            out.mux(as_.encode(None))

"""Writing generated sound: the file half of the video -> sound API (:mod:`specvqgan.pipeline` computes).

    sound = pipe.compute("in.mp4", samples=3)           # arrays only, nothing written
    res = write_sound(sound, "out/")                     # out/in_sample_<k>.{wav,npy,png,mp4}

Each sample ``k`` becomes ``<out_dir>/<video stem>_sample_<k>`` + ``.wav`` (22050 Hz), ``.npy`` (the (80, T)
mel in [0, 1]), ``.png`` (the mel as a picture) and ``.mp4`` (the input video with the new sound), each
written atomically (a hidden temporary file, then a rename: never a partial file under the final name).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from specvqgan.audio import SR, save_audio

if TYPE_CHECKING:
    from specvqgan.pipeline import GeneratedSound

log = logging.getLogger(__name__)

OUTPUT_SUFFIXES = (".wav", ".npy", ".png", ".mp4")
__all__ = ["GenerationResult", "write_sound", "output_paths", "mel_png", "mux_audio", "OUTPUT_SUFFIXES"]


@dataclass
class GenerationResult:
    """The files :func:`write_sound` wrote for a :class:`~specvqgan.pipeline.GeneratedSound` (one entry per
    sample in each list).

    Attributes:
        sound: what was computed (mels, waveforms, tokens, condition, timings).
        wav_paths, mel_paths, png_paths, mp4_paths: ``<out_dir>/<stem>_sample_<k>.{wav,npy,png,mp4}``
            (``mp4_paths`` empty when no mp4 was written).
        seconds: wall time per stage, the sound's stages and ``writing``.
    """

    sound: "GeneratedSound"
    wav_paths: list = field(default_factory=list)
    mel_paths: list = field(default_factory=list)
    png_paths: list = field(default_factory=list)
    mp4_paths: list = field(default_factory=list)
    seconds: dict = field(default_factory=dict)

    # the sound's fields, as the result of ``VideoToSound.generate`` always offered them
    @property
    def video(self) -> Path:
        return self.sound.video

    @property
    def duration(self) -> float:
        return self.sound.duration

    @property
    def sample_rate(self) -> int:
        return self.sound.sample_rate

    @property
    def mels(self) -> list:
        """(80, T) float32 mels in [0, 1], one per sample."""
        return list(self.sound.mels)

    @property
    def wavs(self) -> list:
        """(T * 256,) float32 waveforms at ``sample_rate``, one per sample."""
        return list(self.sound.wavs)


def write_sound(sound: "GeneratedSound", out_dir: str | Path, *, mp4: bool = True) -> GenerationResult:
    """Write every sample of ``sound`` to ``out_dir`` (created if missing): ``.wav``, ``.npy``, ``.png``
    and, with ``mp4``, the input video muxed with the sound (looped when the sound is longer than it).
    Returns the paths; ``seconds`` = the sound's timings + ``writing``."""
    t0 = time.perf_counter()
    res = GenerationResult(sound=sound)
    for k in range(len(sound.mels)):
        paths = output_paths(sound.video, out_dir, k)
        _write_sample(paths, sound.video, sound.mels[k], sound.wavs[k], mp4, sound.loop_video, sound.sample_rate)
        res.wav_paths.append(paths[0])
        res.mel_paths.append(paths[1])
        res.png_paths.append(paths[2])
        if mp4:
            res.mp4_paths.append(paths[3])
    res.seconds = {**sound.seconds, "writing": time.perf_counter() - t0}
    log.info("%s: %d sample(s) of %.2f s (%d latent columns) in %s", sound.video, len(sound.mels), sound.duration,
             sound.total_cols, ", ".join(f"{k} {v:.2f} s" for k, v in res.seconds.items()))
    return res


def output_paths(video: str | Path, out_dir: str | Path, k: int) -> list:
    """``<out_dir>/<video stem>_sample_<k>`` + ``.wav``, ``.npy``, ``.png``, ``.mp4`` (in that order)."""
    return [Path(out_dir) / f"{Path(video).stem}_sample_{k}{ext}" for ext in OUTPUT_SUFFIXES]


def mel_png(mel: np.ndarray, scale: int = 2) -> bytes:
    """A mel (80, T) in [0, 1] as a colour PNG (magma map, low frequencies at the bottom, each bin
    ``scale`` pixels high): the encoded bytes."""
    import cv2

    img = (np.clip(mel[::-1], 0, 1) * 255).round().astype(np.uint8)
    img = cv2.applyColorMap(np.repeat(img, scale, axis=0), cv2.COLORMAP_MAGMA)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise RuntimeError("OpenCV could not encode the spectrogram PNG")
    return buf.tobytes()


def mux_audio(video: Path, wav: Path, out: Path, duration: float, loop_video: bool = False) -> None:
    """``out`` (.mp4) = the first video stream of ``video`` (copied; re-encoded to H.264 if the mp4
    container refuses its codec) + ``wav`` as AAC, ``duration`` seconds long. ``loop_video``: repeat
    the video when the sound is longer than it."""
    from feature_extraction.media import MediaError, input_args, run_ffmpeg

    src = [*input_args(video, loop_video), "-i", str(Path(wav).resolve())]
    tail = ["-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac", "-b:a", "128k", "-t", f"{duration:.6f}",
            "-movflags", "+faststart", "-f", "mp4", "-y", str(out)]
    try:
        run_ffmpeg([*src, "-c:v", "copy", *tail], video)
    except MediaError:
        log.info("%s: video stream not copyable into mp4, re-encoding it (H.264)", video)
        run_ffmpeg([*src, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast", *tail], video)


def _write_sample(paths, video: Path, mel: np.ndarray, wav: np.ndarray, write_mp4: bool, loop_video: bool,
                  sr: int = SR) -> None:
    """Write ``.wav``, ``.npy``, ``.png`` (and ``.mp4``) for one sample, each atomically."""
    from specvqgan.files import atomic_write, save_mel_atomic

    wav_path, mel_path, png_path, mp4_path = paths
    atomic_write(wav_path, lambda p: save_audio(p, wav, sr))
    save_mel_atomic(mel_path, np.asarray(mel, dtype=np.float32))
    atomic_write(png_path, lambda p: p.write_bytes(mel_png(mel)))
    if write_mp4:
        atomic_write(mp4_path, lambda p: mux_audio(video, wav_path, p, len(wav) / sr, loop_video))

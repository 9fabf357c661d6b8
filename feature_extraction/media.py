"""Video/audio I/O for feature extraction: probe with PyAV, decode with the ffmpeg binary shipped in
``imageio-ffmpeg`` (never a system ffmpeg), encode toy clips with PyAV (libx264 + AAC).

Decoding follows the RegNet/SpecVQGAN recipe (reference ``feature_extraction/extract_audio_and_video.py``):
the clip is looped (``-stream_loop``) when shorter than the target duration, cut to the target
duration, the audio is down-mixed to mono and resampled to 22050 Hz, the video is resampled to
21.5 fps. Here it is done in one decode per stream, piped to numpy, with no intermediate files.
"""
from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np


class MediaError(RuntimeError):
    """A media file cannot be used; the message names the file and the problem."""


@functools.lru_cache(maxsize=None)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with ``imageio-ffmpeg``."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class MediaInfo:
    """What :func:`probe` learns about a file. Durations in seconds (None when the container omits them)."""

    path: str
    has_video: bool
    has_audio: bool
    video_duration: float | None
    audio_duration: float | None
    audio_rate: int | None
    audio_channels: int | None
    video_fps: float | None
    width: int | None
    height: int | None

    @property
    def duration(self) -> float | None:
        """Usable duration: the shorter of the audio and video streams that are present and known."""
        known = [d for d in (self.video_duration, self.audio_duration) if d is not None]
        return min(known) if known else None


def _stream_duration(stream, container_duration: float | None) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return container_duration


def probe(path: str | Path) -> MediaInfo:
    """Open ``path`` with PyAV and describe its streams. Raises :class:`MediaError` when unreadable."""
    import av

    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: file not found")
    try:
        with av.open(str(path)) as container:
            cdur = container.duration / 1e6 if container.duration is not None else None
            v = container.streams.video[0] if container.streams.video else None
            a = container.streams.audio[0] if container.streams.audio else None
            return MediaInfo(
                path=str(path), has_video=v is not None, has_audio=a is not None,
                video_duration=_stream_duration(v, cdur) if v is not None else None,
                audio_duration=_stream_duration(a, cdur) if a is not None else None,
                audio_rate=a.codec_context.sample_rate if a is not None else None,
                audio_channels=a.codec_context.channels if a is not None else None,
                video_fps=float(v.average_rate) if v is not None and v.average_rate else None,
                width=v.codec_context.width if v is not None else None,
                height=v.codec_context.height if v is not None else None)
    except MediaError:
        raise
    except Exception as err:  # av.error.InvalidDataError and friends
        raise MediaError(f"{path}: cannot open as a media file ({type(err).__name__}: {err})") from err


def run_ffmpeg(args: list[str], path: Path) -> bytes:
    """Run the bundled ffmpeg with ``args`` (quiet); stdout bytes. A failure raises :class:`MediaError`
    naming ``path`` and ffmpeg's last error line."""
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", *args]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise MediaError(f"{path}: ffmpeg failed ({msg[-1] if msg else f'exit code {proc.returncode}'})")
    return proc.stdout


def _input_args(path: Path, loop: bool) -> list[str]:
    # -stream_loop -1 repeats the input without end; the output -t below bounds it (RegNet recipe:
    # duration_target // duration + 1 repeats, then cut).
    return (["-stream_loop", "-1"] if loop else []) + ["-i", str(path)]


def read_audio(path: str | Path, duration: float, sr: int, loop: bool = False) -> np.ndarray:
    """Decode the first audio stream -> (round(duration * sr),) float32 mono in [-1, 1].

    Down-mixes to mono (``-ac 1``), resamples to ``sr`` (``-ar``) and quantises to 16-bit PCM like the
    reference's wav files; zero-pads the last few samples if the stream ends early.
    """
    path = Path(path)
    raw = run_ffmpeg([*_input_args(path, loop), "-t", f"{duration:.6f}", "-map", "0:a:0", "-vn",
                       "-ac", "1", "-ar", str(sr), "-f", "s16le", "-acodec", "pcm_s16le", "pipe:1"], path)
    wav = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    n = int(round(duration * sr))
    if len(wav) == 0:
        raise MediaError(f"{path}: the audio stream decoded to 0 samples")
    return np.pad(wav, (0, max(0, n - len(wav))))[:n]


def read_frames(path: str | Path, duration: float, fps: float, size: tuple[int, int],
                loop: bool = False) -> np.ndarray:
    """Decode the first video stream at ``fps`` -> (round(duration * fps), H, W, 3) uint8 RGB.

    Frames are resampled with ffmpeg's ``fps`` filter and resized to ``size = (H, W)`` with area
    averaging; a missing last frame (container rounding) is filled by repeating the previous one.
    """
    path = Path(path)
    h, w = size
    raw = run_ffmpeg([*_input_args(path, loop), "-t", f"{duration:.6f}", "-map", "0:v:0", "-an",
                       "-vf", f"fps={fps},scale={w}:{h}:flags=area", "-pix_fmt", "rgb24",
                       "-f", "rawvideo", "pipe:1"], path)
    frames = np.frombuffer(raw, dtype=np.uint8)
    if frames.size == 0 or frames.size % (h * w * 3):
        raise MediaError(f"{path}: the video stream decoded to {frames.size} bytes, "
                         f"not whole {w}x{h} RGB frames")
    frames = frames.reshape(-1, h, w, 3)
    n = int(round(duration * fps))
    if len(frames) < n:
        frames = np.concatenate([frames, np.repeat(frames[-1:], n - len(frames), axis=0)])
    return frames[:n]


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

"""Video/audio input for feature extraction: probe with PyAV, decode with the ffmpeg binary shipped in
``imageio-ffmpeg`` (never a system ffmpeg). Clips are encoded by :mod:`feature_extraction.encode`.

Decoding follows the RegNet/SpecVQGAN recipe (reference ``feature_extraction/extract_audio_and_video.py``):
the clip is looped (``-stream_loop``) when shorter than the target duration, cut to the target
duration, the audio is down-mixed to mono and resampled to 22050 Hz, the video is resampled to
21.5 fps. Here it is done in one decode per stream, piped to numpy, with no intermediate files.
"""
from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from specvqgan.video_files import VIDEO_EXTENSIONS  # inputs: regular files of these containers only


class MediaError(RuntimeError):
    """A media file cannot be used; the message names the file and the problem."""


log = logging.getLogger(__name__)

# the demuxers ffmpeg / PyAV may use for them (``format_whitelist``: never hls, concat, image2, ...)
_FORMATS = "mov,mp4,m4v,matroska,webm,avi,mpeg,mpegvideo,mpegts,flv,asf,ogg,gif"
_SAFE_OPTIONS = {"protocol_whitelist": "file", "format_whitelist": _FORMATS}
MAX_SOURCE_PIXELS = 8192 * 4352                 # larger frames (beyond 8K) are refused, not decoded
MAX_MISSING_FRAMES = 2                          # container rounding; more is a truncated stream
MAX_MISSING_AUDIO_S = 0.1
# Subprocess time limit: TIMEOUT_BASE_S + TIMEOUT_PER_SECOND * (seconds of media processed).
TIMEOUT_BASE_S = 60.0
TIMEOUT_PER_SECOND = 10.0


@functools.lru_cache(maxsize=None)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with ``imageio-ffmpeg``."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def checked_input(path: str | Path) -> Path:
    """``path`` as an absolute path (a ``:`` in a relative name is then no protocol) after checking that
    it is a regular file with a known video container extension (:data:`VIDEO_EXTENSIONS`).

    Raises:
        MediaError: missing file, not a regular file (FIFO, device, folder), or another extension
            (``.m3u8`` playlists, ``.txt`` concat lists, ...).
    """
    path = Path(path)
    if not path.exists():
        raise MediaError(f"{path}: file not found")
    if not path.is_file():
        raise MediaError(f"{path}: not a regular file")
    if path.suffix.lower() not in VIDEO_EXTENSIONS:
        raise MediaError(f"{path}: not a video file this project reads (extension {path.suffix or 'none'}; "
                         f"accepted: {', '.join(VIDEO_EXTENSIONS)})")
    return path.resolve()


def input_args(path: str | Path, loop: bool = False) -> list[str]:
    """ffmpeg arguments opening ``path`` (checked by :func:`checked_input`) as a local file of a known
    container only; ``loop`` repeats it without end (the output's ``-t`` bounds it)."""
    safe = [a for k, v in _SAFE_OPTIONS.items() for a in (f"-{k}", v)]
    return safe + (["-stream_loop", "-1"] if loop else []) + ["-i", str(checked_input(path))]


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
    """Open ``path`` with PyAV (local file, known container: :func:`checked_input`) and describe its
    streams. Raises :class:`MediaError` when unreadable or larger than :data:`MAX_SOURCE_PIXELS`."""
    import av

    shown = Path(path)
    path = checked_input(path)
    try:
        with av.open(str(path), options=dict(_SAFE_OPTIONS)) as container:
            cdur = container.duration / 1e6 if container.duration is not None else None
            v = container.streams.video[0] if container.streams.video else None
            a = container.streams.audio[0] if container.streams.audio else None
            info = MediaInfo(
                path=str(path), has_video=v is not None, has_audio=a is not None,
                video_duration=_stream_duration(v, cdur) if v is not None else None,
                audio_duration=_stream_duration(a, cdur) if a is not None else None,
                audio_rate=a.codec_context.sample_rate if a is not None else None,
                audio_channels=a.codec_context.channels if a is not None else None,
                video_fps=float(v.average_rate) if v is not None and v.average_rate else None,
                width=v.codec_context.width if v is not None else None,
                height=v.codec_context.height if v is not None else None)
    except Exception as err:  # av.error.InvalidDataError and friends
        raise MediaError(f"{shown}: cannot open as a media file ({type(err).__name__}: {err})") from err
    if info.width and info.height and info.width * info.height > MAX_SOURCE_PIXELS:
        raise MediaError(f"{shown}: {info.width}x{info.height} frames are larger than the "
                         f"{MAX_SOURCE_PIXELS} pixel limit (8K)")
    return info


def timeout_for(seconds: float | None) -> float:
    """Time limit of a subprocess handling ``seconds`` of media (None: unknown, counted as 60 s)."""
    return TIMEOUT_BASE_S + TIMEOUT_PER_SECOND * (60.0 if seconds is None else max(0.0, float(seconds)))


def _output_seconds(args: list[str]) -> float | None:
    """The value of the last ``-t`` in ffmpeg ``args`` (the length it writes), else None."""
    ts = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "-t"]
    return float(ts[-1]) if ts else None


class FFmpegStream:
    """The bundled ffmpeg run with ``args`` (quiet), its stdout read incrementally with :meth:`read`; a
    watchdog kills it once it has kept the reader waiting ``timeout`` seconds in all (time the reader
    spends on its own work between reads, e.g. embedding a chunk, is not counted: ffmpeg is only blocked
    on the full pipe then). Use as a context manager: leaving it waits for the
    process (or kills it when the reader stopped early) and raises :class:`MediaError` naming ``path``
    (and, for a time-out, the command) when ffmpeg failed."""

    def __init__(self, args: list[str], path: Path, timeout: float):
        import subprocess
        import tempfile
        import threading

        self.cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", *args]
        self.path, self.timeout, self.timed_out, self.stopped = path, timeout, False, False
        self._err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._err)
        self._waited, self._since = 0.0, time.monotonic()   # seconds the reader waited; start of this wait
        self._done = threading.Event()
        threading.Thread(target=self._watch, daemon=True).start()

    def _waiting(self) -> float:
        since = self._since
        return self._waited + (time.monotonic() - since if since is not None else 0.0)

    def _watch(self):
        while not self._done.wait(min(0.5, self.timeout / 4)):
            if self._waiting() > self.timeout:
                self.timed_out = True
                self.proc.kill()
                return

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes (fewer only at the end of the output)."""
        buf = bytearray()
        self._since = time.monotonic()
        try:
            while len(buf) < n:
                part = self.proc.stdout.read(n - len(buf))
                if not part:
                    break
                buf += part
        finally:
            self._waited, self._since = self._waiting(), None
        return bytes(buf)

    def __enter__(self):
        return self

    def stop(self) -> None:
        """The reader has all it needs: end ffmpeg now (its exit status is then ignored)."""
        self.stopped = True
        self.proc.kill()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.proc.kill()
        self.proc.stdout.close()
        self._since = time.monotonic()
        code = self.proc.wait()
        self._done.set()
        self._err.seek(0)
        msg = self._err.read().decode(errors="replace").strip().splitlines()
        self._err.close()
        if self.timed_out and exc_type is not GeneratorExit:
            raise MediaError(f"{self.path}: ffmpeg timed out after {self.timeout:.0f} s "
                             f"(command: {' '.join(self.cmd)})")
        if exc_type is None and code != 0 and not self.stopped:
            raise MediaError(f"{self.path}: ffmpeg failed ({msg[-1] if msg else f'exit code {code}'})")
        return False


def run_ffmpeg(args: list[str], path: Path, timeout: float | None = None) -> bytes:
    """Run the bundled ffmpeg with ``args`` (quiet); stdout bytes. A failure raises :class:`MediaError`
    naming ``path`` and ffmpeg's last error line; so does running longer than ``timeout`` (default:
    :func:`timeout_for` the ``-t`` length in ``args``). Open inputs with :func:`input_args`."""
    timeout = timeout_for(_output_seconds(args)) if timeout is None else timeout
    with FFmpegStream(args, Path(path), timeout) as ff:
        out = bytearray()
        while True:
            part = ff.read(1 << 20)
            out += part
            if not part:
                break
    return bytes(out)


def _missing(path: Path, what: str, got: int, want: int, unit: str, limit: float,
             allow_truncated: bool) -> None:
    """Raise (or, with ``allow_truncated``, log a warning) when ``want - got > limit``."""
    if want - got > limit:
        msg = (f"{path}: the {what} stream ended early: {got} of {want} {unit} decoded "
               f"({want - got} missing; truncated or damaged file)")
        if not allow_truncated:
            raise MediaError(msg + "; pass allow_truncated (--allow-truncated) to pad it")
        log.warning("%s; padded", msg)


def _source_seconds(own: float | None, duration: float, loop: bool) -> float | None:
    """Seconds of a looped source to check before looping it: its own length when known and shorter
    than ``duration`` (then it is looped), else None (no loop needed, or nothing to check against)."""
    return own if loop and own is not None and own < duration else None


def read_audio(path: str | Path, duration: float, sr: int, loop: bool = False, *,
               info: MediaInfo | None = None, allow_truncated: bool = False) -> np.ndarray:
    """Decode the first audio stream -> (round(duration * sr),) float32 mono in [-1, 1].

    Down-mixes to mono (``-ac 1``), resamples to ``sr`` (``-ar``) and quantises to 16-bit PCM like the
    reference's wav files. ``loop``: a source shorter than ``duration`` is repeated (its own length is
    checked first). A stream more than 0.1 s short of what it should give (truncated file, or shorter
    than ``duration`` without ``loop``) raises :class:`MediaError`; ``allow_truncated`` zero-pads it with
    a warning instead. ``info``: the :func:`probe` result, if known.
    """
    shown = Path(path)
    n, tol = int(round(duration * sr)), MAX_MISSING_AUDIO_S * sr
    tail = ["-map", "0:a:0", "-vn", "-ac", "1", "-ar", str(sr), "-f", "s16le", "-acodec", "pcm_s16le", "pipe:1"]
    info = probe(path) if info is None else info
    src = _source_seconds(info.audio_duration, duration, loop)
    if src is not None:                       # a looped source: check that it is complete first
        raw = run_ffmpeg([*input_args(path), *tail], shown, timeout_for(src))
        _missing(shown, "audio", len(raw) // 2, int(round(src * sr)), "samples", tol, allow_truncated)
    loop = loop and (src is not None or info.audio_duration is None)
    raw = run_ffmpeg([*input_args(path, loop), "-t", f"{duration:.6f}", *tail], shown)
    wav = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    if len(wav) == 0:
        raise MediaError(f"{shown}: the audio stream decoded to 0 samples")
    if loop and n - len(wav) > tol:         # the source was checked: AAC loses its priming at each seam
        log.debug("%s: looping gave %d of %d samples; zero-padded", shown, len(wav), n)
    else:
        _missing(shown, "audio", len(wav), n, "samples", tol, allow_truncated)
    return np.pad(wav, (0, max(0, n - len(wav))))[:n]


def iter_frames(path: str | Path, duration: float, fps: float, size: tuple[int, int], loop: bool = False, *,
                info: MediaInfo | None = None, chunk: int = 64, max_aspect: float | None = None,
                allow_truncated: bool = False, indices=None) -> Iterator[np.ndarray]:
    """Decode the first video stream at ``fps`` in chunks: yields (<= ``chunk``, H, W, 3) uint8 RGB
    arrays, round(duration * fps) frames in all; only one chunk is in memory at a time.

    Frames are resampled with ffmpeg's ``fps`` filter and resized to ``size = (H, W)`` with area
    averaging; ``max_aspect``: frames wider (or taller) than this ratio are first centre-cropped to it
    inside ffmpeg, so an extreme aspect ratio never decodes to an unbounded size. ``loop`` repeats a
    source shorter than ``duration`` (its own length is checked first). More than 2 missing frames
    (truncated file, or a short source without ``loop``) raise :class:`MediaError`;
    ``allow_truncated`` repeats the last frame with a warning instead (up to 2 are always repeated:
    container rounding).
    ``indices``: only these frames (sorted, unique, in [0, round(duration * fps))), equal to the full
    read's frames at ``indices``: ffmpeg's ``select`` drops the others before scaling and conversion (the
    stream is still decoded; a stream ending before the last index falls back to a full read).
    """
    shown = Path(path)
    h, w = size
    frame_bytes, n = h * w * 3, int(round(duration * fps))
    if info is None:
        info = probe(path)
    vf = f"fps={fps},scale={w}:{h}:flags=area"
    if max_aspect and info.width and info.height and max(info.width / info.height,
                                                          info.height / info.width) > max_aspect:
        vf = f"crop='min(iw,ih*{max_aspect:g})':'min(ih,iw*{max_aspect:g})'," + vf
    if indices is not None:
        indices = np.asarray(indices, dtype=np.int64)
        if indices.ndim != 1 or len(indices) == 0 or np.any(np.diff(indices) <= 0) or indices[0] < 0 \
                or indices[-1] >= n:
            raise ValueError(f"indices must be sorted, unique and in [0, {n}), got {indices}")
        # -frames:v ends the read after the last pick (-t counts output time: with frames dropped and a
        # looped input it would never be reached)
        vf = vf.replace("scale=", "select='" + "+".join(f"eq(n\\,{i})" for i in indices) + "',scale=", 1)
        n = len(indices)
    tail = ["-map", "0:v:0", "-an", "-vf", vf, "-pix_fmt", "rgb24",
            *(["-fps_mode", "passthrough", "-frames:v", str(n)] if indices is not None else []),
            "-f", "rawvideo", "pipe:1"]
    src = _source_seconds(info.video_duration, duration, loop)
    if src is not None:                       # a looped source: count its own frames first (at 2x2)
        small = ["-map", "0:v:0", "-an", "-vf", f"fps={fps},scale=2:2", "-pix_fmt", "gray", "-f", "rawvideo",
                 "pipe:1"]
        got = len(run_ffmpeg([*input_args(path), *small], shown, timeout_for(src))) // 4
        _missing(shown, "video", got, int(round(src * fps)), "frames", MAX_MISSING_FRAMES, allow_truncated)
    asked, loop = loop, loop and (src is not None or info.video_duration is None)
    got, last = 0, None
    with FFmpegStream([*input_args(path, loop), "-t", f"{duration:.6f}", *tail], shown,
                      timeout_for(duration)) as ff:
        while got < n:
            raw = ff.read(frame_bytes * min(chunk, n - got))
            if len(raw) % frame_bytes:
                raise MediaError(f"{shown}: the video stream decoded to a partial {w}x{h} RGB frame")
            if not raw:
                break
            last = np.frombuffer(raw, dtype=np.uint8).reshape(-1, h, w, 3)
            got += len(last)
            yield last
        if got >= n:
            ff.stop()                           # ffmpeg may still write a frame past -t
    if indices is not None and got < n:     # the stream ended before the last pick: as the full read pads it
        want, pos = indices[got:], 0        # (chunk by chunk, keeping only the picks: memory stays bounded)
        for frames in iter_frames(path, duration, fps, size, asked, info=info, chunk=chunk, max_aspect=max_aspect,
                                  allow_truncated=allow_truncated):
            picks = want[(want >= pos) & (want < pos + len(frames))] - pos
            if len(picks):
                yield frames[picks]
            pos += len(frames)
        return
    if last is None:
        raise MediaError(f"{shown}: the video stream decoded to 0 frames")
    if not loop:                            # a looped source was checked above
        _missing(shown, "video", got, n, "frames", MAX_MISSING_FRAMES, allow_truncated)
    for start in range(got, n, chunk):
        yield np.repeat(last[-1:], min(chunk, n - start), axis=0)


def read_frames(path: str | Path, duration: float, fps: float, size: tuple[int, int],
                loop: bool = False, **kwargs) -> np.ndarray:
    """All of :func:`iter_frames` at once -> (round(duration * fps), H, W, 3) uint8 RGB (short clips and
    tests; long videos go through :func:`iter_frames` chunk by chunk)."""
    return np.concatenate(list(iter_frames(path, duration, fps, size, loop, **kwargs)))

"""Generate the toy audio-visual dataset (the embedded default; VAS-like layout).

    python scripts/make_toy_dataset.py --out data/toy

writes ``videos/<class>/<id>.mp4`` (H.264 + AAC 22050 Hz mono), ``toy_train.txt`` / ``toy_valid.txt``
(rows ``<class>/<id>``) and ``meta.json`` (classes, settings, event times of every clip).

Eight classes, each with its own visual motif (shape, colour, motion) and its own sound (pitch band,
timbre, rhythm). Every clip draws its own event times from a seeded RNG; at each event the object
lights up (and hits/pulses/claps) and the class sound starts on the same sample, so both relevance
(which sound) and synchrony (when) are learnable. Event times sit on the video frame grid, so audio
and video events coincide exactly. Deterministic for a seed (byte-identical files).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import librosa
import numpy as np

from feature_extraction.encode import write_mp4

SR = 22050
log = logging.getLogger("make_toy_dataset")


@dataclass(frozen=True)
class Motif:
    """One class: how it looks (shape, RGB colour, motion) and how it sounds (source, mel band, timing)."""

    name: str
    shape: str          # circle | square | ring | triangle | bars | diamond | cross | dot
    color: tuple        # RGB 0-255 when lit
    motion: str         # bounce | still | pulse | slide | clap | rise | shake | hop
    sound: str          # noise | harmonic | sweep (see _event_sound)
    band: tuple         # (first, last) mel bin (0-79) the sound fills; sweep: (start, end) of its lower edge
    hold: float         # seconds at full level
    decay: float        # seconds, exponential release after the hold
    double: bool = False  # events come in pairs DOUBLE_GAP s apart (rhythm)
    am: float = 0.0     # Hz, amplitude pulsing (buzz), 0 = none


# Events are dense and coarse at the toy codebook's resolution (80 x 160 mel -> 5 x 10 tokens of
# 16 mel bins x 16 frames = 0.19 s): every sound fills a class-specific band of >= 20 mel bins for
# >= 0.25 s, so a 2 s clip has ~15-40 % of its mel pixels > 0.5 over a quiet background. Bands
# differ per class (so do source, length and rhythm), so the mean spectrum alone tells classes apart.
MOTIFS = (
    Motif("ball", "circle", (230, 60, 50), "bounce", "noise", (0, 23), 0.25, 0.10),           # low thud
    Motif("bell", "square", (240, 200, 40), "still", "harmonic", (40, 63), 0.12, 0.35),      # ringing
    Motif("drum", "ring", (50, 90, 230), "pulse", "noise", (12, 39), 0.22, 0.08),             # mid noise
    Motif("whistle", "triangle", (60, 200, 80), "slide", "harmonic", (28, 51), 0.45, 0.03),  # sustained
    Motif("clap", "bars", (235, 235, 235), "clap", "noise", (56, 79), 0.30, 0.05),            # high noise
    Motif("siren", "diamond", (220, 60, 220), "rise", "sweep", (14, 40), 0.50, 0.03),  # rising band
    Motif("buzzer", "cross", (40, 210, 220), "shake", "harmonic", (0, 47), 0.35, 0.05, am=25.0),  # wide buzz
    Motif("chirp", "dot", (250, 140, 30), "hop", "noise", (48, 79), 0.15, 0.05, double=True),  # double
)
FLASH_DECAY = 0.12   # s, visual brightness decay after an event (several frames at 21.5 fps)
DIM = 0.30           # brightness of the object between events
DOUBLE_GAP = 0.24    # s between the two events of a double-event class
MIN_GAP = 0.5        # s between event onsets
SWEEP_WIDTH = 20     # mel bins of the siren's moving band
_MEL_EDGES = librosa.mel_frequencies(82, fmin=125.0, fmax=7600.0)   # Slaney mel bin edges (specvqgan.audio)


def event_times(rng: np.random.Generator, motif: Motif, duration: float, fps: float) -> list[float]:
    """Seeded event onsets (s) on the video frame grid: 1..~1.5/s events, >= MIN_GAP s apart."""
    n_max = max(1, int(duration * 1.5))
    n = int(rng.integers(1, n_max + 1))
    lo, hi = 0.1, duration - 0.35 - (DOUBLE_GAP if motif.double else 0.0)
    grid = np.arange(int(np.ceil(lo * fps)), int(np.floor(hi * fps)) + 1)
    times: list[int] = []
    for k in rng.permutation(grid):
        if all(abs(int(k) - t) >= MIN_GAP * fps for t in times):
            times.append(int(k))
        if len(times) == n:
            break
    frames = sorted(times)
    if motif.double:
        frames = sorted(frames + [f + int(round(DOUBLE_GAP * fps)) for f in frames])
    return [f / fps for f in frames]


def _envelope(t: np.ndarray, events: list[float], decay: float) -> np.ndarray:
    """Sum of exp(-(t - te)/decay) for t >= te, clipped to 1."""
    env = np.zeros_like(t)
    for te in events:
        m = t >= te - 1e-9
        env[m] += np.exp(-(t[m] - te) / decay)
    return np.minimum(env, 1.0)


def _band_hz(lo_bin: float, hi_bin: float, pitch: float) -> tuple[float, float]:
    """Frequency range (Hz) covered by mel bins lo..hi (filter edges), scaled by the per-clip pitch."""
    edges = np.interp([lo_bin, hi_bin + 2], np.arange(len(_MEL_EDGES)), _MEL_EDGES)
    return float(edges[0] * pitch), float(min(edges[1] * pitch, SR / 2 - 1))


def _bandnoise(rng: np.random.Generator, n: int, lo: np.ndarray | float, hi: np.ndarray | float,
               hop: int = 256) -> np.ndarray:
    """(n,) unit-peak white noise limited to [lo, hi] Hz; lo/hi may be per-sample arrays (moving band)."""
    if np.ndim(lo) == 0:
        spec = np.fft.rfft(rng.standard_normal(n))
        f = np.fft.rfftfreq(n, 1 / SR)
        spec[(f < lo) | (f > hi)] = 0
        x = np.fft.irfft(spec, n)
    else:   # moving band: overlap-add of Hann-windowed 2*hop segments, each filtered to its own band
        win = np.hanning(2 * hop + 1)[:-1]
        f = np.fft.rfftfreq(2 * hop, 1 / SR)
        x = np.zeros(n + 2 * hop)
        src = rng.standard_normal(n + 2 * hop)
        for s in range(0, n, hop):
            c = min(s + hop, n - 1)
            spec = np.fft.rfft(src[s:s + 2 * hop] * win)
            spec[(f < lo[c]) | (f > hi[c])] = 0
            x[s:s + 2 * hop] += np.fft.irfft(spec, 2 * hop)
        x = x[hop:hop + n]
    return x / (np.abs(x).max() + 1e-9)


def _harmonics(rng: np.random.Generator, t: np.ndarray, lo: float, hi: float, vibrato: float) -> np.ndarray:
    """Harmonic stack with every partial of f0 inside [lo, hi] Hz; f0 below the mel bin spacing there,
    so the band looks filled at mel resolution. ``vibrato``: relative depth of a 6 Hz pitch wobble."""
    f0 = 0.9 * (np.interp(lo, _MEL_EDGES[:-1], np.diff(_MEL_EDGES)))
    phase = 2 * np.pi * f0 * (t + vibrato / (2 * np.pi * 6) * (1 - np.cos(2 * np.pi * 6 * t)))
    ks = np.arange(int(np.ceil(lo / f0)), int(hi / f0) + 1)
    offs = rng.uniform(0, 2 * np.pi, len(ks))
    return sum(np.sin(k * phase + o) for k, o in zip(ks, offs))


def _event_sound(rng: np.random.Generator, m: Motif, pitch: float) -> np.ndarray:
    """One event's sound, (L,) float, starting at its onset (2 ms attack, hold, exponential release)."""
    n = int(round((m.hold + 4 * m.decay) * SR))
    t = np.arange(n) / SR
    env = np.minimum(t / 0.002, 1.0) * np.exp(-np.maximum(t - m.hold, 0) / m.decay)
    if m.am:
        env = env * (0.55 + 0.45 * np.cos(2 * np.pi * m.am * t))
    if m.sound == "noise":          # band-limited noise burst
        x = _bandnoise(rng, n, *_band_hz(*m.band, pitch))
    elif m.sound == "harmonic":     # dense harmonic stack (bell, whistle with vibrato, buzzer)
        x = _harmonics(rng, t, *_band_hz(*m.band, pitch), vibrato=0.01 if m.name == "whistle" else 0.0)
    elif m.sound == "sweep":        # a SWEEP_WIDTH-bin noise band whose lower edge rises band[0] -> band[1]
        lo_bin = m.band[0] + (m.band[1] - m.band[0]) * np.minimum(t / m.hold, 1.0)
        lo, hi = zip(*(_band_hz(b, b + SWEEP_WIDTH - 1, pitch) for b in lo_bin[::64]))
        idx = np.minimum(np.arange(n) // 64, len(lo) - 1)
        x = _bandnoise(rng, n, np.asarray(lo)[idx], np.asarray(hi)[idx])
    else:
        raise ValueError(f"unknown sound kind {m.sound!r} in motif {m.name!r}")
    x = np.asarray(x, dtype=np.float64)
    return x / (np.abs(x).max() + 1e-9) * env


def synth_audio(rng: np.random.Generator, m: Motif, events: list[float], duration: float) -> np.ndarray:
    """(round(duration * SR),) float32 waveform: class sound at each event + faint noise, peak 0.5-0.9."""
    n = int(round(duration * SR))
    wav = np.zeros(n)
    pitch = rng.uniform(0.95, 1.05)               # per-clip variation inside the class band
    for te in events:
        s = int(round(te * SR))
        x = _event_sound(rng, m, pitch) * rng.uniform(0.7, 1.0)
        wav[s:s + len(x)] += x[:n - s]
    wav = wav / (np.abs(wav).max() + 1e-9) * rng.uniform(0.5, 0.9)
    wav += 5e-4 * rng.standard_normal(n)           # faint background noise (about -66 dB)
    return wav.astype(np.float32)


def _shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, r: float, gap: float = 0.0) -> np.ndarray:
    ax, ay = np.abs(dx), np.abs(dy)
    if shape == "circle":
        return dx ** 2 + dy ** 2 <= r ** 2
    if shape == "square":
        return np.maximum(ax, ay) <= 0.85 * r
    if shape == "ring":
        d2 = dx ** 2 + dy ** 2
        return (d2 <= r ** 2) & (d2 >= (0.55 * r) ** 2)
    if shape == "triangle":
        return (dy <= 0.8 * r) & (dy >= -r) & (ax <= 0.6 * (dy + r))
    if shape == "bars":
        w = 0.3 * r
        return (ay <= r) & (np.abs(ax - gap / 2 - w / 2) <= w / 2)
    if shape == "diamond":
        return ax + ay <= r
    if shape == "cross":
        return ((ax <= r / 3) & (ay <= r)) | ((ay <= r / 3) & (ax <= r))
    if shape == "dot":
        return dx ** 2 + dy ** 2 <= (0.6 * r) ** 2
    raise ValueError(f"unknown shape {shape!r}")


def _hop_height(t: float, events: list[float], duration: float) -> float:
    """0 at every event (contact), parabolic arcs in between (1 at the apex between distant events)."""
    knots = [-(events[0] if events else duration)] + list(events) + [2 * duration]
    for a, b in zip(knots[:-1], knots[1:]):
        if a <= t <= b:
            return 4 * (t - a) * (b - t) / (b - a) ** 2 * min(1.0, (b - a) / 0.8)
    return 0.0


def render_frames(rng: np.random.Generator, m: Motif, events: list[float], duration: float,
                  fps: float, size: int) -> np.ndarray:
    """(round(duration * fps), size, size, 3) uint8: the class object on a dim tinted background."""
    n = int(round(duration * fps))
    r = size * 0.17 * rng.uniform(0.85, 1.15)
    cx0, cy0 = rng.uniform(0.3, 0.7) * size, rng.uniform(0.35, 0.65) * size
    direction = rng.choice([-1.0, 1.0])
    bg = rng.uniform(8, 24, size=3).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    color = np.asarray(m.color, np.float32)
    frames = np.empty((n, size, size, 3), np.uint8)
    ts = np.arange(n) / fps
    env = _envelope(ts, events, FLASH_DECAY)
    for k, t in enumerate(ts):
        cx, cy, rad, gap = cx0, cy0, r, 0.0
        h = _hop_height(t, events, duration)
        if m.motion == "bounce":                       # floor contact at each event
            cy = size * 0.82 - r - h * size * 0.5
        elif m.motion == "hop":
            cy = size * 0.8 - r - h * size * 0.25
        elif m.motion == "pulse":
            rad = r * (1 + 0.5 * env[k])
        elif m.motion == "slide":
            cx = size * (0.5 + direction * (t / duration - 0.5) * 0.6)
        elif m.motion == "clap":                       # the bars meet at each event
            gap = h * size * 0.4
        elif m.motion == "rise":
            cy = cy0 + size * 0.15 * (1 - 2 * t / duration) * direction
        elif m.motion == "shake":
            cx = cx0 + 0.08 * size * env[k] * np.sin(2 * np.pi * 12 * t)
        frame = np.broadcast_to(bg, (size, size, 3)).copy()
        mask = _shape_mask(m.shape, xx - cx, yy - cy, rad, gap)
        lit = DIM + (1 - DIM) * env[k]
        frame[mask] = np.minimum(color * lit + 60 * env[k], 255)
        frames[k] = frame
    return frames


def _make_clip(job: tuple) -> dict:
    out, cls_idx, clip_idx, clip_id, args = job
    m = MOTIFS[cls_idx]
    rng = np.random.default_rng([args["seed"], cls_idx, clip_idx])
    events = event_times(rng, m, args["duration"], args["fps"])
    frames = render_frames(rng, m, events, args["duration"], args["fps"], args["size"])
    wav = synth_audio(rng, m, events, args["duration"])
    write_mp4(Path(out) / "videos" / m.name / f"{clip_id}.mp4", frames, args["fps"], wav, SR)
    return {"id": f"{m.name}/{clip_id}", "events": [round(e, 6) for e in events]}


def make_toy_dataset(out: str | Path, n_classes: int = 8, clips_per_class: int = 40, valid_per_class: int = 8,
                     duration: float = 2.0, fps: float = 25.0, size: int = 128, seed: int = 0,
                     workers: int = 1) -> dict:
    """Write the toy dataset under ``out`` and return its metadata (also saved as ``meta.json``)."""
    if not 1 <= n_classes <= len(MOTIFS):
        raise ValueError(f"--classes must be in 1..{len(MOTIFS)}, got {n_classes}")
    if not 0 <= valid_per_class < clips_per_class:
        raise ValueError(f"--valid-per-class must be in 0..clips_per_class-1, got {valid_per_class}")
    if duration < 1.0:
        raise ValueError(f"--duration must be >= 1 s, got {duration}")
    if fps <= 0:
        raise ValueError(f"--fps must be > 0, got {fps}")
    if size % 2 or size < 16:
        raise ValueError(f"--size must be even and >= 16, got {size}")
    out = Path(out)
    args = {"seed": seed, "duration": duration, "fps": fps, "size": size}
    jobs = [(str(out), c, i, f"video_{c * clips_per_class + i:05d}", args)
            for c in range(n_classes) for i in range(clips_per_class)]
    if workers > 1:
        with get_context("fork").Pool(workers) as pool:
            clips = pool.map(_make_clip, jobs, chunksize=4)
    else:
        clips = [_make_clip(j) for j in jobs]
    n_train = clips_per_class - valid_per_class
    train = [c["id"] for j, c in zip(jobs, clips) if j[2] < n_train]
    valid = [c["id"] for j, c in zip(jobs, clips) if j[2] >= n_train]
    (out / "toy_train.txt").write_text("\n".join(train) + "\n")
    (out / "toy_valid.txt").write_text("\n".join(valid) + ("\n" if valid else ""))
    meta = {"classes": [m.name for m in MOTIFS[:n_classes]], "settings": {**args, "sr": SR},
            "motifs": [asdict(m) for m in MOTIFS[:n_classes]], "events": {c["id"]: c["events"] for c in clips}}
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    stale = [p for p in (out / "videos").rglob("*.mp4")
             if f"{p.parent.name}/{p.stem}" not in meta["events"]]
    if stale:
        log.warning("%d older .mp4 files under %s are not part of this dataset (e.g. %s); remove them "
                    "before extracting features", len(stale), out / "videos", stale[0])
    return meta


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="data/toy", help="output root (default: data/toy)")
    p.add_argument("--classes", type=int, default=8, help="number of classes, 1-8 (default: 8)")
    p.add_argument("--clips-per-class", type=int, default=40, help="clips per class (default: 40)")
    p.add_argument("--valid-per-class", type=int, default=8, help="of those, validation clips (default: 8)")
    p.add_argument("--duration", type=float, default=2.0, help="clip duration in seconds (default: 2)")
    p.add_argument("--fps", type=float, default=25.0, help="video frame rate (default: 25)")
    p.add_argument("--size", type=int, default=128, help="frame height = width in pixels (default: 128)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="parallel processes")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    t0 = time.time()
    try:
        meta = make_toy_dataset(a.out, a.classes, a.clips_per_class, a.valid_per_class, a.duration, a.fps,
                                a.size, a.seed, a.workers)
    except ValueError as err:
        p.error(str(err))
    n = len(meta["events"])
    print(f"wrote {n} clips ({len(meta['classes'])} classes) to {Path(a.out) / 'videos'} "
          f"in {time.time() - t0:.1f} s; splits {Path(a.out) / 'toy_train.txt'}, {Path(a.out) / 'toy_valid.txt'}")


if __name__ == "__main__":
    main()

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

import numpy as np

from feature_extraction.media import write_mp4

SR = 22050
log = logging.getLogger("make_toy_dataset")


@dataclass(frozen=True)
class Motif:
    """One class: how it looks (shape, RGB colour, motion) and how it sounds (kind, frequencies, timing)."""

    name: str
    shape: str          # circle | square | ring | triangle | bars | diamond | cross | dot
    color: tuple        # RGB 0-255 when lit
    motion: str         # bounce | still | pulse | slide | clap | rise | shake | hop
    sound: str          # tone | noise | sustain | sweep | square | chirp
    freqs: tuple        # sound-specific frequencies in Hz (see _event_sound)
    length: float       # seconds the sound lasts (decay constant for percussive sounds)
    double: bool = False  # events come in pairs 0.12 s apart (rhythm)


MOTIFS = (   # pitch bands chosen to overlap little on the mel scale (125-7600 Hz)
    Motif("ball", "circle", (230, 60, 50), "bounce", "tone", (160.0, 320.0, 480.0), 0.08),
    Motif("bell", "square", (240, 200, 40), "still", "tone", (2000.0, 5520.0), 0.30),
    Motif("drum", "ring", (50, 90, 230), "pulse", "noise", (450.0, 900.0), 0.06),
    Motif("whistle", "triangle", (60, 200, 80), "slide", "sustain", (2640.0,), 0.25),
    Motif("clap", "bars", (235, 235, 235), "clap", "noise", (5000.0, 7500.0), 0.03),
    Motif("siren", "diamond", (220, 60, 220), "rise", "sweep", (1000.0, 1700.0), 0.30),
    Motif("buzzer", "cross", (40, 210, 220), "shake", "square", (330.0,), 0.20),
    Motif("chirp", "dot", (250, 140, 30), "hop", "chirp", (3400.0, 300.0, 40.0), 0.06, double=True),
)
FLASH_DECAY = 0.12   # s, visual brightness decay after an event (several frames at 21.5 fps)
DIM = 0.30           # brightness of the object between events


def event_times(rng: np.random.Generator, motif: Motif, duration: float, fps: float) -> list[float]:
    """Seeded event onsets (s) on the video frame grid: 1..~1.5/s events, >= 0.35 s apart."""
    n_max = max(1, int(duration * 1.5))
    n = int(rng.integers(1, n_max + 1))
    lo, hi = 0.1, duration - 0.35 - (0.12 if motif.double else 0.0)
    grid = np.arange(int(np.ceil(lo * fps)), int(np.floor(hi * fps)) + 1)
    times: list[int] = []
    for k in rng.permutation(grid):
        if all(abs(int(k) - t) >= 0.35 * fps for t in times):
            times.append(int(k))
        if len(times) == n:
            break
    frames = sorted(times)
    if motif.double:
        frames = sorted(frames + [f + int(round(0.12 * fps)) for f in frames])
    return [f / fps for f in frames]


def _envelope(t: np.ndarray, events: list[float], decay: float) -> np.ndarray:
    """Sum of exp(-(t - te)/decay) for t >= te, clipped to 1."""
    env = np.zeros_like(t)
    for te in events:
        m = t >= te - 1e-9
        env[m] += np.exp(-(t[m] - te) / decay)
    return np.minimum(env, 1.0)


def _bandnoise(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    spec[(f < lo) | (f > hi)] = 0
    x = np.fft.irfft(spec, n)
    return x / (np.abs(x).max() + 1e-9)


def _event_sound(rng: np.random.Generator, m: Motif, pitch: float) -> np.ndarray:
    """One event's sound, (L,) float, starting at its onset (2 ms attack)."""
    n = int(round((m.length * 5 if m.sound in ("tone", "noise", "chirp") else m.length + 0.04) * SR))
    t = np.arange(n) / SR
    attack = np.minimum(t / 0.002, 1.0)
    if m.sound == "tone":          # damped partials: thud (harmonic, low) or bell (inharmonic, high)
        x = sum(np.sin(2 * np.pi * f * pitch * t) / (i + 1) for i, f in enumerate(m.freqs))
        env = np.exp(-t / m.length)
    elif m.sound == "noise":       # band-limited noise burst: drum (low band) or clap (high band)
        x, env = _bandnoise(rng, n, m.freqs[0] * pitch, m.freqs[1] * pitch), np.exp(-t / m.length)
    elif m.sound == "sustain":     # steady whistle with vibrato
        x = np.sin(2 * np.pi * m.freqs[0] * pitch * t + 3 * np.sin(2 * np.pi * 6 * t))
        env = np.clip((m.length + 0.04 - t) / 0.04, 0, 1)
    elif m.sound == "sweep":       # rising siren
        f = m.freqs[0] * pitch + (m.freqs[1] - m.freqs[0]) * pitch * np.minimum(t / m.length, 1)
        x, env = np.sin(2 * np.pi * np.cumsum(f) / SR), np.clip((m.length + 0.04 - t) / 0.04, 0, 1)
    elif m.sound == "square":      # band-limited square wave: buzzy odd harmonics
        f0 = m.freqs[0] * pitch
        x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, int(7000 / f0) + 1, 2))
        env = np.clip((m.length + 0.04 - t) / 0.04, 0, 1) * np.exp(-t / (2 * m.length))
    elif m.sound == "chirp":       # FM chirp, high band
        fc, dev, rate = m.freqs
        x = np.sin(2 * np.pi * fc * pitch * t + (dev / rate) * np.sin(2 * np.pi * rate * t))
        env = np.exp(-t / m.length)
    else:
        raise ValueError(f"unknown sound kind {m.sound!r} in motif {m.name!r}")
    x = np.asarray(x, dtype=np.float64)
    return x / (np.abs(x).max() + 1e-9) * env * attack


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

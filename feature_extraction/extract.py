"""Extract audio, mel spectrograms and visual features from a folder of videos, in the reference layout.

For ``<videos>/<sub>/<id>.mp4`` it writes (``<dur>`` = duration formatted with ``%g``)::

    <out>/<sub>/audio_<dur>s_22050hz/<id>.wav                   mono 22050 Hz PCM16, round(dur * 22050) samples
    <out>/<sub>/melspec_<dur>s_22050hz/<id>_mel.npy             (80, mel_frames(dur)) float32 in [0, 1]
    <out>/<sub>/feature_<name>_dim<D>_21.5fps/<id>.pkl          pickled (round(21.5 * dur), D) float32

(``<sub>`` is the class folder for VAS-like data; a flat folder writes directly under ``<out>``.)

Recipe (RegNet / SpecVQGAN ``extract_audio_and_video.py`` + ``extract_mel_spectrogram.py``): the clip
is looped when shorter than the target duration and cut to it; the audio is down-mixed to mono and
resampled to 22050 Hz; the frames are resampled to 21.5 fps; mels come from ``specvqgan.audio``.

Bad inputs never crash a run: each video either yields all its files or is put in the failure list
with a reason (unreadable/corrupt file, no audio stream, no video stream, shorter than
``min_clip_duration``). Outputs are written atomically, so files of earlier runs are never lost,
and videos whose outputs all exist are skipped unless ``overwrite``.
"""
from __future__ import annotations

import logging
import os
import pickle
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from feature_extraction.media import MediaError, probe, read_audio, read_frames
from feature_extraction.toy_features import ColorGrid
from specvqgan.audio import SR, wav_to_mel
from specvqgan.shapes import FEAT_FPS, mel_frames

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov")
# Visual feature extractors by CLI name. ResNet-50 / BN-Inception (paper section 4) slot in here later.
FEATURES = {"color": ColorGrid}


@dataclass(frozen=True)
class ExtractConfig:
    """Settings of one extraction run.

    Args:
        duration: target clip length in seconds (clips are looped/cut to it).
        feature: visual feature name, a key of ``FEATURES``.
        min_clip_duration: shorter sources are reported, not looped (looping a tiny clip many
            times would fabricate a repetitive clip). The reference loops anything.
        overwrite: recompute videos whose outputs all exist.
    """

    duration: float = 2.0
    feature: str = "color"
    min_clip_duration: float = 1.0
    overwrite: bool = False

    def __post_init__(self):
        if self.feature not in FEATURES:
            raise ValueError(f"unknown feature {self.feature!r}; choose from {sorted(FEATURES)}")
        if self.duration <= 0.1:
            raise ValueError(f"duration must be > 0.1 s, got {self.duration}")

    @property
    def extractor(self):
        return FEATURES[self.feature]()

    def output_paths(self, out_dir: Path, stem: str) -> dict[str, Path]:
        """The files extracted from video ``stem`` into ``out_dir`` (keys: wav, mel, feature)."""
        d, ex = f"{self.duration:g}", self.extractor
        return {"wav": out_dir / f"audio_{d}s_{SR}hz" / f"{stem}.wav",
                "mel": out_dir / f"melspec_{d}s_{SR}hz" / f"{stem}_mel.npy",
                "feature": out_dir / f"feature_{ex.name}_dim{ex.dim}_{FEAT_FPS:g}fps" / f"{stem}.pkl"}


@dataclass(frozen=True)
class Result:
    """Outcome for one video: status is 'done', 'skipped' or 'failed' (``reason`` says why)."""

    video: str
    status: str
    reason: str = ""


def find_videos(root: str | Path) -> list[Path]:
    """All video files under ``root`` (recursively), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"video folder not found: {root}")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def extract_arrays(video: str | Path, cfg: ExtractConfig) -> dict[str, np.ndarray]:
    """Decode one video -> {'wav': (L,) int16, 'mel': (80, T) float32, 'feature': (N, D) float32}.

    Raises:
        MediaError: naming the file and the reason it cannot be used.
    """
    info = probe(video)
    if not info.has_audio:
        raise MediaError(f"{video}: no audio stream")
    if not info.has_video:
        raise MediaError(f"{video}: no video stream")
    if info.duration is not None and info.duration < cfg.min_clip_duration:
        raise MediaError(f"{video}: too short to loop ({info.duration:.2f} s < min_clip_duration "
                         f"{cfg.min_clip_duration:g} s)")
    ex = cfg.extractor
    wav = read_audio(video, cfg.duration, SR, loop=True)                       # (L,) float32
    frames = read_frames(video, cfg.duration, FEAT_FPS, ex.frame_size, loop=True)
    pcm = np.round(wav * 32768.0).clip(-32768, 32767).astype(np.int16)      # exact: wav came from s16
    return {"wav": pcm, "mel": wav_to_mel(wav, SR, n_frames=mel_frames(cfg.duration)),
            "feature": ex(frames)}


def extract_video(video: str | Path, out_dir: str | Path, cfg: ExtractConfig) -> Result:
    """Extract one video into ``out_dir``; never raises for a bad input (returns a 'failed' Result)."""
    video, out_dir = Path(video), Path(out_dir)
    paths = cfg.output_paths(out_dir, video.stem)
    if not cfg.overwrite and all(p.is_file() for p in paths.values()):
        return Result(str(video), "skipped")
    try:
        arrays = extract_arrays(video, cfg)
    except MediaError as err:
        return Result(str(video), "failed", str(err).removeprefix(f"{video}: "))
    except Exception as err:  # anything unexpected from a decoder: report, keep going
        log.debug("unexpected error on %s", video, exc_info=True)
        return Result(str(video), "failed", f"{type(err).__name__}: {err}")
    import soundfile as sf

    _atomic_write(paths["wav"], lambda p: sf.write(str(p), arrays["wav"], SR, subtype="PCM_16"))
    _atomic_write(paths["feature"], lambda p: p.write_bytes(pickle.dumps(arrays["feature"])))
    _atomic_write(paths["mel"], lambda p: np.save(p, arrays["mel"]))
    return Result(str(video), "done")


def _job(args: tuple) -> Result:
    return extract_video(*args)


def extract_folder(videos: str | Path, out: str | Path, cfg: ExtractConfig, workers: int = 1,
                   progress: bool = True) -> list[Result]:
    """Extract every video under ``videos`` into ``out`` (mirroring sub-folders). Returns one Result
    per video; failures are also written to ``<out>/failures_<dur>s.txt`` (removed when none)."""
    from tqdm import tqdm

    videos, out = Path(videos), Path(out)
    files = find_videos(videos)
    jobs = [(v, out / v.parent.relative_to(videos), cfg) for v in files]
    wav_to_mel(np.zeros(4 * 1024, np.float32), SR)   # load librosa's lazy modules once, before forking
    bar = tqdm(total=len(jobs), desc="extracting", unit="video", disable=not progress)
    results: list[Result] = []
    if workers > 1 and len(jobs) > 1:
        with get_context("fork").Pool(min(workers, len(jobs))) as pool:
            for r in pool.imap_unordered(_job, jobs, chunksize=2):
                results.append(r)
                bar.update()
    else:
        for j in jobs:
            results.append(_job(j))
            bar.update()
    bar.close()
    results.sort(key=lambda r: r.video)
    fail_file = out / f"failures_{cfg.duration:g}s.txt"
    failed = [r for r in results if r.status == "failed"]
    if failed:
        out.mkdir(parents=True, exist_ok=True)
        fail_file.write_text("".join(f"{r.video}\t{r.reason}\n" for r in failed))
    elif fail_file.exists():
        fail_file.unlink()
    return results

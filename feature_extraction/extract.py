"""Extract audio, mel spectrograms and visual features from a folder of videos, in the reference layout.

For ``<videos>/<sub>/<id>.mp4`` it writes (``<dur>`` = duration formatted with ``%g``)::

    <out>/<sub>/audio_<dur>s_22050hz/<id>.wav                   mono 22050 Hz PCM16, round(dur * 22050) samples
    <out>/<sub>/melspec_<dur>s_22050hz/<id>_mel.npy             (80, mel_frames(dur)) float32 in [0, 1]
    <out>/<sub>/feature_<name>_dim<D>_21.5fps/<id>.pkl          pickled (round(21.5 * dur), D) float32

(one feature folder per output of the extractor: ``bninception`` writes ``feature_rgb_bninception_dim1024_*``
and ``feature_flow_bninception_dim1024_*``; ``resnet50`` writes ``feature_resnet50_dim2048_*``).

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

import functools
import logging
import os
import pickle
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from feature_extraction.media import MediaError, MediaInfo, iter_frames, probe, read_audio
from feature_extraction.toy_features import ColorGrid
from feature_extraction.visual import PRETRAINED, build_pretrained
from specvqgan.audio import SR, wav_to_mel
from specvqgan.checks import NonFiniteError, require_finite
from specvqgan.distributed import shard_items
from specvqgan.files import atomic_write
from specvqgan.provenance import claim_folder, path_sha256, record_folder
from specvqgan.shapes import FEAT_FPS, mel_frames
from specvqgan.video_files import VIDEO_EXTENSIONS, find_videos, list_rows

log = logging.getLogger(__name__)

# Visual feature extractors by CLI name: the toy colour grid and the paper's pretrained networks
# (section 4; feature_extraction.visual): resnet50, bninception (RGB + flow), rgb_/flow_bninception.
FEATURES = {"color": ColorGrid, **{name: cls for name, (cls, _) in PRETRAINED.items()}}


@dataclass(frozen=True)
class ExtractConfig:
    """Settings of one extraction run.

    Args:
        duration: target clip length in seconds (clips are looped/cut to it).
        feature: visual feature name, a key of ``FEATURES``.
        min_clip_duration: shorter sources are reported, not looped (looping a tiny clip many
            times would fabricate a repetitive clip). The reference loops anything.
        overwrite: recompute videos whose outputs all exist.
        weights: weight file of a pretrained feature (torchvision ``resnet50`` / ImageNet BN-Inception),
            read by path, never downloaded.
        random_weights: allow a pretrained feature without ``weights`` (random, seeded: tests/benchmarks).
        batch_size: frames per forward pass of a pretrained network.
        flow_method: optical flow for BN-Inception flow (:data:`feature_extraction.flow.METHODS`; "tvl1": reference).
        flow_weights: weights of the BN-Inception flow stream (default: ``weights``).
        precision: of the pretrained networks, "fp32" (the reference) or "bf16" (~2x fewer CPU-s, features
            within ~0.3 % of fp32's; recorded in the provenance).
        device: torch device of the pretrained networks.
        allow_truncated: pad a truncated stream (more than 2 frames / 0.1 s of audio missing) with a
            warning instead of failing the video.
    """

    duration: float = 2.0
    feature: str = "color"
    min_clip_duration: float = 1.0
    overwrite: bool = False
    weights: str | None = None
    random_weights: bool = False
    batch_size: int = 32
    flow_method: str = "tvl1"
    flow_weights: str | None = None
    device: str = "cpu"
    precision: str = "fp32"
    allow_truncated: bool = False

    def __post_init__(self):
        if self.feature not in FEATURES:
            raise ValueError(f"unknown feature {self.feature!r}; choose from {sorted(FEATURES)}")
        if self.duration <= 0.1:
            raise ValueError(f"duration must be > 0.1 s, got {self.duration}")
        if self.feature in PRETRAINED:
            if self.weights is None and not self.random_weights:
                raise ValueError(f"feature {self.feature!r} needs weights=<path to the pretrained weight "
                                 f"file> (or random_weights=True for tests)")
            _ = self.extractor                  # validates the options (files exist, flow method, ...)
        elif self.weights is not None or self.flow_weights is not None:
            raise ValueError(f"feature {self.feature!r} takes no weights")
        elif self.precision != "fp32":
            raise ValueError(f"feature {self.feature!r} has no network: precision {self.precision!r} does not apply")

    @property
    def extractor(self):
        """The extractor (one per process and configuration; networks load on first use)."""
        return _build_extractor(self.feature, self.weights, self.batch_size, self.flow_method,
                                self.flow_weights, self.device, self.precision)

    def produced_by(self, key: str) -> dict:
        """What the files of output ``key`` (``wav``, ``mel``, ``feature_<name>``) depend on: recorded in
        their folder (:mod:`specvqgan.provenance`) so that skipping existing files never mixes settings."""
        info = {"output": key, "duration": self.duration, "sample_rate": SR, "loop": "ffmpeg -stream_loop",
                "allow_truncated": self.allow_truncated}
        if key.startswith("feature_"):
            info.update(feature=self.feature, fps=FEAT_FPS, weights_sha256=path_sha256(self.weights),
                        random_weights=self.random_weights and self.weights is None)
            if self.precision != "fp32":      # absent for fp32: folders written before the option still match
                info.update(precision=self.precision)
            if "flow" in key:
                info.update(flow_method=self.flow_method, flow_weights_sha256=path_sha256(self.flow_weights))
        return info

    def output_paths(self, out_dir: Path, stem: str) -> dict[str, Path]:
        """The files extracted from video ``stem`` into ``out_dir``: keys ``wav``, ``mel`` and
        ``feature_<name>`` for each output of the extractor (e.g. ``feature_color``)."""
        d = f"{self.duration:g}"
        paths = {"wav": out_dir / f"audio_{d}s_{SR}hz" / f"{stem}.wav",
                 "mel": out_dir / f"melspec_{d}s_{SR}hz" / f"{stem}_mel.npy"}
        for name, dim in feature_outputs(self.extractor):
            paths[f"feature_{name}"] = out_dir / f"feature_{name}_dim{dim}_{FEAT_FPS:g}fps" / f"{stem}.pkl"
        return paths


@functools.lru_cache(maxsize=8)
def _build_extractor(feature, weights, batch_size, flow_method, flow_weights, device, precision="fp32"):
    if feature in PRETRAINED:
        return build_pretrained(feature, weights, batch_size, device, flow_method, flow_weights, precision)
    return FEATURES[feature]()


def feature_outputs(ex) -> tuple[tuple[str, int], ...]:
    """((name, dim), ...) written by extractor ``ex``: its ``outputs``, or (``name``, ``dim``)."""
    return tuple(getattr(ex, "outputs", None) or ((ex.name, ex.dim),))


@dataclass(frozen=True)
class Result:
    """Outcome for one video: status is 'done', 'skipped' or 'failed' (``reason`` says why)."""

    video: str
    status: str
    reason: str = ""


def extract_visual(video: str | Path, cfg: ExtractConfig, info: MediaInfo | None = None,
                   rows=None) -> dict[str, np.ndarray]:
    """Visual features of one video, looped/cut to ``cfg.duration`` at 21.5 fps; the audio stream is
    not read (a video without sound works) -> {'feature_<name>': (round(21.5 * duration), D) float32}.

    ``rows``: compute only these rows (indices into the round(21.5 * duration) rows; sorted and deduplicated
    here) -> {'feature_<name>': (len(unique rows), D)}, equal to the full extraction's rows: only the frames
    behind them are decoded (:func:`frames_for_rows`) and embedded.

    Raises:
        MediaError: naming the file and the reason it cannot be used; NonFiniteError: NaN / Inf features.
    """
    info = probe(video) if info is None else info
    if not info.has_video:
        raise MediaError(f"{video}: no video stream")
    if info.duration is not None and info.duration < cfg.min_clip_duration:
        raise MediaError(f"{video}: too short to loop ({info.duration:.2f} s < min_clip_duration "
                         f"{cfg.min_clip_duration:g} s)")
    ex = cfg.extractor
    size = ex.frame_size_for(info.width, info.height) if hasattr(ex, "frame_size_for") else ex.frame_size
    kwargs = dict(info=info, max_aspect=getattr(ex, "max_aspect", None), allow_truncated=cfg.allow_truncated)
    if rows is None:
        chunks = iter_frames(video, cfg.duration, FEAT_FPS, size, loop=True,
                             chunk=max(1, 64 // cfg.batch_size) * cfg.batch_size, **kwargs)
        if hasattr(ex, "stream"):
            feats = ex.stream(chunks)
        else:
            parts = [ex(c) for c in chunks]
            feats = ({k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if isinstance(parts[0], dict)
                     else np.concatenate(parts))
    else:
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        ids = frames_for_rows(ex, rows)
        n = int(round(cfg.duration * FEAT_FPS))
        if len(rows) == 0 or rows[0] < 0 or rows[-1] >= n:
            raise ValueError(f"rows must be in [0, {n}) for {cfg.duration:g} s, got {rows}")
        # few frames: ffmpeg drops the others before scaling; most of them: a plain read, keeping ``ids``.
        # Either way the read stops at the last frame needed: frames before it do not depend on where the
        # read ends, and a source longer than that is neither looped nor first counted (a second decode)
        few = 2 * len(ids) < n
        upto = min(cfg.duration, (int(ids[-1]) + 1) / FEAT_FPS)
        frames = _keep(iter_frames(video, upto, FEAT_FPS, size, loop=True, indices=ids if few else None,
                                   **kwargs), None if few else ids)
        feats = ex.at_rows(frames, ids, rows) if hasattr(ex, "at_rows") else ex(frames[np.searchsorted(ids, rows)])
    if not isinstance(feats, dict):
        feats = {feature_outputs(ex)[0][0]: feats}
    return {f"feature_{name}": require_finite(f, str(video), f"{name} feature values") for name, f in feats.items()}


def _keep(chunks, ids) -> np.ndarray:
    """The frames ``ids`` (sorted) of consecutive frame chunks (all of them when ``ids`` is None)."""
    out, start = [], 0
    for c in chunks:
        out.append(c if ids is None else c[ids[(ids >= start) & (ids < start + len(c))] - start])
        start += len(c)
    return np.concatenate(out)


def frames_for_rows(ex, rows: np.ndarray) -> np.ndarray:
    """Sorted frame indices extractor ``ex`` reads to compute feature rows ``rows`` (the rows themselves,
    plus the previous frames for optical flow)."""
    return ex.frames_for_rows(rows) if hasattr(ex, "frames_for_rows") else np.unique(rows)


def extract_arrays(video: str | Path, cfg: ExtractConfig) -> dict[str, np.ndarray]:
    """Decode one video -> {'wav': (L,) int16, 'mel': (80, T) float32, 'feature_<name>': (N, D) float32}.

    Raises:
        MediaError: naming the file and the reason it cannot be used.
    """
    info = probe(video)
    if not info.has_audio:
        raise MediaError(f"{video}: no audio stream")
    feats = extract_visual(video, cfg, info)
    wav = read_audio(video, cfg.duration, SR, loop=True, info=info,
                     allow_truncated=cfg.allow_truncated)                  # (L,) float32
    pcm = np.round(wav * 32768.0).clip(-32768, 32767).astype(np.int16)      # exact: wav came from s16
    return {"wav": pcm, "mel": wav_to_mel(wav, SR, n_frames=mel_frames(cfg.duration)), **feats}


def extract_video(video: str | Path, out_dir: str | Path, cfg: ExtractConfig) -> Result:
    """Extract one video into ``out_dir``; never raises for a bad input (returns a 'failed' Result)."""
    video, out_dir = Path(video), Path(out_dir)
    paths = cfg.output_paths(out_dir, video.stem)
    if not cfg.overwrite and all(p.is_file() for p in paths.values()):
        return Result(str(video), "skipped")
    try:
        arrays = extract_arrays(video, cfg)
    except (MediaError, NonFiniteError) as err:
        return Result(str(video), "failed", str(err).removeprefix(f"{video}: "))
    except Exception as err:  # anything unexpected from a decoder: report, keep going
        log.debug("unexpected error on %s", video, exc_info=True)
        return Result(str(video), "failed", f"{type(err).__name__}: {err}")
    import soundfile as sf

    atomic_write(paths["wav"], lambda p: sf.write(str(p), arrays["wav"], SR, subtype="PCM_16"))
    for key in paths:
        if key.startswith("feature_"):
            atomic_write(paths[key], lambda p, a=arrays[key]: p.write_bytes(pickle.dumps(a)))
    atomic_write(paths["mel"], lambda p: np.save(p, arrays["mel"]))
    return Result(str(video), "done")


def _job(args: tuple) -> Result:
    return extract_video(*args)


def _init_worker(threads: int) -> None:
    """Worker processes split the cores: torch (and OpenCV) use ``threads`` threads each."""
    import torch

    torch.set_num_threads(threads)
    try:
        import cv2

        cv2.setNumThreads(threads)
    except ImportError:
        pass


def resolve_video_list(videos: str | Path, video_list: str | Path) -> tuple[list[Path], list[str]]:
    """Rows of ``video_list`` (paths relative to ``videos``, with or without extension, e.g.
    ``dog/video_02754`` as in the split lists; blank lines and ``#`` comments ignored) -> (found files,
    rows with no video)."""
    videos, video_list = Path(videos), Path(video_list)
    if not video_list.is_file():
        raise FileNotFoundError(f"video list not found: {video_list}")
    found, missing = [], []
    for _, row in list_rows(video_list):
        path = videos / row
        if path.suffix.lower() in VIDEO_EXTENSIONS and path.is_file():
            found.append(path)
            continue
        cands = [path.with_name(path.name + ext) for ext in VIDEO_EXTENSIONS]
        hit = next((c for c in cands if c.is_file()), None)
        (found.append(hit) if hit is not None else missing.append(row))
    return sorted(set(found)), missing


def failures_file(out: str | Path, duration: float, shard: tuple[int, int] = (0, 1)) -> Path:
    """``<out>/failures_<dur>s.txt``; one file per shard (``..._shard<i>of<n>.txt``) when sharded."""
    index, count = shard
    return Path(out) / (f"failures_{duration:g}s.txt" if count == 1 else f"failures_{duration:g}s_shard{index}of{count}.txt")


def extract_folder(videos: str | Path, out: str | Path, cfg: ExtractConfig, workers: int = 1,
                   progress: bool = True, video_list: str | Path | None = None,
                   shard: tuple[int, int] = (0, 1)) -> list[Result]:
    """Extract every video under ``videos`` (or only those named in ``video_list``, see
    :func:`resolve_video_list`; unlisted rows without a file are failures) into ``out``, mirroring
    sub-folders. ``shard=(i, n)`` keeps every n-th video from the i-th of the sorted list, so n machines
    (or torchrun / SLURM ranks) split a folder. Returns one Result per video; failures are also written
    to :func:`failures_file` (removed when none).

    Raises:
        specvqgan.provenance.ProvenanceError: an output folder holds files made with other settings or
            weights (or with no record of them) and ``cfg.overwrite`` is off.
    """
    from tqdm import tqdm

    videos, out = Path(videos), Path(out)
    if video_list is None:
        files, missing = find_videos(videos), []
    else:
        files, missing = resolve_video_list(videos, video_list)
    files, missing = shard_items(files, *shard), shard_items(missing, *shard)
    jobs = [(v, out / v.parent.relative_to(videos), cfg) for v in files]
    folders = {p.parent: cfg.produced_by(key) for _, d, _ in jobs for key, p in cfg.output_paths(d, "x").items()}
    for folder, produced_by in folders.items():           # before any work: refuse mixing settings
        claim_folder(folder, produced_by, cfg.overwrite)
    bar = tqdm(total=len(jobs), desc="extracting", unit="video", disable=not progress)
    results = [Result(str(videos / row), "failed", f"file not found (listed in {video_list})")
               for row in missing]
    if workers > 1 and len(jobs) > 1:
        n_proc = min(workers, len(jobs))
        # Fresh 'spawn' workers: torch / OpenCV / OpenMP thread pools are not fork-safe once the parent
        # has used them (a forked worker deadlocks; seen in a long pytest session and in notebooks).
        ctx = get_context("spawn")
        with ctx.Pool(n_proc, _init_worker, (max(1, (os.cpu_count() or 1) // n_proc),)) as pool:
            for r in pool.imap_unordered(_job, jobs, chunksize=2):
                results.append(r)
                bar.update()
    else:
        for j in jobs:
            results.append(_job(j))
            bar.update()
    bar.close()
    for folder, produced_by in folders.items():
        record_folder(folder, produced_by)
    results.sort(key=lambda r: r.video)
    fail_file = failures_file(out, cfg.duration, shard)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        out.mkdir(parents=True, exist_ok=True)
        fail_file.write_text("".join(f"{r.video}\t{r.reason}\n" for r in failed))
    elif fail_file.exists():
        fail_file.unlink()
    return results

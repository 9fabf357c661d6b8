"""Folders that av-benchmark (github.com/hkchengrex/av-benchmark: FD / KL with PaSST and PANNs, IS, ImageBind
score, DeSync) reads as they are: the same stem in every folder pairs a video, its real sound and a sample.

    <dir>/gt_audio/<name>.<fmt>              the input's own soundtrack (when it has one), as long as the sample
    <dir>/pred_audio/sample_<k>/<name>.<fmt> sample k, 22050 Hz mono (wav or flac)
    <dir>/video/sample_<k>/<name>.mp4        the input video with sample k as its sound

Then, on a GPU machine with av-benchmark installed (docs/own_data.md)::

    python extract_video.py --gt_cache <dir>/cache/video --video_path <dir>/video/sample_0 --audio_length <s>
    python evaluate.py --gt_audio <dir>/gt_audio --gt_cache <dir>/cache/video \\
        --pred_audio <dir>/pred_audio/sample_0 --pred_cache <dir>/cache/pred_0 --audio_length <s>
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import numpy as np

from specvqgan.audio import SR, save_audio
from specvqgan.files import atomic_write, link_atomic

log = logging.getLogger(__name__)

FORMATS = ("wav", "flac")


def bench_paths(bench_dir: str | Path, name: str, k: int, fmt: str = "flac") -> dict:
    """{'gt': gt_audio/<name>.<fmt>, 'pred': pred_audio/sample_<k>/<name>.<fmt>, 'video': video/sample_<k>/<name>.mp4}."""
    if fmt not in FORMATS:
        raise ValueError(f"audio format must be one of {FORMATS}, got {fmt!r}")
    d = Path(bench_dir)
    return {"gt": d / "gt_audio" / f"{name}.{fmt}", "pred": d / "pred_audio" / f"sample_{k}" / f"{name}.{fmt}",
            "video": d / "video" / f"sample_{k}" / f"{name}.mp4"}


def write_sample(bench_dir: str | Path, name: str, k: int, wav: np.ndarray, video: Optional[Path] = None, *,
                 fmt: str = "flac", muxed: Optional[Path] = None, loop_video: bool = False) -> dict:
    """Write sample ``k`` of input ``name``: its waveform ((L,) float32 at 22050 Hz), the video with it as sound
    (``muxed``: an mp4 already made, linked; else muxed from ``video``) and, once per name, the video's own
    soundtrack cut to the same length (skipped for a video without sound). Returns the paths written."""
    from feature_extraction.media import MediaError, probe, read_audio
    from specvqgan.outputs import mux_audio

    paths, written = bench_paths(bench_dir, name, k, fmt), {}
    seconds = len(wav) / SR
    atomic_write(paths["pred"], lambda p: save_audio(p, wav, SR))
    written["pred"] = paths["pred"]
    if video is None:
        return written
    if muxed is not None and muxed.is_file():
        link_atomic(muxed, paths["video"])
    else:
        atomic_write(paths["video"], lambda p: mux_audio(video, paths["pred"], p, seconds, loop_video))
    written["video"] = paths["video"]
    if not paths["gt"].is_file():
        try:
            if probe(video).has_audio:
                gt = read_audio(video, seconds, SR, loop=loop_video)
                atomic_write(paths["gt"], lambda p: save_audio(p, gt, SR))
                written["gt"] = paths["gt"]
        except MediaError as err:
            log.warning("%s: no ground-truth audio for av-benchmark (%s)", video, err)
    return written


def export_samples(samples_dir: str | Path, bench_dir: str | Path, *, videos_dir: Optional[str | Path] = None,
                   vocoder=None, fmt: str = "flac", progress: bool = False) -> int:
    """Turn ``scripts/sample_dataset.py`` output (``<samples_dir>/[<class>/]<id>_sample_<k>.npy`` mels in [0, 1])
    into av-benchmark folders: the mels vocoded (``vocoder``: a ``vocoder.inference`` vocoder, default
    Griffin-Lim), named ``<class>__<id>``; with ``videos_dir`` (``<videos_dir>/[<class>/]<id>.<ext>``, the
    dataset's videos) also the muxed videos and the real sound. Existing files are kept. Returns the count."""
    from tqdm import tqdm

    from specvqgan.video_files import VIDEO_EXTENSIONS
    from vocoder.inference import load_vocoder

    samples_dir = Path(samples_dir)
    mels = sorted(p for p in samples_dir.rglob("*_sample_*.npy") if not p.name.startswith("."))
    if not mels:
        raise FileNotFoundError(f"no *_sample_<k>.npy mels under {samples_dir}")
    vocoder = vocoder or load_vocoder(None)
    done = 0
    for mel_path in tqdm(mels, desc="av-benchmark export", disable=not progress):
        stem, _, k = mel_path.stem.rpartition("_sample_")
        rel = mel_path.parent.relative_to(samples_dir)
        name = "__".join([*rel.parts, stem])
        if bench_paths(bench_dir, name, int(k), fmt)["pred"].is_file():
            continue
        video = None
        if videos_dir is not None:
            cands = [Path(videos_dir) / rel / f"{stem}{ext}" for ext in VIDEO_EXTENSIONS]
            video = next((c for c in cands if c.is_file()), None)
            if video is None:
                log.warning("no video for %s under %s", mel_path, videos_dir)
        mel = np.load(mel_path).astype(np.float32)
        wav = np.asarray(vocoder.vocode(mel[None]), dtype=np.float32).reshape(-1)
        write_sample(bench_dir, name, int(k), wav, video, fmt=fmt)
        done += 1
    return done

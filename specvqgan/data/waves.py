"""Waveform-segment datasets for vocoder training (MelGAN, Kumar et al. 2019; paper section 3.3).

Items are fixed-length segments of the clips' wavs (``<wav_dir_path>/<id>.wav``, ``*`` = class): the
vocoder computes their mels on the fly with :class:`specvqgan.audio.TorchLogMel`, so the mel front-end
stays in one place. As in MelGAN's ``AudioDataset``: the wav is peak-normalised to 0.95, scaled by a
random gain in [0.3, 1] when ``augment``, and a random ``segment_length`` window is cut (zero-padded
when the clip is shorter).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from specvqgan.audio import SR, load_audio
from specvqgan.data.base import ClipDataset
from specvqgan.data.clips import ClassDirLabels, clip_path, split_clip
from specvqgan.data.transforms import crop_start

SEGMENT_LENGTH = 8192  # MelGAN training segments (32 mel frames of hop 256)


class WaveSegments(ClipDataset):
    """Waveform segments of the clips of a split (``<class>/<id>`` rows; targets as in VAS).

    Args:
        split: 'train', 'valid' or 'test'.
        wav_dir_path: folder of the ``.wav`` files; ``*`` is replaced by the clip's class.
        split_path: the split list (default ``./data/vas_<split>.txt``).
        segment_length: samples per item (8192); None keeps whole clips (same-length clips to batch them).
        sample_rate: the wavs are resampled to this rate when they differ (22050).
        random_crop: random segment offset (default: True for 'train', centered otherwise).
        augment: random gain in [0.3, 1] (default: True for 'train').
        peak_normalize: scale each clip to a peak of 0.95 before the gain (MelGAN; silence stays silent).
        for_which_class, classes, skip_missing: as in :class:`specvqgan.data.vas.VASSpecs`.
    Item: ``wav`` (segment_length,) float32, ``file_path_`` str, ``label`` str, ``target`` int.
    """

    default_split_path = "./data/vas_{split}.txt"
    suffix = ".wav"

    def __init__(self, split: str, wav_dir_path: str, split_path: str | None = None,
                 segment_length: int | None = SEGMENT_LENGTH, sample_rate: int = SR,
                 random_crop: bool | None = None, augment: bool | None = None, peak_normalize: bool = True,
                 for_which_class: str | Sequence[str] | None = None, classes: Sequence[str] | None = None,
                 skip_missing: bool = False) -> None:
        super().__init__()
        if not wav_dir_path:
            raise ValueError(f"{type(self).__name__}: `wav_dir_path` is required")
        self.wav_dir_path = str(wav_dir_path)
        self.segment_length = None if segment_length is None else int(segment_length)
        self.sample_rate = int(sample_rate)
        self.random_crop = split == "train" if random_crop is None else bool(random_crop)
        self.augment = split == "train" if augment is None else bool(augment)
        self.peak_normalize = bool(peak_normalize)
        self.classes = list(classes) if classes else None
        self._init_clips(split, split_path, for_which_class, skip_missing)

    def make_labels(self, clips):
        if any(split_clip(c)[0] is None for c in clips):  # e.g. VGGSound rows: no class folder
            return None
        return ClassDirLabels(clips, self.classes)

    def wav_path(self, clip: str) -> str:
        return clip_path(self.wav_dir_path, clip, self.suffix)

    def required_paths(self):
        return [self.wav_path]

    def describe(self) -> str:
        return f"split list {self.split_path} (wavs in {self.wav_dir_path})"

    def __getitem__(self, idx: int) -> dict:
        clip = self.dataset[idx]
        path = self.wav_path(clip)
        wav = load_audio(path, self.sample_rate)
        if self.peak_normalize:
            peak = float(np.abs(wav).max())
            if peak > 0:
                wav = 0.95 * wav / peak
        if self.augment:
            wav = wav * np.random.uniform(0.3, 1.0)
        if self.segment_length is not None:
            if len(wav) >= self.segment_length:
                start = crop_start(len(wav), self.segment_length, self.random_crop)
                wav = wav[start:start + self.segment_length]
            else:
                wav = np.pad(wav, (0, self.segment_length - len(wav)))
        item = {"wav": wav.astype(np.float32), "file_path_": path}
        return self.add_labels(item, clip)


class VASWave(WaveSegments):
    """VAS waveform segments (``wav_dir_path`` e.g. ``./data/vas/features/*/audio_10s_22050hz``)."""

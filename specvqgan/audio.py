"""The audio front-end: waveform <-> log-mel spectrogram. The single source of truth for every
audio constant in this codebase (paper section 3 / 6.1.1; DESIGN.md section 4).

Reference formula (``feature_extraction/extract_mel_spectrogram.py`` of the reference repo):

    S = |STFT(x)|            n_fft 1024, hop 256, periodic Hann window 1024, centered, reflect pad
    M = melbasis @ S         librosa Slaney mel filterbank: 22050 Hz, 80 bands, 125-7600 Hz, Slaney norm
    out = clip((20 * log10(max(M, 1e-5)) - 20 + 100) / 100, 0, 1)

so 0 is -80 dB (M = 1e-4) and 1 is +20 dB (M = 10). A 10 s clip (220500 samples) gives 862 STFT
frames, of which the reference keeps 860 (``MEL_FRAMES_10S``); datasets center-crop those to 848
(``MEL_CROP_10S``) and map them to [-1, 1] for the models. Vocoders take the [0, 1] scale.
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

SR = 22050
N_FFT = 1024
HOP = 256
WIN = 1024
N_MELS = 80
FMIN = 125
FMAX = 7600
AMIN = 1e-5          # floor on the mel magnitude before log10
REF_DB = 20.0        # subtracted after 20*log10
MIN_DB = -100.0      # (x - MIN_DB) / -MIN_DB maps [-100, 0] dB to [0, 1]
DURATION_10S = 10.0
MEL_FRAMES_10S = 860
MEL_CROP_10S = 848


@functools.lru_cache(maxsize=None)
def mel_basis() -> np.ndarray:
    """(N_MELS, N_FFT // 2 + 1) float32 Slaney mel filterbank: ``librosa.filters.mel(sr=SR, n_fft=N_FFT,
    n_mels=N_MELS, fmin=FMIN, fmax=FMAX)`` computed with the same numpy operations (bit-identical, tested),
    without importing librosa (about 1 s: numba, scipy.signal) on the inference path."""
    def hz_to_mel(f):        # Slaney: linear below 1 kHz, logarithmic above
        f = np.asanyarray(f, dtype=np.float64)
        mels = f / (200.0 / 3)
        return np.where(f >= 1000.0, 15.0 + np.log(f / 1000.0) / (np.log(6.4) / 27.0), mels)

    def mel_to_hz(m):
        freqs = (200.0 / 3) * m
        log_t = m >= 15.0
        freqs[log_t] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (m[log_t] - 15.0))
        return freqs

    fftfreqs = np.fft.rfftfreq(n=N_FFT, d=1.0 / SR)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(FMIN), hz_to_mel(FMAX), N_MELS + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((N_MELS, N_FFT // 2 + 1), dtype=np.float32)
    for i in range(N_MELS):
        weights[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    weights *= (2.0 / (mel_f[2:N_MELS + 2] - mel_f[:N_MELS]))[:, np.newaxis]      # Slaney norm
    return weights


def amp_to_unit(mel_amp: np.ndarray) -> np.ndarray:
    """Mel magnitude -> log scale in [0, 1] (the reference's LowerThresh..Clip chain)."""
    db = 20.0 * np.log10(np.maximum(mel_amp, AMIN)) - REF_DB
    return np.clip((db - MIN_DB) / -MIN_DB, 0.0, 1.0)


def unit_to_amp(mel: np.ndarray) -> np.ndarray:
    """Inverse of :func:`amp_to_unit` (exact inside (0, 1); clipped values stay at the bounds)."""
    db = np.asarray(mel, dtype=np.float64) * -MIN_DB + MIN_DB + REF_DB
    return np.power(10.0, db / 20.0)


def resample(wav: np.ndarray, sr: int, target_sr: int = SR) -> np.ndarray:
    """Resample a mono float waveform (L,) from ``sr`` to ``target_sr`` (soxr high quality)."""
    if sr == target_sr:
        return wav
    import librosa

    return librosa.resample(np.asarray(wav, dtype=np.float32), orig_sr=sr, target_sr=target_sr)


def to_mono(wav: np.ndarray) -> np.ndarray:
    """(L,) or (C, L) or (L, C) -> (L,) float32 by averaging channels (the shorter axis is channels)."""
    wav = np.asarray(wav)
    if wav.ndim == 2:
        axis = 0 if wav.shape[0] <= wav.shape[1] else 1
        wav = wav.mean(axis=axis)
    if wav.ndim != 1:
        raise ValueError(f"expected a mono or multi-channel waveform, got shape {wav.shape}")
    return wav.astype(np.float32, copy=False)


def wav_to_mel(wav: np.ndarray, sr: int = SR, n_frames: int | None = None) -> np.ndarray:
    """Waveform -> log-mel spectrogram, exactly the reference recipe.

    Args:
        wav: (L,) mono (or (C, L) multi-channel, averaged) waveform in [-1, 1].
        sr: its sample rate; resampled to 22050 Hz when different.
        n_frames: keep this many frames. The waveform is first zero-padded or trimmed to
            ``(n_frames + 1) * HOP`` samples, as the reference does for 10 s (``n_frames=860``
            uses 220500 samples -> 862 STFT frames -> keeps 860). ``None`` keeps all
            ``1 + L // HOP`` frames of the waveform as given.
    Returns:
        (80, T) float32 in [0, 1]; row 0 is the lowest mel band.
    """
    import librosa

    wav = resample(to_mono(wav), sr, SR)
    if n_frames is not None:
        length = (n_frames + 1) * HOP if n_frames != MEL_FRAMES_10S else int(DURATION_10S * SR)
        if len(wav) < length:
            wav = np.pad(wav, (0, length - len(wav)))
        wav = wav[:length]
    if len(wav) <= N_FFT // 2:
        raise ValueError(f"waveform too short for a mel spectrogram: {len(wav)} samples at {SR} Hz "
                         f"(need more than {N_FFT // 2})")
    spec = np.abs(librosa.stft(wav, n_fft=N_FFT, hop_length=HOP, win_length=WIN, window="hann",
                               center=True, pad_mode="reflect"))
    mel = amp_to_unit(mel_basis() @ spec).astype(np.float32)
    return mel[:, :n_frames] if n_frames is not None else mel


def mel_to_wav(mel: np.ndarray, n_iter: int = 32, seed: int = 0) -> np.ndarray:
    """Griffin-Lim inversion of a [0, 1] log-mel (80, T) -> (T * HOP,) float32 waveform at 22050 Hz.

    The mel magnitude is mapped back to a linear STFT magnitude with the non-negative
    pseudo-inverse of the filterbank, then phase is estimated with ``n_iter`` Griffin-Lim steps
    (:func:`griffin_lim`). A fallback vocoder: fast and dependency-free, but audibly worse than MelGAN.
    """
    mel = np.asarray(mel, dtype=np.float32)
    if mel.ndim != 2 or mel.shape[0] != N_MELS:
        raise ValueError(f"expected a mel spectrogram of shape ({N_MELS}, T), got {mel.shape}")
    amp = unit_to_amp(mel).astype(np.float32)
    spec = np.maximum(_mel_pinv() @ amp, 0.0)
    wav = griffin_lim(spec, n_iter=n_iter, seed=seed)
    return np.pad(wav, (0, mel.shape[1] * HOP - len(wav))).astype(np.float32)


def griffin_lim(spec: np.ndarray, n_iter: int = 32, seed: int = 0, momentum: float = 0.99) -> np.ndarray:
    """(N_FFT // 2 + 1, T) float32 STFT magnitude -> ((T - 1) * HOP,) float32 waveform: librosa's fast
    Griffin-Lim (``librosa.griffinlim(spec, n_iter, hop_length=HOP, win_length=WIN, n_fft=N_FFT,
    window="hann", center=True, momentum=0.99, init="random", random_state=RandomState(seed))``, the same
    initial phases and updates) in torch's FFT: equal to librosa's up to float rounding (tested), several
    times faster and without importing librosa."""
    spec = np.asarray(spec, dtype=np.float32)
    phases = 2 * np.pi * np.random.RandomState(seed).random(size=spec.shape)
    mag = torch.from_numpy(spec)
    angles = torch.polar(torch.ones_like(mag), torch.from_numpy(phases).float()) * mag     # complex64
    window = torch.hann_window(WIN, periodic=True)
    stft = dict(n_fft=N_FFT, hop_length=HOP, win_length=WIN, window=window, center=True)
    tprev = None
    for _ in range(n_iter):
        inverse = torch.istft(angles, **stft)
        rebuilt = torch.stft(inverse, pad_mode="constant", return_complex=True, **stft)
        angles = rebuilt if tprev is None else rebuilt - (momentum / (1 + momentum)) * tprev
        angles = angles / (angles.abs() + torch.finfo(torch.float32).tiny) * mag
        tprev = rebuilt
    return torch.istft(angles, **stft).numpy()


@functools.lru_cache(maxsize=None)
def _mel_pinv() -> np.ndarray:
    return np.linalg.pinv(mel_basis()).astype(np.float32)


def load_audio(path: str | Path, sr: int = SR) -> np.ndarray:
    """Read an audio file (wav/flac/ogg via soundfile) -> (L,) float32 mono at ``sr`` Hz.

    Raises:
        FileNotFoundError / ValueError naming the file when it is missing, unreadable or empty.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        wav, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises its own LibsndfileError
        raise ValueError(f"cannot read audio file {path}: {err}") from err
    if wav.shape[0] == 0:
        raise ValueError(f"audio file {path} has no samples")
    return resample(wav.mean(axis=1), file_sr, sr)


def save_audio(path: str | Path, wav: np.ndarray, sr: int = SR) -> None:
    """Write a mono float waveform as 16-bit PCM wav (clipped to [-1, 1]); NaN / Inf raise
    :class:`specvqgan.checks.NonFiniteError` naming ``path``."""
    import soundfile as sf

    from specvqgan.checks import require_finite

    require_finite(wav, str(path), "waveform samples")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(np.asarray(wav, dtype=np.float32), -1, 1), sr, subtype="PCM_16")


class TorchLogMel(nn.Module):
    """Torch twin of :func:`wav_to_mel` (no resampling, no trimming) for on-the-fly mels in training.

    forward(wav: (B, L) or (L,)) -> (B, 80, 1 + L // 256) in [0, 1]; equals ``wav_to_mel`` to ~1e-5.
    Differentiable (used by the vocoder's mel loss).
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("window", torch.hann_window(WIN, periodic=True), persistent=False)
        self.register_buffer("basis", torch.from_numpy(mel_basis()), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        if wav.dim() == 1:
            wav = wav[None]
        spec = torch.stft(wav.float(), N_FFT, hop_length=HOP, win_length=WIN, window=self.window,
                          center=True, pad_mode="reflect", return_complex=True).abs()
        mel = self.basis @ spec
        db = 20.0 * torch.log10(mel.clamp_min(AMIN)) - REF_DB
        return ((db - MIN_DB) / -MIN_DB).clamp(0.0, 1.0)


def load_mel_stats_txt(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a reference stats file (`train_means_stds_melspec_10s_22050hz.txt`: F rows of `mean std`)."""
    arr = np.loadtxt(path, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f'{path}: expected F rows of "mean std", got an array of shape {arr.shape}')
    return arr[:, 0].copy(), arr[:, 1].copy()

"""The mel front-end reproduces the reference recipe (golden/mel_extraction) and round-trips."""
import numpy as np
import pytest
import soundfile as sf
import torch

from specvqgan import audio

CLIPS = ["-1pRmoJIGQc_10000_20000", "0nib7bMm8BA_15000_25000"]


@pytest.fixture(scope="module")
def golden(reference_dir):
    root = reference_dir / "golden" / "mel_extraction"
    out = {}
    for clip in CLIPS:
        wav, sr = sf.read(root / f"{clip}_22050hz_mono.wav", dtype="float32")
        out[clip] = (wav, sr, np.load(root / f"{clip}_mel_librosa_reflectpad.npy"))
    return out


@pytest.mark.parametrize("clip", CLIPS)
def test_wav_to_mel_matches_reference(golden, clip):
    wav, sr, ref = golden[clip]
    mel = audio.wav_to_mel(wav, sr, n_frames=audio.MEL_FRAMES_10S)
    assert mel.shape == (80, 860) and mel.dtype == np.float32
    np.testing.assert_allclose(mel, ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("clip", CLIPS)
def test_torch_twin_matches_reference(golden, clip):
    wav, _, ref = golden[clip]
    mel = audio.TorchLogMel()(torch.from_numpy(wav[:220500]))[0, :, :860].numpy()
    np.testing.assert_allclose(mel, ref, atol=1e-5, rtol=0)


def test_any_duration_and_resampling():
    t = np.arange(int(3.3 * 44100)) / 44100
    stereo = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 880 * t)]).astype(np.float32)
    mel = audio.wav_to_mel(stereo, 44100)
    assert mel.shape == (80, 1 + int(round(3.3 * audio.SR)) // audio.HOP)
    assert 0.0 <= mel.min() and mel.max() <= 1.0
    band_440 = np.argmax(mel.mean(axis=1))
    mono = audio.wav_to_mel(stereo.mean(0)[::2].copy(), 22050)  # same signal, naive decimation
    assert abs(int(np.argmax(mono.mean(axis=1))) - int(band_440)) <= 1
    assert audio.wav_to_mel(stereo, 44100, n_frames=100).shape == (80, 100)


def test_silence_is_floor_and_too_short_is_an_error():
    assert np.all(audio.wav_to_mel(np.zeros(22050, np.float32)) == 0.0)
    with pytest.raises(ValueError, match="too short"):
        audio.wav_to_mel(np.zeros(100, np.float32))


def test_log_scale_inverse():
    mel = np.linspace(0.01, 0.99, 50)
    np.testing.assert_allclose(audio.amp_to_unit(audio.unit_to_amp(mel)), mel, atol=1e-6)


def test_griffin_lim_round_trip(golden):
    _, _, ref = golden[CLIPS[0]]
    ref = ref[:, :200]
    wav = audio.mel_to_wav(ref, n_iter=16)
    assert wav.shape == (200 * audio.HOP,) and wav.dtype == np.float32
    again = audio.wav_to_mel(wav)[:, :200]
    assert np.abs(again - ref).mean() < 0.03  # phase is estimated, the magnitude is kept


def test_mel_basis_is_librosas_filterbank():
    import librosa

    ref = librosa.filters.mel(sr=audio.SR, n_fft=audio.N_FFT, n_mels=audio.N_MELS, fmin=audio.FMIN, fmax=audio.FMAX)
    assert audio.mel_basis().dtype == np.float32
    np.testing.assert_array_equal(audio.mel_basis(), ref.astype(np.float32))


def test_griffin_lim_equals_librosas(golden):
    """The torch Griffin-Lim follows librosa's (same initial phases, momentum updates) up to FFT rounding."""
    import librosa

    _, _, ref = golden[CLIPS[0]]
    spec = np.maximum(audio._mel_pinv() @ audio.unit_to_amp(ref[:, :300]).astype(np.float32), 0.0)
    ours = audio.griffin_lim(spec, n_iter=8, seed=3)
    theirs = librosa.griffinlim(spec, n_iter=8, hop_length=audio.HOP, win_length=audio.WIN, n_fft=audio.N_FFT,
                                window="hann", center=True, init="random", random_state=np.random.RandomState(3))
    assert ours.shape == theirs.shape and ours.dtype == np.float32
    snr = 10 * np.log10(np.sum(theirs ** 2) / np.sum((ours - theirs) ** 2))
    assert snr > 60, snr            # float rounding only (another seed's phases: about 0 dB)
    other = audio.griffin_lim(spec, n_iter=8, seed=4)
    assert 10 * np.log10(np.sum(theirs ** 2) / np.sum((other - theirs) ** 2)) < 20


def test_load_and_save_audio(tmp_path):
    wav = (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
    audio.save_audio(tmp_path / "a.wav", wav, 16000)
    back = audio.load_audio(tmp_path / "a.wav")
    assert abs(len(back) - 22050) <= 1
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        audio.load_audio(tmp_path / "missing.wav")
    (tmp_path / "bad.wav").write_bytes(b"not audio at all")
    with pytest.raises(ValueError, match="bad.wav"):
        audio.load_audio(tmp_path / "bad.wav")

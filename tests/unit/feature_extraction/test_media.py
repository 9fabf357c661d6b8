"""feature_extraction.media: PyAV writer, probe, ffmpeg decoding (resample, downmix, fps, loop)."""
import numpy as np
import pytest

from feature_extraction.encode import write_mp4
from feature_extraction.media import MediaError, probe, read_audio, read_frames

SR = 22050


def _tone(freq, seconds, sr=SR, amp=0.5):
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _frames(n, size=32, value=None):
    f = np.zeros((n, size, size, 3), np.uint8)
    f[:] = np.arange(n, dtype=np.uint8)[:, None, None, None] * 4 if value is None else value
    return f


def _peak_freq(wav, sr):
    spec = np.abs(np.fft.rfft(wav * np.hanning(len(wav))))
    return np.fft.rfftfreq(len(wav), 1 / sr)[spec.argmax()]


def test_write_probe_and_read_roundtrip(tmp_path):
    wav = np.zeros(SR * 2, np.float32)
    onset = int(0.8 * SR)
    wav[onset:onset + 2205] = _tone(1000, 0.1)
    path = tmp_path / "clip.mp4"
    write_mp4(path, _frames(50), 25, wav, SR)

    info = probe(path)
    assert info.has_video and info.has_audio
    assert (info.audio_rate, info.audio_channels, info.width, info.height) == (SR, 1, 32, 32)
    assert info.video_fps == pytest.approx(25) and info.duration == pytest.approx(2.0, abs=0.05)

    out = read_audio(path, 2.0, SR)
    assert out.shape == (44100,) and out.dtype == np.float32
    lag = np.correlate(out, wav, "full").argmax() - (len(wav) - 1)
    assert lag == 0                                    # AAC priming is compensated: no offset
    assert np.abs(out[:onset - 1100]).max() < 0.02     # silence before the tone burst
    assert np.abs(out[onset:onset + 2205]).max() == pytest.approx(0.5, abs=0.05)

    frames = read_frames(path, 2.0, 21.5, (8, 8))
    assert frames.shape == (43, 8, 8, 3) and frames.dtype == np.uint8
    assert np.all(np.diff(frames[:, 4, 4, 0].astype(int)) >= 0)   # time order kept by the fps filter


def test_stereo_44k_is_downmixed_and_resampled(tmp_path):
    stereo = np.stack([_tone(440, 1.5, 44100, 0.4), _tone(440, 1.5, 44100, 0.4)])
    path = tmp_path / "stereo.mp4"
    write_mp4(path, _frames(38), 25, stereo, 44100)
    assert (probe(path).audio_rate, probe(path).audio_channels) == (44100, 2)
    out = read_audio(path, 1.5, SR)
    assert out.shape == (round(1.5 * SR),)
    assert _peak_freq(out[2000:-2000], SR) == pytest.approx(440, abs=3)
    assert np.abs(out[2000:-2000]).max() == pytest.approx(0.4, abs=0.05)   # mean of 2 equal channels


def test_loop_repeats_short_clip_to_duration(tmp_path):
    wav = np.zeros(int(1.2 * SR), np.float32)
    wav[int(0.3 * SR):int(0.4 * SR)] = _tone(800, 0.1)
    path = tmp_path / "short.mp4"
    write_mp4(path, _frames(30), 25, wav, SR)
    with pytest.raises(MediaError, match="short.mp4: the audio stream ended early: 26460 of 44100 samples"):
        read_audio(path, 2.0, SR, loop=False)               # never padded silently
    no_loop = read_audio(path, 2.0, SR, loop=False, allow_truncated=True)
    looped = read_audio(path, 2.0, SR, loop=True)
    assert no_loop.shape == looped.shape == (44100,)
    second = slice(int(1.55 * SR), int(1.6 * SR))     # the burst again, one loop (1.2 s) later
    assert np.abs(no_loop[second]).max() < 0.01
    assert np.abs(looped[second]).max() > 0.3
    assert read_frames(path, 2.0, 21.5, (8, 8), loop=True).shape[0] == 43


def test_audio_only_and_video_only_files(tmp_path):
    write_mp4(tmp_path / "silent_video.mp4", _frames(25), 25, None, SR)
    write_mp4(tmp_path / "audio_only.mp4", None, 25, _tone(300, 1.0), SR)
    assert not probe(tmp_path / "silent_video.mp4").has_audio
    assert not probe(tmp_path / "audio_only.mp4").has_video
    with pytest.raises(MediaError, match="silent_video.mp4"):
        read_audio(tmp_path / "silent_video.mp4", 1.0, SR)


def test_bad_files_raise_media_error_naming_the_file(tmp_path):
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    with pytest.raises(MediaError, match="corrupt.mp4.*cannot open"):
        probe(bad)
    with pytest.raises(MediaError, match="file not found"):
        probe(tmp_path / "missing.mp4")
    with pytest.raises(ValueError, match="even"):
        write_mp4(tmp_path / "odd.mp4", np.zeros((2, 15, 16, 3), np.uint8), 25, None, SR)


def test_writer_is_deterministic(tmp_path):
    frames, wav = _frames(25), _tone(500, 1.0)
    write_mp4(tmp_path / "a.mp4", frames, 25, wav, SR)
    write_mp4(tmp_path / "b.mp4", frames, 25, wav, SR)
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()

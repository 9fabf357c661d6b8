"""NaN / Inf in data entering (mel and feature files) or leaving (generated mels, waveforms) is an error
naming the file or sample, never a silent NaN loss or undefined PCM."""
import pickle

import numpy as np
import pytest
import torch

from specvqgan.audio import save_audio
from specvqgan.checks import NonFiniteError, require_finite
from specvqgan.data.clips import load_feats, load_mel
from specvqgan.files import save_mel_atomic


def test_nan_and_inf_files_are_refused_naming_them(tmp_path):
    mel = np.random.default_rng(0).random((80, 20), dtype=np.float32)
    np.save(tmp_path / "ok_mel.npy", mel)
    assert np.array_equal(load_mel(str(tmp_path / "ok_mel.npy"), 80), mel)
    mel[3, 5], mel[7, 1] = np.nan, np.inf
    np.save(tmp_path / "bad_mel.npy", mel)
    with pytest.raises(NonFiniteError, match=r"bad_mel.npy: mel spectrogram values contain 1 NaN and 1 Inf of 1600"):
        load_mel(str(tmp_path / "bad_mel.npy"), 80)
    feats = np.ones((43, 48), np.float32)
    feats[10] = -np.inf
    (tmp_path / "bad.pkl").write_bytes(pickle.dumps(feats))
    with pytest.raises(NonFiniteError, match=r"bad.pkl: feature values contain 0 NaN and 48 Inf"):
        load_feats(str(tmp_path / "bad.pkl"), 48)


def test_nan_outputs_are_not_written(tmp_path):
    wav = np.zeros(1000, np.float32)
    wav[10] = np.nan
    with pytest.raises(NonFiniteError, match="out.wav: waveform samples contain 1 NaN"):
        save_audio(tmp_path / "out.wav", wav)
    with pytest.raises(NonFiniteError, match="v_sample_0.npy: mel values contain 80 NaN"):
        save_mel_atomic(tmp_path / "v_sample_0.npy", np.full((80, 1), np.nan, np.float32))
    assert not list(tmp_path.iterdir())
    t = torch.ones(3)
    assert require_finite(t, "x") is t and require_finite(np.arange(3), "ints") is not None
    with pytest.raises(NonFiniteError, match="sample 2"):
        require_finite(torch.tensor([1.0, float("nan")], dtype=torch.bfloat16), "sample 2")

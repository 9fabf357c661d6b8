"""Spectrogram/audio logging shared by the models, and the reference's ``train.ImageLogger`` callback."""
from types import SimpleNamespace

import cv2
import numpy as np
import soundfile as sf
import torch
from torch import nn

from specvqgan.audio import HOP, N_MELS, SR
from specvqgan.config import instantiate_from_config
from specvqgan.media_logging import ImageLogger, VocoderGriffinLim, log_mels, mel_tensors


class Recorder:
    def __init__(self):
        self.images, self.audio = {}, {}

    def add_image(self, tag, img, step, dataformats='CHW'):
        self.images[tag] = (img.clone(), step)

    def add_audio(self, tag, wav, step, sample_rate):
        self.audio[tag] = (wav.clone(), step, sample_rate)


def test_log_mels_images_flipped_audio_only_for_80_bins(tmp_path):
    mel = torch.linspace(-1, 1, N_MELS)[None, None, :, None].expand(3, 1, N_MELS, 8).contiguous()
    small = torch.zeros(2, 1, 5, 8)
    exp = Recorder()
    log_mels(exp, {'inputs': mel, 'codes': small}, step=7, max_images=2, vocoder=VocoderGriffinLim(n_iter=2),
             save_dir=tmp_path)
    assert set(exp.images) == {'val/inputs_0', 'val/inputs_1', 'val/codes_0', 'val/codes_1'}
    img, step = exp.images['val/inputs_0']
    assert step == 7 and img.shape == (1, N_MELS, 8)
    assert img[0, 0, 0] == 1 and img[0, -1, 0] == 0        # high frequencies on top, in [0, 1]
    assert set(exp.audio) == {'val/inputs_0', 'val/inputs_1'}  # no audio for a 5-bin "mel"
    wav, _, sr = exp.audio['val/inputs_0']
    assert sr == SR and wav.shape[-1] == 8 * HOP
    png = cv2.imread(str(tmp_path / 'inputs_gs-000007_0.png'), cv2.IMREAD_GRAYSCALE)
    assert png.shape == (N_MELS, 8) and png[0, 0] == 255
    assert sf.info(str(tmp_path / 'inputs_gs-000007_1.wav')).frames == 8 * HOP


def test_log_mels_without_logger_does_nothing():
    class Boom:
        def vocode(self, spec, global_step=None):
            raise AssertionError('must not vocode when nothing is written')
    log_mels(None, {'inputs': torch.zeros(1, 1, N_MELS, 4)}, step=0, vocoder=Boom())


def test_mel_tensors_skips_attention_and_conditions():
    logs = {'inputs': torch.zeros(2, 1, 80, 8), 'att_det': torch.zeros(2, 4, 9, 9),
            'conditioning': torch.zeros(2, 9, 16), 'labels': ['a', 'b']}
    assert list(mel_tensors(logs)) == ['inputs']


class TinyModule(nn.Module):
    global_step = 3

    def __init__(self):
        super().__init__()
        self.calls = 0

    def log_images(self, batch, **kwargs):
        assert not self.training, 'log_images runs in eval mode'
        self.calls += 1
        return {'inputs': batch * 3, 'att_half': torch.zeros(1, 2, 3, 3)}


def test_reference_image_logger_block_instantiates_and_logs(tmp_path):
    cfg = {'target': 'train.ImageLogger',
           'params': {'batch_frequency': 4, 'max_images': 1, 'for_specs': True,
                      'vocoder_cfg': {'target': 'train.VocoderGriffinLim', 'params': {'spec_dir_name': 'x'}}}}
    cb = instantiate_from_config(cfg)
    assert isinstance(cb, ImageLogger)
    assert [b for b in range(10) if cb.check_frequency(b)] == [0, 1, 2, 4, 8]
    exp = Recorder()
    trainer = SimpleNamespace(is_global_zero=True, default_root_dir=str(tmp_path),
                              logger=SimpleNamespace(experiment=exp, save_dir=str(tmp_path)))
    module = TinyModule().train()
    batch = torch.full((2, 1, N_MELS, 6), 0.5)
    cb.on_validation_batch_end(trainer, module, None, batch, 0)   # logged (frequency)
    cb.on_validation_batch_end(trainer, module, None, batch, 3)   # skipped
    assert module.calls == 1 and module.training                  # train mode restored
    img, _ = exp.images['val/inputs_0']
    assert torch.all(img == 1)                                    # clamped to [-1, 1] -> 1 in [0, 1]
    assert 'val/inputs_1' not in exp.images                       # max_images
    assert (tmp_path / 'images' / 'val' / 'inputs_gs-000003_0.wav').exists()

"""Spectrogram images and audio in TensorBoard, and the reference's image-logger callback.

One function, :func:`log_mels`, writes mels as images (low frequencies at the bottom) and as audio
(Griffin-Lim unless a vocoder is given); the codebook and the transformer call it from their
validation steps, and :class:`ImageLogger` (the reference's ``train.ImageLogger``, so the authors' YAMLs
with a ``lightning.callbacks.image_logger`` block run unchanged) calls it every ``batch_frequency``
batches with what the model's ``log_images(batch)`` returns. Also saves ``.png``/``.wav`` copies under
``<logdir>/images/<split>/`` as the reference did.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np
import torch
from pytorch_lightning.callbacks import Callback

from specvqgan.audio import N_MELS, SR, mel_to_wav, save_audio

log = logging.getLogger(__name__)


class VocoderGriffinLim:
    """The reference's ``train.VocoderGriffinLim``: ``vocode(mel (80, T) in [0, 1]) -> wav``."""

    def __init__(self, spec_dir_name: Optional[str] = None, n_iter: int = 32):
        self.n_iter = n_iter  # spec_dir_name (the reference's mel-stats folder) is not needed here

    def vocode(self, spec: np.ndarray, global_step: Optional[int] = None) -> np.ndarray:
        return mel_to_wav(np.clip(spec, 0, 1), n_iter=self.n_iter)


def mel_tensors(images: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The spectrogram entries of a ``log_images`` dict: 4-D tensors (B, 1, F, T) (attention maps
    ``att_*`` and conditions are skipped)."""
    return {k: v for k, v in images.items()
            if isinstance(v, torch.Tensor) and v.dim() == 4 and v.shape[1] == 1 and not k.startswith('att')}


@torch.no_grad()
def log_mels(experiment: Any, mels: Mapping[str, torch.Tensor], step: int, split: str = 'val',
             max_images: int = 2, vocoder: Any = None, save_dir: Optional[Path] = None) -> None:
    """Write each (B, 1, F, T) mel in [-1, 1] of ``mels`` as ``<split>/<name>_<i>`` image and audio.

    Args:
        experiment: a TensorBoard ``SummaryWriter`` (anything with ``add_image``/``add_audio``) or None.
        max_images: first N items of each batch. vocoder: ``.vocode(mel (80, T) in [0, 1])`` (default
            Griffin-Lim); audio is only made for 80-bin mels. save_dir: also write ``.png``/``.wav`` there.
    """
    if save_dir is None and not hasattr(experiment, 'add_image'):
        return  # nowhere to write (no TensorBoard logger)
    vocoder = vocoder or VocoderGriffinLim()
    for name, spec in mels.items():
        for i in range(min(max_images, spec.shape[0])):
            mel = ((spec[i, 0].float().cpu() + 1) / 2).clamp(0, 1)  # (F, T) in [0, 1]
            image = mel.flip(0)[None]                               # low frequencies at the bottom
            tag = f'{split}/{name}_{i}'
            if experiment is not None and hasattr(experiment, 'add_image'):
                experiment.add_image(tag, image, step, dataformats='CHW')
            wav = None
            if mel.shape[0] == N_MELS:
                wav = np.asarray(vocoder.vocode(mel.numpy()), dtype=np.float32).reshape(-1)
                if experiment is not None and hasattr(experiment, 'add_audio'):
                    experiment.add_audio(tag, torch.from_numpy(wav)[None], step, sample_rate=SR)
            if save_dir is not None:
                _save_local(Path(save_dir), f'{name}_gs-{step:06d}_{i}', image, wav)


def _save_local(folder: Path, stem: str, image: torch.Tensor, wav: Optional[np.ndarray]) -> None:
    import cv2
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / f'{stem}.png'), (image[0].numpy() * 255).round().astype(np.uint8))
    if wav is not None:
        save_audio(folder / f'{stem}.wav', wav, SR)


class ImageLogger(Callback):
    """Log ``pl_module.log_images(batch)`` every ``batch_frequency`` batches of training and validation
    (and at batches 1, 2, 4, ... before that when ``increase_log_steps``), the reference's callback.

    Args (the reference's; its train.py defaults batch_frequency 750 and max_images 4, which its YAMLs rely on):
        batch_frequency, max_images (items per batch), clamp (to [-1, 1]),
        increase_log_steps, for_specs (mels: flip + audio; always true here), vocoder_cfg
        (``{target, params}``, e.g. ``train.VocoderMelGan``; default Griffin-Lim), spec_dir_name and
        sample_rate (accepted for the reference YAMLs; the audio rate is 22050 Hz).
    """

    def __init__(self, batch_frequency: int = 750, max_images: int = 4, clamp: bool = True, increase_log_steps: bool = True,
                 for_specs: bool = True, vocoder_cfg: Any = None, spec_dir_name: Optional[str] = None,
                 sample_rate: Optional[int] = None):
        super().__init__()
        if batch_frequency < 1:
            raise ValueError(f'batch_frequency must be >= 1, got {batch_frequency}')
        self.batch_freq, self.max_images, self.clamp = batch_frequency, max_images, clamp
        self.log_steps = [2 ** n for n in range(int(np.log2(batch_frequency)) + 1)] if increase_log_steps else []
        if sample_rate is not None and sample_rate != SR:
            raise ValueError(f'ImageLogger sample_rate {sample_rate} != {SR} (the mel front-end rate)')
        self.vocoder_cfg = vocoder_cfg
        self._vocoder = None

    @property
    def vocoder(self):
        if self._vocoder is None:
            from specvqgan.config import instantiate_from_config
            self._vocoder = instantiate_from_config(self.vocoder_cfg) if self.vocoder_cfg else VocoderGriffinLim()
        return self._vocoder

    def check_frequency(self, batch_idx: int) -> bool:
        if batch_idx % self.batch_freq == 0:
            return True
        if batch_idx in self.log_steps:
            self.log_steps.remove(batch_idx)
            return True
        return False

    def log_img(self, trainer, pl_module, batch, batch_idx: int, split: str) -> None:
        if (self.max_images <= 0 or not trainer.is_global_zero or not callable(getattr(pl_module, 'log_images', None))
                or not self.check_frequency(batch_idx)):
            return
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad():
                mels = mel_tensors(pl_module.log_images(batch, split=split))
        finally:
            pl_module.train(was_training)
        mels = {k: (v.detach().cpu().clamp(-1, 1) if self.clamp else v.detach().cpu()) for k, v in mels.items()}
        logger = trainer.logger
        root = Path(getattr(logger, 'save_dir', None) or trainer.default_root_dir)  # the run's log dir
        log_mels(getattr(logger, 'experiment', None), mels, pl_module.global_step, split, self.max_images,
                 self.vocoder, root / 'images' / split)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.log_img(trainer, pl_module, batch, batch_idx, 'train')

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self.log_img(trainer, pl_module, batch, batch_idx, 'val')

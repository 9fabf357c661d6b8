"""MelGAN vocoder: mel spectrogram ([0, 1], 80 x T) -> 22050 Hz waveform (T x 256 samples).

* :mod:`vocoder.modules` -- Generator and multi-scale Discriminator (reference state-dict keys);
* :mod:`vocoder.model` -- ``MelGAN`` LightningModule (``python train.py --base configs/melgan_vggsound.yaml -t``);
* :mod:`vocoder.fast` -- ``FastGenerator``, the CPU inference path (GEMM ops in :mod:`vocoder.fast_ops`, int8 in
  :mod:`vocoder.fast_int8`, C kernels loaded by :mod:`vocoder.fast_native`);
* :mod:`vocoder.inference` -- ``MelGANVocoder`` / ``GriffinLimVocoder`` (``python -m vocoder mel.npy out.wav``).
"""
from vocoder.inference import GriffinLimVocoder, MelGANVocoder, load_generator, load_vocoder
from vocoder.modules import Discriminator, Generator

__all__ = ["Generator", "Discriminator", "MelGANVocoder", "GriffinLimVocoder", "load_vocoder", "load_generator"]

"""The reference's ``train.VocoderMelGan(ckpt_vocoder)`` (the ``vocoder_cfg`` of its image-logger callback,
:class:`specvqgan.media_logging.ImageLogger`), resolved through ``specvqgan/reference_targets.yaml``: the
library logs with whatever vocoder the config names and never imports this package."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import numpy as np

from specvqgan.download import local_path
from vocoder.inference import MelGANVocoder

log = logging.getLogger(__name__)


class VocoderMelGan:
    """The reference's ``train.VocoderMelGan(ckpt_vocoder)``: a MelGAN folder (``best_netG.pt`` +
    ``args.yml``) or any checkpoint :class:`vocoder.inference.MelGANVocoder` reads."""

    def __init__(self, ckpt_vocoder: str):
        if not Path(ckpt_vocoder).exists():  # the reference YAMLs' ./vocoder/logs/vggsound/ (a folder of its repo)
            try:
                cached = local_path("melgan_vggsound")
            except FileNotFoundError as err:
                raise FileNotFoundError(f"train.VocoderMelGan: ckpt_vocoder {ckpt_vocoder} not found and {err}") from None
            log.info("VocoderMelGan: %s not found; using the melgan_vggsound release %s", ckpt_vocoder, cached)
            ckpt_vocoder = str(cached)
        self.vocoder = MelGANVocoder.from_checkpoint(ckpt_vocoder)

    def vocode(self, spec: np.ndarray, global_step: Optional[int] = None) -> np.ndarray:
        return self.vocoder.vocode(np.asarray(spec, dtype=np.float32))

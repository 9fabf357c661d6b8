"""MelGAN training as a LightningModule (Kumar et al. 2019; SpecVQGAN Sec. 3.4 / Appendix).

One step on a batch of random waveform segments x (paper: 16 x 8192 samples):

    s = TorchLogMel(x)[..., :L // 256]     the project's one mel front-end, [0, 1], computed on the fly
    x' = G(s)                              (B, 1, L)
    D step: sum over scales of mean relu(1 - D(x)) + mean relu(1 + D(x'))          (hinge)
    G step: sum over scales of -mean D(x') + lambda_feat * feature matching,
            FM = sum_{scale, layer} 4 / (n_layers_D + 1) / num_D * L1(D_l(x'), D_l(x))

exactly as the reference trainer (Adam 1e-4, betas (0.5, 0.9) for both nets; the real features used
for feature matching are those of the discriminator step). ``train/mel_l1`` / ``val/mel_l1`` is the
L1 between the input mel and the mel re-analysed from the output, the reference's model-selection
metric (``best_netG.pt``).
"""
from __future__ import annotations

import logging
from typing import Sequence

import torch
import torch.nn.functional as F

from specvqgan.audio import HOP, SR, TorchLogMel
from specvqgan.losses.gan import fp32_under_fp16, generator_loss, hinge_d_loss
from specvqgan.models.base import BaseModel
from vocoder.modules import Discriminator, Generator

log = logging.getLogger(__name__)


class MelGAN(BaseModel):
    """MelGAN generator + multi-scale discriminator trained on waveform segments.

    Args:
        n_mel_channels, ngf, n_residual_layers, ratios: generator (paper: 80, 32, 3, (8, 8, 2, 2));
            ``prod(ratios)`` must equal the mel hop (256).
        num_D, ndf, n_layers_D, downsamp_factor: discriminator (paper: 3, 16, 4, 4).
        lambda_feat: feature-matching weight (paper: 10).
        wav_key: batch key of the (B, L) waveform segments (L a multiple of 256).
        n_log_audio: validation clips written to TensorBoard (audio) at each validation run.
    State dict: ``generator.*`` (reference ``best_netG.pt`` keys behind the prefix) and ``discriminator.*``.
    """

    #: the D and G backward passes each leave the other network unused (specvqgan.distributed.ddp_strategy)
    ddp_find_unused_parameters = True

    def __init__(self, n_mel_channels: int = 80, ngf: int = 32, n_residual_layers: int = 3,
                 ratios: Sequence[int] = (8, 8, 2, 2), num_D: int = 3, ndf: int = 16, n_layers_D: int = 4,
                 downsamp_factor: int = 4, lambda_feat: float = 10.0, wav_key: str = "wav",
                 n_log_audio: int = 2):
        super().__init__()
        self.generator = Generator(n_mel_channels, ngf, n_residual_layers, ratios)
        if self.generator.hop_length != HOP:
            raise ValueError(f"MelGAN: prod(ratios)={self.generator.hop_length} must equal the mel hop {HOP}")
        self.discriminator = Discriminator(num_D, ndf, n_layers_D, downsamp_factor)
        self.mel = TorchLogMel()
        self.num_D, self.n_layers_D, self.lambda_feat = num_D, n_layers_D, float(lambda_feat)
        self.wav_key, self.n_log_audio = wav_key, n_log_audio
        self.automatic_optimization = False

    # ------------------------------------------------------------------ pieces
    def get_input(self, batch) -> torch.Tensor:
        """batch[wav_key] (B, L) or (B, 1, L) -> (B, 1, L') with L' = L rounded down to a multiple of HOP."""
        if self.wav_key not in batch:
            raise KeyError(f"MelGAN: batch has no key {self.wav_key!r} (keys: {sorted(batch)})")
        wav = batch[self.wav_key].float()
        if wav.dim() == 2:
            wav = wav[:, None]
        if wav.dim() != 3 or wav.shape[1] != 1 or wav.shape[-1] < HOP * 4:
            raise ValueError(f"MelGAN: expected waveforms (B, L) with L >= {HOP * 4}, got {tuple(wav.shape)}")
        return wav[..., : wav.shape[-1] // HOP * HOP]

    def wav_to_mel(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, 1, L) -> (B, 80, L // HOP) in [0, 1]: the centred frames t = 0 .. L/HOP - 1, so that
        ``G(mel)`` has exactly L samples (frame t <-> samples [t HOP, (t+1) HOP), as 860 frames <-> 10 s)."""
        return self.mel(wav[:, 0])[..., : wav.shape[-1] // HOP]

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, 80, T) in [0, 1] -> wav (B, 1, T * 256)."""
        return self.generator(mel)

    def discriminate(self, wav: torch.Tensor) -> list:
        """Multi-scale discriminator outputs of (B, 1, L) waveforms; fp32 under fp16 autocast (16-mixed)."""
        with fp32_under_fp16(wav) as full:
            return self.discriminator(wav.float() if full else wav)

    def discriminator_loss(self, d_real: list, d_fake: list) -> torch.Tensor:
        """Hinge loss summed over scales; the reference's sum = 2 x the shared 0.5-weighted hinge."""
        return sum(2.0 * hinge_d_loss(r[-1], f[-1]) for r, f in zip(d_real, d_fake))

    def feature_matching_loss(self, d_real: list, d_fake: list) -> torch.Tensor:
        """sum over scales and all but the last layer of w * L1(fake, real), w = 4 / (n_layers+1) / num_D."""
        weight = 4.0 / (self.n_layers_D + 1) / self.num_D
        return sum(weight * F.l1_loss(f, r.detach()) for rs, fs in zip(d_real, d_fake)
                   for r, f in zip(rs[:-1], fs[:-1]))

    # ------------------------------------------------------------------ training
    def training_step(self, batch, batch_idx):
        opt_g, opt_d = self.optimizers()
        wav = self.get_input(batch)
        with torch.no_grad():
            mel = self.wav_to_mel(wav)
        fake = self.generator(mel)

        self.toggle_optimizer(opt_d)
        d_real = self.discriminate(wav)
        loss_d = self.discriminator_loss(d_real, self.discriminate(fake.detach()))
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss_d)
        opt_d.step()
        self.untoggle_optimizer(opt_d)

        self.toggle_optimizer(opt_g)
        d_fake = self.discriminate(fake)
        loss_g = sum(generator_loss(f[-1]) for f in d_fake)
        loss_feat = self.feature_matching_loss(d_real, d_fake)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss_g + self.lambda_feat * loss_feat)
        opt_g.step()
        self.untoggle_optimizer(opt_g)

        with torch.no_grad():
            mel_l1 = F.l1_loss(self.wav_to_mel(fake.detach()), mel)
        self.log_dict({"train/loss_D": loss_d.detach(), "train/loss_G": loss_g.detach(),
                       "train/loss_feat": loss_feat.detach()}, on_step=True, on_epoch=True,
                      batch_size=wav.shape[0])
        self.log("train/mel_l1", mel_l1, prog_bar=True, on_step=True, on_epoch=True, batch_size=wav.shape[0])

    def validation_step(self, batch, batch_idx):
        wav = self.get_input(batch)
        mel = self.wav_to_mel(wav)
        fake = self.generator(mel)
        mel_l1 = F.l1_loss(self.wav_to_mel(fake), mel)
        self.log("val/mel_l1", mel_l1, prog_bar=True, on_epoch=True, sync_dist=True, batch_size=wav.shape[0])
        if batch_idx == 0 and not self.trainer.sanity_checking:
            self._log_audio(wav, fake)
        return mel_l1

    def _log_audio(self, real: torch.Tensor, fake: torch.Tensor) -> None:
        experiment = getattr(self.logger, "experiment", None)
        if not self.trainer.is_global_zero or not hasattr(experiment, "add_audio"):
            return
        for i in range(min(self.n_log_audio, real.shape[0])):
            experiment.add_audio(f"val/real_{i}", real[i].float().cpu(), self.global_step, sample_rate=SR)
            experiment.add_audio(f"val/generated_{i}", fake[i].float().cpu(), self.global_step, sample_rate=SR)

    def configure_optimizers(self):
        """Adam (betas 0.5, 0.9) for G and D at ``scaled_lr()`` (paper/reference: 1e-4 at batch 16)."""
        lr = self.scaled_lr()
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=lr, betas=(0.5, 0.9))
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=(0.5, 0.9))
        return [opt_g, opt_d]

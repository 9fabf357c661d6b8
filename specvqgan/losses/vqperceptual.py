"""Training loss of the spectrogram VQGAN (paper Sec. 3.1, Eq. 1-2).

Generator (optimizer_idx 0): `L1(x, x_hat) + w_p * LPAPS(x, x_hat) + w_cb * L_codebook
+ lambda * disc_factor * (-mean D(x_hat))`, where the adaptive weight `lambda` balances the gradients of
the reconstruction and GAN terms at the decoder's last layer and the GAN term starts at `disc_start`.
Discriminator (optimizer_idx 1): hinge (or vanilla) loss on real vs reconstructed patches.
Keys: `perceptual_loss.*` (LPAPS) and `discriminator.main.*` (PatchGAN), as the reference.
"""
from __future__ import annotations

import inspect
import logging
from pathlib import Path

import torch
from torch import nn

from specvqgan.config import ConfigError
from specvqgan.losses.gan import D_LOSSES, adopt_weight, fp32_under_fp16, generator_loss
from specvqgan.losses.lpaps import LPAPS
from specvqgan.modules.discriminator import (NLayerDiscriminator, NLayerDiscriminator1dFeats,
                                             NLayerDiscriminator1dSpecs, weights_init)

logger = logging.getLogger(__name__)


class DummyLoss(nn.Module):
    """Placeholder loss of a first stage that is only used for encoding/decoding (no parameters)."""

    def forward(self, *args, **kwargs):
        raise RuntimeError('DummyLoss is a placeholder (lossconfig of a frozen first stage); it cannot be '
                           'used to train a codebook: use VQLPAPSWithDiscriminator')


def _cached_vggishish(perceptual_weight: float, stats: str | None) -> tuple[str, str]:
    """The authors' VGGish-ish (``vggishish16`` release) from the download cache, as the reference LPAPS
    used when no checkpoint is configured (it downloaded it; nothing is downloaded here)."""
    from specvqgan.download import local_path
    from specvqgan.releases import find_release

    try:
        ckpt = local_path("vggishish16")
    except FileNotFoundError as err:
        raise ConfigError(
            f'VQLPAPSWithDiscriminator: perceptual_weight={perceptual_weight} needs perceptual_ckpt, a local '
            'VGGish-ish classifier / LPAPS / codebook checkpoint (LPAPS weights are never downloaded). '
            'To train without the perceptual loss, set perceptual_weight: 0 explicitly. The reference\'s '
            f'VGGish-ish is not cached either ({err})') from None
    if stats is None:
        stats = next(ckpt.parent / Path(r.dest).name for r in find_release("vggishish16").files
                     if r.dest.endswith(".txt"))
    logger.info('VQLPAPSWithDiscriminator: no perceptual_ckpt given; using the cached vggishish16 release %s', ckpt)
    return str(ckpt), str(stats)


class VQLPAPSWithDiscriminator(nn.Module):
    """L1 + LPAPS + codebook + adaptive-weight PatchGAN loss.

    Args (reference names and defaults; the paper codebooks use disc_start 2001, disc_weight 0.8,
    disc_in_channels 1, min/max_adapt_weight 1.0, perceptual_weight 1.0):
        disc_start: global step at which the GAN terms switch on (both losses are 0 before).
        codebook_weight: weight of the codebook + commitment loss.
        pixelloss_weight: kept for config compatibility; the reference does not use it.
        disc_num_layers, disc_in_channels, disc_ndf, use_actnorm: PatchGAN layout.
        disc_factor: GAN weight after `disc_start`.
        disc_weight: multiplies the adaptive weight.
        perceptual_weight: LPAPS weight. > 0 requires `perceptual_ckpt`; 0 must be set explicitly to train
            without LPAPS (its module then keeps random frozen weights, is never called, and exists only so
            the state dict has the reference `perceptual_loss.*` keys).
        disc_conditional: the discriminator also sees `cond` (concatenated on channels).
        disc_loss: 'hinge' or 'vanilla'.
        min_adapt_weight, max_adapt_weight: clamp of the adaptive weight before `disc_weight`.
        perceptual_ckpt: local VGGish-ish classifier / LPAPS / codebook checkpoint (e.g. the authors'
            codebook `.ckpt` itself, whose `loss.perceptual_loss.*` it reads); never downloaded.
        perceptual_stats: 80x2 mel stats text file, for a checkpoint without stats (reference vggishish16.pt).
    """

    def __init__(self, disc_start: int, codebook_weight: float = 1.0, pixelloss_weight: float = 1.0,
                 disc_num_layers: int = 3, disc_in_channels: int = 3, disc_factor: float = 1.0,
                 disc_weight: float = 1.0, perceptual_weight: float = 1.0, use_actnorm: bool = False,
                 disc_conditional: bool = False, disc_ndf: int = 64, disc_loss: str = 'hinge',
                 min_adapt_weight: float = 0.0, max_adapt_weight: float = 1e4,
                 perceptual_ckpt: str | None = None, perceptual_stats: str | None = None):
        super().__init__()
        if disc_loss not in D_LOSSES:
            raise ValueError(f"disc_loss must be one of {sorted(D_LOSSES)}, got {disc_loss!r}")
        if perceptual_weight > 0 and perceptual_ckpt is None:
            perceptual_ckpt, perceptual_stats = _cached_vggishish(perceptual_weight, perceptual_stats)
        self.codebook_weight = codebook_weight
        self.pixel_weight = pixelloss_weight
        self.perceptual_loss = LPAPS(ckpt_path=perceptual_ckpt, stats_path=perceptual_stats)
        self.perceptual_weight = perceptual_weight
        self.discriminator = NLayerDiscriminator(input_nc=disc_in_channels, n_layers=disc_num_layers,
                                                 use_actnorm=use_actnorm, ndf=disc_ndf).apply(weights_init)
        self.discriminator_iter_start = disc_start
        self.disc_loss_name = disc_loss
        self.disc_loss = D_LOSSES[disc_loss]
        self.disc_factor = disc_factor
        self.discriminator_weight = disc_weight
        self.disc_conditional = disc_conditional
        self.min_adapt_weight = min_adapt_weight
        self.max_adapt_weight = max_adapt_weight
        logger.info('VQLPAPSWithDiscriminator: %s loss, GAN from step %d, perceptual weight %g%s', disc_loss,
                    disc_start, perceptual_weight, '' if perceptual_ckpt is None else f' ({perceptual_ckpt})')

    def calculate_adaptive_weight(self, nll_loss: torch.Tensor, g_loss: torch.Tensor,
                                  last_layer: torch.Tensor) -> torch.Tensor:
        """`disc_weight * clamp(|grad nll| / (|grad g| + 1e-4))`, grads w.r.t. `last_layer` (detached scalar)."""
        nll_grads = torch.autograd.grad(nll_loss, last_layer, retain_graph=True)[0]
        g_grads = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
        d_weight = torch.norm(nll_grads) / (torch.norm(g_grads) + 1e-4)
        d_weight = torch.clamp(d_weight, self.min_adapt_weight, self.max_adapt_weight).detach()
        return d_weight * self.discriminator_weight

    def _discriminate(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        if (cond is not None) != self.disc_conditional:
            raise ValueError(f'disc_conditional={self.disc_conditional} but cond is '
                             f'{"given" if cond is not None else "None"}')
        x = x if cond is None else torch.cat((x, cond), dim=1)
        with fp32_under_fp16(x) as full:
            return self.discriminator(x.float() if full else x)

    def forward(self, codebook_loss: torch.Tensor, inputs: torch.Tensor, reconstructions: torch.Tensor,
                optimizer_idx: int, global_step: int, last_layer: torch.Tensor | None = None,
                cond: torch.Tensor | None = None, split: str = 'train') -> tuple[torch.Tensor, dict]:
        """inputs, reconstructions (Tensor): (B, C, F, T); codebook_loss: scalar or (B,).

        optimizer_idx 0 -> (generator loss, logs); 1 -> (discriminator loss, logs). `last_layer` is the
        decoder's last weight (`decoder.conv_out.weight`); without it, or without autograd (validation),
        the adaptive weight is 0 (allowed only in eval mode).
        """
        inputs, reconstructions = inputs.contiguous(), reconstructions.contiguous()
        disc_factor = adopt_weight(self.disc_factor, global_step, threshold=self.discriminator_iter_start)
        if optimizer_idx == 0:
            rec_loss = torch.abs(inputs - reconstructions)
            if self.perceptual_weight > 0:
                with fp32_under_fp16(reconstructions) as full:
                    p_loss = (self.perceptual_loss(inputs.float(), reconstructions.float()) if full
                              else self.perceptual_loss(inputs, reconstructions))
                rec_loss = rec_loss + self.perceptual_weight * p_loss
            else:
                p_loss = torch.zeros(1, device=inputs.device)
            nll_loss = torch.mean(rec_loss)
            g_loss = generator_loss(self._discriminate(reconstructions, cond))
            can_grad = last_layer is not None and torch.is_grad_enabled() and g_loss.requires_grad
            if can_grad:
                d_weight = self.calculate_adaptive_weight(nll_loss, g_loss, last_layer)
            elif self.training:
                raise RuntimeError('the adaptive GAN weight needs last_layer (the decoder last weight) and autograd')
            else:
                d_weight = torch.zeros((), device=inputs.device)
            loss = nll_loss + d_weight * disc_factor * g_loss + self.codebook_weight * codebook_loss.mean()
            log = {f'{split}/total_loss': loss.clone().detach().mean(),
                   f'{split}/quant_loss': codebook_loss.detach().mean(),
                   f'{split}/nll_loss': nll_loss.detach().mean(),
                   f'{split}/rec_loss': rec_loss.detach().mean(),
                   f'{split}/p_loss': p_loss.detach().mean(),
                   f'{split}/d_weight': d_weight.detach(),
                   f'{split}/disc_factor': torch.tensor(float(disc_factor)),
                   f'{split}/g_loss': g_loss.detach().mean()}
            return loss, log
        if optimizer_idx == 1:
            logits_real = self._discriminate(inputs.detach(), cond)
            logits_fake = self._discriminate(reconstructions.detach(), cond)
            d_loss = disc_factor * self.disc_loss(logits_real, logits_fake)
            log = {f'{split}/disc_loss': d_loss.clone().detach().mean(),
                   f'{split}/logits_real': logits_real.detach().mean(),
                   f'{split}/logits_fake': logits_fake.detach().mean()}
            return d_loss, log
        raise ValueError(f'optimizer_idx must be 0 (generator) or 1 (discriminator), got {optimizer_idx}')


class VQLPAPSWithDiscriminator1dSpecs(VQLPAPSWithDiscriminator):
    """The loss of a 1-D spectrogram codebook (``VQModel1d`` with ``image_key: image``): as
    :class:`VQLPAPSWithDiscriminator` (same arguments) with a 1-D PatchGAN over the mel bins
    (:class:`~specvqgan.modules.discriminator.NLayerDiscriminator1dSpecs`, ``disc_in_channels`` = mel bins).
    Inputs (B, 1, F, T)."""

    def __init__(self, disc_start: int, **kwargs):
        super().__init__(disc_start, **kwargs)
        self.discriminator = NLayerDiscriminator1dSpecs(
            input_nc=kwargs.get('disc_in_channels', 3), n_layers=kwargs.get('disc_num_layers', 3),
            use_actnorm=kwargs.get('use_actnorm', False), ndf=kwargs.get('disc_ndf', 64)).apply(weights_init)


class VQLPAPSWithDiscriminator1dFeats(VQLPAPSWithDiscriminator):
    """The loss of a 1-D visual-feature codebook (``VQModel1d`` with ``image_key: feature``): L1 +
    codebook + a 1-D PatchGAN over feature sequences
    (:class:`~specvqgan.modules.discriminator.NLayerDiscriminator1dFeats`, ``disc_in_channels`` = feature
    dims). LPAPS is a spectrogram loss, so ``perceptual_weight`` defaults to 0 and must stay 0.
    Inputs (B, D, L)."""

    def __init__(self, disc_start: int, perceptual_weight: float = 0.0, **kwargs):
        if perceptual_weight > 0:
            raise ValueError('VQLPAPSWithDiscriminator1dFeats: perceptual_weight must be 0 (LPAPS compares '
                             f'spectrograms, not visual features); got {perceptual_weight}')
        super().__init__(disc_start, perceptual_weight=0.0, **kwargs)
        self.discriminator = NLayerDiscriminator1dFeats(
            input_nc=kwargs.get('disc_in_channels', 3), n_layers=kwargs.get('disc_num_layers', 3),
            use_actnorm=kwargs.get('use_actnorm', False), ndf=kwargs.get('disc_ndf', 64)).apply(weights_init)


# the 1-D losses take exactly the 2-D loss's arguments: expose its signature so configs are checked key by key
for _cls in (VQLPAPSWithDiscriminator1dSpecs, VQLPAPSWithDiscriminator1dFeats):
    _cls.__init__.__signature__ = inspect.signature(VQLPAPSWithDiscriminator.__init__)

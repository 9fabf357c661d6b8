"""Spectrogram VQGAN (the "codebook", paper Sec. 3.1 and 4.1) as a Lightning module.

``VQModel`` keeps the reference's public interface and ``state_dict`` keys (``encoder.*``,
``decoder.*``, ``quantize.embedding.weight``, ``quant_conv.*``, ``post_quant_conv.*`` and the loss'
``loss.*``), so the authors' released checkpoints load with ``strict=True`` and their YAMLs
instantiate unchanged. Training uses manual optimization with two Adam optimizers (betas 0.5, 0.9):
the autoencoder (+ codebook) and the patch discriminator that lives inside the loss module.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from specvqgan.config import instantiate_from_config
from specvqgan.checkpoint import read_state_dict
from specvqgan.models.base import BaseModel
from specvqgan.modules.vqgan.encoder_decoder import Decoder, Decoder1d, Encoder, Encoder1d
from specvqgan.modules.vqgan.quantize import VectorQuantizer, VectorQuantizer1d

log = logging.getLogger(__name__)


class VQModel(BaseModel):
    """Encoder -> 1x1 ``quant_conv`` -> VectorQuantizer -> 1x1 ``post_quant_conv`` -> Decoder.

    Args:
        ddconfig: encoder/decoder arguments (see :class:`~specvqgan.modules.vqgan.encoder_decoder.Encoder`).
        lossconfig: ``{target, params}`` of the training loss (``VQLPIPSWithDiscriminator`` for training,
            ``DummyLoss`` for a frozen first stage); ``None`` builds an inference-only model without loss.
        n_embed: codebook size (128 VAS, 1024 VGGSound), embed_dim: code dimension (256).
        ckpt_path / ignore_keys: initialise from a checkpoint (keys starting with ``ignore_keys`` dropped).
        image_key: batch key of the spectrogram. colorize_nlabels: segmentation only, unsupported here.
        monitor: metric name the reference stored for checkpointing.
        legacy_vq_loss: place ``beta`` as the reference code does (see ``quantize.py``); default: the paper.
        log_media: log input/reconstruction spectrograms and Griffin-Lim audio to TensorBoard at the first
            validation batch of every validation run.
    Shapes: input ``(B, 1, F, T)`` with F, T multiples of 16 -> latent grid ``(B, embed_dim, F/16, T/16)``.
    """

    encoder_cls, decoder_cls, quantizer_cls, conv_cls = Encoder, Decoder, VectorQuantizer, nn.Conv2d

    def __init__(self, ddconfig: Mapping[str, Any], lossconfig: Mapping[str, Any] | None, n_embed: int,
                 embed_dim: int, ckpt_path: str | None = None, ignore_keys: Sequence[str] = (),
                 image_key: str = "image", colorize_nlabels: int | None = None, monitor: str | None = None,
                 legacy_vq_loss: bool = False, log_media: bool = True):
        super().__init__()
        if colorize_nlabels is not None:
            raise ValueError("VQModel: colorize_nlabels is for segmentation maps and is not supported")
        self.image_key = self.first_stage_key = image_key
        self.log_media = log_media
        ddconfig = dict(ddconfig)
        try:
            self.encoder = self.encoder_cls(**ddconfig)
            self.decoder = self.decoder_cls(**ddconfig)
        except TypeError as err:
            raise ValueError(f"VQModel: bad ddconfig {ddconfig}: {err}") from err
        self.loss = instantiate_from_config(lossconfig) if lossconfig is not None else None
        self.quantize = self.quantizer_cls(n_embed, embed_dim, beta=0.25, legacy=legacy_vq_loss)
        self.quant_conv = self.conv_cls(ddconfig["z_channels"], embed_dim, 1)
        self.post_quant_conv = self.conv_cls(embed_dim, ddconfig["z_channels"], 1)
        if monitor is not None:
            self.monitor = monitor
        self.automatic_optimization = False
        self._val_counts: torch.Tensor | None = None
        if ckpt_path is not None:
            self.init_from_ckpt(ckpt_path, ignore_keys=ignore_keys)

    # ------------------------------------------------------------------ checkpoints
    def init_from_ckpt(self, path: str | Path, ignore_keys: Sequence[str] = ()) -> None:
        """Load weights from ``path`` (see :func:`specvqgan.checkpoint.read_state_dict`). Keys starting with
        ``ignore_keys`` are dropped (those weights keep their init), and so are ``loss.*`` keys when this model
        has no loss weights (a training checkpoint loaded into a frozen first stage); any other missing or
        unexpected key is an error (strict)."""
        sd = read_state_dict(path)
        sd = {k: v for k, v in sd.items() if not any(k.startswith(ik) for ik in ignore_keys)}
        own = self.state_dict()
        if not any(k.startswith("loss.") for k in own):
            sd = {k: v for k, v in sd.items() if not k.startswith("loss.")}
        result = self.load_state_dict(sd, strict=False)
        missing = [k for k in result.missing_keys if not any(k.startswith(ik) for ik in ignore_keys)]
        if missing or result.unexpected_keys:
            raise RuntimeError(f"checkpoint {path} does not match this VQModel: missing keys {missing}, "
                               f"unexpected keys {result.unexpected_keys}")
        log.info("Restored VQModel from %s", path)

    # ------------------------------------------------------------------ reference interface
    def encode(self, x: torch.Tensor):
        """``x`` (B, 1, F, T) -> ``(quant (B, E, F/16, T/16), emb_loss (), info)``; ``info`` is the
        quantizer's ``(perplexity, one-hot (N, n_embed), indices (N, 1))``, N = B * F/16 * T/16 row-major."""
        h = self.quant_conv(self.encoder(x))
        return self.quantize(h)

    def decode(self, quant: torch.Tensor) -> torch.Tensor:
        """``quant`` (B, E, F', T') -> reconstruction (B, 1, 16 F', 16 T')."""
        return self.decoder(self.post_quant_conv(quant))

    def decode_code(self, code_b: torch.Tensor) -> torch.Tensor:
        """Reference alias of :meth:`decode_from_indices`."""
        return self.decode(self.quantize.embed_code(code_b))

    def forward(self, input: torch.Tensor):
        """``input`` (B, 1, F, T) -> ``(reconstruction (B, 1, F, T), emb_loss ())``."""
        quant, diff, _ = self.encode(input)
        return self.decode(quant), diff

    def get_input(self, batch: Mapping[str, torch.Tensor], k: str) -> torch.Tensor:
        """``batch[k]`` (B, F, T) (or (B, F, T, C)) -> float (B, C=1, F, T), as the reference."""
        x = batch[k]
        if x.dim() == 3:
            x = x[..., None]
        return x.permute(0, 3, 1, 2).to(memory_format=torch.contiguous_format).float()

    def get_last_layer(self) -> torch.Tensor:
        """Weight of the decoder's output conv (for the loss' adaptive GAN weight)."""
        return self.decoder.conv_out.weight

    # ------------------------------------------------------------------ tokens
    @torch.no_grad()
    def encode_to_indices(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, 1, F, T) -> codebook indices LongTensor (B, F/16, T/16), row-major over the grid."""
        quant, _, info = self.encode(x)
        return info[2].view(quant.shape[0], *quant.shape[2:])

    @torch.no_grad()
    def decode_from_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices (B, F', T') -> reconstruction (B, 1, 16 F', 16 T')."""
        return self.decode(self.quantize.embed_code(indices))

    # ------------------------------------------------------------------ training
    @property
    def batch_step(self) -> int:
        """Training batches seen. Lightning 2 counts every optimizer step in ``global_step`` (two per
        batch here); the loss' ``disc_start`` is in batches, as in the reference (Lightning 1.2)."""
        n_opt = 2 if self._has_discriminator() else 1
        return self.global_step // n_opt

    @property
    def ddp_find_unused_parameters(self) -> bool:
        """Under DDP the autoencoder and discriminator backward passes each leave the other network's
        parameters unused (:func:`specvqgan.distributed.ddp_strategy`)."""
        return self._has_discriminator()

    def _has_discriminator(self) -> bool:
        return self.loss is not None and isinstance(getattr(self.loss, "discriminator", None), nn.Module)

    def _reconstruct(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple]:
        """(x, xrec, qloss, quantizer info) of a training/validation batch (needs the loss)."""
        if self.loss is None:
            raise RuntimeError("VQModel was built with lossconfig=None (inference only); it cannot be trained")
        x = self.get_input(batch, self.image_key)
        quant, qloss, info = self.encode(x)
        return x, self.decode(quant), qloss, info

    def _usage_stats(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        counts = torch.bincount(indices.reshape(-1), minlength=self.quantize.n_e)
        return counts, (counts > 0).float().mean()

    def training_step(self, batch, batch_idx):
        x, xrec, qloss, info = self._reconstruct(batch)
        step = self.batch_step
        opts = self.optimizers()
        opt_ae, opt_disc = (opts[0], opts[1]) if isinstance(opts, (list, tuple)) else (opts, None)

        self.toggle_optimizer(opt_ae)
        aeloss, log_ae = self.loss(qloss, x, xrec, 0, step, last_layer=self.get_last_layer(), split="train")
        opt_ae.zero_grad()
        self.manual_backward(aeloss)
        opt_ae.step()
        self.untoggle_optimizer(opt_ae)
        bs = x.shape[0]
        self.log("train/aeloss", aeloss.detach(), prog_bar=True, on_step=True, on_epoch=True, batch_size=bs)
        self.log_dict(_detach(log_ae, skip="train/aeloss"), on_step=True, on_epoch=True, batch_size=bs)

        if opt_disc is not None:
            self.toggle_optimizer(opt_disc)
            discloss, log_disc = self.loss(qloss.detach(), x, xrec.detach(), 1, step,
                                           last_layer=self.get_last_layer(), split="train")
            opt_disc.zero_grad()
            self.manual_backward(discloss)
            opt_disc.step()
            self.untoggle_optimizer(opt_disc)
            self.log("train/disc_loss", discloss.detach(), prog_bar=True, on_step=True, on_epoch=True, batch_size=bs)
            self.log_dict(_detach(log_disc, skip="train/disc_loss"), on_step=True, on_epoch=True, batch_size=bs)

        _, usage = self._usage_stats(info[2])
        self.log("train/perplexity", info[0].detach(), on_step=True, on_epoch=True, batch_size=bs)
        self.log("train/code_usage", usage, on_step=True, on_epoch=True, batch_size=bs)
        return aeloss.detach()

    def on_validation_epoch_start(self) -> None:
        self._val_counts = torch.zeros(self.quantize.n_e, dtype=torch.long, device=self.device)

    def validation_step(self, batch, batch_idx):
        x, xrec, qloss, info = self._reconstruct(batch)
        step = self.batch_step
        aeloss, log_ae = self.loss(qloss, x, xrec, 0, step, last_layer=self.get_last_layer(), split="val")
        bs = x.shape[0]
        self.log("val/rec_loss", log_ae["val/rec_loss"], prog_bar=True, on_epoch=True, sync_dist=True, batch_size=bs)
        self.log("val/aeloss", aeloss, prog_bar=True, on_epoch=True, sync_dist=True, batch_size=bs)
        self.log_dict({k: v for k, v in log_ae.items() if k not in ("val/rec_loss", "val/aeloss")}, on_epoch=True,
                      sync_dist=True, batch_size=bs)
        if self._has_discriminator():
            _, log_disc = self.loss(qloss, x, xrec, 1, step, last_layer=self.get_last_layer(), split="val")
            self.log_dict(log_disc, on_epoch=True, sync_dist=True, batch_size=bs)
        counts, _ = self._usage_stats(info[2])
        if self._val_counts is None:
            self.on_validation_epoch_start()
        self._val_counts += counts
        if batch_idx == 0 and self.log_media and not self.trainer.sanity_checking:
            self._log_media(x, xrec)
        return aeloss

    def on_validation_epoch_end(self) -> None:
        counts = self._val_counts
        if counts is None or counts.sum() == 0:
            return
        counts = self.all_gather(counts).reshape(-1, counts.numel()).sum(0)
        p = counts.float() / counts.sum()
        self.log("val/perplexity", torch.exp(-(p * torch.log(p + 1e-10)).sum()))
        self.log("val/code_usage", (counts > 0).float().mean())
        experiment = getattr(self.logger, "experiment", None) if self.trainer.is_global_zero else None
        if hasattr(experiment, "add_histogram") and not self.trainer.sanity_checking:
            codes = torch.repeat_interleave(torch.arange(counts.numel()), counts.cpu())
            experiment.add_histogram("val/code_hits", codes, self.global_step)
        self._val_counts = None

    def configure_optimizers(self):
        lr = self.scaled_lr()
        ae_params = [p for m in (self.encoder, self.decoder, self.quantize, self.quant_conv, self.post_quant_conv)
                     for p in m.parameters()]
        opt_ae = torch.optim.Adam(ae_params, lr=lr, betas=(0.5, 0.9))
        if not self._has_discriminator():
            return opt_ae
        opt_disc = torch.optim.Adam(self.loss.discriminator.parameters(), lr=lr, betas=(0.5, 0.9))
        return [opt_ae, opt_disc]

    # ------------------------------------------------------------------ media logging
    @torch.no_grad()
    def log_images(self, batch, **kwargs) -> dict[str, torch.Tensor]:
        """Reference interface for image loggers: ``{'inputs', 'reconstructions'}`` each (B, 1, F, T)."""
        x = self.get_input(batch, self.image_key).to(self.device)
        xrec, _ = self(x)
        return {"inputs": x, "reconstructions": xrec}

    @torch.no_grad()
    def _log_media(self, x: torch.Tensor, xrec: torch.Tensor, n: int = 2) -> None:
        """Spectrogram images (low frequencies at the bottom) and Griffin-Lim audio to TensorBoard."""
        if not self.trainer.is_global_zero:
            return
        from specvqgan.media_logging import log_mels
        log_mels(getattr(self.logger, "experiment", None), {"inputs": x, "reconstructions": xrec},
                 self.global_step, max_images=n)


def _detach(d: Mapping[str, Any], skip: str = "") -> dict[str, Any]:
    """Loss logs without ``skip`` (logged on its own), detached."""
    return {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in d.items() if k != skip}


class VQModel1d(VQModel):
    """1D variant (reference ``VQModel1d``): 1D convs over time with the mel bins (or feature dims) as
    channels. ``image_key='feature'``: batch (B, L, D) -> (B, D, L); ``image_key='image'``: (B, F, T) is
    encoded as a sequence (B, F, T) and reconstructions come back as (B, 1, F, T)."""

    encoder_cls, decoder_cls, quantizer_cls, conv_cls = Encoder1d, Decoder1d, VectorQuantizer1d, nn.Conv1d

    def __init__(self, ddconfig, lossconfig, n_embed: int, embed_dim: int, ckpt_path: str | None = None,
                 ignore_keys: Sequence[str] = (), image_key: str = "feature", colorize_nlabels: int | None = None,
                 monitor: str | None = None, legacy_vq_loss: bool = False, log_media: bool = False):
        super().__init__(ddconfig, lossconfig, n_embed, embed_dim, ckpt_path=ckpt_path, ignore_keys=ignore_keys,
                         image_key=image_key, colorize_nlabels=colorize_nlabels, monitor=monitor,
                         legacy_vq_loss=legacy_vq_loss, log_media=log_media)

    def get_input(self, batch, k):
        x = batch[k]
        x = x.permute(0, 2, 1) if self.image_key == "feature" else x.unsqueeze(1)
        return x.to(memory_format=torch.contiguous_format).float()

    def encode(self, x):
        if self.image_key == "image" and x.dim() == 4:
            x = x.squeeze(1)
        return super().encode(x)

    def decode(self, quant):
        dec = super().decode(quant)
        return dec.unsqueeze(1) if self.image_key == "image" else dec

    def _log_media(self, x, xrec, n: int = 2) -> None:
        if self.image_key == "image":
            super()._log_media(x, xrec, n)

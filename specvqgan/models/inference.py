"""What sampling a transformer uses, without Lightning: the inference methods written once, and the plain model.

* :class:`TokenSampling`: the inference methods of a transformer (condition input, token generation with
  the KV cache, tokens -> mel through the codebook's decoder). The training model
  :class:`~specvqgan.models.cond_transformer.Net2NetTransformer` (a LightningModule) and :class:`InferenceModel`
  both take them from here.
* :class:`CodebookDecoder`: the codebook's inference half (``quantize``, ``post_quant_conv``, ``decoder``, the
  state-dict keys of :class:`~specvqgan.models.vqgan.VQModel`): no encoder, loss or discriminator.
* :class:`InferenceModel`: GPT (or its prepared :class:`~specvqgan.modules.transformer.fast_decode.FastGPT`
  copy) + codebook decoder + condition stage + permuters, as plain ``nn.Module`` s; what an inference bundle
  (:mod:`specvqgan.export`) builds. Importing this module does not import Lightning.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from specvqgan.modules.transformer.decoder import IncrementalDecoder
from specvqgan.modules.transformer.mingpt import GPTClass, GPTFeats, GPTFeatsClass
from specvqgan.sampling import Seed, sample_long, sample_tokens

_PREFIX_GPTS = (GPTFeats, GPTClass, GPTFeatsClass)


class TokenSampling:
    """Inference methods of a conditioned transformer (reference names and signatures).

    The class using it provides ``transformer`` (a GPT or its FastGPT copy), ``first_stage_model`` (with
    ``quantize`` and ``decode``), ``cond_stage_model``, ``first_stage_permuter``, ``cond_stage_permuter``,
    ``cond_stage_key``, ``downsample_cond_size``, ``shape`` (:class:`specvqgan.shapes.SequenceShape`, None
    without a latent grid) and ``encode_to_z`` (priming only).
    """

    @property
    def has_prefix_gpt(self) -> bool:
        """The GPT takes the condition as a prefix of embeddings (features and/or class), not as tokens."""
        return isinstance(getattr(self.transformer, 'gpt', self.transformer), _PREFIX_GPTS)

    def get_input(self, key: Any, batch: dict):
        """Batch -> model input: mel (B, 1, F, T) for 'image', the condition stage's input otherwise."""
        if isinstance(key, str):
            if key in ('feature', 'target'):
                x = self.cond_stage_model.get_input(batch, key)
            else:
                if key not in batch:
                    raise KeyError(f'batch has no {key!r} (keys: {sorted(batch)})')
                x = batch[key]
                if x.dim() == 3:
                    x = x[..., None]
                x = x.permute(0, 3, 1, 2).to(memory_format=torch.contiguous_format)
            return x.float() if x.dtype == torch.double else x
        x = self.cond_stage_model.get_input(batch, list(key))
        return {k: (v.float() if v.dtype == torch.double else v) for k, v in x.items()}

    @torch.no_grad()
    def encode_to_c(self, c: Any):
        """Condition -> (quant_c, c_indices); for feature/class GPTs the condition passes through."""
        if self.downsample_cond_size > -1:
            c = F.interpolate(c, size=(self.downsample_cond_size, self.downsample_cond_size))
        quant_c, _, info = self.cond_stage_model.encode(c)
        if self.has_prefix_gpt:
            return quant_c, info[2]
        indices = info[2].view(quant_c.shape[0], -1)
        return quant_c, self.cond_stage_permuter(indices)

    @torch.no_grad()
    def decode_to_img(self, index: torch.Tensor, zshape, stage: str = 'first') -> torch.Tensor:
        """Column-major indices (B, L) -> mel (B, 1, F, T); ``zshape`` = (B, E, H, W) of the grid
        (W may be a multiple of the trained width: long samples)."""
        if stage != 'first':
            raise NotImplementedError(f'decode_to_img: stage {stage!r} (only the first stage decodes)')
        index = self.first_stage_permuter(index, reverse=True)
        bhwc = (zshape[0], zshape[2], zshape[3], zshape[1])
        quant_z = self.first_stage_model.quantize.get_codebook_entry(index.reshape(-1), shape=bhwc)
        return self.first_stage_model.decode(quant_z)

    @torch.no_grad()
    def generate(self, c: Any, *, num_samples: int = 1, total_cols: Optional[int] = None,
                 x: Optional[torch.Tensor] = None, prime_cols: int = 0, temperature: float = 1.0,
                 top_k: Optional[int] = None, top_p: Optional[float] = None, greedy: bool = False,
                 seed: Seed = None, window_hop: int = 1, gpt: Optional[IncrementalDecoder] = None,
                 progress: bool = False, guidance_scale: float = 1.0, decode: bool = True):
        """Condition -> (tokens (B*n, H*total_cols), mel (B*n, 1, 80, 16*total_cols) in [-1, 1]).

        Args:
            c: the condition batch (as ``get_input`` returns it). num_samples: samples per condition.
            total_cols: latent columns to generate (default: the trained width W; more -> sliding window,
                e.g. ``3 * W`` for 3x the trained length). x / prime_cols: prime with the first
                ``prime_cols`` columns of the mel x (B, 1, 80, T). gpt: an inference copy from
                :func:`specvqgan.sampling.prepare_gpt` (bf16/int8), default ``self.transformer``.
            seed: per-row seeded sampling: an int, or one seed per output row (:func:`specvqgan.sampling.row_seeds`).
            guidance_scale: classifier-free guidance scale (1: off; > 1 needs ``p_uncond > 0`` in training).
            decode: False -> (tokens, None): the caller decodes (:meth:`decode_to_img`, e.g. in bf16).
            Other arguments: see :func:`specvqgan.sampling.sample_tokens` / ``sample_long``.
        """
        if self.shape is None:
            raise ValueError('generate() needs a ColumnMajor first-stage permuter (a latent grid H x W)')
        H, W = self.shape.latent_rows, self.shape.latent_cols
        total_cols = total_cols or W
        gpt = (gpt or self.transformer).eval()
        cond = c if self.has_prefix_gpt else self.encode_to_c(c)[1]
        prefix = None
        if prime_cols:
            if x is None:
                raise ValueError('prime_cols > 0 needs the mel x to take the first columns from')
            prefix = self.encode_to_z(x)[1][:, :prime_cols * H]
        kw = dict(prefix=prefix, num_samples=num_samples, temperature=temperature, top_k=top_k, top_p=top_p,
                  greedy=greedy, seed=seed, progress=progress, guidance_scale=guidance_scale)
        if total_cols == W:
            tokens = sample_tokens(gpt, cond, H * W - (0 if prefix is None else prefix.shape[1]), **kw)
        else:
            tokens = sample_long(gpt, cond, H=H, W=W, total_cols=total_cols, window_hop=window_hop, **kw)
        if not decode:
            return tokens, None
        e_dim = self.first_stage_model.quantize.embedding.weight.shape[1]
        mel = self.decode_to_img(tokens, (tokens.shape[0], e_dim, H, total_cols))
        return tokens, mel


class CodebookDecoder(nn.Module):
    """Codebook entries -> mel: ``quantize`` (the codebook), 1x1 ``post_quant_conv``, ``decoder``.

    Args: as :class:`~specvqgan.models.vqgan.VQModel` (``ddconfig``, ``n_embed``, ``embed_dim``); ``one_d``: the
    1-d variant (``VQModel1d``). State-dict keys are VQModel's for these three parts.
    """

    def __init__(self, ddconfig: dict, n_embed: int, embed_dim: int, one_d: bool = False):
        super().__init__()
        from specvqgan.modules.vqgan.encoder_decoder import Decoder, Decoder1d
        from specvqgan.modules.vqgan.quantize import VectorQuantizer, VectorQuantizer1d

        self.quantize = (VectorQuantizer1d if one_d else VectorQuantizer)(n_embed, embed_dim, beta=0.25)
        self.post_quant_conv = (nn.Conv1d if one_d else nn.Conv2d)(embed_dim, ddconfig['z_channels'], 1)
        self.decoder = (Decoder1d if one_d else Decoder)(**ddconfig)

    def decode(self, quant: torch.Tensor) -> torch.Tensor:
        """``quant`` (B, E, F', T') -> mel (B, 1, 16 F', 16 T')."""
        return self.decoder(self.post_quant_conv(quant))


class InferenceModel(TokenSampling, nn.Module):
    """A transformer for sampling only (built by :func:`specvqgan.export.load_bundle`).

    Attributes: ``transformer`` (GPT, or a FastGPT for ``precision`` 'int8' / 'bf16'), ``first_stage_model``
    (:class:`CodebookDecoder`), ``cond_stage_model``, ``first_stage_permuter``, ``cond_stage_permuter``,
    ``cond_stage_key``, ``shape`` (:class:`specvqgan.shapes.SequenceShape`), ``precision``.
    """

    downsample_cond_size = -1

    def __init__(self, transformer: nn.Module, first_stage_model: CodebookDecoder, cond_stage_model: Any,
                 first_stage_permuter: nn.Module, cond_stage_permuter: nn.Module, cond_stage_key: Any,
                 shape: Any, precision: str = 'fp32'):
        super().__init__()
        self.transformer, self.first_stage_model = transformer, first_stage_model
        self.cond_stage_model, self.cond_stage_key = cond_stage_model, cond_stage_key
        self.first_stage_permuter, self.cond_stage_permuter = first_stage_permuter, cond_stage_permuter
        self.shape, self.precision = shape, precision

    def encode_to_z(self, x: torch.Tensor):
        raise NotImplementedError('an inference bundle has no codebook encoder: priming with a mel needs the '
                                  'transformer checkpoint')

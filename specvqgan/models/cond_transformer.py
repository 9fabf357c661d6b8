"""Net2NetTransformer: the visually conditioned GPT over codebook tokens (paper Sec. 3.2, 4.2).

A frozen first stage (the spectrogram codebook, :class:`~specvqgan.models.vqgan.VQModel`) turns a
mel (B, 1, 80, T) into a (5, T/16) grid of indices; the permuter orders them column-major; the GPT
learns p(token_i | tokens_<i, condition) with cross-entropy. Public methods, signatures and
``state_dict`` keys follow the reference (``forward``, ``sample``, ``encode_to_z``, ``encode_to_c``,
``decode_to_img``, ``get_input``, ``get_xc``, ``log_images``; the inference ones come from
:class:`specvqgan.models.inference.TokenSampling`) except the GPT's causal-mask buffers
(see :mod:`specvqgan.modules.transformer.mingpt`); sampling goes through the KV cache of
:mod:`specvqgan.sampling`.

Sizes are derived, not typed: ``model.shape`` (:class:`specvqgan.shapes.SequenceShape`, None without a
ColumnMajor permuter) is the one source of the latent grid (H x W), the condition length and the block
size; when ``GPT_config.block_size`` is absent it is ``shape.block_size``, and a ColumnMajor permuter
without H/W takes the codebook's grid (80 mel bins / 16, ``ddconfig.resolution`` / 16); see
:mod:`specvqgan.models.transformer_sizes`.
"""
from __future__ import annotations

import hashlib

import logging
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from specvqgan.config import instantiate_from_config
from specvqgan.models.base import BaseModel
from specvqgan.models.transformer_sizes import (derive_permuter_config, derive_transformer_config, model_shape,
                                                plain_config)
from specvqgan.modules.conditioning import cond_slice, cond_to
from specvqgan.models.inference import TokenSampling
from specvqgan.sampling import sample_tokens

log = logging.getLogger(__name__)

class Net2NetTransformer(TokenSampling, BaseModel):
    """Frozen codebook + condition stage + GPT, trained with next-token cross-entropy.

    Args (reference names):
        transformer_config: ``{target: GPTFeats|GPTClass|GPTFeatsClass|GPT, params}``.
        first_stage_config: the codebook ``VQModel`` block (its ``ckpt_path`` loads the trained codebook).
        cond_stage_config: RawFeatsStage / ClassOnlyStage / FeatsClassStage.
        first_stage_permuter_config / cond_stage_permuter_config: token orders (default Identity).
        ckpt_path / ignore_keys: initialise the whole model from a checkpoint.
        first_stage_key: batch key of the mel ('image'); cond_stage_key: 'feature', 'target' or a list.
        downsample_cond_size: reference option for image conditions (-1: off).
        pkeep: probability to keep a ground-truth input token (1.0: always; the reference applied it
            only to the plain GPT, here it applies to every variant).
        p_uncond: condition dropout for classifier-free guidance (docs/guidance.md): the probability that
            a training example's condition is replaced by the GPT's learned null embedding (0: off, the
            reference model and state dict; > 0 adds ``transformer.null_cond``). Same as
            ``GPT_config.p_uncond``.
        log_media: sample and log spectrograms + Griffin-Lim audio at the first validation batch.
        log_num_samples / log_top_k / log_temperature: items and sampling options for those logs.
        code_cache_size: remember the frozen codebook's tokens of up to this many distinct mels (keyed by
            their bytes) so training does not re-encode the same crop every epoch (0: off, the reference
            behaviour). Pays when crops repeat (centre crops, the toy data); exact (the codebook is frozen).
    """

    def __init__(self, transformer_config, first_stage_config, cond_stage_config,
                 first_stage_permuter_config=None, cond_stage_permuter_config=None,
                 ckpt_path: Optional[str] = None, ignore_keys: Sequence[str] = (),
                 first_stage_key: str = 'image', cond_stage_key: Any = 'depth',
                 downsample_cond_size: int = -1, pkeep: float = 1.0, log_media: bool = True,
                 log_num_samples: int = 2, log_top_k: Optional[int] = 100, log_temperature: float = 1.0,
                 code_cache_size: int = 0, p_uncond: float = 0.0):
        super().__init__()
        if code_cache_size < 0:
            raise ValueError(f'code_cache_size must be >= 0, got {code_cache_size}')
        self.code_cache_size = code_cache_size
        self._code_cache: dict[bytes, torch.Tensor] = {}
        self.init_first_stage_from_ckpt(first_stage_config)
        self.init_cond_stage_from_ckpt(cond_stage_config)
        # the token layout (grid, condition, block size): the one source every consumer reads
        self.shape = model_shape(first_stage_permuter_config, first_stage_config, self.cond_stage_model)
        perm_cfg = derive_permuter_config(first_stage_permuter_config, first_stage_config)
        self.first_stage_permuter = instantiate_from_config(OmegaConf.create(perm_cfg))
        cond_perm_cfg = derive_permuter_config(cond_stage_permuter_config, first_stage_config)
        self.cond_stage_permuter = instantiate_from_config(OmegaConf.create(cond_perm_cfg))
        n_tokens, cond_len = ((None, getattr(self.cond_stage_model, 'cond_len', None)) if self.shape is None
                              else (self.shape.n_tokens, self.shape.n_cond))
        gpt_cfg = derive_transformer_config(transformer_config, n_tokens, cond_len, p_uncond)
        self.transformer = instantiate_from_config(OmegaConf.create(gpt_cfg))
        # the derived {target, params} blocks (sizes filled in) an inference bundle stores (specvqgan.export)
        self.derived_configs = {'transformer': gpt_cfg, 'first_stage_permuter': perm_cfg,
                                'cond_stage_permuter': cond_perm_cfg, 'cond_stage': plain_config(cond_stage_config),
                                'first_stage': plain_config(first_stage_config)}
        self.first_stage_key = first_stage_key
        self.cond_stage_key = cond_stage_key
        self.downsample_cond_size = downsample_cond_size
        self.pkeep = pkeep
        self.log_media, self.log_num_samples = log_media, log_num_samples
        self.log_top_k, self.log_temperature = log_top_k, log_temperature
        if ckpt_path is not None:
            self.init_from_ckpt(ckpt_path, ignore_keys=ignore_keys)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_checkpoint(cls, path: str, trust: bool = False) -> 'Net2NetTransformer':
        """Rebuild from a checkpoint (``train.py`` ``.ckpt``, an exported ``.pt`` or the authors' run
        layout) in eval mode, strictly. The codebook weights come from the checkpoint itself, so the
        first stage's ``ckpt_path`` recorded in the config is not needed (it may no longer exist).
        ``trust``: read the file with ``weights_only=False`` (see :func:`specvqgan.checkpoint.read`)."""
        from specvqgan.checkpoint import CheckpointError, instantiate_loaded, model_config, read
        ckpt = read(path, trust=trust, mmap=True)       # the weights stay on disk until used
        config = OmegaConf.create(model_config(ckpt, path))
        if 'first_stage_config' not in (config.get('params') or {}):
            raise CheckpointError(f'checkpoint {path} is not a Net2NetTransformer (model {config.target})')
        config.params.first_stage_config.params.ckpt_path = None
        config.params.ckpt_path = None
        return instantiate_loaded(config, ckpt['state_dict'], path).eval()

    def init_from_ckpt(self, path: str, ignore_keys: Sequence[str] = ()) -> None:
        """Load a Lightning/exported checkpoint; keys starting with ``ignore_keys`` are skipped and
        must be the only missing ones (no silent partial loads)."""
        from specvqgan.checkpoint import read_state_dict
        sd = read_state_dict(path)
        sd = {k: v for k, v in sd.items() if not any(k.startswith(ik) for ik in ignore_keys)}
        missing, unexpected = self.load_state_dict(sd, strict=False)
        missing = [k for k in missing if not any(k.startswith(ik) for ik in ignore_keys)]
        if missing or unexpected:
            raise RuntimeError(f'checkpoint {path} does not match Net2NetTransformer: missing {missing[:5]}, '
                               f'unexpected {unexpected[:5]}')
        log.info('Restored Net2NetTransformer from %s', path)

    def init_first_stage_from_ckpt(self, config) -> None:
        """Build the codebook (its own ``ckpt_path`` loads it) and freeze it."""
        model = instantiate_from_config(config).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        self.first_stage_model = model

    def init_cond_stage_from_ckpt(self, config) -> None:
        self.cond_stage_model = instantiate_from_config(config).eval()

    def train(self, mode: bool = True):
        """Train the GPT only: the first stage stays in eval mode (reference ``disabled_train``)."""
        super().train(mode)
        self.first_stage_model.eval()
        return self

    # ------------------------------------------------------------------ reference interface
    def forward(self, x: torch.Tensor, c: Any):
        """x: mel (B, 1, F, T); c: condition. Returns (logits (B, n_tokens, V), target (B, n_tokens)):
        output i is p(z_i | z_<i, c)."""
        z_indices = self._codes(x)
        _, c_indices = self.encode_to_c(c)
        a_indices = z_indices
        if self.training and self.pkeep < 1.0:
            mask = torch.bernoulli(self.pkeep * torch.ones_like(z_indices, dtype=torch.float)).long()
            a_indices = mask * z_indices + (1 - mask) * torch.randint_like(z_indices, self.transformer.config.vocab_size)
        if self.has_prefix_gpt:
            logits, _, _ = self.transformer(a_indices[:, :-1], c)
            cond_size = self.transformer.cond_length(c)
        elif self.transformer.p_uncond > 0:  # plain GPT with condition dropout: the indices as a prefix
            logits, _, _ = self.transformer(a_indices[:, :-1], self.transformer.training_condition(c_indices))
            cond_size = c_indices.shape[1]
        else:
            logits, _, _ = self.transformer(torch.cat((c_indices, a_indices), dim=1)[:, :-1])
            cond_size = c_indices.shape[1]
        return logits[:, cond_size - 1:], z_indices

    @staticmethod
    def top_k_logits(logits: torch.Tensor, k: int) -> torch.Tensor:
        from specvqgan.sampling import filter_logits
        return filter_logits(logits, top_k=k)

    @torch.no_grad()
    def sample(self, x, c, steps, temperature=1.0, sample=False, top_k=None, callback=lambda k: None,
               top_p=None, num_samples=1, seed=None, progress=False, guidance_scale=1.0):
        """Continue the tokens x (B, P) for ``steps`` tokens given the condition c (KV-cached).

        As the reference: ``sample=False`` is greedy; returns (tokens (B, P+steps), attention), the
        attention being the last layer's attention row of the final step's query (B, n_head, 1, L).
        Extra keyword options: ``top_p``, ``num_samples`` per condition, ``seed``, ``progress``,
        ``guidance_scale`` (classifier-free guidance, models trained with ``p_uncond > 0``)."""
        if self.transformer.training:
            raise RuntimeError('sample() needs the transformer in eval mode (call .eval())')
        cond = c if self.has_prefix_gpt else self.encode_to_c(c)[1]
        tokens, att = sample_tokens(self.transformer, cond, steps, prefix=x, num_samples=num_samples,
                                    temperature=temperature, top_k=top_k, top_p=top_p, greedy=not sample,
                                    seed=seed, progress=progress, return_attention=True, callback=callback,
                                    guidance_scale=guidance_scale)
        return tokens, att.detach().cpu()

    @torch.no_grad()
    def _codes(self, x: torch.Tensor) -> torch.Tensor:
        """Column-major codebook indices (B, n_tokens) of the mels x, through the code cache if enabled."""
        if not self.code_cache_size:
            return self.encode_to_z(x)[1]
        keys = [hashlib.blake2b(item.detach().cpu().contiguous().numpy().tobytes(), digest_size=16).digest()
                for item in x]
        missing = [i for i, k in enumerate(keys) if k not in self._code_cache]
        if missing:
            codes = self.encode_to_z(x[missing])[1]
            for i, code in zip(missing, codes):
                if len(self._code_cache) < self.code_cache_size:
                    self._code_cache[keys[i]] = code.cpu()
            if len(missing) == len(keys):
                return codes
            fresh = dict(zip(missing, codes))
        else:
            fresh = {}
        return torch.stack([fresh[i] if i in fresh else self._code_cache[k].to(x.device)
                            for i, k in enumerate(keys)])

    @torch.no_grad()
    def encode_to_z(self, x: torch.Tensor):
        """mel (B, 1, F, T) -> (quant_z (B, E, F/16, T/16), column-major indices (B, F/16 * T/16))."""
        quant_z, _, info = self.first_stage_model.encode(x)
        indices = info[2].view(quant_z.shape[0], -1)
        return quant_z, self.first_stage_permuter(indices)

    def get_xc(self, batch: dict, N: Optional[int] = None):
        x = self.get_input(self.first_stage_key, batch)
        c = self.get_input(self.cond_stage_key, batch)
        if N is not None:
            x, c = x[:N], cond_slice(c, N)
        return x, c

    # ------------------------------------------------------------------ training
    def shared_step(self, batch, batch_idx):
        x, c = self.get_xc(batch)
        logits, target = self(x, c)
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1))

    def training_step(self, batch, batch_idx):
        loss = self.shared_step(batch, batch_idx)
        n = len(batch[self.first_stage_key])
        self.log('train/loss', loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=n)
        return loss

    def validation_step(self, batch, batch_idx):
        loss = self.shared_step(batch, batch_idx)
        n = len(batch[self.first_stage_key])
        self.log('val/loss', loss, prog_bar=True, on_step=False, on_epoch=True, sync_dist=True, batch_size=n)
        if batch_idx == 0 and self.log_media and not self.trainer.sanity_checking:
            self._log_media(batch)
        return loss

    def configure_optimizers(self):
        """AdamW (betas 0.9, 0.95); weight decay 0.01 on nn.Linear weights only, none on biases,
        LayerNorm/Embedding/Conv1d/RNN weights and ``pos_emb`` (the reference/minGPT rule)."""
        decay, no_decay = set(), set()
        for mn, m in self.transformer.named_modules():
            for pn, _ in m.named_parameters(recurse=False):
                fpn = f'{mn}.{pn}' if mn else pn
                if pn.endswith('weight') and isinstance(m, torch.nn.Linear):
                    decay.add(fpn)
                else:
                    no_decay.add(fpn)
        params = dict(self.transformer.named_parameters())
        assert decay | no_decay == set(params) and not decay & no_decay
        groups = [{'params': [params[n] for n in sorted(decay)], 'weight_decay': 0.01},
                  {'params': [params[n] for n in sorted(no_decay)], 'weight_decay': 0.0}]
        return torch.optim.AdamW(groups, lr=self.scaled_lr(), betas=(0.9, 0.95))

    # ------------------------------------------------------------------ media
    @torch.no_grad()
    def log_images(self, batch, temperature=None, top_k=None, callback=None, N: int = 4, **kwargs):
        """Reference logger interface: inputs, reconstructions, a half-primed sample, a sample from
        scratch and a greedy sample, each (N, 1, F, T) in [-1, 1], plus their attention rows."""
        x, c = self.get_xc(batch, N)
        x, c = x.to(self.device), cond_to(c, self.device)
        quant_z, z_indices = self.encode_to_z(x)
        _, c_indices = self.encode_to_c(c)
        kw = dict(temperature=temperature if temperature is not None else 1.0,
                  top_k=top_k if top_k is not None else 100, callback=callback or (lambda k: None))
        n = z_indices.shape[1]
        half, att_half = self.sample(z_indices[:, :n // 2], c_indices, n - n // 2, sample=True, **kw)
        nopix, att_nopix = self.sample(z_indices[:, :0], c_indices, n, sample=True, **kw)
        det, att_det = self.sample(z_indices[:, :0], c_indices, n, sample=False, callback=kw['callback'])
        return {'inputs': x, 'reconstructions': self.decode_to_img(z_indices, quant_z.shape),
                'samples_half': self.decode_to_img(half, quant_z.shape),
                'samples_nopix': self.decode_to_img(nopix, quant_z.shape),
                'samples_det': self.decode_to_img(det, quant_z.shape),
                'att_half': att_half, 'att_nopix': att_nopix, 'att_det': att_det}

    @torch.no_grad()
    def _log_media(self, batch) -> None:
        """Sampled spectrograms (low frequencies at the bottom) and Griffin-Lim audio to TensorBoard."""
        if not self.trainer.is_global_zero:
            return
        from specvqgan.media_logging import log_mels, mel_tensors
        logs = self.log_images(batch, temperature=self.log_temperature, top_k=self.log_top_k,
                               N=self.log_num_samples)
        log_mels(getattr(self.logger, 'experiment', None), mel_tensors(logs), self.global_step,
                 max_images=self.log_num_samples)

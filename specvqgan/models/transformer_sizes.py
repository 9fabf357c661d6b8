"""Derived sizes of a Net2NetTransformer from its config: the latent grid and token sequence
(:class:`specvqgan.shapes.SequenceShape`), the ColumnMajor permuter's H/W and the GPT block size.

Nothing here is typed by hand: a ColumnMajor permuter without H/W takes the codebook's grid (80 mel bins
/ 2^(levels-1), ``ddconfig.resolution`` / 2^(levels-1)); an absent ``GPT_config.block_size`` is the
condition stage's length (``n_feats`` (+1 for a class)) plus the grid's H*W.
"""
from __future__ import annotations

from typing import Any, Optional

from omegaconf import DictConfig, ListConfig, OmegaConf

from specvqgan.audio import N_MELS
from specvqgan.config import ConfigError
from specvqgan.modules.conditioning import ClassOnlyStage, FeatsClassStage
from specvqgan.shapes import SequenceShape

IDENTITY = 'specvqgan.modules.transformer.permuter.Identity'
COLUMN_MAJOR = ('specvqgan.modules.transformer.permuter.ColumnMajor',)


def plain_config(cfg: Any) -> dict:
    """A config block (DictConfig or mapping) as a plain, resolved dict."""
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, (DictConfig, ListConfig)) else dict(cfg)


def model_shape(permuter_cfg: Optional[Any], first_stage_cfg: Any, cond_stage: Any = None) -> Optional[SequenceShape]:
    """The token layout of a model whose first-stage permuter is ``permuter_cfg`` (None unless ColumnMajor:
    other orders have no grid): H/W from the permuter's params, else from the codebook's ddconfig; the
    condition's length from ``cond_stage`` (its ``cond_len``; None leaves it unknown)."""
    if permuter_cfg is None:
        return None
    cfg = plain_config(permuter_cfg)
    if cfg.get('target') not in COLUMN_MAJOR:
        return None
    params = cfg.get('params') or {}
    dd = plain_config(first_stage_cfg)['params']['ddconfig']
    down = 2 ** (len(dd['ch_mult']) - 1)
    rows = N_MELS // down if params.get('H') is None else int(params['H'])
    cols = int(dd['resolution']) // down if params.get('W') is None else int(params['W'])
    cond_len = getattr(cond_stage, 'cond_len', None)
    class_token = isinstance(cond_stage, (ClassOnlyStage, FeatsClassStage))
    n_feats = None if cond_len is None else int(cond_len) - int(class_token)
    return SequenceShape.for_grid(rows, cols, n_feats, class_token, downsample=down)


def derive_permuter_config(permuter_cfg: Optional[Any], first_stage_cfg: Any) -> dict:
    """Fill a ColumnMajor permuter's missing H/W from :func:`model_shape`; ``None`` -> Identity (the
    reference default)."""
    if permuter_cfg is None:
        return {'target': IDENTITY}
    cfg = plain_config(permuter_cfg)
    shape = model_shape(cfg, first_stage_cfg)
    if shape is not None:
        cfg['params'] = dict(cfg.get('params') or {}, H=shape.latent_rows, W=shape.latent_cols)
    return cfg


def derive_transformer_config(transformer_cfg: Any, n_tokens: Optional[int], cond_len: Optional[int],
                              p_uncond: float = 0.0) -> dict:
    """Fill ``GPT_config.block_size`` (= cond_len + n_tokens) if absent, else check it; fill a feature
    embedder's ``out_channels`` with ``n_embd`` if absent; pass the model's ``p_uncond`` (> 0) to the GPT."""
    cfg = plain_config(transformer_cfg)
    params = cfg.setdefault('params', {})
    gpt_cfg = params.get('GPT_config', params)
    if p_uncond:
        if float(gpt_cfg.get('p_uncond', p_uncond)) != float(p_uncond):
            raise ConfigError(f"transformer_config: GPT_config.p_uncond={gpt_cfg['p_uncond']} contradicts the "
                              f'model\'s p_uncond={p_uncond}; set one of them')
        gpt_cfg['p_uncond'] = float(p_uncond)
    given = gpt_cfg.get('block_size')
    needed = None if (n_tokens is None or cond_len is None) else n_tokens + cond_len
    if given is None:
        if needed is None:
            raise ConfigError('transformer_config: GPT_config.block_size is not set and cannot be derived; '
                              'give cond_stage_config.params.n_feats and a ColumnMajor permuter')
        gpt_cfg['block_size'] = needed
    elif needed is not None and int(given) != needed:
        raise ConfigError(f'transformer_config: GPT_config.block_size={given} but the condition '
                          f'({cond_len}) + audio tokens ({n_tokens}) need {needed}')
    for key in ('feat_embedding_config', 'token_embedding_config'):
        emb = params.get(key)
        if isinstance(emb, dict) and emb.get('target', '').endswith(('Conv1d', 'Linear')):
            emb_params = emb.setdefault('params', {})
            out_key = 'out_channels' if emb['target'].endswith('Conv1d') else 'out_features'
            if emb_params.get(out_key) is None:
                emb_params[out_key] = gpt_cfg['n_embd']
        elif isinstance(emb, dict) and emb.get('target', '').endswith('Embedding'):
            emb_params = emb.setdefault('params', {})
            if emb_params.get('embedding_dim') is None:
                emb_params['embedding_dim'] = gpt_cfg['n_embd']
    return cfg

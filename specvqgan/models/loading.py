"""Trained models from checkpoints, for inference (sampling, the codec, the pipeline).

* :func:`load_codebook`: an inference-only VQModel (no loss) from any codebook checkpoint.
* :func:`load_model`: a Net2NetTransformer, or a codebook for reconstructions, described by the checkpoint.

Files are read through :mod:`specvqgan.checkpoint` (``trust``: see :func:`specvqgan.checkpoint.read`).
"""
from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import OmegaConf

from specvqgan.checkpoint import CheckpointError, instantiate, model_config, read, read_config
from specvqgan.config import load_config


def load_codebook(ckpt: str | Path, config: str | Path | None = None, trust: bool = False) -> torch.nn.Module:
    """Build an inference-only VQModel (no loss) from a checkpoint, in eval mode.

    The model config comes from ``config`` (a YAML with a ``model:`` block, or the block itself), else
    from the checkpoint or its run layout (:func:`specvqgan.checkpoint.model_config`). ``loss.*``
    weights are dropped; the rest loads with strict=True. ``trust``: see :func:`specvqgan.checkpoint.read`.
    """
    ckpt = Path(ckpt)
    state = read(ckpt, trust=trust)
    if config is not None:
        cfg = load_config(config)
        model_cfg = cfg.model if "model" in cfg else cfg
    else:
        try:
            model_cfg = model_config(state, ckpt)
        except CheckpointError as err:
            raise CheckpointError(f"{err}; or pass --config") from None
    model_cfg = OmegaConf.create(OmegaConf.to_container(OmegaConf.create(model_cfg), resolve=True))
    params = dict(model_cfg.get("params", {}))
    params.update(lossconfig=None, ckpt_path=None)
    model = instantiate({"target": model_cfg.target, "params": params}, ckpt)
    sd = state.get("state_dict", state)
    sd = {k: v for k, v in sd.items() if not k.startswith("loss.")}
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as err:
        raise RuntimeError(f"checkpoint {ckpt} does not match its config ({model_cfg.target}): {err}") from err
    return model.eval()


def load_model(ckpt: str | Path, mode: str, trust: bool = False):
    """(model, kind) in eval mode: a Net2NetTransformer (kind 'transformer') or, for reconstructions, a
    codebook VQModel (kind 'codebook'; a transformer checkpoint gives its first stage). The model is
    described by the checkpoint itself (``train.py`` / exported checkpoints, the reference log layout).
    ``trust``: see :func:`specvqgan.checkpoint.read`."""
    stored = read_config(ckpt, trust=trust) or {}
    target = str((stored.get("model") or {}).get("target", ""))
    if target.endswith("Net2NetTransformer"):
        from specvqgan.models.cond_transformer import Net2NetTransformer
        model = Net2NetTransformer.from_checkpoint(str(ckpt), trust=trust)
        return (model, "transformer") if mode == "samples" else (model.first_stage_model.eval(), "codebook")
    if mode == "samples":
        raise ValueError(f"checkpoint {ckpt} is not a Net2NetTransformer (model target {target or 'unknown'}); "
                         f"samples need a transformer, reconstructions take a codebook or a transformer")
    return load_codebook(ckpt, trust=trust), "codebook"

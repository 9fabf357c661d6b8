"""Inference bundle: one self-describing file with only what video -> sound uses (docs/export.md).

    python -m specvqgan.export RUN/checkpoints/last.ckpt model-int8.pt [--precision int8|bf16|fp32]
    python scripts/generate.py --transformer model-int8.pt --video in.mp4 --out out/

A bundle holds the GPT's weights already prepared for ``precision`` (int8: per-channel qint8 weights, the
tensors :class:`~specvqgan.modules.transformer.fast_decode.FastGPT` runs on; bf16: bfloat16 copies; fp32: the
GPT itself), the codebook's quantizer + decoder (no encoder, loss, discriminator or optimizer state), the
permuters, the derived model config and the condition recipe (:class:`~specvqgan.video_condition.ConditionSpec`).
Loading it builds plain ``nn.Module`` s on the meta device that take the memory-mapped tensors (no Lightning
import, no random initialisation, no re-quantization, no packing: the int8 GEMM reads the qint8 tensors), and it
samples the same tokens as the checkpoint at the same precision and seed.

File: ``torch.save`` of a dict of strings, numbers, lists, dicts and tensors (qint8 tensors included), read
with ``weights_only=True`` (:func:`specvqgan.checkpoint.read`; nothing in it can run code)::

    format: "specvqgan-inference-bundle"   version: 1   precision: "int8" | "bf16" | "fp32"
    model: {transformer, first_stage_permuter, cond_stage_permuter, cond_stage: {target, params},
            cond_stage_key, codebook: {ddconfig, n_embed, embed_dim, one_d}}
    condition: the ConditionSpec fields     source: {checkpoint: file name, sha256}
    weights: {codebook decoder + permuter tensors, InferenceModel keys}   gpt: {GPT or FastGPT tensors}
    crc32: {"weights.<key>" | "gpt.<key>": CRC-32 of the tensor's bytes}

Loading is strict: another format/version, a missing or extra key, a wrong shape or dtype, or a tensor whose
bytes do not match its CRC-32 (a corrupted or edited file) is a :class:`~specvqgan.checkpoint.CheckpointError`
naming the file. The CRC detects corruption and edits, it is no signature.
:func:`load_transformer` is the one loader of the pipeline: a checkpoint (Net2NetTransformer) or a bundle.
"""
from __future__ import annotations

import argparse
import ctypes
import dataclasses
import logging
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Mapping, Optional

FORMAT, VERSION = "specvqgan-inference-bundle", 1
PRECISIONS = ("int8", "bf16", "fp32")
_KEYS = {"format", "version", "precision", "model", "condition", "source", "weights", "gpt", "crc32"}
_MODEL_KEYS = {"transformer", "first_stage_permuter", "cond_stage_permuter", "cond_stage", "cond_stage_key",
               "codebook"}

log = logging.getLogger(__name__)


def is_bundle(obj: Any) -> bool:
    """Whether ``obj`` (a loaded file's contents) claims to be an inference bundle."""
    return isinstance(obj, Mapping) and obj.get("format") == FORMAT


# ----------------------------------------------------------------------------- writing
def bundle_contents(model, spec, precision: str, source: Optional[dict] = None) -> dict:
    """The bundle dict of a loaded Net2NetTransformer ``model`` and its ConditionSpec ``spec``."""
    from specvqgan.models.vqgan import VQModel1d
    from specvqgan.modules.transformer.fast_decode import prepared_state

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    derived = dict(model.derived_configs)
    first, dd = model.first_stage_model, _plain(derived.pop("first_stage")["params"]["ddconfig"])
    params = dict(derived, cond_stage_key=_plain(model.cond_stage_key),
                  codebook=dict(ddconfig=dd, n_embed=int(first.quantize.n_e), embed_dim=int(first.quantize.e_dim),
                                one_d=isinstance(first, VQModel1d)))
    own = ("quantize.", "post_quant_conv.", "decoder.")
    weights = {f"first_stage_model.{k}": v for k, v in first.state_dict().items() if k.startswith(own)}
    for name in ("first_stage_permuter", "cond_stage_permuter"):
        weights.update({f"{name}.{k}": v for k, v in getattr(model, name).state_dict().items()})
    gpt = (dict(model.transformer.state_dict()) if precision == "fp32"
           else prepared_state(model.transformer, precision))
    out = dict(format=FORMAT, version=VERSION, precision=precision, model=params,
               condition=_plain(dataclasses.asdict(spec)), source=dict(source or {}), weights=weights, gpt=gpt)
    out["crc32"] = {f"{part}.{k}": tensor_crc32(v) for part in ("weights", "gpt") for k, v in out[part].items()}
    return out


def _plain(x: Any) -> Any:
    """Containers as plain dicts / lists (tuples and OmegaConf containers too), for a weights_only file."""
    from omegaconf import DictConfig, ListConfig, OmegaConf
    if isinstance(x, (DictConfig, ListConfig)):
        x = OmegaConf.to_container(x, resolve=True)
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def export_bundle(checkpoint: str | Path, out: str | Path, *, precision: str = "int8",
                  feature: Optional[str] = None, trust: bool = False) -> Path:
    """Write the inference bundle of a transformer ``checkpoint`` (any layout
    :meth:`specvqgan.pipeline.VideoToSound.from_checkpoints` reads) to ``out`` atomically; returns ``out``.
    ``feature``: the visual feature name when the checkpoint does not tell (see ``from_checkpoints``)."""
    import torch

    from specvqgan.files import atomic_write, file_sha256

    checkpoint, out = Path(checkpoint), Path(out)
    if out.resolve() == checkpoint.resolve():
        raise ValueError(f"{out}: the bundle would overwrite its checkpoint; choose another output path")
    model, spec = load_transformer(checkpoint, feature=feature, trust=trust)
    source = {"checkpoint": checkpoint.name, "sha256": file_sha256(checkpoint)}
    contents = bundle_contents(model, spec, precision, source)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: torch.save(contents, tmp))
    return out


# ----------------------------------------------------------------------------- reading
def load_transformer(path: str | Path, *, feature: Optional[str] = None, trust: bool = False,
                     device: str = "cpu"):
    """(model in eval mode, :class:`~specvqgan.video_condition.ConditionSpec`) of a transformer checkpoint (any
    layout: a Net2NetTransformer) or an inference bundle (an :class:`~specvqgan.models.inference.InferenceModel`
    built on ``device`` without importing Lightning). Raises FileNotFoundError / GenerationError naming the file."""
    from specvqgan.checkpoint import read, stored_config
    from specvqgan.video_condition import GenerationError, condition_spec

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"transformer checkpoint not found: {path}")
    try:
        contents = read(path, trust=trust, mmap=True)       # the weights stay on disk until used
        if is_bundle(contents):
            model, spec = read_bundle(path, contents, device=device)
            if feature is not None and feature != spec.feature:
                raise GenerationError(f"{path}: the bundle was exported for {spec.feature!r} features, not "
                                      f"{feature!r}")
            return model, spec
        run_config = stored_config(contents, path)
    except ValueError as err:          # the message names the file
        raise GenerationError(str(err)) from err
    target = str(((run_config or {}).get("model") or {}).get("target", ""))
    if not target.endswith("Net2NetTransformer"):
        raise GenerationError(f"{path}: not a transformer checkpoint (its model is "
                              f"{target or 'not recorded'}); pass a Net2NetTransformer checkpoint")
    from specvqgan.models.cond_transformer import Net2NetTransformer
    try:
        model = Net2NetTransformer.from_checkpoint(str(path), trust=trust)
    except (KeyError, RuntimeError) as err:
        raise GenerationError(f"{path}: cannot load as a transformer checkpoint ({err})") from err
    return model, condition_spec(model, run_config, feature=feature, path=str(path))


def tensor_crc32(t) -> int:
    """CRC-32 of a tensor's bytes (C order; a qint8 tensor: its int8 values, then its scales and zero points)."""
    if t.is_quantized:
        crc = tensor_crc32(t.q_per_channel_scales()) if t.qscheme() in _per_channel() else zlib.crc32(
            repr((t.q_scale(), t.q_zero_point())).encode())
        return zlib.crc32(_raw(t), crc)
    return zlib.crc32(_raw(t))


def _per_channel():
    import torch
    return (torch.per_channel_affine, torch.per_channel_symmetric)


def _raw(t) -> memoryview:
    """The bytes of tensor ``t`` without a copy when it is contiguous on the CPU."""
    t = t.detach().cpu()
    if not t.is_contiguous():
        t = t.contiguous()
    n = t.numel() * t.element_size()
    return memoryview((ctypes.c_char * n).from_address(t.data_ptr())) if n else memoryview(b"")


def read_bundle(path: str | Path, contents: Optional[Mapping] = None, *, device: str = "cpu",
                verify: bool = True):
    """Build the :class:`~specvqgan.models.inference.InferenceModel` of bundle ``path`` (``contents``: its loaded
    dict, if already read) -> (model in eval mode, ConditionSpec). ``verify``: check every tensor's CRC-32.
    Raises CheckpointError naming the file (not a bundle, another version, missing/extra keys, shapes, CRC)."""
    from specvqgan.checkpoint import CheckpointError, read

    path = Path(path)
    b = read(path, what="inference bundle", mmap=True) if contents is None else contents
    if not is_bundle(b):
        raise CheckpointError(f"{path}: not a specvqgan inference bundle (python -m specvqgan.export makes one)")
    try:
        return _build(b, device, verify)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
        text = " ".join(str(err).split())[:500]
        raise CheckpointError(f"{path}: not a valid inference bundle ({type(err).__name__}: {text})") from None


def _build(b: Mapping, device: str, verify: bool):
    import torch
    from omegaconf import OmegaConf

    from specvqgan.checkpoint import meta_device
    from specvqgan.config import instantiate_from_config
    from specvqgan.models.inference import CodebookDecoder, InferenceModel
    from specvqgan.models.transformer_sizes import model_shape
    from specvqgan.video_condition import ConditionSpec

    if b.get("version") != VERSION:
        raise ValueError(f"bundle version {b.get('version')!r}; this specvqgan reads version {VERSION}")
    _exact("bundle", b, _KEYS)
    precision, cfg = b["precision"], b["model"]
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}")
    _exact("model", cfg, _MODEL_KEYS)
    if verify:
        tensors = {f"{part}.{k}": v for part in ("weights", "gpt") for k, v in b[part].items()}
        _exact("crc32", b["crc32"], set(tensors))
        with ThreadPoolExecutor(2) as pool:          # zlib releases the GIL: two cores
            crcs = dict(zip(tensors, pool.map(tensor_crc32, tensors.values())))
        bad = [k for k, v in crcs.items() if v != b["crc32"][k]]
        if bad:
            raise ValueError(f"{len(bad)} tensor(s) do not match their CRC-32 (corrupted or edited): {bad[:3]}")
    build = lambda block: instantiate_from_config(OmegaConf.create(block))  # noqa: E731
    with meta_device():
        gpt = build(cfg["transformer"])
        codebook = CodebookDecoder(**cfg["codebook"])
    perms = [build(cfg[k]) for k in ("first_stage_permuter", "cond_stage_permuter")]  # tiny; on meta, their
    #                                   index arithmetic would import sympy (symbolic shapes): seconds
    parts = torch.nn.ModuleDict(dict(first_stage_model=codebook, first_stage_permuter=perms[0],
                                     cond_stage_permuter=perms[1]))
    parts.load_state_dict(b["weights"], strict=True, assign=True)
    on = lambda sd: {k: v.to(device) for k, v in sd.items()}  # noqa: E731  (no copy on the CPU)
    if precision == "fp32":
        gpt.load_state_dict(on(b["gpt"]), strict=True, assign=True)
        transformer = gpt
    else:
        if precision == "int8" and torch.device(device).type != "cpu":
            raise ValueError("an int8 bundle runs on the CPU only; export a bf16 bundle for the GPU")
        from specvqgan.modules.transformer.fast_decode import FastGPT
        transformer = FastGPT(gpt, precision, state=on(b["gpt"]), pack_in_background=True)
    cond_stage = build(cfg["cond_stage"])
    shape = model_shape(cfg["first_stage_permuter"], {"params": {"ddconfig": cfg["codebook"]["ddconfig"]}}, cond_stage)
    model = InferenceModel(transformer, codebook, cond_stage, *perms, cfg["cond_stage_key"], shape,
                           precision).to(device).eval()
    meta = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if meta:
        raise ValueError(f"tensors the bundle does not provide: {meta[:3]}")
    spec = dict(b["condition"])
    spec["streams"] = tuple(spec.get("streams") or ())
    return model.requires_grad_(False), ConditionSpec(**spec)


def _exact(what: str, d: Any, keys: set) -> None:
    if not isinstance(d, Mapping):
        raise TypeError(f"{what} is a {type(d).__name__}, not a dict")
    missing, extra = sorted(keys - set(d)), sorted(set(d) - keys)
    if missing or extra:
        raise KeyError(f"{what}: missing keys {missing[:5]}, unexpected keys {extra[:5]}")


# ----------------------------------------------------------------------------- command line
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m specvqgan.export",
                                description="Export a transformer checkpoint as an inference bundle: one file with "
                                            "the prepared GPT weights, the codebook decoder and the config "
                                            "(docs/export.md).")
    p.add_argument("checkpoint", help="transformer checkpoint (train.py .ckpt, exported, or the authors' "
                                      "<run>/checkpoints/*.ckpt beside <run>/configs/*-project.yaml)")
    p.add_argument("out", help="bundle file to write (e.g. model-int8.pt)")
    p.add_argument("--precision", default="int8", choices=PRECISIONS,
                   help="GPT weights to store: int8 (CPU), bf16 (GPU or CPU) or fp32 (exact)")
    p.add_argument("--feature", default=None,
                   help="visual feature name if the checkpoint does not record it (resnet50, bninception)")
    p.add_argument("-v", "--verbose", action="store_true")
    from specvqgan.checkpoint import add_trust_argument
    add_trust_argument(p)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        out = export_bundle(args.checkpoint, args.out, precision=args.precision, feature=args.feature,
                            trust=args.trust_checkpoint)
    except (OSError, ValueError) as err:          # CheckpointError, ConfigError, GenerationError are ValueErrors
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

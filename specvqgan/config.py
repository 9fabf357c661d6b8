"""Config system: merge YAML files + ``key=value`` overrides, and build objects from
``{target, params}`` blocks (DESIGN.md section 3).

* ``load_config(paths, overrides)`` merges the YAML files left to right, then the dotlist overrides,
  and remembers which file (or override) set every key, so errors can name it.
* ``instantiate_from_config(cfg)`` imports ``cfg.target`` (resolving reference-implementation and former
  paths through :mod:`specvqgan.aliases`, whose entries may fix params such as a dataset's ``split``), checks that it is a class defined in this
  project, ``torch.nn``, ``torch.optim`` or a Lightning callback/logger module (:func:`check_target`;
  configs also come from checkpoints and downloaded run folders, so nothing else may be called),
  checks ``cfg.params`` against the target's ``__init__`` signature and calls it. Nested configs are passed on as DictConfig, as the reference
  did, so a class may instantiate its own sub-configs.

Every failure is a :class:`ConfigError` naming the key, the target and the file.
"""
from __future__ import annotations

import difflib
import importlib
import inspect
from pathlib import Path
from typing import Any, Iterable, Mapping

from omegaconf import DictConfig, ListConfig, OmegaConf

from specvqgan.aliases import BINDINGS, FORMER_ALIASES, REFERENCE_ALIASES, TARGETS_FILE, UNSUPPORTED_TARGETS, Alias

ALLOWED_PREFIXES = ("specvqgan.", "feature_extraction.", "vocoder.", "evaluation.",
                    "torch.", "pytorch_lightning.", "lightning.")
"""Packages a target path may be imported from."""
DEFINED_IN = ("specvqgan", "feature_extraction", "vocoder", "evaluation", "torch.nn", "torch.optim",
              "pytorch_lightning.callbacks", "pytorch_lightning.loggers",
              "lightning.pytorch.callbacks", "lightning.pytorch.loggers")
"""Modules (and their submodules) a target class must be defined in: its own ``__module__``, so a
function or class re-exported into an allowed module (``...signal_connector.call`` is
``subprocess.call``) is refused."""
_SOURCES_ATTR = "_specvqgan_sources"


class ConfigError(ValueError):
    """A config that cannot be loaded or instantiated; the message names the key and the file."""


def load_config(paths: str | Path | Iterable[str | Path], overrides: Iterable[str] = ()) -> DictConfig:
    """Merge YAML files left to right, then ``key=value`` overrides (OmegaConf dotlist).

    Args:
        paths: one path or several; later files override earlier ones.
        overrides: strings like ``"model.params.n_embed=256"`` or ``"lightning.trainer.max_steps=10"``.
    Returns:
        The merged DictConfig (not resolved; interpolations stay live).
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    sources: dict[str, str] = {}
    merged = OmegaConf.create()
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            cfg = OmegaConf.load(path)
        except Exception as err:
            raise ConfigError(f"cannot parse config file {path}: {err}") from err
        if not isinstance(cfg, DictConfig):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
        for key in _leaf_keys(cfg):
            sources[key] = str(path)
        merged = OmegaConf.merge(merged, cfg)
    overrides = list(overrides)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        sources[item.split("=", 1)[0].strip()] = f"override {item!r}"
    if overrides:
        try:
            merged = OmegaConf.merge(merged, OmegaConf.from_dotlist(overrides))
        except Exception as err:
            raise ConfigError(f"cannot apply overrides {overrides}: {err}") from err
    object.__setattr__(merged, _SOURCES_ATTR, sources)
    return merged


def _leaf_keys(cfg: Any, prefix: str = "") -> list[str]:
    """Dotted paths of every key in a DictConfig (inner nodes and leaves)."""
    keys = []
    if isinstance(cfg, DictConfig):
        for k in cfg.keys():
            path = f"{prefix}{k}"
            keys.append(path)
            keys += _leaf_keys(cfg._get_node(k), path + ".")
    return keys


def source_of(cfg: Any, key: str = "") -> str:
    """Where a config node (or its ``key`` child) was set: a file path, an override, or 'code'."""
    if not isinstance(cfg, (DictConfig, ListConfig)):
        return "a config given in code"
    full = _full_key(cfg)
    path = f"{full}.{key}" if full and key else (full or key)
    sources = getattr(cfg._get_root(), _SOURCES_ATTR, None) or {}
    while path:
        if path in sources:
            return sources[path]
        path = path.rpartition(".")[0]
    return "a config given in code"


def _full_key(node: Any) -> str:
    try:
        return str(node._get_full_key(None) or "")
    except Exception:
        return ""


def _where(cfg: Any, key: str = "") -> str:
    full = _full_key(cfg) if isinstance(cfg, (DictConfig, ListConfig)) else ""
    path = ".".join(p for p in (full, key) if p) or "<root>"
    return f"`{path}` (in {source_of(cfg, key)})"


def resolve_target(target: str) -> str:
    """Map a reference-implementation (or former) path to our class path (identity when it is already ours).

    Raises:
        ConfigError: a reference class listed as deliberately unsupported (with the reason).
    """
    if target in UNSUPPORTED_TARGETS:
        raise ConfigError(f"target {target!r} of the reference implementation is not supported: "
                          f"{UNSUPPORTED_TARGETS[target]} (see {TARGETS_FILE.name} and docs/migration.md)")
    if target in REFERENCE_ALIASES:
        return REFERENCE_ALIASES[target]
    return FORMER_ALIASES.get(target, target)


def get_obj_from_str(target: str, where: str = "") -> Any:
    """Import ``package.module.Name`` (after alias resolution) and :func:`check_target` it."""
    resolved = resolve_target(target)
    if not resolved.startswith(ALLOWED_PREFIXES):
        raise ConfigError(f"target {target!r} at {where} is outside this project/torch/pytorch_lightning; "
                          f"refusing to import it")
    module_name, _, name = resolved.rpartition(".")
    alias = f" (alias of {target!r})" if resolved != target else ""
    try:
        module = importlib.import_module(module_name)
        obj = getattr(module, name)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"target {resolved!r}{alias} at {where} cannot be imported: {err}") from err
    check_target(obj, f"{resolved!r}{alias} at {where}")
    return obj


def _within(module: str, packages: Iterable[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def check_target(obj: Any, what: str) -> None:
    """Raise ConfigError unless ``obj`` is a class defined (own ``__module__``) in :data:`DEFINED_IN`."""
    if not inspect.isclass(obj):
        raise ConfigError(f"target {what} is a {type(obj).__name__}, not a class; configs may only build "
                          f"classes of this project, torch.nn, torch.optim or Lightning callbacks/loggers")
    module = getattr(obj, "__module__", "") or ""
    if not _within(module, DEFINED_IN):
        raise ConfigError(f"target {what} is the class {module}.{obj.__qualname__}, defined outside this "
                          f"project, torch.nn, torch.optim and Lightning callbacks/loggers; refusing to build it")


def _accepted(obj: Any) -> tuple[dict[str, inspect.Parameter], bool] | None:
    """``obj``'s named parameters and whether it takes ``**kwargs`` (None: no signature)."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None  # builtins without a signature: let the call itself complain
    accepted = {n: p for n, p in sig.parameters.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    return accepted, any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())


def _check_keys(keys: Iterable[str], accepted: Iterable[str], cfg: Any, prefix: str, target: str) -> None:
    accepted = list(accepted)
    for key in keys:
        if key not in accepted:
            close = difflib.get_close_matches(str(key), accepted, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; accepted: {sorted(accepted)}"
            raise ConfigError(f"unknown param {_where(cfg, f'{prefix}.{key}')} for target {target!r}{hint}")


def check_params(obj: Any, params: Mapping, cfg: Any = None, target: str = "", prefix: str = "params",
                 fixed: Iterable[str] = ()) -> None:
    """Raise ConfigError if ``params`` has a key the callable does not accept or lacks a required one.

    ``prefix`` is where ``params`` stands in ``cfg`` (for the message); ``fixed`` are params an alias sets
    (:func:`apply_alias`), which a config may not set and the message does not offer.
    """
    found = _accepted(obj)
    if found is None:
        return
    accepted, takes_kwargs = found
    fixed = set(fixed)
    if not takes_kwargs:
        _check_keys([k for k in params if k not in fixed], [n for n in accepted if n not in fixed], cfg, prefix, target)
    missing = [n for n, p in accepted.items()
               if p.default is p.empty and n not in params and n not in fixed and p.kind is not p.POSITIONAL_ONLY]
    if missing:
        raise ConfigError(f"missing required param(s) {missing} for target {target!r} at {_where(cfg, prefix)}")


def apply_alias(alias: Alias, obj: Any, params: dict, cfg: Any = None, target: str = "") -> dict:
    """The keyword arguments of ``obj`` for an alias path: ``alias.unpack``'s keys (beside ``alias.outer``)
    plus the params ``alias.bind`` fixes. Raises ConfigError (naming the key and the file) for a param
    the alias path did not take, or one it fixes."""
    for prefix, keys in (("params", params), (f"params.{alias.unpack}", params.get(alias.unpack) or {})):
        for key in keys:
            if key in alias.bind:
                raise ConfigError(f"param {_where(cfg, f'{prefix}.{key}')} is fixed to {alias.bind[key]!r} by "
                                  f"target {target!r}; use {alias.target!r} to set it")
    if not alias.unpack:
        check_params(obj, params, cfg, target, fixed=alias.bind)
        return {**params, **alias.bind}
    _check_keys(params, (alias.unpack, *alias.outer), cfg, "params", target)
    inner = params.get(alias.unpack)
    if inner is None:
        inner = {}
    if not isinstance(inner, (Mapping, DictConfig)):
        raise ConfigError(f"`{alias.unpack}` at {_where(cfg, f'params.{alias.unpack}')} must be a mapping, got {inner!r}")
    kwargs = {k: v for k, v in params.items() if k != alias.unpack}
    kwargs.update({str(k): inner[k] for k in inner})
    check_params(obj, kwargs, cfg, target, prefix=f"params.{alias.unpack}", fixed=alias.bind)
    return {**kwargs, **alias.bind}


def instantiate_from_config(config: Any, **kwargs: Any) -> Any:
    """Build ``config.target(**config.params, **kwargs)``.

    Args:
        config: a mapping (DictConfig or dict) with ``target`` and optional ``params``.
        kwargs: extra constructor arguments (override ``params``).
    Raises:
        ConfigError: missing ``target``, a target outside this project/torch/Lightning, an unknown
            or missing param; the message names the key and the file it came from.
    """
    if not isinstance(config, (Mapping, DictConfig)):
        raise ConfigError(f"expected a {{target, params}} mapping, got {type(config).__name__}: {config!r}")
    if "target" not in config:
        if config in ("__is_first_stage__", "__is_unconditional__"):
            return None
        raise ConfigError(f"missing key `target` at {_where(config)}; "
                          f"a block to instantiate needs `target:` and optional `params:`")
    target = str(config["target"])
    obj = get_obj_from_str(target, _where(config, "target"))
    params = config.get("params", None)
    if params is None:
        params = {}
    if not isinstance(params, (Mapping, DictConfig)):
        raise ConfigError(f"`params` at {_where(config, 'params')} must be a mapping, got {params!r}")
    params = {str(k): params[k] for k in params}  # nested blocks stay DictConfig (with their source)
    params.update(kwargs)
    if target in BINDINGS:
        params = apply_alias(BINDINGS[target], obj, params, config, target)
    else:
        check_params(obj, params, config, target)
    return obj(**params)


def check_missing(cfg: DictConfig) -> None:
    """Raise ConfigError naming every ``???`` (mandatory value) left in ``cfg`` and the file that set it.

    Example message: ``missing value for model.params.first_stage_config.params.ckpt_path (in
    configs/vas_transformer.yaml)``; set it with ``key=value`` after the configs.
    """
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError("; ".join(f"missing value for {k} (in {source_of(cfg, k)})" for k in missing)
                          + ": set it with key=value after the configs")


def to_yaml(cfg: Any) -> str:
    """The config as YAML text (interpolations resolved where possible)."""
    try:
        return OmegaConf.to_yaml(cfg, resolve=True)
    except Exception:
        return OmegaConf.to_yaml(cfg)

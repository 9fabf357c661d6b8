"""Checkpoint I/O: the one module that reads and writes model files (docs/checkpoints.md).

* :func:`read` loads a ``.ckpt`` / ``.pt`` on CPU with ``torch.load(weights_only=True)`` and the narrow
  allow-list :data:`ALLOWED_GLOBALS` (what real checkpoints carry: Lightning callback classes used as
  dict keys, ``argparse.Namespace``, ``pathlib`` paths, numpy arrays / dtypes / scalars). Any other
  pickled global is refused with :class:`UntrustedCheckpointError` naming the file and the global; a
  file the user trusts is read in full with ``trust=True`` (API), :func:`trusted` (a block of code) or
  ``--trust-checkpoint`` (every CLI that loads checkpoints).
* :func:`read_state_dict`: the ``state_dict`` of a Lightning ``.ckpt``, an exported file or a bare one.
* :func:`run_config_files` / :func:`stored_config` / :func:`model_config`: the config a checkpoint was
  trained with: stored in it (``train.py`` and exported files) or the authors' run layout
  ``<run>/configs/<time>-project.yaml`` + ``<time>-lightning.yaml`` beside ``<run>/checkpoints/``.
* :func:`build_model` rebuilds a model from a checkpoint and loads it strictly; :func:`export` writes a
  self-describing ``{state_dict, config}`` file.
* :class:`SafeCheckpointIO`: the same rules for Lightning's own resume (``trainer.fit(ckpt_path=...)``).
"""
from __future__ import annotations

import argparse
import contextlib
import contextvars
import logging
import pathlib
import pickle
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Optional

import numpy as np

# omegaconf is imported where a config is handled: the inference bundle's load path never needs it
if TYPE_CHECKING:
    from omegaconf import DictConfig

# torch is imported inside the functions: CLIs add --trust-checkpoint before torch starts OpenMP

log = logging.getLogger(__name__)

TRUST_HINT = "if you trust this file, pass --trust-checkpoint (command line) or trust=True (Python API)"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or used; the message names the file."""


class UntrustedCheckpointError(CheckpointError):
    """A checkpoint holding a pickled global outside :data:`ALLOWED_GLOBALS` (it could run code)."""


# ----------------------------------------------------------------------------- the allow-list
def _numpy_globals() -> list:
    core = getattr(np, "_core", None) or np.core  # numpy 2 / numpy 1 (pickles name either path)
    dtypes = [type(np.dtype(t)) for t in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
                                          np.uint32, np.uint64, np.float16, np.float32, np.float64)]
    out = [(np.ndarray, "numpy.ndarray"), (np.dtype, "numpy.dtype")]
    for fn in ("_reconstruct", "scalar"):
        obj = getattr(core.multiarray, fn)
        out += [(obj, f"numpy.core.multiarray.{fn}"), (obj, f"numpy._core.multiarray.{fn}")]
    out += [(d, f"numpy.dtypes.{d.__name__}") for d in dtypes]
    return out


_CALLBACKS = {"model_checkpoint": "ModelCheckpoint", "early_stopping": "EarlyStopping",
              "lr_monitor": "LearningRateMonitor"}
LIGHTNING_NAMES = {f"{pkg}.callbacks.{module}.{cls}": cls for module, cls in _CALLBACKS.items()
                   for pkg in ("pytorch_lightning", "lightning.pytorch")}
"""Callback classes that Lightning 1.x pickled as the keys of ``checkpoint['callbacks']`` (pickled name:
class in ``pytorch_lightning.callbacks``); imported only when a checkpoint holds one (Lightning is slow
to import)."""


def _lightning_globals() -> list:
    import pytorch_lightning.callbacks as callbacks
    return [(getattr(callbacks, cls), name) for name, cls in LIGHTNING_NAMES.items()]


def _path_globals() -> list:
    out = []
    for name in ("Path", "PosixPath", "WindowsPath", "PurePath", "PurePosixPath", "PureWindowsPath"):
        out.append((getattr(pathlib, name), f"pathlib.{name}"))
    return out


ALLOWED_GLOBALS: list = [(argparse.Namespace, "argparse.Namespace"), *_path_globals(), *_numpy_globals()]
"""Globals a checkpoint may pickle besides torch's own safe set (tensors, plain containers), with the
Lightning callback classes of :data:`LIGHTNING_NAMES`: each entry is ``(object, pickled name)``."""

ALLOWED_NAMES = sorted({name for _, name in ALLOWED_GLOBALS} | set(LIGHTNING_NAMES))

# ----------------------------------------------------------------------------- trust
_TRUSTED: contextvars.ContextVar[tuple] = contextvars.ContextVar("specvqgan_trusted_checkpoints", default=())


@contextlib.contextmanager
def trusted(*paths: str | Path | None) -> Iterator[None]:
    """Within the block, these files (or every file under these folders) are read with
    ``weights_only=False``: only for files the user trusts. ``None`` entries are ignored."""
    token = _TRUSTED.set(_TRUSTED.get() + tuple(Path(p).resolve() for p in paths if p))
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def is_trusted(path: str | Path) -> bool:
    p = Path(path).resolve()
    return any(p == t or t in p.parents for t in _TRUSTED.get())


# ----------------------------------------------------------------------------- reading
_GLOBAL_RE = re.compile(r"GLOBAL ([\w.]+)|global ([\w.]+)|function ([\w.<>]+)")


def _refused_global(err: Exception) -> str | None:
    text = str(err)
    if "Weights only load failed" not in text and "WeightsUnpickler" not in text:
        return None
    match = _GLOBAL_RE.search(text.split("WeightsUnpickler error:", 1)[-1])
    return next(g for g in match.groups() if g) if match else None  # else: not a pickle at all


def read(path: str | Path, *, trust: bool = False, what: str = "checkpoint", mmap: bool = False) -> Any:
    """Load a checkpoint / weight file on CPU.

    Args:
        trust: read with ``weights_only=False`` (may run code in the file: only for files you trust).
        what: how the file is named in errors ("Melception checkpoint", ...).
        mmap: memory-map the tensors (zip-format files; others are read normally).
    Raises:
        FileNotFoundError; UntrustedCheckpointError (a global outside the allow-list);
        CheckpointError (unreadable). Every message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    trust = trust or is_trusted(path)
    try:
        if trust:
            log.warning("reading %s with weights_only=False (trusted by the user)", path)
            return _load(path, False, mmap)
        return _safe_load(path, mmap)
    except pickle.UnpicklingError as err:
        name = _refused_global(err)
        if name is None:
            detail = str(err).split("WeightsUnpickler error:", 1)[-1]
            raise CheckpointError(f"{path}: cannot read as a {what} ({_one_line(Exception(detail))})") from None
        raise UntrustedCheckpointError(
            f"{path}: refusing to load this {what}: it holds `{name}`, which is not on the allow-list of "
            f"checkpoint contents (docs/checkpoints.md) and could run code; {TRUST_HINT}") from None
    except (OSError, RuntimeError, EOFError, ValueError, AttributeError, ImportError, TypeError) as err:
        raise CheckpointError(f"{path}: cannot read as a {what} ({type(err).__name__}: {_one_line(err)})") from None


def _safe_load(path: Path, mmap: bool) -> Any:
    import torch
    extra: list = []
    while True:
        try:
            with torch.serialization.safe_globals(ALLOWED_GLOBALS + extra):
                return _load(path, True, mmap)
        except pickle.UnpicklingError as err:
            if extra or _refused_global(err) not in LIGHTNING_NAMES:
                raise
            extra = _lightning_globals()


def _load(path: Path, weights_only: bool, mmap: bool) -> Any:
    import torch
    with warnings.catch_warnings():     # torch's own deprecation notes on rebuilding qint8 tensors, not the user's
        warnings.filterwarnings("ignore", message=r"(TypedStorage|torch\.quantize_per_tensor).* deprecated")
        if mmap:
            try:
                return torch.load(path, map_location="cpu", weights_only=weights_only, mmap=True)
            except RuntimeError as err:  # legacy (non-zip) files cannot be memory-mapped
                if "mmap" not in str(err):
                    raise
        return torch.load(path, map_location="cpu", weights_only=weights_only)


def _one_line(err: Exception) -> str:
    lines = [s.strip() for s in str(err).splitlines() if s.strip()]
    return lines[0][:300] if lines else type(err).__name__


def read_state_dict(path: str | Path, *, trust: bool = False, what: str = "checkpoint") -> dict:
    """The ``state_dict`` of a Lightning ``.ckpt`` / exported ``{state_dict, config}`` file, or a bare
    state_dict file: ``{name: Tensor}``."""
    import torch
    ckpt = read(path, trust=trust, what=what)
    sd = ckpt.get("state_dict", ckpt) if isinstance(ckpt, Mapping) else None
    if not isinstance(sd, Mapping) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path} holds no state_dict (expected a Lightning .ckpt, an exported "
                              f"{{state_dict, config}} file or a plain state_dict)")
    return dict(sd)


# ----------------------------------------------------------------------------- stored configs
def run_dir_of(ckpt_path: str | Path) -> Path:
    """``<run>`` of ``<run>/checkpoints/<file>`` (the authors' and train.py's log layout)."""
    return Path(ckpt_path).resolve().parent.parent


def run_config_files(run: str | Path) -> list[Path]:
    """``<run>/configs/<time>-project.yaml`` and ``<time>-lightning.yaml`` in merge order: oldest run
    first (a resume adds a pair), the project file before the lightning file of the same time."""
    order = {"project": 0, "lightning": 1}
    found = [p for p in Path(run).glob("configs/*.yaml") if p.stem.rpartition("-")[2] in order]
    return sorted(found, key=lambda p: (p.stem.rpartition("-")[0], order[p.stem.rpartition("-")[2]]))


def run_config(ckpt_path: str | Path) -> DictConfig | None:
    """The merged config of the run a checkpoint lies in (authors' layout), or None without one."""
    files = run_config_files(run_dir_of(ckpt_path))
    if not any(p.stem.endswith("-project") for p in files):
        return None
    from specvqgan.config import load_config
    return load_config(files)


def stored_config(ckpt: Mapping | None, path: str | Path) -> dict | None:
    """The training config of checkpoint ``path`` (``ckpt`` its contents, if already read): the full
    config stored by train.py, else the run layout's YAMLs, else ``{'model': <stored model block>}``."""
    from omegaconf import OmegaConf
    config = ckpt.get("config") if isinstance(ckpt, Mapping) else None
    if isinstance(config, Mapping) and "data" in config:
        return dict(config)
    run = run_config(path)
    if run is not None:
        return OmegaConf.to_container(run)
    if isinstance(config, Mapping) and "model" in config:
        return dict(config)
    return {"model": dict(config)} if isinstance(config, Mapping) and "target" in config else None


def read_config(path: str | Path, *, trust: bool = False) -> dict | None:
    """:func:`stored_config` of a checkpoint file (memory-mapped read: the weights stay on disk)."""
    return stored_config(read(path, trust=trust, mmap=True), path)


def model_config(ckpt: Mapping, path: str | Path) -> dict:
    """The resolved ``{target, params}`` model block of a checkpoint: the block an exported file stores,
    the model of the full config train.py stores, else the run layout's (see :func:`stored_config`)."""
    from omegaconf import OmegaConf
    config = ckpt.get("config") if isinstance(ckpt, Mapping) else None
    if isinstance(config, Mapping) and "target" in config:
        return OmegaConf.to_container(OmegaConf.create(dict(config)), resolve=True)
    full = config if isinstance(config, Mapping) and "model" in config else stored_config(None, path)
    model = (full or {}).get("model")
    if not isinstance(model, Mapping) or "target" not in model:
        raise CheckpointError(f"checkpoint {path} carries no model config and no <run>/configs/*-project.yaml "
                              f"lies beside it; export it with specvqgan.checkpoint.export or train it with train.py")
    cfg = OmegaConf.create(dict(full))
    try:
        OmegaConf.resolve(cfg)
    except Exception:  # an interpolation outside the model block that cannot be resolved here
        cfg = OmegaConf.create({"model": dict(model)})
        OmegaConf.resolve(cfg)
    return OmegaConf.to_container(cfg.model)


# ----------------------------------------------------------------------------- models
def instantiate(config: Mapping, path: str | Path) -> Any:
    """``instantiate_from_config`` of a checkpoint's config; a refused or broken config (it may come from a
    release folder) is a ConfigError naming the checkpoint."""
    from omegaconf import DictConfig, OmegaConf
    from specvqgan.config import ConfigError, instantiate_from_config

    try:
        return instantiate_from_config(config if isinstance(config, DictConfig) else OmegaConf.create(dict(config)))
    except ConfigError as err:
        raise ConfigError(f"checkpoint {path}: {err}") from None


@contextlib.contextmanager
def meta_device() -> Iterator[None]:
    """``with torch.device("meta")`` whose in-place initialisations (``normal_``, ``uniform_``, ``fill_``,
    ``zero_``, ``torch.nn.init.*`` of the modules' constructors) are skipped on meta tensors: they have no
    data, and torch runs them through Python decompositions that import ``torch._dynamo`` (seconds at start-up)."""
    import torch
    from torch.overrides import TorchFunctionMode

    skipped = {getattr(torch.Tensor, n) for n in ("normal_", "uniform_", "fill_", "zero_", "exponential_",
                                                  "bernoulli_", "random_", "log_normal_", "geometric_", "cauchy_")}

    class _SkipMetaInit(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            init = func in skipped or getattr(func, "__module__", "") == "torch.nn.init"
            target = args[0] if args else (kwargs or {}).get("tensor")   # torch.nn.init passes tensor=...
            if init and isinstance(target, torch.Tensor) and target.is_meta:
                return target
            return func(*args, **(kwargs or {}))

    with torch.device("meta"), _SkipMetaInit():
        yield


def instantiate_loaded(config: Mapping, state_dict: Mapping, path: str | Path, strict: bool = True) -> Any:
    """``instantiate`` + ``load_state_dict(strict)`` without the random initialisation and the copy
    (:func:`build_loaded`)."""
    return build_loaded(lambda: instantiate(config, path), state_dict, strict)


def build_loaded(build: Callable[[], Any], state_dict: Mapping, strict: bool = True,
                 check: Optional[Callable[[Any], None]] = None) -> Any:
    """``model = build(); model.load_state_dict(state_dict, strict)`` without the random initialisation and
    the copy: the model is built on the meta device and takes the state dict's tensors themselves
    (memory-mapped when :func:`read` got ``mmap=True``; cast where the model's dtype differs, e.g. fp16
    weights into an fp32 model). ``check(model)`` (the meta-device model) may raise before anything is
    loaded, e.g. on wrong keys. A tensor the state dict does not provide (a non-persistent buffer) makes it
    fall back to the plain build, so the result always equals ``build()`` + ``load_state_dict``."""
    import itertools

    import torch
    with meta_device():
        model = build()
    if check is not None:
        check(model)
    own = model.state_dict()
    sd = {k: v.to(own[k].dtype) if k in own and torch.is_tensor(v) and v.dtype != own[k].dtype else v
          for k, v in state_dict.items()}
    model.load_state_dict(sd, strict=strict, assign=True)
    if any(t.is_meta for t in itertools.chain(model.parameters(), model.buffers())):
        model = build()
        model.load_state_dict(state_dict, strict=strict)
    return model


def build_model(path: str | Path, *, trust: bool = False, strict_keys: bool = True,
                drop_prefixes: tuple = (), **overrides: Any) -> torch.nn.Module:
    """Rebuild the model of a checkpoint (stored config or run layout) and load its weights strictly,
    in eval mode. ``overrides`` replace constructor params (e.g. ``ckpt_path=None``); weights whose
    keys start with ``drop_prefixes`` are dropped first (e.g. ``loss.`` for an inference codebook)."""
    ckpt = read(path, trust=trust)
    config = model_config(ckpt, path)
    config = {"target": config["target"], "params": {**(config.get("params") or {}), **overrides}}
    sd = ckpt.get("state_dict", ckpt) if isinstance(ckpt, Mapping) else None
    if not isinstance(sd, Mapping):
        raise CheckpointError(f"{path} holds no state_dict")
    sd = {k: v for k, v in sd.items() if not k.startswith(drop_prefixes)} if drop_prefixes else sd
    with trusted(path if trust else None):
        model = instantiate(config, path)
    try:
        model.load_state_dict(sd, strict=strict_keys)
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint {path} does not match its config ({config['target']}): "
                              f"{' '.join(str(err).split())[:600]}") from None
    return model.eval()


def export(module: torch.nn.Module, model_config: Any, path: str | Path) -> Path:
    """Write ``{state_dict, config}`` atomically: a checkpoint that rebuilds itself without Lightning or
    data (:func:`build_model`). ``model_config`` is the ``{target, params}`` block (``cfg.model``)."""
    from omegaconf import DictConfig, OmegaConf
    import torch
    from specvqgan.files import atomic_write

    path = Path(path)
    config = OmegaConf.to_container(model_config, resolve=True) if isinstance(model_config, DictConfig) else model_config
    atomic_write(path, lambda tmp: torch.save({"state_dict": module.state_dict(), "config": config}, tmp))
    return path


# ----------------------------------------------------------------------------- Lightning
def safe_checkpoint_io(trust: bool = False):
    """A Lightning ``CheckpointIO`` plugin whose loads go through :func:`read` (resume, ``ckpt_path=``)."""
    from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

    class SafeCheckpointIO(TorchCheckpointIO):
        def load_checkpoint(self, path, map_location=None, weights_only=None):  # noqa: D102
            return read(path, trust=trust, what="checkpoint to resume")

    return SafeCheckpointIO()


# ----------------------------------------------------------------------------- command lines
def add_trust_argument(parser) -> None:
    """``--trust-checkpoint`` for a CLI that loads checkpoints (use with :func:`trusted_by`)."""
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="read the checkpoint files named on this command line in full (weights_only=False); "
                             "a checkpoint can run code: only for files you trust (docs/checkpoints.md)")


def trusted_by(args, *paths: str | Path | None):
    """:func:`trusted` for ``paths`` if ``args.trust_checkpoint`` is set, else a no-op block."""
    return trusted(*paths) if getattr(args, "trust_checkpoint", False) else contextlib.nullcontext()

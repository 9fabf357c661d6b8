"""Reference and former target paths -> our classes, read from the data file ``specvqgan/reference_targets.yaml``.

Configs written for the reference implementation (github.com/v-iashin/SpecVQGAN) name classes by
their paths there. :func:`specvqgan.config.instantiate_from_config` looks a target up here first, so
such a config instantiates unchanged; a reference class that is deliberately not supported fails
with the reason stored next to it.

An entry is either a class path or a mapping that also fixes parameters: the reference's one-line
``VASSpecsCondOnFeatsTrain`` is ``{target: specvqgan.data.vas.VASSpecsCondOnFeats, bind: {split: train}}``,
and ``VASSpecsTrain``, which took the dataset's keyword arguments inside ``specs_dataset_cfg``, adds
``unpack: specs_dataset_cfg`` (with ``outer:`` the other params such a name took beside it). The
``former`` section holds our own class paths of that kind, so configs that name them keep working.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

TARGETS_FILE = Path(__file__).with_name("reference_targets.yaml")
_ENTRY_KEYS = {"target", "bind", "unpack", "outer"}


@dataclass(frozen=True)
class Alias:
    """A target path that builds ``target`` with some parameters fixed.

    Attributes:
        target: our class path.
        bind: params the name fixes (e.g. ``{"split": "train"}``); a config may not set them.
        unpack: the name took the class's keyword arguments inside this one param (e.g. ``specs_dataset_cfg``).
        outer: with ``unpack``, the other params the name took beside it (the unpacked keys win).
    """

    target: str
    bind: Mapping[str, Any] = field(default_factory=dict)
    unpack: str | None = None
    outer: tuple[str, ...] = ()


def _entry(path: Path, name: str, value: Any) -> Alias:
    if isinstance(value, str):
        return Alias(value)
    if not isinstance(value, dict) or not isinstance(value.get("target"), str) or set(value) - _ENTRY_KEYS:
        raise ValueError(f"{path}: entry {name!r} must be a class path or a mapping with `target` and "
                         f"optional {sorted(_ENTRY_KEYS - {'target'})}, got {value!r}")
    bind, outer = dict(value.get("bind") or {}), tuple(value.get("outer") or ())
    if value.get("outer") and not value.get("unpack"):
        raise ValueError(f"{path}: entry {name!r} has `outer` without `unpack`")
    return Alias(value["target"], bind, value.get("unpack"), outer)


def _load(path: Path = TARGETS_FILE) -> tuple[dict[str, Alias], dict[str, Alias], dict[str, str]]:
    data = yaml.safe_load(path.read_text())
    supported = {k: _entry(path, k, v) for k, v in data["supported"].items()}
    former = {k: _entry(path, k, v) for k, v in (data.get("former") or {}).items()}
    unsupported = dict(data["unsupported"])
    for a, b in ((supported, unsupported), (supported, former), (former, unsupported)):
        both = set(a) & set(b)
        if both:
            raise ValueError(f"{path}: {sorted(both)} listed in two sections")
    return supported, former, unsupported


_SUPPORTED, _FORMER, UNSUPPORTED_TARGETS = _load()
#: reference path -> our class path (identity entries included: every reference path we build)
REFERENCE_ALIASES: dict[str, str] = {k: a.target for k, a in _SUPPORTED.items()}
#: our former class paths (the one-line split subclasses) -> our class path
FORMER_ALIASES: dict[str, str] = {k: a.target for k, a in _FORMER.items()}
#: the alias paths (reference or former) that fix params or unpack a sub-config
BINDINGS: dict[str, Alias] = {k: a for k, a in {**_SUPPORTED, **_FORMER}.items() if a.bind or a.unpack}
#: UNSUPPORTED_TARGETS: reference path -> why it is not supported

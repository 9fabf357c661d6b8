"""Reference target paths -> our classes, read from the data file ``specvqgan/reference_targets.yaml``.

Configs written for the reference implementation (github.com/v-iashin/SpecVQGAN) name classes by
their paths there. :func:`specvqgan.config.instantiate_from_config` looks a target up here first, so
such a config instantiates unchanged; a reference class that is deliberately not supported fails
with the reason stored next to it.
"""
from __future__ import annotations

from pathlib import Path

import yaml

TARGETS_FILE = Path(__file__).with_name("reference_targets.yaml")


def _load(path: Path = TARGETS_FILE) -> tuple[dict[str, str], dict[str, str]]:
    data = yaml.safe_load(path.read_text())
    supported, unsupported = dict(data["supported"]), dict(data["unsupported"])
    both = set(supported) & set(unsupported)
    if both:
        raise ValueError(f"{path}: {sorted(both)} listed as both supported and unsupported")
    return supported, unsupported


#: reference path -> our path (identity entries included: every reference path we build)
REFERENCE_ALIASES: dict[str, str]
#: reference path -> why it is not supported
UNSUPPORTED_TARGETS: dict[str, str]
REFERENCE_ALIASES, UNSUPPORTED_TARGETS = _load()

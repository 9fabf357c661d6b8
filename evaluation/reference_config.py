"""``python evaluate.py config=<yaml> key=value ...``: the reference's evaluation command
(``evaluation/configs/eval_melception_{vas,vggsound}.yaml`` of github.com/v-iashin/SpecVQGAN), run by
:func:`evaluation.evaluate.evaluate`, so both forms give the same numbers.

How the reference keys are read:

* ``input1`` (``evaluation.datasets.fakes.FakesFolder``): ``params.root`` -> the generated samples.
* ``input2``: ``path_to_exp`` + ``key`` -> the real mels of split ``key`` of the run's merged
  ``configs/*-project.yaml`` (and ``*-lightning.yaml``) data block; or a ``FakesFolder`` -> a folder.
* ``patch.<name>=<value>``: replaces every key ``<name>`` at any depth (e.g. ``spec_dir_path``,
  ``rgb_feats_dir_path``, ``specs_dir``), as the reference's ``patch_cfg_for_new_paths``.
* ``feature_extractor.params.feature_extractor_weights_path`` -> the Melception checkpoint (falls back to
  the ``melception`` release in the download cache when the reference's relative path is absent).
* ``StandardNormalizeAudio`` in ``transform_dset_out_to_inception_in`` -> the mel stats file.
* ``have_{fid,kid,isc,kl}``, ``kid_cfg``, ``isc_cfg``, ``extraction_cfg.batch_size``, ``device`` (CPU when
  CUDA is absent). Extra keys of ours: ``out=<report.json>``, ``no_cache=true``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from evaluation.evaluate import METRICS
from evaluation.reference_inputs import StandardNormalizeAudio
from specvqgan.config import ConfigError, check_missing, get_obj_from_str, load_config, source_of

logger = logging.getLogger(__name__)

FAKES = "evaluation.datasets.fakes.FakesFolder"
#: the reference defaults our metric functions implement; other values are refused
FIXED = {"kid_cfg": {"feat_layer_name": "2048", "degree": 3, "gamma": None, "coef0": 1, "rng_seed": 2020},
         "isc_cfg": {"feat_layer_name": "logits_unbiased", "samples_shuffle": True, "rng_seed": 2020},
         "fid_cfg": {"feat_layer_name": "2048"}, "kl_cfg": {"feat_layer_name": "logits"}}


def is_reference_form(argv: list[str]) -> bool:
    """``config=...`` among only ``key=value`` arguments."""
    return bool(argv) and any(a.startswith("config=") for a in argv) and all(
        "=" in a and not a.startswith("-") for a in argv)


def patch_config(node: Any, patch: dict) -> Any:
    """Replace every (leaf) key named in ``patch`` anywhere under ``node`` (in place)."""
    if isinstance(node, DictConfig):
        for key in list(node.keys()):
            child = node._get_node(key)
            if isinstance(child, (DictConfig, ListConfig)):
                patch_config(child, patch)
            elif key in patch:
                logger.info("patched %s: %s -> %s", key, node[key], patch[key])
                node[key] = patch[key]
    elif isinstance(node, ListConfig):
        for item in node:
            patch_config(item, patch)
    return node


def load_reference_config(argv: list[str]) -> DictConfig:
    """The eval YAML named by ``config=`` merged with the other ``key=value`` arguments, patched."""
    cli = OmegaConf.from_dotlist(argv)
    cfg = load_config([cli.config], [a for a in argv if not a.startswith(("config=", "patch."))])
    patch = cli.get("patch")
    if patch:
        for name in ("input1", "input2"):
            if cfg.get(name) is not None:
                patch_config(cfg[name], OmegaConf.to_container(patch))
        cfg.patch = patch
    check_missing(cfg)
    return cfg


def _exp_data(block: DictConfig, patch: Any) -> tuple[DictConfig, str]:
    """The config saved in ``block.path_to_exp`` (its data block patched) and a description."""
    from specvqgan.checkpoint import run_config_files

    exp = Path(str(block.path_to_exp))
    files = run_config_files(exp)
    if not files:
        raise FileNotFoundError(f"input2.path_to_exp={exp}: no configs/*-project.yaml in it (a train.py run folder)")
    cfg = load_config(files)
    if "data" not in cfg:
        raise ConfigError(f"input2.path_to_exp={exp}: its configs have no data block")
    if patch:
        patch_config(cfg.data, OmegaConf.to_container(patch))
    return cfg, str(exp)


def _stats_path(cfg: DictConfig) -> Path | None:
    """The stats file of the StandardNormalizeAudio transforms (the same for both inputs)."""
    paths = set()
    for name in ("input1", "input2"):
        for t in (cfg.get(name) or {}).get("transform_dset_out_to_inception_in") or []:
            if get_obj_from_str(str(t.get("target"))) is StandardNormalizeAudio:
                paths.add(StandardNormalizeAudio(**t.get("params", {})).stats_path)
    if len(paths) > 1:
        raise ConfigError(f"input1 and input2 standardize with different stats files: {sorted(map(str, paths))}")
    return paths.pop() if paths else None


def _melception_path(cfg: DictConfig) -> Path:
    path = Path(str(cfg.feature_extractor.params.get("feature_extractor_weights_path")))
    if path.is_file():
        return path
    from specvqgan.download import local_path

    try:
        cached = local_path("melception")
    except FileNotFoundError as err:
        raise FileNotFoundError(f"feature_extractor.params.feature_extractor_weights_path={path} not found and "
                                f"{err}") from None
    logger.info("%s not found; using the melception release %s", path, cached)
    return cached


def _check_fixed(cfg: DictConfig) -> None:
    for block, values in FIXED.items():
        for key, want in values.items():
            got = (cfg.get(block) or {}).get(key, want)
            got = None if got in ("None", "none", "null") else got
            if got != want and str(got) != str(want):
                raise ConfigError(f"{block}.{key}={got!r} (in {source_of(cfg, block)}): only the reference "
                                  f"value {want!r} is supported")


def evaluate_kwargs(cfg: DictConfig) -> dict:
    """The arguments of :func:`evaluation.evaluate.evaluate` that the reference config describes."""
    from evaluation.evaluate import experiment_source

    _check_fixed(cfg)
    one, two = cfg.get("input1"), cfg.get("input2")
    if one is None or str(one.get("target")) not in (FAKES, "evaluation.reference_inputs.FakesFolder"):
        raise ConfigError(f"input1 must be a {FAKES} block with params.root (the generated samples)")
    root = Path(str(one.params.get("root")))
    if not root.is_dir():
        raise FileNotFoundError(f"input1.params.root={root} is not a folder: set input1.params.root=<generated samples>")
    metrics = [m for m, flag in zip(METRICS, ("have_fid", "have_kid", "have_isc", "have_kl")) if cfg.get(flag)]
    if two is None or str(two) in ("None", "none", "null"):
        reference = None
        metrics = [m for m in metrics if m == "isc"]
    elif two.get("path_to_exp") is not None:
        exp_cfg, what = _exp_data(two, cfg.get("patch"))
        reference = experiment_source(exp_cfg, str(two.get("key", "validation")), what)
    elif two.get("target") is not None:
        reference = str(two.params.root)
    else:
        raise ConfigError("input2 needs path_to_exp (+ key) or a FakesFolder block with params.root")
    device = str(cfg.get("device", "cpu"))
    if device.startswith("cuda") and not torch.cuda.is_available():
        logger.warning("device=%s but CUDA is not available: evaluating on the CPU", device)
        device = "cpu"
    return dict(generated=str(root), reference=reference, melception=_melception_path(cfg),
                metrics=metrics, batch_size=int((cfg.get("extraction_cfg") or {}).get("batch_size", 8)),
                device=device, stats_path=_stats_path(cfg),
                kid_subsets=int(cfg.kid_cfg.subsets), kid_subset_size=int(cfg.kid_cfg.subset_size),
                isc_splits=int(cfg.isc_cfg.splits))

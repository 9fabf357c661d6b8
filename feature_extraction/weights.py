"""Weight files of the visual networks (:mod:`specvqgan.modules.visual`): read by path through
:func:`specvqgan.checkpoint.read` (tensors and allowed globals only), converted to our key layout and loaded
strictly; nothing is ever downloaded.

* :func:`load_resnet50`: torchvision's ImageNet ResNet-50 file (``resnet50-19c8e357.pth``, ...).
* :func:`load_bninception`: TSN's / Cadene's BN-Inception file; the flow network is the RGB one with its
  first convolution averaged over the colours (:func:`flow_first_conv`, TSN ``_construct_flow_model``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import nn

from specvqgan.checkpoint import build_loaded, read
from specvqgan.modules.visual.bn_inception import BNInception
from specvqgan.modules.visual.resnet50 import ResNet50


def _unwrap_state_dict(obj, path: Path) -> dict[str, torch.Tensor]:
    """Plain state dict from a file holding one, or ``{'state_dict'|'model': ...}``; drops ``module.``."""
    if isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise ValueError(f"{path}: not a state dict (got {type(obj).__name__})")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A weight file's state dict (``specvqgan.checkpoint.read``: tensors and allowed globals only);
    clear errors for a missing/unreadable file."""
    return _unwrap_state_dict(read(path, what="torch weight file"), path)


def load_strict(build: Callable[[], nn.Module], sd: dict[str, torch.Tensor], path: str | Path | None,
                what: str) -> nn.Module:
    """``build()`` with the weights ``sd`` loaded strictly (built on the meta device: no random initialisation,
    the file's tensors taken as they are, ``checkpoint.build_loaded``); an error naming the file and the key
    problems."""
    def check(model: nn.Module) -> None:
        own = model.state_dict()
        # files from torch < 0.4 (the TSN release) have no BN num_batches_tracked; torch fills it in
        missing = [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]
        unexpected = [k for k in sd if k not in own]
        if missing or unexpected:
            more = lambda keys: f"{keys[:5]}{'...' if len(keys) > 5 else ''}"  # noqa: E731
            raise ValueError(f"{path}: not a {what} state dict (missing keys {more(missing)}, "
                             f"unexpected keys {more(unexpected)})")
    try:
        return build_loaded(build, sd, strict=True, check=check)
    except RuntimeError as err:    # shape mismatches
        raise ValueError(f"{path}: not a {what} state dict ({' '.join(str(err).split())})") from err


def load_resnet50(path: str | Path | None = None, seed: int = 0) -> ResNet50:
    """ResNet-50 in eval mode with the torchvision ImageNet weights at ``path`` (strict), or random
    weights drawn from ``seed`` when ``path`` is None."""
    if path is None:
        return ResNet50(seed=seed).eval()
    return load_strict(lambda: ResNet50(seed=None), load_state_dict_file(path), path, "torchvision resnet50").eval()


def _tsn_to_ours(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """TSN / Cadene layouts -> our keys: drop ``module.``/``base_model.``, ``fc.`` -> ``last_linear.``,
    ``(1, C)`` BN tensors -> ``(C,)``; keep only tensors (no TSN ``new_fc``/consensus entries)."""
    out = {}
    for k, v in sd.items():
        k = k.removeprefix("module.").removeprefix("base_model.")
        if k.startswith("new_fc.") or k.startswith("consensus"):
            continue
        if k.startswith("fc."):
            k = "last_linear." + k[len("fc."):]
        if "_bn." in k and v.dim() == 2 and v.shape[0] == 1:
            v = v.squeeze(0)
        out[k] = v
    return out


def flow_first_conv(weight: torch.Tensor, in_channels: int = 2) -> torch.Tensor:
    """TSN ``_construct_flow_model``: (64, 3, 7, 7) RGB kernel -> (64, in_channels, 7, 7), every input
    channel = the mean over the RGB channels."""
    return weight.mean(dim=1, keepdim=True).expand(-1, in_channels, -1, -1).contiguous()


def load_bninception_state_dict(path: str | Path, in_channels: int = 3) -> dict[str, torch.Tensor]:
    """Read a BN-Inception weight file (TSN ``bn_inception-9f5701afb96c8044.pth``, Cadene's
    ``bn_inception-52deb4733.pth`` or our own) into our key layout; for ``in_channels != 3`` an RGB first
    convolution is converted with :func:`flow_first_conv` (a file trained on flow is used as is)."""
    sd = _tsn_to_ours(load_state_dict_file(path))
    w = sd.get("conv1_7x7_s2.weight")
    if w is not None and w.shape[1] == 3 and in_channels != 3:
        sd["conv1_7x7_s2.weight"] = flow_first_conv(w, in_channels)
    return sd


def load_bninception(path: str | Path | None = None, in_channels: int = 3, seed: int = 0) -> BNInception:
    """BN-Inception in eval mode with the weights at ``path`` (strict, after the layout conversion), or
    random weights drawn from ``seed``. For ``in_channels=2`` (flow) the first convolution of the RGB
    weights (random ones too) is averaged with :func:`flow_first_conv`, as TSN does."""
    if path is not None:
        sd, what = load_bninception_state_dict(path, in_channels), f"BN-Inception ({in_channels}-channel)"
    else:
        sd, what = BNInception(in_channels=3, seed=seed).state_dict(), "random"
        sd["conv1_7x7_s2.weight"] = flow_first_conv(sd["conv1_7x7_s2.weight"], in_channels)
    return load_strict(lambda: BNInception(in_channels=in_channels), sd, path, what).eval()

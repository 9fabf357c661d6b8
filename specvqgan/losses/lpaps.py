"""LPAPS: learned perceptual audio patch similarity on VGGish-ish features (paper Sec. 3.1).

The spectrogram analogue of LPIPS: both mels are standardized per mel bin, passed through the frozen
VGGish-ish conv stack, the activations at the end of each of the 5 conv blocks are unit-normalized along
channels, their squared difference is weighted by a 1x1 "linear head" per scale, averaged over space
and summed over scales.

Weights never download: `ckpt_path` names a local file, loaded strictly (see `read_lpaps_weights`).
State-dict keys equal the reference (`scaling_layer.{shift,scale}`, `net.slice<k>.<i>.*` with the
VGGishish feature indices, `lin<k>.model.1.weight`). Differences from the reference, by design:
* the reference loaded its heads with `strict=False` from a file that does not hold them, so they kept
  their random, signed init (the distance could go negative). Here heads come from the checkpoint when
  it has them (an LPAPS or codebook state dict), otherwise `lin_init='ones'` (squared L2 distance of the
  unit-normalized features, LPIPS without learned heads); `lin_init='random'` restores the reference.
* the module stays in eval mode when frozen (the reference's `VQModel.train()` re-enabled the heads'
  dropout); `dropout_in_train=True` restores that.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from specvqgan.checkpoint import read
from specvqgan.audio import load_mel_stats_txt
from specvqgan.modules.classifiers.vggishish import VGG16_CONV_LAYERS, infer_conv_layers, make_features

logger = logging.getLogger(__name__)

#: Where a VGGish-ish classifier LightningModule keeps its stats and network (specvqgan.models.vggishish).
CLASSIFIER_STATS_KEYS = ('train_means', 'train_stds')
CLASSIFIER_NET_PREFIX = 'model.'
CODEBOOK_LPAPS_PREFIX = 'loss.perceptual_loss.'


class ScalingLayer(nn.Module):
    """Per-mel-bin standardization of a [-1, 1] mel: `(x - (2*mean - 1)) / (2*std)`.

    Equal to `((x + 1) / 2 - mean) / std`, the classifier's input standardization of a [0, 1] mel.
    Buffers `shift`, `scale`: (1, 1, F, 1). Without stats they are 0 and 1 (placeholders).
    """

    def __init__(self, n_mels: int = 80, means: np.ndarray | None = None, stds: np.ndarray | None = None):
        super().__init__()
        self.register_buffer('shift', torch.zeros(1, 1, n_mels, 1))
        self.register_buffer('scale', torch.ones(1, 1, n_mels, 1))
        if means is not None:
            self.set_stats(means, stds)

    def set_stats(self, means, stds) -> None:
        means = torch.as_tensor(np.asarray(means), dtype=torch.float32).flatten()
        stds = torch.as_tensor(np.asarray(stds), dtype=torch.float32).flatten()
        if means.numel() != self.shift.shape[2] or stds.numel() != self.shift.shape[2]:
            raise ValueError(f'mel stats have {means.numel()}/{stds.numel()} bins, expected {self.shift.shape[2]}')
        if not (torch.isfinite(stds).all() and (stds > 0).all()):
            raise ValueError('mel stds must be finite and positive')
        self.shift.copy_((2 * means - 1).view(1, 1, -1, 1))
        self.scale.copy_((2 * stds).view(1, 1, -1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (Tensor): (B, 1, F, T) in [-1, 1] -> standardized (B, 1, F, T)."""
        return (x - self.shift) / self.scale


class NetLinLayer(nn.Module):
    """1x1 conv `chn_in -> 1` without bias, optionally preceded by Dropout (keys `model.1.weight`)."""

    def __init__(self, chn_in: int, chn_out: int = 1, use_dropout: bool = False):
        super().__init__()
        layers: list[nn.Module] = [nn.Dropout()] if use_dropout else []
        layers.append(nn.Conv2d(chn_in, chn_out, 1, stride=1, padding=0, bias=False))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class VGGishishSlices(nn.Module):
    """VGGish-ish conv stack cut before every max-pool: `slice<k>` ends with the ReLU of block k.

    Module names keep the VGGishish `features` indices (`slice2.5` is `features.5`). For the paper layout
    the 5 outputs are relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 with channels [64, 128, 256, 512, 512].
    """

    def __init__(self, conv_layers: Sequence = VGG16_CONV_LAYERS, use_bn: bool = False):
        super().__init__()
        features = make_features(conv_layers, use_bn)
        slices: list[list[tuple[int, nn.Module]]] = [[]]
        for i, layer in enumerate(features):
            if isinstance(layer, nn.MaxPool2d) and slices[-1]:
                slices.append([])
            slices[-1].append((i, layer))
        while slices and not any(isinstance(m, nn.ReLU) for _, m in slices[-1]):
            slices.pop()  # a trailing max-pool adds nothing
        self.chns = []
        for k, layers in enumerate(slices, start=1):
            seq = nn.Sequential()
            for i, layer in layers:
                seq.add_module(str(i), layer)
            self.add_module(f'slice{k}', seq)
            self.chns.append([m.out_channels for _, m in layers if isinstance(m, nn.Conv2d)][-1])
        self.n_slices = len(slices)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x (Tensor): (B, 1, F, T) -> list of n_slices activations (B, chns[k], F/2^k, T/2^k)."""
        outs = []
        for k in range(1, self.n_slices + 1):
            x = getattr(self, f'slice{k}')(x)
            outs.append(x)
        return outs


def normalize_tensor(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Unit-normalize along the channel dim: (B, C, H, W) -> (B, C, H, W)."""
    return x / (torch.sqrt(torch.sum(x ** 2, dim=1, keepdim=True)) + eps)


def spatial_average(x: torch.Tensor, keepdim: bool = True) -> torch.Tensor:
    return x.mean([2, 3], keepdim=keepdim)


class LPAPS(nn.Module):
    """Learned perceptual distance between mel spectrograms.

    Args:
        use_dropout: Dropout before each linear head (as the reference; active only in train mode).
        ckpt_path: local VGGish-ish / LPAPS / codebook checkpoint (formats: `read_lpaps_weights`), loaded
            strictly. None builds random frozen weights (a placeholder that only makes sense when the
            caller never uses the distance, e.g. `perceptual_weight: 0`): `self.pretrained` tells which.
        stats_path: reference 80x2 `mean std` text file; needed when the checkpoint has no mel stats
            (the reference `vggishish16.pt`), overrides them otherwise.
        conv_layers: VGGishish conv list; inferred from the checkpoint when None (default VGG16).
        n_mels: mel bins (stats length).
        lin_init: 'ones' or 'random' (reference) for heads the checkpoint does not provide.
        train_lin: make the linear heads trainable (the conv stack stays frozen).
        dropout_in_train: let `.train()` switch the heads' dropout on (reference behaviour).
    Shapes: input, target (B, 1, F, T) in [-1, 1] -> distance (B, 1, 1, 1).
    """

    def __init__(self, use_dropout: bool = True, ckpt_path: str | None = None, stats_path: str | None = None,
                 conv_layers: Sequence | None = None, n_mels: int = 80, lin_init: str = 'ones',
                 train_lin: bool = False, dropout_in_train: bool = False):
        super().__init__()
        if lin_init not in ('ones', 'random'):
            raise ValueError(f"lin_init must be 'ones' or 'random', got {lin_init!r}")
        weights = read_lpaps_weights(ckpt_path) if ckpt_path is not None else None
        use_bn = False
        if weights is not None:
            ck_layers, use_bn = infer_conv_layers(weights['features'])
            if conv_layers is not None and list(conv_layers) != ck_layers:
                raise ValueError(f'{ckpt_path}: conv_layers={list(conv_layers)} but the checkpoint has {ck_layers}')
            conv_layers = ck_layers
            if weights['means'] is not None:
                n_mels = len(weights['means'])
            elif weights['lpaps'] is not None and 'scaling_layer.shift' in weights['lpaps']:
                n_mels = weights['lpaps']['scaling_layer.shift'].shape[2]
        self.scaling_layer = ScalingLayer(n_mels)
        self.net = VGGishishSlices(conv_layers if conv_layers is not None else VGG16_CONV_LAYERS, use_bn)
        self.chns = self.net.chns
        for k, c in enumerate(self.chns):
            self.add_module(f'lin{k}', NetLinLayer(c, use_dropout=use_dropout))
        if lin_init == 'ones':
            with torch.no_grad():
                for lin in self.lins:
                    lin.model[-1].weight.fill_(1.0)
        self.train_lin, self.dropout_in_train = train_lin, dropout_in_train
        self.pretrained = weights is not None
        if weights is not None:
            self._load(weights, ckpt_path)
        if stats_path is not None:
            self.scaling_layer.set_stats(*load_mel_stats_txt(stats_path))
        elif weights is not None and weights['means'] is None and weights['lpaps'] is None:
            raise ValueError(f'{ckpt_path} holds VGGishish weights but no mel standardization stats: '
                             'pass stats_path (the 80x2 train_means_stds_*.txt file)')
        for p in self.parameters():
            p.requires_grad = False
        for lin in self.lins:
            lin.requires_grad_(train_lin)
        self.train(False)

    @property
    def lins(self) -> list[NetLinLayer]:
        return [getattr(self, f'lin{k}') for k in range(len(self.chns))]

    def _load(self, weights: dict, path) -> None:
        if weights['lpaps'] is not None:
            _strict_load(self, weights['lpaps'], path, what='LPAPS')
            return
        net_sd = {}
        for k, v in weights['features'].items():
            idx = int(k.split('.')[1])
            slice_k = next((j for j in range(1, self.net.n_slices + 1)
                            if str(idx) in getattr(self.net, f'slice{j}')._modules), None)
            net_sd[f'slice{slice_k}.' + k[len('features.'):] if slice_k else k] = v
        _strict_load(self.net, net_sd, path, what='VGGishish features')
        if weights['means'] is not None:
            self.scaling_layer.set_stats(weights['means'], weights['stds'])

    def train(self, mode: bool = True) -> 'LPAPS':
        """Frozen LPAPS stays in eval mode unless `train_lin` or `dropout_in_train`."""
        return super().train(mode and (self.train_lin or self.dropout_in_train))

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """input, target (Tensor): (B, 1, F, T) in [-1, 1] -> (B, 1, 1, 1) distance (0 iff features equal)."""
        outs0 = self.net(self.scaling_layer(input))
        outs1 = self.net(self.scaling_layer(target))
        val = 0
        for lin, f0, f1 in zip(self.lins, outs0, outs1):
            diff = (normalize_tensor(f0) - normalize_tensor(f1)) ** 2
            val = val + spatial_average(lin(diff), keepdim=True)
        return val


def _strict_load(module: nn.Module, state_dict: Mapping[str, torch.Tensor], path, what: str) -> None:
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    bad = [f'{k}: {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}' for k in own
           if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or bad:
        raise RuntimeError(f'{path}: cannot load {what} weights strictly. missing keys: {missing}; '
                           f'unexpected keys: {unexpected}; shape mismatches: {bad}')
    module.load_state_dict(state_dict, strict=True)


def read_lpaps_weights(path: str | Path) -> dict:
    """Find LPAPS weights in a local file.

    Accepted layouts (a Lightning `.ckpt` or exported `{state_dict, config}` exposes `['state_dict']`):
    * our VGG-ish classifier (`model.features.*`, `train_means`, `train_stds`);
    * a VGGishish state dict (`features.*`, e.g. the reference `vggishish16.pt` under `['model']`): no stats;
    * an LPAPS state dict (`scaling_layer.*`, `net.slice*`, `lin*`) or a codebook checkpoint
      (`loss.perceptual_loss.*`): everything, including trained heads.
    Returns {'features': {features.<i>.*: Tensor}, 'means', 'stds': (F,) arrays or None,
    'lpaps': full LPAPS state dict or None}. `classifier.*` keys are ignored (LPAPS does not use them).
    """
    obj = read(path, what='LPAPS weight file')
    sd = obj
    if isinstance(obj, Mapping) and isinstance(obj.get('state_dict'), Mapping):
        sd = obj['state_dict']
    elif isinstance(obj, Mapping) and isinstance(obj.get('model'), Mapping):
        sd = obj['model']
    if not isinstance(sd, Mapping):
        raise ValueError(f'{path}: expected a state dict, got {type(sd).__name__}')
    out = {'features': None, 'means': None, 'stds': None, 'lpaps': None}
    if any(k.startswith(CODEBOOK_LPAPS_PREFIX) for k in sd):
        sd = {k[len(CODEBOOK_LPAPS_PREFIX):]: v for k, v in sd.items() if k.startswith(CODEBOOK_LPAPS_PREFIX)}
    if 'scaling_layer.shift' in sd or any(k.startswith('net.slice') for k in sd):
        out['lpaps'] = dict(sd)
        out['features'] = {re.sub(r'^net\.slice\d+\.', 'features.', k): v for k, v in sd.items()
                           if k.startswith('net.slice')}
        return out
    if any(k.startswith(CLASSIFIER_NET_PREFIX + 'features.') for k in sd):
        if not all(k in sd for k in CLASSIFIER_STATS_KEYS):
            raise ValueError(f'{path}: classifier checkpoint lacks {CLASSIFIER_STATS_KEYS} (mel stats)')
        out['means'], out['stds'] = (sd[k].double().cpu().numpy() for k in CLASSIFIER_STATS_KEYS)
        sd = {k[len(CLASSIFIER_NET_PREFIX):]: v for k, v in sd.items() if k.startswith(CLASSIFIER_NET_PREFIX)}
        if not np.isfinite(out['means']).all():
            raise ValueError(f'{path}: the mel stats in this classifier checkpoint were never computed (NaN)')
    features = {k: v for k, v in sd.items() if k.startswith('features.')}
    if not features:
        raise ValueError(f"{path}: not a VGGish-ish or LPAPS checkpoint: expected keys 'features.*', "
                         f"'model.features.*', 'net.slice*' or '{CODEBOOK_LPAPS_PREFIX}*'; "
                         f'found {sorted(sd)[:8]}')
    out['features'] = features
    return out

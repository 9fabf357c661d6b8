"""VGGish-ish: the VGG-style mel-spectrogram classifier behind LPAPS (paper Sec. 3.1 and supplementary).

A VGG16 conv stack (3x3 convs + ReLU, 2x2 max-pools, no BatchNorm in the paper model), an adaptive
average pool to (5, 10) and three fully connected layers. Trained on VGGSound (309 classes) with the
input mel standardized per mel bin with statistics of the training split (`compute_mel_stats`).
State-dict keys equal the reference `VGGishish` (`features.<i>.*`, `classifier.{0,2,4}.*`).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

#: The paper's conv list (VGG16 layout); 'MP' is a 2x2 max-pool.
VGG16_CONV_LAYERS: tuple = (64, 64, 'MP', 128, 128, 'MP', 256, 256, 256, 'MP',
                            512, 512, 512, 'MP', 512, 512, 512)


def _check_conv_layers(conv_layers: Sequence) -> list:
    layers = list(conv_layers)
    if not any(v != 'MP' for v in layers):
        raise ValueError(f'conv_layers={layers!r} has no conv layer')
    for v in layers:
        if v != 'MP' and not (isinstance(v, int) and not isinstance(v, bool) and v > 0):
            raise ValueError(f"conv_layers entries must be positive ints or 'MP', got {v!r} in {layers!r}")
    return layers


def make_features(conv_layers: Sequence = VGG16_CONV_LAYERS, use_bn: bool = False,
                  in_channels: int = 1) -> nn.Sequential:
    """The VGG conv stack as one `nn.Sequential` (indices = reference `features.<i>` indices).

    Each int `c` adds Conv2d(prev, c, 3, padding=1) [+ BatchNorm2d(c)] + ReLU; 'MP' adds MaxPool2d(2, 2).
    """
    layers: list[nn.Module] = []
    for v in _check_conv_layers(conv_layers):
        if v == 'MP':
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(in_channels, v, kernel_size=3, padding=1, stride=1))
        if use_bn:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        in_channels = v
    return nn.Sequential(*layers)


class VGGishish(nn.Module):
    """VGG-style classifier of standardized mel spectrograms.

    Args:
        conv_layers: channel list with 'MP' for max-pools (default: the paper's VGG16 layout).
        use_bn: BatchNorm after each conv (False in the paper model).
        num_classes: number of output classes (309 for VGGSound).
        hidden_dim: width of the two hidden FC layers (4096 in the paper; smaller for toy models).
        pool_size: output size of the adaptive average pool (5, 10) (mel, time).
    """

    def __init__(self, conv_layers: Sequence = VGG16_CONV_LAYERS, use_bn: bool = False,
                 num_classes: int = 309, hidden_dim: int = 4096, pool_size: Sequence[int] = (5, 10)):
        super().__init__()
        conv_layers = _check_conv_layers(conv_layers)
        self.features = make_features(conv_layers, use_bn)
        self.avgpool = nn.AdaptiveAvgPool2d(tuple(pool_size))
        self.flatten = nn.Flatten()
        last_channels = [v for v in conv_layers if v != 'MP'][-1]
        self.classifier = nn.Sequential(
            nn.Linear(last_channels * int(np.prod(pool_size)), hidden_dim),
            nn.ReLU(True),
            nn.Linear(hidden_dim, hidden_dim),
            nn.ReLU(True),
            nn.Linear(hidden_dim, num_classes),
        )
        self.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (Tensor): (B, F, T) standardized mel -> logits (B, num_classes)."""
        if x.dim() != 3:
            raise ValueError(f'VGGishish expects a (B, F, T) mel batch, got shape {tuple(x.shape)}')
        h = self.features(x.unsqueeze(1))            # (B, C, F / 2^n_mp, T / 2^n_mp)
        return self.classifier(self.flatten(self.avgpool(h)))

    def reset_parameters(self) -> None:
        """Kaiming-normal convs (fan_out), N(0, 0.01) linears, zero biases (as the reference)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)


def infer_conv_layers(state_dict: Mapping[str, torch.Tensor], prefix: str = 'features.') -> tuple[list, bool]:
    """Recover `(conv_layers, use_bn)` from the `features.<i>.*` keys of a VGGishish state dict.

    Conv `i` is followed by ReLU (`i+1`), or by BatchNorm (`i+1`, has `running_mean`) and ReLU (`i+2`);
    any further index gap before the next conv is a max-pool. Trailing max-pools have no parameters and
    are not recovered (LPAPS does not use them). Raises ValueError if no conv weights are under `prefix`.
    """
    pat = re.compile(re.escape(prefix) + r'(\d+)\.weight$')
    convs = sorted((int(m.group(1)), tuple(v.shape)) for k, v in state_dict.items()
                   if (m := pat.match(k)) and len(v.shape) == 4)
    if not convs:
        raise ValueError(f"no conv weights '{prefix}<i>.weight' found (keys: {list(state_dict)[:5]}...)")
    use_bn = f'{prefix}{convs[0][0] + 1}.running_mean' in state_dict
    step = 3 if use_bn else 2
    layers: list = ['MP'] * convs[0][0]
    for j, (idx, shape) in enumerate(convs):
        layers.append(shape[0])
        next_idx = convs[j + 1][0] if j + 1 < len(convs) else None
        if next_idx is not None:
            layers += ['MP'] * (next_idx - idx - step)
    return layers, use_bn


def compute_mel_stats(mels: Iterable[np.ndarray | torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """Per-mel-bin standardization stats of a training split, as the reference computes them.

    Args:
        mels: iterable of (F, T) mels in [0, 1] (or (B, F, T) batches).
    Returns:
        (means, stds), each (F,) float64: the average over clips of each clip's per-bin time mean and
        time std (numpy `std`, ddof 0), i.e. not the pooled std.
    """
    means, stds = [], []
    for mel in mels:
        m = torch.as_tensor(mel, dtype=torch.float64)
        m = m[None] if m.dim() == 2 else m
        means.append(m.mean(dim=-1))
        stds.append(m.std(dim=-1, unbiased=False))
    if not means:
        raise ValueError('compute_mel_stats got no spectrograms (empty training split?)')
    return torch.cat(means).mean(0).numpy(), torch.cat(stds).mean(0).numpy()

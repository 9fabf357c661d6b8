"""GAN losses of the spectrogram VQGAN (paper Sec. 3.1: patch-based adversarial loss, hinge by default)."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F


def adopt_weight(weight: float, global_step: int, threshold: int = 0, value: float = 0.0) -> float:
    """`value` before step `threshold` (delayed GAN start, `disc_start`), `weight` from then on."""
    return value if global_step < threshold else weight


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Hinge discriminator loss `0.5 * (mean relu(1 - D(x)) + mean relu(1 + D(G(z))))` (scalar)."""
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def vanilla_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating BCE discriminator loss `0.5 * (mean softplus(-D(x)) + mean softplus(D(G(z))))`."""
    return 0.5 * (F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean())


D_LOSSES = {'hinge': hinge_d_loss, 'vanilla': vanilla_d_loss}


def generator_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """Generator adversarial loss `-mean D(G(z))` (used with both discriminator losses, as the reference)."""
    return -logits_fake.mean()


@contextlib.contextmanager
def fp32_under_fp16(x: torch.Tensor) -> Iterator[bool]:
    """Inside fp16 autocast (``precision=16-mixed``) run the block in fp32 and yield True (the caller casts
    its inputs with ``.float()``): discriminator logits, hinge losses and LPAPS distances overflow or lose the
    adaptive weight's gradient ratio in fp16. bf16 autocast and fp32 are left alone (yield False)."""
    kind = x.device.type
    if torch.is_autocast_enabled(kind) and torch.get_autocast_dtype(kind) == torch.float16:
        with torch.autocast(kind, enabled=False):
            yield True
    else:
        yield False

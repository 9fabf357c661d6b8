"""GAN losses of the spectrogram VQGAN (paper Sec. 3.1: patch-based adversarial loss, hinge by default)."""
from __future__ import annotations

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

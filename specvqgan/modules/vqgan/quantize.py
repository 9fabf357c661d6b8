"""Vector quantizer of the spectrogram codebook (paper Sec. 3.1, Eq. 2-3; van den Oord et al., 2017).

Each latent vector ``z`` (a column of the encoder output) is replaced by its nearest codebook entry
``z_q = e_k``, ``k = argmin_j |z - e_j|^2`` (first index on ties). The loss is
``|sg[z] - z_q|^2 + beta * |z - sg[z_q]|^2`` (codebook + commitment, beta = 0.25) and the gradient
flows to the encoder with the straight-through estimator ``z + sg(z_q - z)``.

Reference bug kept behind a switch: the reference code (taming-transformers' ``VectorQuantizer``)
puts ``beta`` on the *codebook* term instead, ``|sg[z_q] - z|^2 + beta * |z_q - sg[z]|^2``. The loss
*value* is identical (``(1 + beta) * mse``), only the gradients differ. ``legacy=True`` reproduces the
reference gradients (how the released checkpoints were trained); the default follows the paper.
"""
from __future__ import annotations

import torch
from torch import nn


class VectorQuantizer(nn.Module):
    """Nearest-neighbour quantization over channel vectors of ``(B, C, *S)`` maps, ``C = e_dim``.

    Args:
        n_e: codebook size (``n_embed``), e_dim: code dimension (``embed_dim``),
        beta: commitment weight, legacy: reference placement of ``beta`` (see module docstring).
    The codebook is ``embedding.weight`` ``(n_e, e_dim)``, initialised U(-1/n_e, 1/n_e).
    """

    def __init__(self, n_e: int, e_dim: int, beta: float = 0.25, legacy: bool = False):
        super().__init__()
        self.n_e, self.e_dim, self.beta, self.legacy = n_e, e_dim, beta, legacy
        self.embedding = nn.Embedding(n_e, e_dim)
        self.embedding.weight.data.uniform_(-1.0 / n_e, 1.0 / n_e)

    def nearest(self, z_flat: torch.Tensor) -> torch.Tensor:
        """Codebook indices ``(N,)`` of the nearest entries to ``z_flat`` ``(N, e_dim)``.

        Distance ``|z|^2 + |e|^2 - 2 z.e`` as in the reference (argmin breaks ties by first index).
        """
        e = self.embedding.weight
        d = (z_flat ** 2).sum(dim=1, keepdim=True) + (e ** 2).sum(dim=1) - 2 * z_flat @ e.t()
        return torch.argmin(d, dim=1)

    def forward(self, z: torch.Tensor):
        """Quantize ``z`` ``(B, e_dim, *S)``.

        Returns ``(z_q, loss, (perplexity, min_encodings, min_encoding_indices))`` as the reference:
        ``z_q`` ``(B, e_dim, *S)`` (straight-through), ``loss`` scalar, ``perplexity`` scalar
        ``exp(H(code usage in the batch))``, ``min_encodings`` one-hot ``(N, n_e)`` and
        ``min_encoding_indices`` ``(N, 1)`` int64 with ``N = B * prod(S)`` in row-major order over ``(B, *S)``.
        """
        if z.shape[1] != self.e_dim:
            raise ValueError(f"VectorQuantizer expects {self.e_dim} channels, got input of shape {tuple(z.shape)}")
        z_last = z.movedim(1, -1).contiguous()  # (B, *S, C)
        z_flat = z_last.view(-1, self.e_dim)
        indices = self.nearest(z_flat).unsqueeze(1)  # (N, 1)
        min_encodings = torch.zeros(indices.shape[0], self.n_e, dtype=z.dtype, device=z.device)
        min_encodings.scatter_(1, indices, 1)
        z_q = (min_encodings @ self.embedding.weight).view(z_last.shape)

        if self.legacy:
            loss = torch.mean((z_q.detach() - z_last) ** 2) + self.beta * torch.mean((z_q - z_last.detach()) ** 2)
        else:
            loss = torch.mean((z_q - z_last.detach()) ** 2) + self.beta * torch.mean((z_q.detach() - z_last) ** 2)

        z_q = z_last + (z_q - z_last).detach()  # straight-through estimator
        e_mean = min_encodings.mean(dim=0)
        perplexity = torch.exp(-torch.sum(e_mean * torch.log(e_mean + 1e-10)))
        return z_q.movedim(-1, 1).contiguous(), loss, (perplexity, min_encodings, indices)

    def get_codebook_entry(self, indices: torch.Tensor, shape=None) -> torch.Tensor:
        """Look up codes. ``indices`` ``(N,)`` (any shape is flattened, row-major). With ``shape`` =
        ``(B, *S, e_dim)`` (channels last, as the reference) returns ``(B, e_dim, *S)``; else ``(N, e_dim)``.
        """
        indices = indices.reshape(-1).long()
        if indices.numel() and (indices.min() < 0 or indices.max() >= self.n_e):
            raise ValueError(f"codebook indices must lie in [0, {self.n_e}), got [{int(indices.min())}, "
                             f"{int(indices.max())}]")
        one_hot = torch.zeros(indices.shape[0], self.n_e, device=indices.device, dtype=self.embedding.weight.dtype)
        one_hot.scatter_(1, indices[:, None], 1)
        z_q = one_hot @ self.embedding.weight  # (N, e_dim), one-hot matmul as the reference
        if shape is not None:
            z_q = z_q.view(*shape).movedim(-1, 1).contiguous()
        return z_q

    def embed_code(self, code: torch.Tensor) -> torch.Tensor:
        """Indices ``(B, *S)`` -> quantized map ``(B, e_dim, *S)``."""
        return self.get_codebook_entry(code, (*code.shape, self.e_dim))


class VectorQuantizer1d(VectorQuantizer):
    """:class:`VectorQuantizer` for sequences ``(B, e_dim, L)`` (the generic implementation already
    handles any number of spatial dims; the class exists for the reference name)."""

"""Cheap deterministic visual features for the **toy dataset only**.

The paper conditions on ResNet-50 (2048-d) or BN-Inception RGB+flow (2 x 1024-d) features at 21.5 fps
(section 3.2 / 4). Those need pretrained weights; the toy dataset (``scripts/make_toy_dataset.py``)
is built so that a trivial feature suffices: each class has its own colour and every event is a
brightness flash, so a spatially pooled colour grid per frame carries both *what* and *when*.
Do not use it for real videos.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ColorGrid:
    """Per frame, the mean RGB colour of each cell of a ``grid x grid`` partition, in [0, 1].

    Frames are decoded at ``frame_size = (grid * cell, grid * cell)`` pixels (ffmpeg area
    scaling), then each ``cell x cell`` block is averaged. Output (N, 3 * grid * grid) float32,
    ordered (row, col, rgb).
    """

    grid: int = 4
    cell: int = 8
    name: str = "color"

    @property
    def dim(self) -> int:
        """Feature size D = 3 * grid * grid (48 for the default 4 x 4 grid)."""
        return 3 * self.grid * self.grid

    @property
    def frame_size(self) -> tuple[int, int]:
        """(H, W) the frames must be decoded at."""
        return self.grid * self.cell, self.grid * self.cell

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """frames: (N, H, W, 3) uint8 RGB at :attr:`frame_size` -> (N, D) float32 in [0, 1]."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[1:] != (*self.frame_size, 3):
            raise ValueError(f"ColorGrid expects frames of shape (N, {self.frame_size[0]}, "
                             f"{self.frame_size[1]}, 3), got {frames.shape}")
        n, g, c = frames.shape[0], self.grid, self.cell
        cells = frames.reshape(n, g, c, g, c, 3).astype(np.float32).mean(axis=(2, 4))  # (N, g, g, 3)
        return (cells / 255.0).reshape(n, self.dim).astype(np.float32)

"""Pretrained visual feature extractors for ``python -m feature_extraction`` (paper section 4).

Each extractor turns the 21.5 fps frames of one clip into per-frame features, run in batches of
``batch_size`` frames under ``torch.inference_mode``:

* :class:`ResNet50Features` (``--feature resnet50``): 2048-d; torchvision recipe of the reference
  (``demo_utils.ExtractResNet50``): Resize(256) (shorter side), CenterCrop(224), /255, ImageNet mean/std.
* :class:`BNInceptionFeatures` (``--feature bninception``, or one stream: ``rgb_bninception``,
  ``flow_bninception``): 1024-d RGB + 1024-d flow, the RegNet/TSN recipe: frames at 340 x 256, resized to
  224 x 224 (no crop), BGR 0..255 minus [104, 117, 128]; flow images (:mod:`feature_extraction.flow`)
  resized likewise, minus 128; the flow network is the ImageNet one with its first conv averaged to 2
  channels.

Protocol used by :mod:`feature_extraction.extract`: ``outputs`` ((name, dim), ...) name the feature
folders ``feature_<name>_dim<dim>_21.5fps``; ``frame_size_for(width, height)`` is the (H, W) at which
ffmpeg decodes the frames; calling the extractor with (N, H, W, 3) uint8 RGB frames returns
``{name: (N, dim) float32}``. Networks are loaded lazily, on the first call, once per process.

Resizing differs slightly from the references (ffmpeg area scaling to the decode size, then
antialiased bilinear in torch, where torchvision/PIL and cv2 + PIL were used): a few grey levels, not a
change of recipe.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from feature_extraction.flow import METHODS, flow_images, flow_rows, row_pairs
from feature_extraction.weights import load_bninception, load_resnet50
from specvqgan.modules.visual.bn_inception import BGR_MEAN, FLOW_MEAN

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resize_uint8(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, C, H, W) float in [0, 255] -> (B, C, *size), antialiased bilinear (as PIL's BILINEAR) and
    rounded to whole grey levels like the 8-bit images of the references."""
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    return x.round().clamp(0, 255)


PRECISIONS = ("fp32", "bf16")


class _Pretrained:
    """Common options: ``weights`` path (None: random weights from ``seed``, for tests/benchmarks only),
    ``batch_size`` frames per forward pass, ``device``, ``precision`` of the network ("fp32", the
    reference; "bf16": weights and activations in bfloat16, ~2x fewer CPU-s with AMX / AVX512-BF16,
    features within ~0.3 % of fp32's, docs/benchmarks.md "Flow features")."""

    def __init__(self, weights: str | Path | None = None, batch_size: int = 32, device: str = "cpu",
                 seed: int = 0, precision: str = "fp32"):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; choose from {PRECISIONS}")
        self.dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        if weights is not None and not Path(weights).is_file():
            raise FileNotFoundError(f"weight file not found: {weights}")
        self.weights, self.batch_size, self.device, self.seed = weights, batch_size, torch.device(device), seed
        self._nets: dict = {}

    def _net(self, key: str, build):
        if key not in self._nets:
            if self.weights is None:
                log.warning("%s: random weights (seed %d) - features are meaningless", key, self.seed)
            self._nets[key] = build().to(self.device, self.dtype, memory_format=self.layout).eval()
        return self._nets[key]

    @property
    def layout(self) -> torch.memory_format:
        """Channels-last on the CPU: oneDNN's fast convolutions (ResNet-50 over 5 frames: 0.27 s instead of
        2.8 s on 2 cores, features equal within ~1e-6 relative; docs/benchmarks.md); the default elsewhere."""
        return torch.channels_last if self.device.type == "cpu" else torch.contiguous_format

    @torch.inference_mode()
    def _run(self, net, batches) -> np.ndarray:
        """Feed (B, C, H, W) float tensors from ``batches`` through ``net.features``; -> (N, D) float32."""
        out = [net.features(b.to(self.device, self.dtype, memory_format=self.layout)).float().cpu() for b in batches]
        return torch.cat(out).numpy().astype(np.float32)

    def _batches(self, frames: np.ndarray, prep):
        for i in range(0, len(frames), self.batch_size):
            yield prep(torch.from_numpy(np.array(frames[i:i + self.batch_size])))   # writable copy

    @staticmethod
    def _check(frames: np.ndarray, channels: int, name: str) -> np.ndarray:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != channels or frames.dtype != np.uint8 or len(frames) == 0:
            raise ValueError(f"{name} expects (N, H, W, {channels}) uint8 frames with N >= 1, "
                             f"got {frames.shape} {frames.dtype}")
        return frames


class ResNet50Features(_Pretrained):
    """ResNet-50 2048-d per frame (the ``fc = Identity`` output). ``resize``/``crop`` default to the
    reference's 256/224 (smaller values only make tests and benchmarks cheaper)."""

    name = "resnet50"
    outputs = (("resnet50", 2048),)
    max_aspect = 4.0    # wider/taller sources are centre-cropped to 4:1 by ffmpeg (the 224 crop is inside)

    def __init__(self, weights=None, batch_size: int = 32, device: str = "cpu", seed: int = 0,
                 resize: int = 256, crop: int = 224, precision: str = "fp32"):
        super().__init__(weights, batch_size, device, seed, precision)
        if crop > resize:
            raise ValueError(f"crop {crop} must be <= resize {resize}")
        self.resize, self.crop = resize, crop

    def frame_size_for(self, width: int | None, height: int | None) -> tuple[int, int]:
        """torchvision ``Resize(resize)``: shorter side -> ``resize``, longer -> int(resize * long / short),
        the ratio capped at :attr:`max_aspect` (the frames are then centre-cropped to it while decoding)."""
        if not width or not height:
            return self.resize, self.resize
        if max(width, height) > self.max_aspect * min(width, height):
            long = int(self.resize * self.max_aspect)
            return (long, self.resize) if width <= height else (self.resize, long)
        if width <= height:
            return int(self.resize * height / width), self.resize
        return self.resize, int(self.resize * width / height)

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) uint8 RGB at :meth:`frame_size_for` -> (B, 3, crop, crop) normalised float."""
        h, w = frames.shape[1:3]
        top, left = int(round((h - self.crop) / 2.0)), int(round((w - self.crop) / 2.0))  # CenterCrop
        x = frames[:, top:top + self.crop, left:left + self.crop].permute(0, 3, 1, 2).float() / 255.0
        mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return (x - mean) / std

    def __call__(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        frames = self._check(frames, 3, "ResNet50Features")
        if min(frames.shape[1:3]) < self.crop:
            raise ValueError(f"frames {frames.shape[1:3]} are smaller than the {self.crop} crop")
        net = self._net("resnet50", lambda: load_resnet50(self.weights, seed=self.seed))
        return {"resnet50": self._run(net, self._batches(frames, self.preprocess))}


class BNInceptionFeatures(_Pretrained):
    """BN-Inception RGB and/or flow, 1024-d each per frame.

    Args:
        streams: ("rgb", "flow"), ("rgb",) or ("flow",).
        flow_method: a :data:`feature_extraction.flow.METHODS` name ("tvl1": the reference).
        flow_weights: weights of the flow network (default: ``weights``, the ImageNet RGB file whose first
            conv is averaged, as in RegNet).
        size: network input side (224; smaller only for cheap tests).
    """

    name = "bninception"
    decode_size = (256, 340)    # (H, W) RegNet resizes every frame to 340 x 256 before flow and features

    def __init__(self, weights=None, batch_size: int = 32, device: str = "cpu", seed: int = 0,
                 streams: tuple[str, ...] = ("rgb", "flow"), flow_method: str = "tvl1",
                 flow_weights=None, size: int = 224, precision: str = "fp32"):
        super().__init__(weights, batch_size, device, seed, precision)
        if not streams or set(streams) - {"rgb", "flow"}:
            raise ValueError(f"streams must be a non-empty subset of ('rgb', 'flow'), got {streams}")
        if flow_method not in METHODS:
            raise ValueError(f"unknown flow method {flow_method!r}; choose from {METHODS}")
        if flow_weights is not None and not Path(flow_weights).is_file():
            raise FileNotFoundError(f"weight file not found: {flow_weights}")
        self.streams, self.flow_method, self.size = tuple(streams), flow_method, size
        self.flow_weights = flow_weights if flow_weights is not None else weights
        self.outputs = tuple((f"{s}_bninception", 1024) for s in self.streams)

    def frame_size_for(self, width: int | None = None, height: int | None = None) -> tuple[int, int]:
        return self.decode_size

    def preprocess_rgb(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) uint8 RGB -> (B, 3, size, size) BGR 0..255 minus [104, 117, 128]."""
        x = resize_uint8(frames.permute(0, 3, 1, 2).float(), (self.size, self.size)).flip(1)   # RGB -> BGR
        return x - torch.tensor(BGR_MEAN).view(1, 3, 1, 1)

    def preprocess_flow(self, flows: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 2) uint8 flow images -> (B, 2, size, size) minus 128."""
        return resize_uint8(flows.permute(0, 3, 1, 2).float(), (self.size, self.size)) - FLOW_MEAN

    def __call__(self, frames: np.ndarray, prev: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """(N, H, W, 3) uint8 RGB -> {stream: (N, 1024) float32}; ``prev`` (H, W, 3): the frame before
        ``frames`` (a chunk of a longer video), whose motion to ``frames[0]`` gives its flow row."""
        frames = self._check(frames, 3, "BNInceptionFeatures")
        if prev is not None:
            frames = np.concatenate([prev[None], frames])
        ids = np.arange(len(frames))
        return self.at_rows(frames, ids, ids if prev is None else ids[1:])

    def frames_for_rows(self, rows: np.ndarray) -> np.ndarray:
        """Frame indices the feature rows ``rows`` are computed from (flow row k: frames k - 1 and k)."""
        rows = np.asarray(rows, dtype=np.int64)
        if "flow" not in self.streams:
            return np.unique(rows)
        return np.unique(np.concatenate([rows, *row_pairs(rows)]))

    def at_rows(self, frames: np.ndarray, frame_ids: np.ndarray, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Feature rows ``rows`` from the frames ``frame_ids`` (sorted, ``frames[i]`` is frame ``frame_ids[i]``,
        covering :meth:`frames_for_rows`) -> {name: (len(rows), 1024) float32}."""
        frames = self._check(frames, 3, "BNInceptionFeatures")
        out = {}
        if "rgb" in self.streams:
            net = self._net("rgb_bninception", lambda: load_bninception(self.weights, 3, seed=self.seed))
            rgb = frames[np.searchsorted(frame_ids, rows)]
            out["rgb_bninception"] = self._run(net, self._batches(rgb, self.preprocess_rgb))
        if "flow" in self.streams:
            net = self._net("flow_bninception", lambda: load_bninception(self.flow_weights, 2, seed=self.seed))
            flows = flow_images(frames, self.flow_method) if len(frames) == 1 else \
                flow_rows(frames, frame_ids, rows, self.flow_method)
            out["flow_bninception"] = self._run(net, self._batches(flows, self.preprocess_flow))
        return out

    def stream(self, chunks) -> dict[str, np.ndarray]:
        """Features of a video given as consecutive (n, H, W, 3) frame chunks
        (:func:`feature_extraction.media.iter_frames`): equal to one call on all frames, with one chunk
        in memory at a time."""
        parts, prev = [], None
        for frames in chunks:
            parts.append(self(frames, prev))
            prev = frames[-1]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


# CLI name -> (class, fixed keyword arguments). Folder names: feature_<output name>_dim<D>_21.5fps.
PRETRAINED = {
    "resnet50": (ResNet50Features, {}),
    "bninception": (BNInceptionFeatures, {"streams": ("rgb", "flow")}),
    "rgb_bninception": (BNInceptionFeatures, {"streams": ("rgb",)}),
    "flow_bninception": (BNInceptionFeatures, {"streams": ("flow",)}),
}


def build_pretrained(feature: str, weights=None, batch_size: int = 32, device: str = "cpu",
                     flow_method: str = "tvl1", flow_weights=None, precision: str = "fp32"):
    """Extractor for CLI name ``feature`` (a key of :data:`PRETRAINED`)."""
    cls, kwargs = PRETRAINED[feature]
    kwargs = dict(kwargs, weights=weights, batch_size=batch_size, device=device, precision=precision)
    if cls is BNInceptionFeatures:
        kwargs.update(flow_method=flow_method, flow_weights=flow_weights)
    elif flow_weights is not None:
        raise ValueError(f"feature {feature!r} has no flow stream (flow_weights given)")
    return cls(**kwargs)

"""The deterministic MelGAN golden weights (``../shared/reference/golden/README.md``, recipe verbatim)."""
import zlib

import numpy as np
import torch


def _uniform(key: str, n: int) -> np.ndarray:
    seed = np.uint64(zlib.crc32(key.encode("utf-8")))
    with np.errstate(over="ignore"):
        z = np.arange(n, dtype=np.uint64) + seed * np.uint64(0x9E3779B97F4A7C15) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(2 ** 53)


def melgan_tensor(key: str, shape: tuple) -> np.ndarray:
    n = int(np.prod(shape)) if len(shape) else 1
    if key.endswith("weight_v"):
        a = 2.0 * _uniform(key, n) - 1.0
    elif key.endswith("weight_g"):
        a = 0.5 + _uniform(key, n)
    elif key.endswith("bias"):
        a = 0.05 * (2.0 * _uniform(key, n) - 1.0)
    else:
        raise KeyError(key)
    return a.reshape(shape).astype(np.float32)


def golden_state_dict(golden: dict) -> dict:
    return {k: torch.from_numpy(melgan_tensor(k, tuple(s))) for k, s in golden["state_dict_keys_shapes"]}

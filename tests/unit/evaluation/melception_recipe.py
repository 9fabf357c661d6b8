"""The golden README's deterministic Melception weight recipe (SplitMix64 stream per key name)."""
import zlib

import numpy as np
import torch


def _uniform(key: str, n: int) -> np.ndarray:
    """float64 in [0, 1) from a SplitMix64 stream seeded by crc32(key) (golden README recipe)."""
    seed = np.uint64(zlib.crc32(key.encode("utf-8")))
    golden = np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        z = np.arange(n, dtype=np.uint64) + seed * golden + golden
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(2 ** 53)


def melception_tensor(key: str, shape) -> torch.Tensor:
    shape = tuple(shape)
    n = int(np.prod(shape)) if shape else 1
    sym = 2.0 * _uniform(key, n) - 1.0
    if key.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.int64)
    if key.endswith("conv.weight"):
        a = np.sqrt(6.0 / int(np.prod(shape[1:]))) * sym
    elif key.endswith("bn.weight"):
        a = 1.0 + 0.2 * sym
    elif key.endswith("bn.bias"):
        a = 0.1 * sym
    elif key.endswith("bn.running_mean"):
        a = 0.1 * sym
    elif key.endswith("bn.running_var"):
        a = 0.5 + _uniform(key, n)
    elif key.endswith("fc.weight"):
        a = np.sqrt(3.0 / int(shape[1])) * sym
    elif key.endswith("fc.bias"):
        a = 0.1 * sym
    else:
        raise KeyError(f"no recipe for {key}")
    return torch.from_numpy(a.reshape(shape).astype(np.float32))


def recipe_state_dict(keys_shapes) -> dict:
    """{key: tensor} for an iterable of (key, shape)."""
    return {k: melception_tensor(k, s) for k, s in keys_shapes}

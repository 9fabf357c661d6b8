"""precision="bf16" of the pretrained networks: features close to fp32's, recorded in the provenance only
when not fp32, refused where there is no network or the name is unknown."""
import numpy as np
import pytest
import torch

from feature_extraction.extract import ExtractConfig
from feature_extraction.visual import BNInceptionFeatures


def test_bf16_features_are_close_to_fp32():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (4, 72, 96, 3), dtype=np.uint8)
    fp32 = BNInceptionFeatures(size=64, streams=("rgb",))
    bf16 = BNInceptionFeatures(size=64, streams=("rgb",), precision="bf16")
    a, b = fp32(frames)["rgb_bninception"], bf16(frames)["rgb_bninception"]
    net = bf16._nets["rgb_bninception"]
    assert next(net.parameters()).dtype == torch.bfloat16 and b.dtype == np.float32 and b.shape == (4, 1024)
    rel = np.linalg.norm(b - a, axis=1) / np.linalg.norm(a, axis=1)
    assert 0 < rel.max() < 0.02, rel          # bf16 rounding (~0.3 % at 224 x 224), not another network


def test_precision_in_provenance_and_bad_values():
    fp32 = ExtractConfig(feature="bninception", random_weights=True)
    bf16 = ExtractConfig(feature="bninception", random_weights=True, precision="bf16")
    assert "precision" not in fp32.produced_by("feature_rgb_bninception")
    assert bf16.produced_by("feature_flow_bninception")["precision"] == "bf16"
    assert "precision" not in bf16.produced_by("mel")
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        ExtractConfig(feature="resnet50", random_weights=True, precision="fp16")
    with pytest.raises(ValueError, match="'color' has no network"):
        ExtractConfig(feature="color", precision="bf16")

"""Fixtures of the dataset tests: reference sample paths and a tiny toy dataset in tmp_path."""

import pytest

VAS_MELS = "data/vas/features/*/melspec_10s_22050hz"
VAS_RGB = "data/vas/features/*/feature_rgb_bninception_dim1024_21.5fps"
VAS_FLOW = "data/vas/features/*/feature_flow_bninception_dim1024_21.5fps"


@pytest.fixture
def vas(reference_dir, tmp_path):
    """Absolute VAS sample folders and a split list (tmp_path) of two present clips."""
    split = tmp_path / "vas_valid.txt"
    split.write_text("dog/video_02754\ndrum/video_02480\n")
    return {"mels": str(reference_dir / VAS_MELS), "rgb": str(reference_dir / VAS_RGB),
            "flow": str(reference_dir / VAS_FLOW), "split": str(split)}

"""Shared fixtures. Reference material (golden vectors, manifests, sample clips) lives in
``<repo>/../shared/reference``; tests that need it are skipped when it is absent."""
import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
REFERENCE = Path(os.environ.get("SPECVQGAN_REFERENCE", REPO.parent / "shared" / "reference"))

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not REFERENCE.is_dir():
        pytest.skip(f"reference material not found at {REFERENCE}")
    return REFERENCE

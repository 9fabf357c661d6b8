"""Fixtures for the evaluation tests."""
import pytest
import torch

from melception_recipe import recipe_state_dict


@pytest.fixture
def recipe():
    """The recipe as a function of a module: its state_dict rebuilt deterministically."""
    def build(module: torch.nn.Module) -> dict:
        return recipe_state_dict((k, v.shape) for k, v in module.state_dict().items())
    return build


@pytest.fixture(scope="session")
def golden_melception(reference_dir):
    return torch.load(reference_dir / "golden" / "melception.pt")


@pytest.fixture(scope="session")
def golden_metrics(reference_dir):
    return torch.load(reference_dir / "golden" / "metrics.pt")

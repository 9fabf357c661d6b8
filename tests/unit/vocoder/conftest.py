"""Vocoder tests run single-threaded: their tensors are small, and on the shared 2-core machine a
second OpenMP thread mostly waits (measured 3x slower under load)."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

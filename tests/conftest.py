"""Shared pytest setup for the whole suite: quiet TensorFlow logs and deterministic seeds.

Set before TensorFlow is imported by any test module, so C++ log noise stays out of test output.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng():
    """A fresh NumPy generator with a fixed seed per test (tests stay independent of their order)."""
    return np.random.default_rng(20200403)


def _process_alive(pid):
    """Whether ``pid`` is a live (not zombie) process, from Linux's /proc."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as f:
            return "State:\tZ" not in f.read()
    except OSError:
        return False


@pytest.fixture
def process_alive():
    """``process_alive(pid) -> bool`` for the tests that check no worker outlives its driver."""
    return _process_alive

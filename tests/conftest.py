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


def _free_ports(n):
    """``n`` distinct TCP ports on 127.0.0.1 that were free a moment ago (for local TF_CONFIG clusters)."""
    import socket  # noqa: PLC0415

    socks = [socket.socket() for _ in range(n)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in socks]
    for sock in socks:
        sock.close()
    return ports


@pytest.fixture(scope="session")
def free_ports():
    """``free_ports(n) -> [port, ...]`` for the tests that start worker processes on localhost."""
    return _free_ports

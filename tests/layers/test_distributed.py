"""Synchronized (cross-replica) batch statistics under a 2-replica MirroredStrategy on 2 logical CPUs.

The check runs in a subprocess (``distributed_check.py``): logical devices must be set before
TensorFlow initializes, and a second MirroredStrategy in one process breaks collectives.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("distributed_check.py")


@pytest.fixture(scope="module")
def results():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=300,
                          env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines and lines[-1] == "DONE", proc.stdout[-2000:] + proc.stderr[-3000:]
    return [json.loads(line) for line in lines if line.startswith("{")]


def _cases(results, synchronized):
    return [r for r in results if r["synchronized"] is synchronized]


def test_every_case_ran(results):
    seen = {(r["generation"], r["name"]) for r in _cases(results, True)}
    assert seen == {(g, n) for g in ("keras3", "tf_keras") for n in ("evonorm_b0", "evonorm_b1", "bn_relu")}
    assert all(r["replicas"] == 2 for r in results)


def test_synchronized_matches_single_device_on_the_whole_batch(results):
    for r in _cases(results, True):
        label = f"{r['generation']}/{r['name']}"
        assert r["output_err"] <= 1e-4 * max(1.0, r["output_scale"]), label
        assert r["replica_var_err"] <= 1e-4, label  # each replica sees the global batch variance
        assert r["infer_err"] <= 1e-5, label
        assert r["moving_err"] and all(err <= 1e-5 for err in r["moving_err"].values()), label


def test_unsynchronized_control_differs(results):
    """Without synchronization each replica normalizes by its own half-batch: the check is sensitive."""
    controls = _cases(results, False)
    assert len(controls) == 2
    for r in controls:
        assert r["output_err"] > 1e-2 and r["replica_var_err"] > 1e-2, r

"""Synchronized (cross-replica) batch statistics under a 2-replica MirroredStrategy on 2 logical CPUs,
and across two MultiWorkerMirroredStrategy worker processes on 127.0.0.1 (one replica each).

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


def _parse(proc, out, err):
    assert proc.returncode == 0, err[-3000:]
    lines = out.splitlines()
    assert lines and lines[-1] == "DONE", out[-2000:] + err[-3000:]
    return [json.loads(line) for line in lines if line.startswith("{")]


def _run_one_machine():
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=300,
                          env=ENV, check=False)
    return _parse(proc, proc.stdout, proc.stderr)


def _run_two_workers(ports):
    """Both workers' results: each holds its own half of the batch."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    procs = [subprocess.Popen([sys.executable, str(SCRIPT)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=dict(ENV, TF_CONFIG=json.dumps(
                                  {"cluster": cluster, "task": {"type": "worker", "index": i}})))
             for i in range(2)]
    try:
        outputs = [proc.communicate(timeout=300) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    return [r for proc, (out, err) in zip(procs, outputs) for r in _parse(proc, out, err)]


ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")


@pytest.fixture(scope="module", params=["one_machine", "two_workers"])
def results(request):
    if request.param == "one_machine":
        return _run_one_machine()
    return _run_two_workers(request.getfixturevalue("free_ports")(2))


def _cases(results, synchronized):
    return [r for r in results if r.get("synchronized") is synchronized]


def test_distributed_dataset_gives_each_replica_its_share_of_the_global_batch(results):
    """One step reads 8 distinct examples, 4 per replica: on one machine from one pipeline, across two
    workers from each worker's own shard."""
    per_replica = [batch for r in results if "input" in r for batch in r["input"]]
    assert len(per_replica) == 2 and all(len(batch) == 4 for batch in per_replica)
    assert len({x for batch in per_replica for x in batch}) == 8


def test_every_case_ran(results):
    results = [r for r in results if "name" in r]
    seen = {(r["generation"], r["name"]) for r in _cases(results, True)}
    assert seen == {(g, n) for g in ("keras3", "tf_keras") for n in ("evonorm_b0", "evonorm_b1", "bn_relu")}
    assert all(r["replicas"] == 2 for r in results)
    assert {tuple(r["rows"]) for r in results} in ({(0, 1, 2, 3)}, {(0, 1), (2, 3)})


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
    assert len(controls) in (2, 4)  # 2 generations, on one machine or on each of two workers
    for r in controls:
        assert r["output_err"] > 1e-2 and r["replica_var_err"] > 1e-2, r

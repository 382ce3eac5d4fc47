"""evonorm.distribute: TF_CONFIG checks, TPU address probes, per-replica input, failure messages and the
deadline that ends waits TensorFlow cannot be interrupted from (the strategies themselves are exercised
end to end, in their own processes, by tests/vision/test_multi_worker.py and test_train_main.py)."""

import json
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import tensorflow as tf

from evonorm import distribute
from evonorm._process import deadline

CLUSTER = {"worker": ["127.0.0.1:2001", "127.0.0.1:2002"]}


def env(config):
    return {"TF_CONFIG": config if isinstance(config, str) else json.dumps(config)}


def test_tf_config_is_parsed():
    config = {"cluster": CLUSTER, "task": {"type": "worker", "index": 1}}
    assert distribute.cluster_from_tf_config(env(config)) == (CLUSTER, "worker", 1)


@pytest.mark.parametrize("config,message", [
    ("", "needs TF_CONFIG in every worker's environment"),
    ("{not json", "TF_CONFIG is not valid JSON"),
    ({"cluster": CLUSTER}, "needs a 'cluster' and a 'task' object"),
    ({"cluster": {"ps": ["h:1"]}, "task": {"type": "ps", "index": 0}}, "no 'worker' (or 'chief') job"),
    ({"cluster": {"worker": ["localhost"]}, "task": {"type": "worker", "index": 0}}, "'host:port' strings"),
    ({"cluster": CLUSTER, "task": {"type": "chief", "index": 0}}, "task type 'chief' is not a job"),
    ({"cluster": CLUSTER, "task": {"type": "worker", "index": 2}}, "task index 2 is out of range"),
])
def test_bad_tf_config_names_the_problem(config, message):
    with pytest.raises(distribute.StrategyError, match=message.replace("(", r"\(").replace(")", r"\)")):
        distribute.cluster_from_tf_config(env(config))


def test_unknown_strategy_and_misplaced_cpu_replicas():
    with pytest.raises(distribute.StrategyError, match="unknown strategy 'horovod'"):
        distribute.build_strategy("horovod")
    with pytest.raises(distribute.StrategyError, match="--num_cpu_replicas needs --strategy=mirrored"):
        distribute.build_strategy("multi_worker_mirrored", num_cpu_replicas=2)
    with pytest.raises(distribute.StrategyError, match="--num_gpus=8 but this machine has 0 GPU"):
        distribute.build_strategy("mirrored", num_gpus=8)


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("address,message", [
    ("", "--strategy=tpu needs --tpu="),
    ("grpc://tpu-host", "is not a grpc://HOST:PORT address"),
    (f"grpc://127.0.0.1:{closed_port()}", "no TPU answers at --tpu=grpc://127.0.0.1:"),
])
def test_tpu_addresses_that_cannot_work_fail_at_once(address, message):
    start = time.time()
    with pytest.raises(distribute.StrategyError, match=message):
        distribute.build_strategy("tpu", tpu=address)
    assert time.time() - start < 5


def test_cloud_tpu_name_without_metadata_server_says_why():
    try:
        socket.getaddrinfo("metadata.google.internal", 80)
        pytest.skip("this machine resolves the GCE metadata server")
    except OSError:
        pass
    with pytest.raises(distribute.StrategyError, match="reaches no GCE metadata server"):
        distribute.build_strategy("tpu", tpu="my-tpu")


def test_tpu_local_and_a_non_tpu_server_fail_in_bounded_time():
    """Run in a child: TPU initialization touches process-wide TensorFlow state."""
    with socket.socket() as server:  # accepts connections, but is no TPU: TensorFlow would wait forever
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        code = (f"from evonorm import distribute\n"
                f"for tpu in ('local', 'grpc://127.0.0.1:{server.getsockname()[1]}'):\n"
                f"    try:\n"
                f"        distribute.build_strategy('tpu', tpu=tpu, worker_timeout=5)\n"
                f"    except distribute.StrategyError as err:\n"
                f"        print('ERROR', err, flush=True)\n")
        start = time.time()
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                              env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})
    assert time.time() - start < 90
    assert "ERROR no usable TPU at --tpu='local'" in proc.stdout and "has no TPU devices" in proc.stdout
    assert proc.returncode != 0  # the second wait was ended by the deadline
    assert "did not initialize within 5 s (--worker_timeout)" in proc.stderr


def test_per_replica_batch_and_shard_follow_the_input_context():
    ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1, num_replicas_in_sync=4)
    assert distribute.per_replica_batch_size(64, ctx) == 16
    assert distribute.per_replica_batch_size(64) == 64
    with pytest.raises(distribute.StrategyError, match="global batch 10 does not split evenly over 4"):
        distribute.per_replica_batch_size(10, ctx)
    assert list(distribute.shard(tf.data.Dataset.range(10), ctx).as_numpy_iterator()) == [1, 3, 5, 7, 9]
    assert len(list(distribute.shard(tf.data.Dataset.range(10)).as_numpy_iterator())) == 10


def fake_strategy(task_type, task_id):
    return SimpleNamespace(cluster_resolver=SimpleNamespace(task_type=task_type, task_id=task_id))


def test_dead_peer_message_names_the_worker_and_the_way_back():
    err = tf.errors.UnavailableError(None, None, "Graph execution error:\nThe following tasks are unhealthy "
                                     "(stopped sending heartbeats):\n/job:worker/replica:0/task:1")
    message = distribute.describe_failure(err, fake_strategy("worker", 0))
    assert message.startswith("worker 0: multi-worker training stopped because worker 1 stopped responding")
    assert "unhealthy" in message and "resumes from the chief's last checkpoint" in message
    # One machine, or an error that is not about the cluster: nothing to translate.
    assert distribute.describe_failure(err, fake_strategy(None, None)) is None
    assert distribute.describe_failure(ValueError("x"), fake_strategy("worker", 0)) is None


def test_deadline_kills_only_a_block_that_overruns():
    with deadline(30, "never printed"):
        pass  # finished in time: the watchdog leaves
    code = ("import time\nfrom evonorm._process import deadline\n"
            "with deadline(1, 'too slow: the cluster did not form'):\n    time.sleep(60)\nprint('survived')")
    start = time.time()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert time.time() - start < 30
    assert proc.returncode == -9 and "survived" not in proc.stdout
    assert "too slow: the cluster did not form" in proc.stderr

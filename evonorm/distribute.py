"""One ``tf.distribute`` module for every entry point: strategies, their flags, failures, per-replica input.

``evonorm-train`` builds its strategy here, and the detection and GAN entry points are meant to reuse it,
so a TPU pod, an 8-GPU host and a multi-worker cluster are driven by the same flags everywhere::

    --strategy=one_device|mirrored|multi_worker_mirrored|tpu  --tpu=NAME|grpc://HOST:8470|local
    --num_gpus=N  --num_cpu_replicas=N (tests on a CPU)  --worker_timeout=SECONDS

What it adds to Model Garden's ``distribute_utils.get_distribution_strategy``:

* **Failing fast, with the problem named.** A ``grpc://`` TPU address that does not answer, a Cloud TPU
  name with no metadata server to resolve it, ``--tpu=local`` on a machine without TPUs, more GPUs than
  are visible, a missing or malformed ``TF_CONFIG``: each is one :class:`StrategyError` line instead of a
  hang or a stack trace from deep inside TensorFlow.
* **Multi-worker that never hangs forever.** Workers wait at most ``--worker_timeout`` seconds for the
  others to start (TensorFlow waits forever, deaf to SIGTERM); once running, TensorFlow's coordination
  service notices a dead peer by its missing heartbeats (about 10 s here) and aborts the collectives;
  :func:`describe_failure` turns that into a message that says which worker died and how to resume.
* **Per-replica input** like TPUEstimator's per-host ``input_fn``: :func:`per_replica_batch_size` and
  :func:`shard` (together: :func:`distributed_dataset`) take the ``tf.distribute.InputContext`` that
  ``distribute_datasets_from_function`` passes to each input pipeline (Model Garden's ``InputReader`` does the same for its tasks).

Only one strategy can live in a process (a second MirroredStrategy breaks collectives), so build it
once, at start-up, before any other TensorFlow work.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading

from absl import flags

from evonorm._process import deadline

STRATEGIES = ("one_device", "mirrored", "multi_worker_mirrored", "tpu")
DEFAULT_WORKER_TIMEOUT_S = 300
TPU_PROBE_TIMEOUT_S = 10.0


class StrategyError(Exception):
    """A strategy cannot be built here; the message names the problem and what to do."""


def define_flags(fv: flags.FlagValues, default: str | None = None) -> None:
    """Defines the shared strategy flags on ``fv``; ``default=None`` leaves the choice to the config."""
    flags.DEFINE_enum("strategy", default, STRATEGIES, "tf.distribute strategy (default: the "
                      "experiment's runtime.distribution_strategy)", flag_values=fv)
    flags.DEFINE_string("tpu", None, "TPU name, grpc://HOST:PORT address, or 'local' on a TPU VM",
                        flag_values=fv)
    flags.DEFINE_integer("num_gpus", None, "GPUs for one_device/mirrored (default: the experiment's)",
                         flag_values=fv)
    flags.DEFINE_integer("num_cpu_replicas", 0, "with --strategy=mirrored and no GPUs: split the CPU "
                         "into this many logical devices, one replica each (tests tf.distribute on a "
                         "CPU-only machine)", flag_values=fv)
    flags.DEFINE_integer("worker_timeout", DEFAULT_WORKER_TIMEOUT_S, "seconds to wait for the cluster "
                         "to form before failing: every worker of TF_CONFIG (multi_worker_mirrored) or "
                         "the TPU system (tpu)", flag_values=fv)


def build_strategy(name: str, *, tpu: str = "", num_gpus: int = 0, num_cpu_replicas: int = 0,
                   all_reduce_alg: str | None = None,
                   worker_timeout: float = DEFAULT_WORKER_TIMEOUT_S):
    """The ``tf.distribute.Strategy`` called ``name``; raises :class:`StrategyError` when it cannot be had."""
    name = str(name).lower()
    if name not in STRATEGIES:
        raise StrategyError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}.")
    if name == "tpu":
        return _tpu_strategy(tpu, worker_timeout)
    import tensorflow as tf  # noqa: PLC0415 - imported after flag parsing

    gpus = tf.config.list_physical_devices("GPU")
    if num_gpus > len(gpus):
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        raise StrategyError(f"--num_gpus={num_gpus} but this machine has {len(gpus)} GPU(s) visible "
                            f"to TensorFlow (CUDA_VISIBLE_DEVICES={visible!r}).")
    if num_cpu_replicas:
        return _cpu_replicas(name, num_gpus, num_cpu_replicas)
    if name == "multi_worker_mirrored":
        return _multi_worker(worker_timeout)
    from official.common import distribute_utils  # noqa: PLC0415

    return distribute_utils.get_distribution_strategy(name, num_gpus=num_gpus,
                                                      all_reduce_alg=all_reduce_alg)


def _cpu_replicas(name: str, num_gpus: int, replicas: int):
    import tensorflow as tf  # noqa: PLC0415

    if name != "mirrored" or num_gpus:
        raise StrategyError("--num_cpu_replicas needs --strategy=mirrored and no GPUs (--num_gpus=0).")
    if replicas < 1:
        raise StrategyError(f"--num_cpu_replicas={replicas}: needs at least 1.")
    try:
        tf.config.set_logical_device_configuration(
            tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * replicas)
    except RuntimeError as err:
        raise StrategyError(f"cannot split the CPU after TensorFlow initialized it: {err}") from err
    return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(replicas)])


# --- multi-worker ---------------------------------------------------------------------------------

_ADDRESS = re.compile(r"^\[?[\w.\-:]+\]?:\d+$")


def cluster_from_tf_config(environ=None) -> tuple[dict, str, int]:
    """``(cluster, task_type, task_index)`` from ``TF_CONFIG``, checked; :class:`StrategyError` otherwise."""
    raw = (os.environ if environ is None else environ).get("TF_CONFIG", "")
    example = ('TF_CONFIG=\'{"cluster": {"worker": ["host0:12345", "host1:12345"]}, '
               '"task": {"type": "worker", "index": 0}}\'')
    if not raw.strip():
        raise StrategyError("--strategy=multi_worker_mirrored needs TF_CONFIG in every worker's "
                            f"environment, e.g. {example} (index 1 on the second host); for one machine "
                            "use --strategy=mirrored.")
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise StrategyError(f"TF_CONFIG is not valid JSON ({err}); expected e.g. {example}") from err
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise StrategyError(f"TF_CONFIG needs a 'cluster' and a 'task' object; expected e.g. {example}")
    if not any(cluster.get(job) for job in ("chief", "worker")):
        raise StrategyError(f"TF_CONFIG's cluster has no 'worker' (or 'chief') job: {cluster}")
    for job, addresses in cluster.items():
        if not isinstance(addresses, list) or not all(
                isinstance(a, str) and _ADDRESS.match(a) for a in addresses):
            raise StrategyError(f"TF_CONFIG's cluster job {job!r} must list 'host:port' strings, got "
                                f"{addresses!r}")
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in cluster:
        raise StrategyError(f"TF_CONFIG's task type {task_type!r} is not a job of its cluster "
                            f"({', '.join(cluster)}).")
    if not isinstance(index, int) or not 0 <= index < len(cluster[task_type]):
        raise StrategyError(f"TF_CONFIG's task index {index!r} is out of range: job {task_type!r} has "
                            f"{len(cluster[task_type])} task(s), indices 0..{len(cluster[task_type]) - 1}.")
    return cluster, task_type, index


def _multi_worker(worker_timeout: float):
    import tensorflow as tf  # noqa: PLC0415

    cluster, task_type, index = cluster_from_tf_config()
    if worker_timeout <= 0:
        raise StrategyError(f"--worker_timeout={worker_timeout}: needs a positive number of seconds.")
    label = f"{task_type} {index}"
    # TensorFlow waits for missing workers in C++, forever and deaf to SIGTERM: only another
    # process can end that wait. Nothing has been written yet, so no work is lost.
    wait = deadline(worker_timeout, (
        f"error: {label} waited {worker_timeout:g} s (--worker_timeout) for the other workers of "
        f"TF_CONFIG {json.dumps(cluster)} to start, in vain. Start every worker (same cluster, its own "
        f"task index) and check that their ports are reachable from each other."))
    try:
        with wait:
            return tf.distribute.MultiWorkerMirroredStrategy()
    except (tf.errors.OpError, RuntimeError) as err:
        raise StrategyError(f"{label} could not join the cluster {cluster}: {_first_line(err)}. Start "
                            f"every worker of TF_CONFIG and check that their ports are free and "
                            f"reachable.") from err


def worker_label(strategy) -> str:
    """``'worker 1'`` (``'chief 0'``...) under a multi-worker strategy, else ``''``."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if not task_type or strategy.__class__.__name__.startswith("TPU"):
        return ""
    return f"{task_type} {resolver.task_id}"


def is_chief(strategy) -> bool:
    """Whether this process writes checkpoints, summaries and results (always true on one machine)."""
    return bool(strategy.extended.should_checkpoint)


def describe_failure(err: BaseException, strategy) -> str | None:
    """A clear message for a distributed failure (a dead peer, a collective timeout), else ``None``."""
    import tensorflow as tf  # noqa: PLC0415

    label = worker_label(strategy)
    if not label or not isinstance(err, (tf.errors.OpError, RuntimeError)):
        return None
    text = str(err)
    dead = re.findall(r"/job:(\w+)/(?:replica:\d+/)?task:(\d+)", text.split("unhealthy", 1)[-1])
    if "unhealthy" in text or "is down" in text or isinstance(err, tf.errors.UnavailableError):
        peers = sorted({f"{job} {task}" for job, task in dead} - {label})
        who = ", ".join(peers) if peers else "another worker"
        return (f"{label}: multi-worker training stopped because {who} stopped responding "
                f"(crashed, killed or unreachable): {_telling_line(err)}. Restart every worker with the "
                f"same flags and --model_dir; training resumes from the chief's last checkpoint.")
    if isinstance(err, (tf.errors.DeadlineExceededError, tf.errors.CancelledError, tf.errors.AbortedError)):
        return (f"{label}: a collective operation with the other workers failed: {_first_line(err)}. "
                f"Restart every worker with the same flags and --model_dir to resume.")
    return None


# --- TPU ------------------------------------------------------------------------------------------

def probe(host: str, port: int, timeout: float = TPU_PROBE_TIMEOUT_S) -> str | None:
    """``None`` when ``host:port`` accepts a TCP connection within ``timeout`` s, else the reason."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.timeout:
        return f"no answer within {timeout:g} s"
    except OSError as err:
        return err.strerror or str(err)


def _run_with_timeout(fn, timeout: float):
    """``fn()`` in a daemon thread; ``(result, error)``, or raises TimeoutError when it does not return."""
    box = {}

    def target():
        try:
            box["result"] = fn()
        except Exception as err:  # noqa: BLE001 - handed back to the caller
            box["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError
    return box.get("result"), box.get("error")


def _tpu_strategy(address: str, timeout: float = DEFAULT_WORKER_TIMEOUT_S):
    if not address:
        raise StrategyError("--strategy=tpu needs --tpu=<TPU name or grpc:// address> ('local' on a "
                            "TPU VM).")
    match = re.match(r"^grpc://([^:/]+):(\d+)$", address)
    if address.startswith("grpc://") and not match:
        raise StrategyError(f"--tpu={address!r} is not a grpc://HOST:PORT address (TPU workers listen "
                            f"on port 8470).")
    if match:
        reason = probe(match.group(1), int(match.group(2)))
        if reason:
            raise StrategyError(f"no TPU answers at --tpu={address}: {reason}. Check the address and "
                                f"port (8470 on a TPU worker), the firewall, and that the TPU is READY "
                                f"(`gcloud compute tpus describe NAME`).")
    elif address != "local":
        # A Cloud TPU name is resolved through the GCE metadata server, which exists only on GCE.
        try:
            reason = _run_with_timeout(lambda: socket.getaddrinfo("metadata.google.internal", 80),
                                       TPU_PROBE_TIMEOUT_S)[1]
        except TimeoutError:
            reason = f"no answer within {TPU_PROBE_TIMEOUT_S:g} s"
        if reason:
            raise StrategyError(f"cannot resolve the Cloud TPU name --tpu={address!r}: this machine "
                                f"reaches no GCE metadata server ({reason}). Run on a Google Cloud VM in "
                                f"the TPU's zone, or pass --tpu=grpc://IP:8470 (or 'local' on a TPU VM).")
    from official.common import distribute_utils  # noqa: PLC0415

    # Something that accepts connections but is no TPU makes TensorFlow wait forever, in C++.
    wait = deadline(timeout, (
        f"error: the TPU at --tpu={address} did not initialize within {timeout:g} s (--worker_timeout): "
        f"the address answers but no TPU system came up there. Check that it is a TPU worker's "
        f"address (port 8470) and that the TPU is READY and not in use by another job."))
    try:
        with wait:
            return distribute_utils.get_distribution_strategy("tpu", tpu_address=address)
    except Exception as err:  # noqa: BLE001 - resolver/initialization errors vary by setup
        hint = (" This machine has no TPU devices; 'local' works on a TPU VM only."
                if address == "local" else "")
        raise StrategyError(f"no usable TPU at --tpu={address!r}: {_first_line(err)}.{hint}") from err


# --- per-replica input (TPUEstimator's per-host input_fn) -----------------------------------------

def per_replica_batch_size(global_batch_size: int, input_context=None) -> int:
    """The batch one replica reads: ``global / replicas``, an error when it does not divide evenly."""
    if input_context is None:
        return int(global_batch_size)
    replicas = input_context.num_replicas_in_sync
    if global_batch_size % replicas:
        raise StrategyError(f"global batch {global_batch_size} does not split evenly over {replicas} "
                            f"replicas; use a multiple of {replicas}.")
    return global_batch_size // replicas


def shard(dataset, input_context=None):
    """``dataset`` restricted to this input pipeline's share (every ``n``-th element), as TPUEstimator's
    per-host input did; unchanged with one pipeline."""
    if input_context is None or input_context.num_input_pipelines <= 1:
        return dataset
    return dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)


def distributed_dataset(strategy, dataset_fn, global_batch_size: int, drop_remainder: bool = True):
    """The per-replica input of a custom training loop, as TPUEstimator's per-host ``input_fn`` was.

    ``dataset_fn(input_context)`` returns an *unbatched* dataset (shuffle and augment there); each input
    pipeline keeps its own shard of it (every ``n``-th element, ``n`` = pipelines, i.e. workers) and
    batches it per replica, so one step reads ``global_batch_size`` distinct examples. Batches keep a
    static shape by default (``drop_remainder``), which TPUs require.
    """
    def per_pipeline(input_context):
        batch = per_replica_batch_size(global_batch_size, input_context)
        return shard(dataset_fn(input_context), input_context).batch(batch, drop_remainder=drop_remainder)

    return strategy.distribute_datasets_from_function(per_pipeline)


def _telling_line(err: BaseException) -> str:
    """The line of a TensorFlow error that says what happened (its first is often 'Graph execution
    error:')."""
    for line in str(err).splitlines():
        if re.search(r"abort|unhealthy|heartbeat|reset by peer|unavailable|is down", line, re.I):
            return line.strip()[:300]
    return _first_line(err)


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return (lines[0] if lines else type(err).__name__)[:300]

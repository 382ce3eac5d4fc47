"""Cross-replica (synchronized) batch statistics on a 2-replica MirroredStrategy over 2 logical CPUs,
or, with ``TF_CONFIG`` set, as one of two MultiWorkerMirroredStrategy worker processes (one replica each).

Run as a script by ``test_distributed.py``: logical devices must be configured before TensorFlow
initializes and only one MirroredStrategy works per process, so this cannot live inside the pytest
process. Prints one JSON object per checked case, then ``DONE``; exits non-zero on the first error.

For each Keras generation and each batch-dependent layer it compares, after one training step:
  * per-replica outputs (each replica gets half the batch) with a single-device layer on the whole batch;
  * the batch variance each replica sees (``ops.batch_moments(synchronized=True)``) with the global one;
  * the moving variance (and moving mean) with the single-device layer's;
  * an inference call on each replica afterwards;
and, as a control, that ``synchronized=False`` does give per-replica statistics that differ.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

MULTI_WORKER = bool(os.environ.get("TF_CONFIG"))  # one replica per worker process, two workers
if not MULTI_WORKER:
    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

from evonorm import distribute, ops  # noqa: E402
from evonorm.layers import keras3, legacy  # noqa: E402

MODULES = {"keras3": keras3, "tf_keras": legacy}
NAMES = ("evonorm_b0", "evonorm_b1", "bn_relu")
SHAPE = (4, 5, 6, 8)  # global batch of 4: two samples per replica


def _per_replica_halves(strategy, x):
    half = SHAPE[0] // 2
    return strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(x[ctx.replica_id_in_sync_group * half:(ctx.replica_id_in_sync_group + 1) * half]))


def _local(strategy, value):
    return np.concatenate([t.numpy() for t in strategy.experimental_local_results(value)], axis=0)


def _local_rows(strategy):
    """Rows of the global batch that this process's replicas hold (all of them on one machine)."""
    ids = _local(strategy, strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant([ctx.replica_id_in_sync_group])))
    half = SHAPE[0] // 2
    return np.concatenate([np.arange(i * half, (i + 1) * half) for i in ids])


def check(strategy, generation, name, synchronized, rng):
    create = MODULES[generation].create_norm_act
    single = create(name)
    single.build(SHAPE)
    for var in single.trainable_weights:
        var.assign(rng.uniform(0.5, 1.5, var.shape).astype(np.float32))
    with strategy.scope():
        mirrored = create(name, synchronized=synchronized)
        mirrored.build(SHAPE)
    mirrored.set_weights(single.get_weights())

    x = (rng.normal(0.8, 2.0, SHAPE) + np.linspace(-1.0, 1.0, SHAPE[-1])).astype(np.float32)
    # One replica's half gets a different scale, so unsynchronized statistics really differ.
    x[SHAPE[0] // 2:] *= 3.0
    x2 = rng.normal(0.0, 1.0, SHAPE).astype(np.float32)

    @tf.function
    def train_step(xs):
        y = mirrored(xs, training=True)
        _, var = ops.batch_moments(xs, synchronized=synchronized)
        return y, var[tf.newaxis]

    @tf.function
    def infer_step(xs):
        return mirrored(xs, training=False)

    y_dist, var_dist = strategy.run(train_step, args=(_per_replica_halves(strategy, x),))
    y_dist, var_dist = _local(strategy, y_dist), _local(strategy, var_dist)
    rows = _local_rows(strategy)
    y_single = single(tf.constant(x), training=True).numpy()[rows]
    global_var = x.reshape(-1, SHAPE[-1]).var(axis=0)

    y_infer = _local(strategy, strategy.run(infer_step, args=(_per_replica_halves(strategy, x2),)))
    y_infer_single = single(tf.constant(x2), training=False).numpy()[rows]

    weights = {v.name.split("/")[-1].split(":")[0]: v for v in mirrored.weights}
    single_weights = {v.name.split("/")[-1].split(":")[0]: v for v in single.weights}
    moving = {k: float(np.abs(np.asarray(weights[k].numpy()) - single_weights[k].numpy()).max())
              for k in weights if k.startswith("moving")}
    return {
        "generation": generation, "name": name, "synchronized": synchronized,
        "output_err": float(np.abs(y_dist - y_single).max()),
        "output_scale": float(np.abs(y_single).max()),
        "replica_var_err": float(np.abs(var_dist - global_var[None]).max()),
        "moving_err": moving,
        "infer_err": float(np.abs(y_infer - y_infer_single).max()),
        "replicas": strategy.num_replicas_in_sync,
        "rows": rows.tolist(),
    }


def check_input(strategy):
    """The first step of ``distribute.distributed_dataset``: what each local replica reads."""
    dataset = distribute.distributed_dataset(strategy, lambda ctx: tf.data.Dataset.range(64), 8)
    batch = next(iter(dataset))
    return {"input": [t.numpy().tolist() for t in strategy.experimental_local_results(batch)],
            "replicas": strategy.num_replicas_in_sync}


def main():
    strategy = (tf.distribute.MultiWorkerMirroredStrategy() if MULTI_WORKER
                else tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    print(json.dumps(check_input(strategy)), flush=True)
    rng = np.random.default_rng(7)
    for generation in MODULES:
        for name in NAMES:
            print(json.dumps(check(strategy, generation, name, True, rng)), flush=True)
        print(json.dumps(check(strategy, generation, "evonorm_b0", False, rng)), flush=True)
    print("DONE", flush=True)


if __name__ == "__main__":
    sys.exit(main())

"""Speed and memory of norm-act layers, side by side with fused BN-ReLU in one process.

Two measurements, both reported as ratios to a baseline timed in the same process, interleaved round
by round so drifting machine load hits every layer alike:

* layer: forward + backward of one layer on a ``[batch, 32, 32, 16]`` tensor (the first stage of a
  CIFAR ResNet), baseline ``tf_keras.layers.BatchNormalization`` (fused kernel) + ReLU.
* step: one SGD training step of a pre-activation ResNet-8 / ResNet-20 on 32x32x3 inputs, baseline
  the same network with this project's ``bn_relu`` (TensorFlow's fused batch-norm kernel + ReLU; the
  layer rows show it at Keras BN-ReLU speed). Peak memory of a step is the peak of TensorFlow's CPU
  allocator during one step (``tf.config.experimental.get_memory_info``).

Rows marked ``(tf)`` run the same layer with the fused CPU kernels disabled (``evonorm.kernels``),
to show what they buy. Timings use ``tf.function`` without XLA, as FACTS.md recommends on CPU.
"""

from __future__ import annotations

import os
import platform
import statistics
import time

import numpy as np
import tensorflow as tf
import tf_keras

from evonorm import kernels
from evonorm.layers import legacy

KERAS_BN = "keras_bn_relu"


def machine_description() -> str:
    """CPU model, core count and TensorFlow version, for results files."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, TF {tf.__version__}, Python {platform.python_version()}"


def variant(name: str):
    """The shared row-name rule of the benchmarks: ``'evonorm_s0(tf)'`` -> ``('evonorm_s0', False)``.

    Returns:
      (layer registry name, whether the fused CPU kernels are allowed).
    """
    if name.endswith("(tf)"):
        return name[:-4], False
    return name, True


def trace(fn, fused: bool):
    """Calls ``fn`` once (tracing it) with the fused kernels allowed or not; returns its result.

    A ``tf.function`` keeps the choice made while it was traced, so later calls need no context.
    """
    if fused:
        return fn()
    with kernels.disabled():
        return fn()


_trace = trace  # for model_step_fn, whose ``trace`` flag (public keyword) shadows the function


def time_interleaved(fns: dict, rounds: int, reps: int) -> dict:
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for key, fn in fns.items():
            start = time.perf_counter()
            for _ in range(reps):
                out = fn()
            np.asarray(out)  # wait for the result
            times[key].append((time.perf_counter() - start) / reps)
    return {k: statistics.median(v) for k, v in times.items()}


def layer_step_fn(name: str, shape, groups: int = 8):
    """A traced fwd+bwd function of one layer (or Keras BN-ReLU for ``KERAS_BN``) on a fixed input."""
    x = tf.Variable(tf.random.normal(shape) * 2.0 + 0.5)
    w = tf.random.normal(shape)
    base, fused = variant(name)
    if base == KERAS_BN:
        bn = tf_keras.layers.BatchNormalization(epsilon=1e-5)

        def layer(t, training):
            return tf.nn.relu(bn(t, training=training))
        bn.build(shape)
        variables = bn.trainable_variables
    else:
        layer = legacy.create_norm_act(base, groups=groups)
        layer.build(shape)
        variables = layer.trainable_variables

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x, training=True) * w)
        grads = tape.gradient(loss, [x] + list(variables))
        return tf.add_n([tf.reduce_sum(g) for g in grads])

    trace(step, fused)
    return step


def bench_layers(names, shape=(128, 32, 32, 16), rounds=7, reps=5) -> dict:
    """Median seconds per fwd+bwd for each layer name (plus the Keras BN-ReLU baseline)."""
    fns = {KERAS_BN: layer_step_fn(KERAS_BN, shape)}
    for name in names:
        fns[name] = layer_step_fn(name, shape)
    return time_interleaved(fns, rounds, reps)


def model_step_fn(name: str, depth: int, batch: int, seed: int = 0, trace: bool = True):
    """A traced SGD training step of a pre-activation ResNet-``depth`` with layer ``name``."""
    from evonorm.vision.cifar_resnet import build_preact_resnet  # noqa: PLC0415

    base, fused = variant(name)
    tf_keras.utils.set_random_seed(seed)
    model = build_preact_resnet(depth=depth, norm_act=base, input_shape=(32, 32, 3), num_classes=10)
    opt = tf_keras.optimizers.SGD(0.01, momentum=0.9)
    images = tf.random.normal([batch, 32, 32, 3])
    labels = tf.random.uniform([batch], 0, 10, dtype=tf.int32)
    loss_fn = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(images, training=True))
        opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    if trace:
        _trace(step, fused)
    return step


def peak_memory_mb(step) -> float:
    """Peak TensorFlow CPU allocator memory (MiB) during one call of a traced training ``step``.

    Counts every tensor TensorFlow allocates (activations kept for the backward pass, gradients,
    temporaries), which is what differs between norm-act layers; weights are included in every row.
    """
    try:
        tf.config.experimental.reset_memory_stats("CPU:0")
    except ValueError as err:
        raise RuntimeError("TensorFlow keeps no CPU allocator statistics: set TF_CPU_ALLOCATOR_USE_BFC=true "
                           "before TensorFlow is imported (peak_memory_mb_subprocess does).") from err
    np.asarray(step())
    return tf.config.experimental.get_memory_info("CPU:0")["peak"] / 2**20


_MEMORY_SCRIPT = """
import sys
from evonorm import benchmark
name, depth, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
print("PEAK_MIB", benchmark.peak_memory_mb(benchmark.model_step_fn(name, depth, batch)))
"""


def peak_memory_mb_subprocess(name: str, depth: int, batch: int) -> float:
    """:func:`peak_memory_mb` of one training step, measured in a fresh Python process.

    TensorFlow keeps CPU allocator statistics only with its BFC allocator, chosen by an environment
    variable before import. It also changes step times (about 1.3x slower here), so the timings
    stay in the calling process on the default allocator and only memory is measured this way.
    """
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    env = dict(os.environ, TF_CPU_ALLOCATOR_USE_BFC="true", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, name, str(depth), str(batch)], env=env,
                          capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("PEAK_MIB "):
            return float(line.split()[1])
    raise RuntimeError(f"memory measurement of {name} (ResNet-{depth}) failed:\n{done.stderr[-2000:]}")

"""Speed of a BigGAN-deep training step with each conditional layer, side by side with conditional BN-ReLU.

One process, one model size (the Fashion-MNIST 32 px twin's ``fmnist32_<layer>`` architecture unless told
otherwise), one step = one D update and one G update (hinge loss, Adam), traced with ``tf.function``
without XLA (``../shared/FACTS.md``: whole-model XLA is ~2x slower on CPU). Steps are timed interleaved
round by round so drifting load hits every layer alike, and reported as the median ratio to conditional
BN-ReLU. The first call (tracing plus one step) is timed separately: it is what a user waits for before
the first progress line. ``(tf)`` rows run the same layer with the fused CPU kernels disabled, to show what
the kernels' conditional path buys.

    python scripts/benchmark_gan.py                       # writes gan/results/benchmark.md
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import tensorflow as tf
import tf_keras

from evonorm import benchmark
from evonorm.gan import biggan, configs, losses

DEFAULT_LAYERS = ("bn_relu", "evonorm_b0", "evonorm_s0", "gn_relu", "ln_relu", "pn_relu", "evonorm_b0(tf)",
                  "evonorm_s0(tf)")
BASELINE = "bn_relu"


def model_config(layer: str, ch: int | None = None) -> biggan.BigGANConfig:
    """The twin's architecture for ``layer`` (groups as its config chooses), optionally at width ``ch``."""
    cfg = configs.get_config(f"fmnist32_{layer}").model
    return dataclasses.replace(cfg, ch=ch) if ch else cfg


def gan_step_fn(layer: str, batch: int, ch: int | None = None, seed: int = 0):
    """(traced step function, seconds of its first call) for one D + one G update with ``layer`` in G."""
    base, fused = benchmark.variant(layer)  # the shared '(tf)' naming rule
    cfg = model_config(base, ch)
    tf_keras.utils.set_random_seed(seed)
    g, d = biggan.Generator(cfg), biggan.Discriminator(cfg)
    g_opt = tf_keras.optimizers.Adam(1e-4, beta_1=0.0, beta_2=0.999)
    d_opt = tf_keras.optimizers.Adam(4e-4, beta_1=0.0, beta_2=0.999)
    rng = np.random.default_rng(seed)
    real = tf.constant(rng.uniform(-1, 1, (batch, cfg.resolution, cfg.resolution, cfg.image_channels)),
                       tf.float32)
    labels = tf.constant(rng.integers(0, cfg.num_classes, batch), tf.int32)

    @tf.function
    def step():
        z = tf.random.normal([batch, cfg.z_dim])
        with tf.GradientTape() as tape:
            fake = g((z, labels), training=True)
            d_loss = losses.discriminator_hinge_loss(d((real, labels), training=True),
                                                     d((fake, labels), training=True))
        d_opt.apply_gradients(zip(tape.gradient(d_loss, d.trainable_variables), d.trainable_variables))
        with tf.GradientTape() as tape:
            g_loss = losses.generator_hinge_loss(d((g((z, labels), training=True), labels), training=True))
        g_opt.apply_gradients(zip(tape.gradient(g_loss, g.trainable_variables), g.trainable_variables))
        return d_loss + g_loss

    start = time.perf_counter()
    np.asarray(benchmark.trace(step, fused))
    return step, time.perf_counter() - start


def run(layers=DEFAULT_LAYERS, batch: int = 32, ch: int | None = None, rounds: int = 7, reps: int = 3) -> list:
    """Rows (layer, ms per step, ratio to conditional BN-ReLU, first-call seconds), baseline first."""
    layers = [BASELINE] + [name for name in layers if name != BASELINE]
    fns, first = {}, {}
    for name in layers:
        fns[name], first[name] = gan_step_fn(name, batch, ch)
    times = benchmark.time_interleaved(fns, rounds, reps)
    base = times[BASELINE]
    return [dict(layer=name, ms=1000 * times[name], ratio=times[name] / base, first_call_s=first[name])
            for name in layers]


def markdown(rows, batch: int, ch: int | None, argv: str) -> str:
    cfg = model_config(BASELINE, ch)
    g, d = biggan.build(cfg)
    lines = [
        "# BigGAN-deep training step: each conditional layer vs conditional BN-ReLU",
        "",
        f"Machine: {benchmark.machine_description()}.  ",
        f"Command: `{argv}` ({time.strftime('%Y-%m-%d')}).  ",
        f"Model: the `fmnist32_*` twin, 32x32x1, ch={cfg.ch}, G {biggan.count_parameters(g)[0]:,} / "
        f"D {biggan.count_parameters(d)[0]:,} trainable parameters (BN-ReLU), batch {batch}; one step = one D "
        f"and one G Adam update. Method: `evonorm/gan/bench.py` (interleaved rounds, median, one process).",
        "",
        "| layer in G (class-conditional) | ms per D+G step | vs cond. BN-ReLU | first call (trace + step) |",
        "|---|---|---|---|",
    ]
    for row in rows:
        lines.append(f"| {row['layer']} | {row['ms']:.0f} | {row['ratio']:.2f}x | {row['first_call_s']:.1f} s |")
    lines += ["", "`(tf)`: the same layer with the fused CPU kernels disabled (plain TensorFlow formulas).", ""]
    return "\n".join(lines)

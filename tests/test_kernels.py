"""The fused CPU kernels compute exactly what the TensorFlow formulas compute (values and gradients)."""

import numpy as np
import pytest
import tensorflow as tf

from evonorm import kernels
from evonorm.layers import legacy

pytestmark = pytest.mark.skipif(kernels.load() is None, reason="fused kernels could not be built here")


def _pair(name, shape, **kwargs):
    a = legacy.create_norm_act(name, **kwargs)
    b = legacy.create_norm_act(name, **kwargs)
    a.build(shape)
    b.build(shape)
    rng = np.random.default_rng(0)
    for w in a.trainable_weights:
        w.assign(rng.uniform(0.3, 1.7, w.shape).astype("float32"))
    b.set_weights(a.get_weights())
    return a, b


def _run(layer, x, training, fused):
    def go():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=training)
            loss = tf.reduce_sum(y * tf.sin(3.0 * x))
        return y, tape.gradient(loss, [x] + layer.trainable_variables)
    if fused:
        return go()
    with kernels.disabled():
        return go()


@pytest.mark.parametrize("name", ["evonorm_b0", "evonorm_s0"])
@pytest.mark.parametrize("shape", [(4, 5, 7, 16), (3, 6, 32), (2, 3, 4, 5, 8)])
def test_fused_matches_tensorflow_formula(name, shape):
    x = tf.random.stateless_normal(shape, seed=(1, 2)) * 3.0 + 1.5  # non-zero mean: tests the shifts
    a, b = _pair(name, shape, groups=4)
    for training in (True, False, True):
        ya, ga = _run(a, x, training, fused=True)
        yb, gb = _run(b, x, training, fused=False)
        np.testing.assert_allclose(ya, yb, rtol=1e-5, atol=2e-5)
        for p, q in zip(ga, gb):
            np.testing.assert_allclose(p, q, rtol=1e-4, atol=1e-4)
        for p, q in zip(a.get_weights(), b.get_weights()):  # includes the moving variance update
            np.testing.assert_allclose(p, q, rtol=1e-5, atol=1e-6)


def test_fused_kernel_is_used_and_skipped_under_xla():
    layer = legacy.create_norm_act("evonorm_s0", groups=4)
    x = tf.random.normal([2, 4, 4, 8])

    @tf.function
    def plain(t):
        return layer(t)

    @tf.function(jit_compile=True)
    def xla(t):
        return layer(t)

    ops = {op.type for op in plain.get_concrete_function(x).graph.get_operations()}
    assert "EvonormS0" in ops
    np.testing.assert_allclose(xla(x), plain(x), rtol=1e-5, atol=1e-5)


def test_large_mean_keeps_variance_accurate():
    # One-pass sums would lose the variance to cancellation at mean 1e3 * std; the kernels shift first.
    x = tf.random.stateless_normal([2, 8, 8, 8], seed=(3, 4)) + 1000.0
    a, b = _pair("evonorm_s0", x.shape, groups=2)
    np.testing.assert_allclose(_run(a, x, True, True)[0], _run(b, x, True, False)[0], rtol=2e-3, atol=2e-3)

"""Gradients of EvoNorm-B0 and -S0 against finite differences (fused-kernel and TF-formula paths), and
mixed-precision policies set per layer."""

import contextlib

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import numpy_reference as ref
from layer_helpers import GENERATIONS, MODULES, built_layer, make_input, variables_by_name
from evonorm import kernels
from evonorm.layers import list_norm_acts

NAMES = list_norm_acts()


# --- analytic vs numerical gradients --------------------------------------------------------------------

def _loss(layer, x, w, training):
    return tf.reduce_sum(layer(x, training=training) * w)


@pytest.mark.parametrize("fused", [True, False], ids=["fused_if_available", "tf_formula"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "infer"])
@pytest.mark.parametrize("name", ["evonorm_b0", "evonorm_s0"])
def test_gradients_match_finite_differences(name, training, fused, rng):
    shape = (2, 3, 4, 4)
    scope = contextlib.nullcontext() if fused else kernels.disabled()
    with scope:
        layer, _ = built_layer(name, "keras3", shape, rng, groups=2)
        x0 = make_input(rng, shape)
        w = tf.constant(rng.normal(size=shape).astype(np.float32))

        # d loss / d x through tf.test.compute_gradient (central differences in float32).
        def f(x):
            return _loss(layer, x, w, training)
        analytic, numeric = tf.test.compute_gradient(f, [tf.constant(x0)], delta=1e-3)
        scale = np.abs(numeric[0]).max()
        np.testing.assert_allclose(analytic[0], numeric[0], rtol=0, atol=2e-2 * scale)

        # d loss / d (v1, gamma, beta): central differences by re-assigning each channel's value.
        with tf.GradientTape() as tape:
            loss = _loss(layer, tf.constant(x0), w, training)
        variables = variables_by_name(layer)
        keys = ["v1", "gamma", "beta"]
        grads = tape.gradient(loss, [variables[k] for k in keys])
        delta = 1e-2
        for key, grad in zip(keys, grads):
            var = variables[key]
            base = var.numpy().copy()
            numeric_grad = np.zeros_like(base)
            for c in range(base.size):
                values = []
                for sign in (1.0, -1.0):
                    bumped = base.copy()
                    bumped[c] += sign * delta
                    var.assign(bumped)
                    values.append(float(_loss(layer, tf.constant(x0), w, training)))
                numeric_grad[c] = (values[0] - values[1]) / (2 * delta)
            var.assign(base)
            scale = max(np.abs(numeric_grad).max(), 1.0)
            np.testing.assert_allclose(grad.numpy(), numeric_grad, rtol=0, atol=1e-2 * scale, err_msg=key)


# --- mixed precision ------------------------------------------------------------------------------------

POLICIES = {"mixed_float16": (tf.float16, 1e-2), "mixed_bfloat16": (tf.bfloat16, 4e-2)}


def _policy(generation, policy):
    kf = tf_keras if generation == "tf_keras" else keras
    return kf.mixed_precision.Policy(policy) if generation == "tf_keras" else kf.DTypePolicy(policy)


@pytest.mark.parametrize("policy", list(POLICIES))
@pytest.mark.parametrize("generation", GENERATIONS)
@pytest.mark.parametrize("name", NAMES)
def test_mixed_precision_policy(name, generation, policy, rng):
    shape = (4, 6, 5, 8)
    kwargs = {"groups": 4} if name in ref.GROUPED else {}
    compute_dtype, tol = POLICIES[policy]
    full, _ = built_layer(name, generation, shape, rng, **kwargs)
    mixed = MODULES[generation].create_norm_act(name, dtype=_policy(generation, policy), **kwargs)
    mixed.build(shape)
    mixed.set_weights(full.get_weights())
    for training in (True, False):
        x = make_input(rng, shape)
        # The float32 reference sees the same rounded input the mixed layer computes on.
        x_rounded = tf.cast(tf.cast(x, compute_dtype), tf.float32)
        y_mixed = mixed(tf.constant(x), training=training)
        y_full = full(x_rounded, training=training)
        assert y_mixed.dtype == compute_dtype
        scale = max(float(tf.reduce_max(tf.abs(y_full))), 1.0)
        np.testing.assert_allclose(tf.cast(y_mixed, tf.float32).numpy(), y_full.numpy(),
                                   rtol=tol, atol=tol * scale)
    for v in mixed.weights:
        assert tf.as_dtype(v.dtype) == tf.float32, v.name
    for a, b in zip(full.get_weights(), mixed.get_weights()):  # moving statistics kept in float32 alike
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)

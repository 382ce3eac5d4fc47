"""Training behaviour: weights tracked by Keras models, tf.function / XLA steps, gradients against
finite differences, and mixed-precision policies."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import numpy_reference as ref
from layer_helpers import built_layer, create, make_input, params_of, randomize
from evonorm.layers import list_norm_acts

NAMES = list_norm_acts()
SHAPE = (4, 6, 5, 8)
# Graph-compiled tf_keras steps cost ~1 s per layer on the shared 2-core machine. This subset covers
# every kind of variable (v1 in EvoNorm/BN/GN, tau, moving variance/mean/mean square) and every
# family; the remaining tf_keras cases run with ``-m slow``.
TF_KERAS_CORE = ("evonorm_b0", "evonorm_b1", "evonorm_s0", "evonorm_s2", "bn_silu", "gn_silu", "frn",
                 "rs_rej", "evonorm_b0_no_global")


def _name_generation_params():
    """(name, generation) for every name in Keras 3, the core subset in tf_keras (the rest slow)."""
    params = []
    for name in NAMES:
        params.append(pytest.param(name, "keras3", id=f"{name}-keras3"))
        marks = () if name in TF_KERAS_CORE else (pytest.mark.slow,)
        params.append(pytest.param(name, "tf_keras", id=f"{name}-tf_keras", marks=marks))
    return params


def _group_kwargs(name):
    return {"groups": 4} if name in ref.GROUPED else {}


# --- weights tracked by a Keras model of each generation -----------------------------------------------

def _sequential(generation, layer):
    kf = tf_keras if generation == "tf_keras" else keras
    return kf.Sequential([
        kf.Input(shape=SHAPE[1:]),
        kf.layers.Conv2D(8, 3, padding="same"),
        layer,
        kf.layers.GlobalAveragePooling2D(),
        kf.layers.Dense(2),
    ])


def _fit_once_and_check(name, generation, rng, compile_kwargs):
    layer = create(name, generation, name="norm", **_group_kwargs(name))
    model = _sequential(generation, layer)
    randomize(layer, rng, name)
    tracked = {id(v) for v in model.trainable_variables}
    assert all(id(v) in tracked for v in layer.trainable_variables)
    assert len(layer.trainable_variables) >= 2
    before = params_of(layer)
    model.compile(optimizer=("sgd" if generation == "tf_keras" else keras.optimizers.SGD(0.5)),
                  loss="mse", **compile_kwargs)
    x = make_input(rng, SHAPE)
    y = rng.normal(size=(SHAPE[0], 2)).astype(np.float32) * 3.0
    model.fit(x, y, batch_size=SHAPE[0], epochs=1, verbose=0)
    after = params_of(layer)
    for key in before:  # every trainable parameter learns, every moving statistic moves
        assert not np.allclose(before[key], after[key], rtol=0, atol=1e-7), f"{key} did not change"
        assert np.all(np.isfinite(after[key]))


@pytest.mark.parametrize("name, generation", _name_generation_params())
def test_fit_step_updates_layer_variables(name, generation, rng):
    # Keras 3 would XLA-compile fit by default ("auto"), which is slow on CPU: covered separately below.
    _fit_once_and_check(name, generation, rng, {"jit_compile": False} if generation == "keras3" else {})


@pytest.mark.parametrize("name", ["evonorm_b0", "evonorm_s0", "bn_relu"])
def test_keras3_fit_with_default_compile(name, rng):
    """Default ``compile()`` (jit_compile='auto': XLA where supported) must train as well."""
    _fit_once_and_check(name, "keras3", rng, {})


# --- tf.function steps, with and without XLA ------------------------------------------------------------

def _step_fn(layer, jit):
    @tf.function(jit_compile=jit)
    def step(x, w):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * w)
        return y, tape.gradient(loss, [x] + layer.trainable_variables)
    return step


@pytest.mark.parametrize("name, generation", _name_generation_params())
def test_tf_function_step_with_and_without_xla(name, generation, rng):
    shape = (2, 5, 7, 8)
    plain, _ = built_layer(name, generation, shape, rng, **_group_kwargs(name))
    xla = create(name, generation, **_group_kwargs(name))
    xla.build(shape)
    xla.set_weights(plain.get_weights())
    x = tf.constant(make_input(rng, shape))
    w = tf.constant(rng.normal(size=shape).astype(np.float32))
    y_plain, g_plain = _step_fn(plain, False)(x, w)
    y_xla, g_xla = _step_fn(xla, True)(x, w)
    np.testing.assert_allclose(y_xla.numpy(), y_plain.numpy(), rtol=1e-4, atol=1e-4)
    # Training-mode output depends only on trainable parameters, which the step does not change.
    want, _ = ref.forward(name, x.numpy(), params_of(plain), True, **_group_kwargs(name))
    np.testing.assert_allclose(y_plain.numpy(), want, rtol=1e-4, atol=1e-4)
    for gp, gx in zip(g_plain, g_xla):
        assert np.all(np.isfinite(gp.numpy())) and np.all(np.isfinite(gx.numpy()))
        np.testing.assert_allclose(gx.numpy(), gp.numpy(), rtol=1e-3, atol=1e-3)
    for a, b in zip(plain.get_weights(), xla.get_weights()):  # moving statistics updated alike
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

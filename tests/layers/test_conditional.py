"""Class-conditional norm-acts and spectral normalization, against NumPy.

Every registered layer made conditional must compute its own formula with the per-sample affine
``gamma = 1 + W_g c``, ``beta = W_b c`` in place of its per-channel one (in training and inference, with
the fused kernels and without), and the spectral norm layers must divide by the largest singular value.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import numpy_reference as ref
from evonorm import kernels
from evonorm.layers.conditional import ConditionalNormAct, create_conditional_norm_act
from evonorm.layers.spectral import SNConv2D, SNDense, SNEmbedding

SHAPE = (4, 6, 6, 16)
COND = 12


def _built(name, rng, spectral_norm=False, **norm_kwargs):
    layer = ConditionalNormAct(name, spectral_norm=spectral_norm, norm_kwargs=norm_kwargs)
    layer.build((SHAPE, (SHAPE[0], COND)))
    for var in layer.trainable_weights:
        short = var.name.split("/")[-1].split(":")[0]
        low, high = {"v1": (0.3, 1.7), "tau": (-0.5, 0.5)}.get(short, (-0.3, 0.3))
        if short == "v1" and name in ("evonorm_b0_no_global", "evonorm_b0_max_to_add"):
            low, high = 0.02, 0.08
        var.assign(rng.uniform(low, high, var.shape).astype(np.float32))
    return layer


def _inner_params(layer):
    return {v.name.split("/")[-1].split(":")[0]: v.numpy().astype(np.float64) for v in layer.inner.weights}


def _reference(layer, x, c, training):
    params = _inner_params(layer)
    wg, wb = layer.gain.kernel.numpy(), layer.bias.kernel.numpy()
    params["gamma"] = (1.0 + c @ wg)[:, None, None, :]
    params["beta"] = (c @ wb)[:, None, None, :]
    return ref.forward(layer.norm, x, params, training, groups=layer.inner.effective_groups)[0]


@pytest.mark.parametrize("training", [True, False], ids=["train", "infer"])
@pytest.mark.parametrize("name", ref.ALL_NAMES)
def test_conditional_matches_numpy(name, training, rng):
    layer = _built(name, rng, **({"groups": 4} if name in ref.GROUPED else {}))
    for _ in range(2):  # move the moving statistics off their initial values
        layer((rng.normal(0.5, 2.0, SHAPE).astype(np.float32), rng.normal(size=(4, COND)).astype(np.float32)),
              training=True)
    x = rng.normal(0.7, 1.6, SHAPE).astype(np.float32)
    c = rng.normal(size=(4, COND)).astype(np.float32)
    expected = _reference(layer, x.astype(np.float64), c.astype(np.float64), training)
    got = layer((x, c), training=training).numpy()
    np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("name", ["evonorm_b0", "evonorm_s0", "bn_relu"])
def test_fused_kernel_path_equals_formula_path(name, rng):
    layer = _built(name, rng)
    x = tf.constant(rng.normal(0.3, 1.5, SHAPE).astype(np.float32))
    c = tf.constant(rng.normal(size=(4, COND)).astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        fast = layer((x, c), training=False)
        with kernels.disabled():
            slow = layer((x, c), training=False)
    np.testing.assert_allclose(fast.numpy(), slow.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tape.gradient(fast, x).numpy(), tape.gradient(slow, x).numpy(), rtol=1e-4,
                               atol=1e-4)


def test_the_condition_changes_the_output_and_only_it(rng):
    layer = _built("evonorm_s0", rng, spectral_norm=True)
    x = tf.constant(rng.normal(size=SHAPE).astype(np.float32))
    c1 = tf.constant(rng.normal(size=(4, COND)).astype(np.float32))
    c2 = tf.constant(rng.normal(size=(4, COND)).astype(np.float32))
    a, b, again = (layer((x, c), training=False).numpy() for c in (c1, c2, c1))
    assert np.abs(a - b).max() > 1e-2
    np.testing.assert_array_equal(a, again)


def test_zero_condition_is_the_unconditional_layer_with_unit_affine(rng):
    layer = _built("gn_relu", rng, groups=4)
    x = rng.normal(size=SHAPE).astype(np.float32)
    plain = ref.forward("gn_relu", x, {"gamma": np.ones(16), "beta": np.zeros(16)}, False, groups=4)[0]
    np.testing.assert_allclose(layer((x, np.zeros((4, COND), np.float32))).numpy(), plain, atol=1e-5)


def test_variables_and_config(rng):
    layer = create_conditional_norm_act("EvoNorm-B0", name="cb0", momentum=0.8)
    layer((tf.zeros(SHAPE), tf.zeros((4, COND))), training=True)
    names = sorted(v.name for v in layer.weights)
    assert names == ["cb0/bias/kernel:0", "cb0/bias/u:0", "cb0/gain/kernel:0", "cb0/gain/u:0",
                     "cb0/norm/moving_variance:0", "cb0/norm/v1:0"]  # no per-channel gamma/beta
    assert layer.inner.momentum == 0.8
    clone = ConditionalNormAct.from_config(layer.get_config())
    assert (clone.norm, clone.norm_kwargs, clone.spectral_norm) == ("evonorm_b0", {"momentum": 0.8}, True)


def test_bad_condition_and_unknown_layer():
    with pytest.raises(ValueError, match="unknown norm-act layer"):
        ConditionalNormAct("batchnorm")
    layer = ConditionalNormAct("bn_relu")
    with pytest.raises(ValueError, match="condition must be"):
        layer((tf.zeros(SHAPE), tf.zeros((4, 2, 3))))
    with pytest.raises(ValueError, match="channels_last"):
        ConditionalNormAct("bn_relu", norm_kwargs={"data_format": "channels_first"})


# --- spectral normalization ------------------------------------------------------------------------

@pytest.mark.parametrize("make,shape", [(lambda: SNDense(24), (3, 40)), (lambda: SNConv2D(8, 3), (2, 5, 5, 6)),
                                        (lambda: SNEmbedding(10, 24), (5,))], ids=["dense", "conv", "embedding"])
def test_power_iteration_converges_to_the_top_singular_value(make, shape):
    layer = make()
    x = tf.zeros(shape, tf.int32) if len(shape) == 1 else tf.random.normal(shape)
    layer(x)
    layer.kernel.assign(layer.kernel * tf.linspace(0.5, 3.0, layer.kernel.shape[-1]))  # orthogonal init: sigma 1
    for _ in range(60):
        layer(x, training=True)
    w = layer.normalized_kernel(training=False).numpy()
    top = np.linalg.svd(w.reshape(-1, w.shape[-1]), compute_uv=False)[0]
    assert abs(top - 1.0) < 1e-3
    raw = layer.kernel.numpy()
    assert np.linalg.svd(raw.reshape(-1, raw.shape[-1]), compute_uv=False)[0] > 1.01  # W itself is kept


def test_inference_leaves_u_alone_and_u_gets_no_gradient():
    layer = SNDense(8)
    x = tf.random.normal([4, 16])
    layer(x)
    u0 = layer.u.numpy().copy()
    layer(x, training=False)
    np.testing.assert_array_equal(layer.u.numpy(), u0)
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(layer(x, training=True) ** 2)
    grads = tape.gradient(y, [layer.kernel, layer.bias])
    assert all(g is not None for g in grads)
    assert not layer.u.trainable and np.abs(layer.u.numpy() - u0).max() > 0


def test_dense_output_against_numpy(rng):
    layer = SNDense(6, use_bias=True)
    x = rng.normal(size=(3, 9)).astype(np.float32)
    layer(x)
    layer.bias.assign(rng.normal(size=6).astype(np.float32))
    u = layer.u.numpy().astype(np.float64)
    w = layer.kernel.numpy().astype(np.float64)
    v = u @ w.T
    v /= np.linalg.norm(v) + layer.sn_epsilon
    u_new = v @ w
    u_new /= np.linalg.norm(u_new) + layer.sn_epsilon
    sigma = (v @ w @ u_new.T).item()
    expected = x @ (w / sigma) + layer.bias.numpy()
    np.testing.assert_allclose(layer(x, training=True).numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.u.numpy(), u_new, rtol=1e-5, atol=1e-6)


def test_spectral_false_is_the_plain_layer(rng):
    layer = SNConv2D(4, 3, spectral=False)
    x = rng.normal(size=(1, 5, 5, 2)).astype(np.float32)
    y = layer(x, training=True).numpy()
    assert [v.name.split("/")[-1] for v in layer.weights] == ["kernel:0", "bias:0"]
    plain = tf_keras.layers.Conv2D(4, 3, padding="same")
    plain.build(x.shape)
    plain.set_weights(layer.get_weights())
    np.testing.assert_allclose(y, plain(x).numpy(), rtol=1e-5, atol=1e-5)


def test_embedding_rejects_float_labels():
    with pytest.raises(TypeError, match="integer class labels"):
        SNEmbedding(3, 4)(tf.zeros([2]))


def test_concurrent_calls_keep_their_own_condition(rng):
    """MirroredStrategy runs replicas in threads sharing one layer: each call must see its own affine,
    even when the other thread's call starts (and ends) in between."""
    import threading  # noqa: PLC0415

    layer = _built("gn_relu", rng, groups=4)
    x = tf.constant(rng.normal(size=SHAPE).astype(np.float32))
    conds = [tf.constant(rng.normal(size=(4, COND)).astype(np.float32)) for _ in range(2)]
    expected = [layer((x, c)).numpy() for c in conds]
    barrier = threading.Barrier(2, timeout=20)
    call = layer.inner.call

    def interleaved_call(*args, **kwargs):  # both threads have set their condition before either reads it
        barrier.wait()
        return call(*args, **kwargs)

    layer.inner.call = interleaved_call
    results = [None, None]

    def worker(i):
        try:
            results[i] = layer((x, conds[i])).numpy()
        except Exception as err:  # noqa: BLE001 - reported by the assertion below
            results[i] = err

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected):
        assert isinstance(got, np.ndarray), got
        np.testing.assert_allclose(got, want, atol=1e-5)

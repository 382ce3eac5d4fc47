"""Every registered norm-act layer, both Keras generations, against the independent NumPy reference.

Parameters are random and distinct per channel, inputs have a non-zero mean, and moving statistics
have left their initial values before anything is compared (a warm-up training call).
"""

import numpy as np
import pytest
import tensorflow as tf

import numpy_reference as ref
from layer_helpers import GENERATIONS, built_layer, create, make_input, params_of, run_reference
from evonorm import kernels
from evonorm.layers import list_norm_acts

NAMES = list_norm_acts()
RTOL, ATOL = 1e-4, 1e-4
MODES = {"act": {}, "no_act_norm": {"apply_act": False},
         "no_act_affine": {"apply_act": False, "no_act_mode": "affine"}}


def test_registry_covers_the_reference():
    assert sorted(NAMES) == sorted(ref.ALL_NAMES)


def _group_kwargs(name, channels):
    """Explicit groups of more than one channel, so a per-channel / per-group mix-up shows."""
    return {"groups": channels // 2} if name in ref.GROUPED else {}


def _check_train_then_infer(name, generation, shape, rng, **kwargs):
    layer, _ = built_layer(name, generation, shape, rng, **kwargs)
    moving_keys = [k for k in ref.MOVING_STATS.get(name, ()) if k in params_of(layer)]

    # Training: batch statistics, moving statistics updated from their (non-initial) values.
    before = params_of(layer)
    x = make_input(rng, shape)
    y = layer(tf.constant(x), training=True)
    want, want_moving = run_reference(name, x, before, True, **kwargs)
    np.testing.assert_allclose(y.numpy(), want, rtol=RTOL, atol=ATOL, err_msg=f"{name} training")
    after = params_of(layer)
    for key in moving_keys:
        assert not np.allclose(before[key], 1.0 if key != "moving_mean" else 0.0), "still at init"
        np.testing.assert_allclose(after[key], want_moving[key], rtol=1e-5, atol=1e-6,
                                   err_msg=f"{name} {key} update")

    # Inference: moving statistics used and left unchanged.
    x2 = make_input(rng, shape, mean=-0.4, scale=1.1)
    y2 = layer(tf.constant(x2), training=False)
    want2, _ = run_reference(name, x2, after, False, **kwargs)
    np.testing.assert_allclose(y2.numpy(), want2, rtol=RTOL, atol=ATOL, err_msg=f"{name} inference")
    for key in moving_keys:
        np.testing.assert_array_equal(params_of(layer)[key], after[key])
    return layer


@pytest.mark.parametrize("generation", GENERATIONS)
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", NAMES)
def test_matches_reference(name, mode, generation, rng):
    shape = (4, 6, 5, 8)
    kwargs = {**MODES[mode], **_group_kwargs(name, shape[-1])}
    layer = _check_train_then_infer(name, generation, shape, rng, **kwargs)
    if mode == "no_act_affine":  # only x * gamma + beta: no statistics kept
        assert sorted(params_of(layer)) == ["beta", "gamma"]


# B == C, H == C and W == C: a per-channel vector broadcast over the wrong axis would still run
# (same length) but give wrong numbers. Rank 3 and 5 inputs use the same conventions.
PITFALL_SHAPES = {"b_eq_c": (4, 3, 5, 4), "h_eq_c": (2, 6, 5, 6), "w_eq_c": (3, 5, 6, 6),
                  "rank3": (3, 7, 8), "rank5": (2, 3, 4, 5, 8)}


@pytest.mark.parametrize("generation", GENERATIONS)
@pytest.mark.parametrize("shape", list(PITFALL_SHAPES))
@pytest.mark.parametrize("name", NAMES)
def test_channel_broadcast_pitfalls(name, shape, generation, rng):
    shape = PITFALL_SHAPES[shape]
    _check_train_then_infer(name, generation, shape, rng, **_group_kwargs(name, shape[-1]))


@pytest.mark.parametrize("name", ["evonorm_b0", "evonorm_s0"])
def test_tensorflow_formula_path_matches_reference(name, rng):
    """B0 and S0 use fused CPU kernels when available; the pure TF path must agree as well."""
    with kernels.disabled():
        for generation in GENERATIONS:
            for shape in [(4, 6, 5, 8), PITFALL_SHAPES["b_eq_c"], PITFALL_SHAPES["h_eq_c"]]:
                _check_train_then_infer(name, generation, shape, rng, groups=shape[-1] // 2)


@pytest.mark.parametrize("generation", GENERATIONS)
@pytest.mark.parametrize("name", sorted(ref.MOVING_STATS))
def test_moving_statistics_init_and_update_rule(name, generation, rng):
    shape = (3, 4, 5, 6)
    momentum = 0.75
    layer = create(name, generation, momentum=momentum)
    layer.build(shape)
    init = params_of(layer)
    expected_init = {"moving_variance": 1.0, "moving_mean_square": 1.0, "moving_mean": 0.0}
    assert sorted(k for k in init if k.startswith("moving")) == sorted(ref.MOVING_STATS[name])
    for key in ref.MOVING_STATS[name]:
        np.testing.assert_array_equal(init[key], np.full(6, expected_init[key]))
    x = make_input(rng, shape, mean=2.0, scale=3.0).astype(np.float64)
    layer(tf.constant(x, tf.float32), training=True)
    batch = {"moving_variance": x.var(axis=(0, 1, 2)),  # biased
             "moving_mean": x.mean(axis=(0, 1, 2)),
             "moving_mean_square": (x ** 2).mean(axis=(0, 1, 2))}
    for key in ref.MOVING_STATS[name]:
        want = momentum * expected_init[key] + (1 - momentum) * batch[key]
        np.testing.assert_allclose(params_of(layer)[key], want, rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("generation", GENERATIONS)
@pytest.mark.parametrize("name", NAMES)
def test_channels_first_equals_channels_last(name, generation, rng):
    shape = (2, 5, 7, 6)  # H != W != C
    kwargs = {"groups": 3} if name in ref.GROUPED else {}
    last, _ = built_layer(name, generation, shape, rng, **kwargs)
    first = create(name, generation, data_format="channels_first", **kwargs)
    first.build((2, 6, 5, 7))
    first.set_weights(last.get_weights())
    for training in (True, False, True):
        x = make_input(rng, shape)
        y_last = last(tf.constant(x), training=training).numpy()
        y_first = first(tf.constant(np.transpose(x, (0, 3, 1, 2))), training=training).numpy()
        np.testing.assert_allclose(np.transpose(y_first, (0, 2, 3, 1)), y_last, rtol=1e-5, atol=1e-5)
        for a, b in zip(last.get_weights(), first.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("generation", GENERATIONS)
@pytest.mark.parametrize("name", ref.GROUPED)
def test_group_size_equals_groups(name, generation, rng):
    shape = (2, 3, 4, 16)
    by_count, _ = built_layer(name, generation, shape, rng, groups=4)
    by_size = create(name, generation, group_size=4)
    by_size.build(shape)
    by_size.set_weights(by_count.get_weights())
    assert by_count.effective_groups == by_size.effective_groups == 4
    x = make_input(rng, shape)
    want, _ = ref.forward(name, x, params_of(by_count), True, groups=4)
    for layer in (by_count, by_size):
        np.testing.assert_allclose(layer(tf.constant(x), training=True).numpy(), want, rtol=RTOL, atol=ATOL)


def test_default_groups_rule_values():
    # The rule itself (32 if C % 32 == 0, else the largest divisor of C below 32), spelled out.
    assert [ref.default_groups(c) for c in (8, 24, 32, 40, 48, 64, 96, 112, 7)] == \
        [8, 24, 32, 20, 24, 32, 32, 28, 7]


@pytest.mark.parametrize("generation", GENERATIONS)
@pytest.mark.parametrize("name", ref.GROUPED)
@pytest.mark.parametrize("channels", [40, 64, 112])
def test_default_groups(name, channels, generation, rng):
    shape = (2, 3, 2, channels)
    layer, _ = built_layer(name, generation, shape, rng)
    assert layer.effective_groups == ref.default_groups(channels)
    x = make_input(rng, shape)
    want, _ = ref.forward(name, x, params_of(layer), False)  # groups=None: the reference's own rule
    np.testing.assert_allclose(layer(tf.constant(x), training=False).numpy(), want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", ["evonorm_b0", "bn_relu", "frn"])
def test_non_default_epsilon(name, rng):
    _check_train_then_infer(name, "keras3", (2, 3, 4, 8), rng, epsilon=0.3)

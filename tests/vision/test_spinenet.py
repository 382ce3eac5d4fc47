"""SpineNet: parity with Model Garden (counts, specs, outputs), EvoNorm builds, config, factory, training."""

import functools
import json
import zlib

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from official.vision.configs import common
from official.vision.modeling.backbones import factory

from evonorm.layers import NormActBase
from evonorm.vision import backbones as B
from evonorm.vision import model_garden as mg
from evonorm.vision.backbones.common import DropConnect

# count_params() of Model Garden's own `spinenet` backbone (moving statistics included), computed with
# tf-models-official 2.20.0; ours must be equal.
MODEL_GARDEN_COUNTS = {"49S": 9_146_351, "49": 21_920_192, "96": 36_385_728, "143": 60_413_888}
ENDPOINT_FILTERS = {"49S": 128, "49": 256, "96": 256, "143": 256}
SMALL = (128, 128, 3)
RELU = common.NormActivation(activation="relu", use_sync_bn=False)


def spec(side):
    return tf_keras.layers.InputSpec(shape=[None, side, side, 3])


def build_both(model_id, side=256):
    """Model Garden's SpineNet and ours from the same configs (BN-ReLU, epsilon 1e-3, momentum 0.99)."""
    theirs = factory.build_backbone(spec(side), mg.Backbone(type="spinenet", spinenet={"model_id": model_id}),
                                    RELU)
    ours = factory.build_backbone(spec(side), mg.Backbone(
        type="evonorm_spinenet", evonorm_spinenet=mg.EvoNormSpineNet(model_id=model_id)), RELU)
    return theirs, ours


def fill_by_shape_and_role(model):
    """Sets every variable to values determined by its shape and role only (kernel, gamma, beta,
    moving_mean, moving_variance), so two models with the same graph compute the same function
    whatever order or names their layers have."""
    for variable in model.weights:
        role = variable.name.split("/")[-1].split(":")[0]
        shape = tuple(variable.shape)
        rng = np.random.default_rng(zlib.crc32(repr((role, shape)).encode()))
        if role == "kernel":
            value = rng.normal(0.0, np.sqrt(1.0 / np.prod(shape[:-1])), shape)
        elif role in ("gamma", "moving_variance"):
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.normal(0.0, 0.1, shape)
        variable.assign(value.astype(np.float32))


def assert_parity(model_id, side=256):
    theirs, ours = build_both(model_id, side)
    assert ours.count_params() == theirs.count_params() == MODEL_GARDEN_COUNTS[model_id]
    assert {k: v.as_list() for k, v in ours.output_specs.items()} == \
        {k: v.as_list() for k, v in theirs.output_specs.items()}
    assert sorted(ours.output_specs) == ["3", "4", "5", "6", "7"]
    assert ours.output_specs["3"].as_list() == [None, side // 8, side // 8, ENDPOINT_FILTERS[model_id]]
    assert sorted(tuple(v.shape) for v in ours.weights) == sorted(tuple(v.shape) for v in theirs.weights)
    # Same function, not only the same variables: catches a missing fusion input, an activation in
    # the wrong place or a different resampling, none of which changes the parameter count.
    fill_by_shape_and_role(theirs)
    fill_by_shape_and_role(ours)
    x = tf.random.stateless_normal((1, side, side, 3), seed=(1, 2))
    expected, actual = theirs(x, training=False), ours(x, training=False)
    for level in expected:
        want = expected[level].numpy()  # deep models reach ~1e2: float32 noise scales with it
        np.testing.assert_allclose(actual[level].numpy(), want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("model_id", ["49S", "49"])
def test_matches_model_garden_counts_output_specs_and_outputs(model_id):
    assert_parity(model_id)


@pytest.mark.slow
@pytest.mark.parametrize("model_id", ["96", "143"])
def test_large_models_match_model_garden(model_id):
    assert_parity(model_id)


@functools.lru_cache(maxsize=None)
def cached(norm_act):
    return B.spinenet("49S", norm_act, input_shape=SMALL, kernel_regularizer=tf_keras.regularizers.l2(1e-4))


@pytest.mark.parametrize("norm_act", ["evonorm_b0", "evonorm_s0"])
def test_evonorm_builds_endpoints_and_norm_act_positions(norm_act):
    model = cached(norm_act)
    out = model(tf.random.normal((2,) + SMALL), training=True)
    assert sorted(out) == sorted(model.output_specs) == ["3", "4", "5", "6", "7"]
    for level in out:
        side = SMALL[0] // 2 ** int(level)
        assert out[level].shape == (2, side, side, 128)
        assert model.output_specs[level].as_list() == [None, side, side, 128]
        assert np.all(np.isfinite(out[level].numpy()))
    layers = list(model.submodules)
    assert not any(isinstance(l, tf_keras.layers.BatchNormalization) for l in layers)
    norm_acts = [l for l in layers if isinstance(l, NormActBase)]
    assert {l.registry_name for l in norm_acts} == {norm_act}
    # The last block (level 2) feeds no output level in 3..7, so the model holds 15 permuted blocks,
    # as Model Garden's. apply_act=False: 30 resampling paths end in a norm summed before an
    # activation, 15 permuted and 2 stem blocks end in a norm before the residual add, and the first
    # stem block has a projection shortcut.
    no_act = [l.name for l in norm_acts if not l.apply_act]
    assert len(no_act) == 30 + 15 + 2 + 1 == 48
    assert all(n.endswith(("_expand_norm", "_norm_out", "_proj_norm")) for n in no_act)
    # stem 1 + stem blocks 4 + 3 + permuted blocks 11 x 3 + 4 x 2 + resampling 30 x 2 + 16 strided
    # 3x3 downsampling convs + 5 endpoints.
    assert len(norm_acts) == 1 + 7 + 41 + 60 + 16 + 5 == 130
    assert "block16_norm_out" not in {l.name for l in norm_acts}
    # Post-activation design: the only plain activations follow a residual add or a fusion sum.
    plain = [l.name for l in layers if isinstance(l, (tf_keras.layers.Activation, tf_keras.layers.ReLU))]
    assert len(plain) == 15 + 17 and all(n.endswith(("_fuse_act", "_out_act")) for n in plain)


def test_get_config_round_trip_through_json():
    model = cached("evonorm_s0")
    config = model.get_config()
    assert config["model_id"] == "49S" and (config["min_level"], config["max_level"]) == (3, 7)
    # The registered name ('evonorm_vision>SpineNet') makes the JSON self-describing; deserializing
    # goes through from_config(get_config()).
    serialized = json.loads(json.dumps(tf_keras.saving.serialize_keras_object(model)))
    assert serialized["registered_name"] == "evonorm_vision>SpineNet"
    restored = tf_keras.saving.deserialize_keras_object(serialized)
    assert isinstance(restored, B.SpineNet) and restored.get_config() == config
    assert len(restored.losses) == len(model.losses) > 0
    restored.set_weights(model.get_weights())
    x = tf.random.normal((1,) + SMALL)
    expected = model(x)
    for level, value in restored(x).items():
        np.testing.assert_allclose(value.numpy(), expected[level].numpy(), rtol=1e-5, atol=1e-5)


def test_model_garden_factory_build_with_evonorm_s0_and_one_training_step():
    tf.random.set_seed(0)
    backbone = factory.build_backbone(
        spec(SMALL[0]),
        mg.Backbone(type="evonorm_spinenet", evonorm_spinenet=mg.EvoNormSpineNet(
            model_id="49s", stochastic_depth_drop_rate=0.2)),
        mg.EvoNormActivation(type="evonorm_s0", use_sync_bn=False, epsilon=1e-5, momentum=0.9),
        l2_regularizer=tf_keras.regularizers.l2(1e-5))
    assert isinstance(backbone, B.SpineNet) and backbone.norm_act == "evonorm_s0"
    assert {k: v.as_list()[1:] for k, v in backbone.output_specs.items()} == {
        "3": [16, 16, 128], "4": [8, 8, 128], "5": [4, 4, 128], "6": [2, 2, 128], "7": [1, 1, 128]}
    norm_acts = [l for l in backbone.submodules if isinstance(l, NormActBase)]
    assert {(l.registry_name, l.epsilon, l.momentum) for l in norm_acts} == {("evonorm_s0", 1e-5, 0.9)}
    # Model Garden's schedule: block i of 16 drops with rate * i / 16, the stem never (block 16 feeds
    # no output level, so it is not in the model).
    rates = sorted(l.rate for l in backbone.submodules if isinstance(l, DropConnect))
    np.testing.assert_allclose(rates, [0.2 * i / 16 for i in range(1, 16)])

    # A dense-prediction loss on every level, as a detector's heads would give (a classifier on
    # level '7' alone leaves the other endpoint convolutions without gradients).
    x = tf.random.normal((2,) + SMALL)
    targets = {k: tf.random.normal([2] + v.as_list()[1:]) for k, v in backbone.output_specs.items()}
    before = [v.numpy().copy() for v in backbone.trainable_variables]
    with tf.GradientTape() as tape:
        out = backbone(x, training=True)
        loss = tf.add_n([tf.reduce_mean(tf.square(out[k] - targets[k])) for k in out])
        loss += tf.add_n(backbone.losses)
    grads = tape.gradient(loss, backbone.trainable_variables)
    assert np.isfinite(float(loss)) and all(g is not None for g in grads)
    tf_keras.optimizers.SGD(0.1).apply_gradients(zip(grads, backbone.trainable_variables))
    changed = [not np.array_equal(b, v.numpy()) for b, v in zip(before, backbone.trainable_variables)]
    assert np.mean(changed) > 0.9


@pytest.mark.slow
def test_variable_input_sizes_and_other_levels():
    model = B.spinenet("49S", "evonorm_b0", input_shape=(None, None, 3), min_level=2, max_level=6)
    assert sorted(model.output_specs) == ["2", "3", "4", "5", "6"]
    assert model.output_specs["2"].as_list() == [None, None, None, 128]
    out = model(tf.random.normal((1, 256, 384, 3)), training=False)
    assert {k: tuple(v.shape[1:3]) for k, v in out.items()} == {
        str(level): (256 >> level, 384 >> level) for level in range(2, 7)}


@pytest.mark.parametrize("kwargs,match", [
    (dict(input_shape=(200, 200, 3)), "divisible by 128"),
    (dict(input_shape=(64, 64, 3)), "divisible by 128"),
    (dict(input_shape=(256, 320, 3)), "divisible by 128"),
    (dict(input_shape=(128, 128)), "height, width, channels"),
    (dict(model_id="50"), "unknown SpineNet model_id"),
    (dict(min_level=1), "min_level <= max_level"),
    (dict(max_level=8), "min_level <= max_level"),
    (dict(min_level=6, max_level=5), "min_level <= max_level"),
    (dict(stochastic_depth_rate=1.0), r"\[0, 1\)"),
    (dict(norm_kwargs={"apply_act": False}), "must not contain 'apply_act'"),
])
def test_bad_arguments_raise_clear_errors(kwargs, match):
    args = dict(model_id="49S", input_shape=SMALL)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        B.SpineNet(**args)


def test_model_garden_factory_refuses_input_sizes_not_divisible_by_128():
    with pytest.raises(ValueError, match="divisible by 128"):
        factory.build_backbone(spec(224), mg.Backbone(type="evonorm_spinenet"),
                               mg.EvoNormActivation(type="evonorm_b0"))

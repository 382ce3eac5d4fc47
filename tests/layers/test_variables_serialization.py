"""Variables (names, counts, trainability), get_config/from_config, and whole-model save/load in each
Keras generation's native format, without custom_objects."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import numpy_reference as ref
from layer_helpers import GENERATIONS, create, make_input, params_of, randomize, short_name
from evonorm.layers import list_norm_acts

NAMES = list_norm_acts()
SHAPE = (4, 6, 5, 8)
FRAMEWORK = {"tf_keras": tf_keras, "keras3": keras}
SAVEDMODEL_NAMES = ["evonorm_b0", "evonorm_s0", "bn_relu"]  # SavedModel export is slow: a sample


def _expected_variables(name, apply_act=True, no_act_mode="norm"):
    """(trainable, non-trainable) short names, from the spec, not from the layer."""
    if not apply_act and no_act_mode == "affine":
        return {"gamma", "beta"}, set()
    trainable = {"gamma", "beta"} | (set(ref.EXTRA_PARAMS.get(name, ())) if apply_act else set())
    return trainable, set(ref.MOVING_STATS.get(name, ()))


@pytest.mark.parametrize("generation", GENERATIONS)
@pytest.mark.parametrize("mode", [{}, {"apply_act": False}, {"apply_act": False, "no_act_mode": "affine"}],
                         ids=["act", "no_act_norm", "no_act_affine"])
@pytest.mark.parametrize("name", NAMES)
def test_variable_names_and_counts(name, mode, generation):
    layer = create(name, generation, name="the_norm", **mode)
    layer(tf.zeros(SHAPE))  # built by a call: tf_keras scopes variable names only inside __call__
    trainable, frozen = _expected_variables(name, **mode)
    assert {short_name(v) for v in layer.trainable_weights} == trainable
    assert {short_name(v) for v in layer.non_trainable_weights} == frozen
    assert len(layer.trainable_weights) == len(trainable)
    assert len(layer.non_trainable_weights) == len(frozen)
    for v in layer.weights:
        assert tuple(v.shape) == (SHAPE[-1],)
        assert v.dtype == tf.float32 or v.dtype == "float32"
        path = v.name if generation == "tf_keras" else v.path
        assert path.startswith("the_norm/"), path  # scoped under the layer, as checkpoints expect
    gamma = params_of(layer)["gamma"]
    np.testing.assert_array_equal(gamma, np.ones(SHAPE[-1]))


@pytest.mark.parametrize("generation", GENERATIONS)
def test_zero_init_gamma(generation):
    layer = create("evonorm_b0", generation, zero_init=True)
    layer.build(SHAPE)
    np.testing.assert_array_equal(params_of(layer)["gamma"], np.zeros(SHAPE[-1]))
    np.testing.assert_array_equal(params_of(layer)["v1"], np.ones(SHAPE[-1]))


@pytest.mark.parametrize("generation", GENERATIONS)
@pytest.mark.parametrize("name", NAMES)
def test_registered_serialization_name(name, generation):
    cls = type(create(name, generation))
    getter = (keras.saving.get_registered_name if generation == "keras3"
              else tf_keras.utils.get_registered_name)
    assert getter(cls) == f"evonorm>{cls.__name__}"


@pytest.mark.parametrize("generation", GENERATIONS)
@pytest.mark.parametrize("name", NAMES)
def test_config_round_trip(name, generation, rng):
    kwargs = dict(apply_act=False, epsilon=2e-4, momentum=0.8, zero_init=True, name="cfg_norm")
    if name in ref.GROUPED:
        kwargs["group_size"] = 2
    layer = create(name, generation, **kwargs)
    layer.build(SHAPE)
    randomize(layer, rng, name)
    config = layer.get_config()
    for key in ("apply_act", "epsilon", "momentum", "zero_init", "name", "group_size"):
        if key in kwargs:
            assert config[key] == kwargs[key], key
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    clone.build(SHAPE)
    clone.set_weights(layer.get_weights())
    x = tf.constant(make_input(rng, SHAPE))
    for training in (True, False):
        np.testing.assert_allclose(clone(x, training=training).numpy(), layer(x, training=training).numpy(),
                                   rtol=1e-6, atol=1e-6)


def _model(name, generation, rng, **kwargs):
    """A functional model around one norm-act layer, with random parameters and trained moving stats."""
    kf = FRAMEWORK[generation]
    inputs = kf.Input(shape=SHAPE[1:])
    layer = create(name, generation, name="norm", **kwargs)
    model = kf.Model(inputs, layer(inputs))
    randomize(layer, rng, name)
    model(tf.constant(make_input(rng, SHAPE, mean=1.0, scale=2.0)), training=True)
    return model


def _assert_same_model(model, loaded, rng, generation):
    layer = loaded.get_layer("norm")
    assert type(layer) is type(model.get_layer("norm"))  # noqa: E721 - exact class, same generation
    assert layer.keras_generation == generation
    assert layer.get_config() == model.get_layer("norm").get_config()
    for a, b in zip(model.weights, loaded.weights):
        assert short_name(a) == short_name(b)
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    x = tf.constant(make_input(rng, SHAPE))
    for training in (False, True):
        np.testing.assert_allclose(loaded(x, training=training).numpy(), model(x, training=training).numpy(),
                                   rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("generation", GENERATIONS)
@pytest.mark.parametrize("name", NAMES)
def test_save_and_load_keras_format(name, generation, rng, tmp_path):
    kwargs = {"groups": 4} if name in ref.GROUPED else {}
    model = _model(name, generation, rng, **kwargs)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = FRAMEWORK[generation].models.load_model(path)  # no custom_objects: registered classes
    _assert_same_model(model, loaded, rng, generation)


@pytest.mark.parametrize("name", SAVEDMODEL_NAMES)
def test_save_and_load_tf_keras_savedmodel(name, rng, tmp_path):
    model = _model(name, "tf_keras", rng)
    path = str(tmp_path / "saved_model")
    model.save(path, save_format="tf")
    loaded = tf_keras.models.load_model(path)
    _assert_same_model(model, loaded, rng, "tf_keras")

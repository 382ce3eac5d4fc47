"""Bad input gets a clear error that names the problem."""

import keras
import pytest
import tensorflow as tf
import tf_keras

import numpy_reference as ref
from layer_helpers import GENERATIONS, MODULES, create
from evonorm.layers import canonical_name, create_norm_act, list_norm_acts

NAMES = list_norm_acts()


@pytest.mark.parametrize("generation", GENERATIONS)
@pytest.mark.parametrize("name", NAMES)
def test_rank_2_input_is_rejected(name, generation):
    layer = create(name, generation)
    with pytest.raises(ValueError, match=r"rank-4 .*got rank 2"):
        layer(tf.zeros([4, 8]))


@pytest.mark.parametrize("generation", GENERATIONS)
@pytest.mark.parametrize("name", ["evonorm_b0", "evonorm_s0", "bn_relu"])
def test_unknown_channel_dimension_is_rejected(name, generation):
    kf = tf_keras if generation == "tf_keras" else keras
    layer = create(name, generation)
    with pytest.raises(ValueError, match=r"channel dimension \(channels_last\) must be known"):
        layer(kf.Input(shape=(5, 5, None)))
    first = create(name, generation, data_format="channels_first")
    with pytest.raises(ValueError, match=r"channel dimension \(channels_first\) must be known"):
        first.build(tf.TensorShape([2, None, 5, 5]))


@pytest.mark.parametrize("generation", GENERATIONS)
@pytest.mark.parametrize("name", ref.GROUPED)
def test_channels_not_divisible_by_groups(name, generation):
    layer = create(name, generation, groups=4)
    with pytest.raises(ValueError, match=r"channels \(6\) are not divisible by groups=4.*\[1, 2, 3, 6\]"):
        layer(tf.zeros([2, 3, 3, 6]))
    by_size = create(name, generation, group_size=4)
    with pytest.raises(ValueError, match=r"channels \(6\) are not divisible by group_size=4"):
        by_size(tf.zeros([2, 3, 3, 6]))


@pytest.mark.parametrize("generation", GENERATIONS)
@pytest.mark.parametrize("name", NAMES)
def test_integer_input_is_rejected(name, generation):
    layer = create(name, generation)
    with pytest.raises(TypeError, match=r"floating-point input, got dtype int32"):
        layer(tf.zeros([2, 3, 3, 8], tf.int32))


def test_rank_mismatch_after_build():
    layer = create("evonorm_s0", "keras3")
    layer(tf.zeros([2, 3, 3, 8]))
    with pytest.raises(ValueError, match=r"built for rank-4 inputs"):
        layer(tf.zeros([2, 3, 8]))


@pytest.mark.parametrize("generation", GENERATIONS)
def test_unknown_registry_name_lists_known_names(generation):
    with pytest.raises(ValueError, match=r"unknown norm-act layer 'evonorm_z9'") as info:
        MODULES[generation].create_norm_act("evonorm_z9")
    for known in NAMES:
        assert known in str(info.value)
    with pytest.raises(ValueError, match="known layers: bn_relu"):
        create_norm_act("batchnorm")


def test_name_normalization_and_aliases():
    assert canonical_name("EvoNorm-S0") == "evonorm_s0"
    assert canonical_name("bn_swish") == "bn_silu"
    with pytest.raises(TypeError, match="must be a string"):
        canonical_name(3)


@pytest.mark.parametrize("kwargs, message", [
    ({"groups": 2, "group_size": 4}, "either groups=2 or group_size=4"),
    ({"groups": 0}, "groups must be a positive integer"),
    ({"group_size": 2.5}, "group_size must be a positive integer"),
    ({"data_format": "NHWC"}, "data_format must be 'channels_last' or 'channels_first'"),
    ({"no_act_mode": "identity"}, "no_act_mode must be one of"),
    ({"momentum": 1.5}, r"momentum must be in \[0, 1\]"),
    ({"epsilon": -1.0}, "epsilon must be >= 0"),
])
@pytest.mark.parametrize("generation", GENERATIONS)
def test_bad_constructor_arguments(kwargs, message, generation):
    with pytest.raises(ValueError, match=message):
        create("gn_relu", generation, **kwargs)


def test_unknown_generation():
    with pytest.raises(ValueError, match="unknown Keras generation 'keras1'"):
        create_norm_act("evonorm_b0", generation="keras1")

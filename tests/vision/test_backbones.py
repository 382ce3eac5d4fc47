"""Backbones: parameter parity with Model Garden, endpoints, the norm-act seam, serialization, training."""

import functools
import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from evonorm.layers import NormActBase
from evonorm.vision import backbones as B

SMALL = (64, 64, 3)
MG_SPEC_224 = tf_keras.layers.InputSpec(shape=[None, 224, 224, 3])
MG_SPEC_64 = tf_keras.layers.InputSpec(shape=[None, 64, 64, 3])

# Counts computed by these builders with 'bn_relu' (moving statistics included, as Model Garden's
# count_params); each one also equals Model Garden's own builder (checked below / in the slow test).
PINNED = {
    ("resnet", 18, 1): 11_190_464, ("resnet", 34, 1): 21_306_048, ("resnet", 50, 1): 23_561_152,
    ("resnet", 101, 1): 42_605_504, ("resnet", 152, 1): 58_295_232, ("resnet", 200, 1): 62_800_832,
    ("resnet", 18, 2): 11_186_624, ("resnet", 50, 2): 23_545_792,
    ("mobilenet_v2",): 2_257_984, ("mnasnet_b1",): 3_140_232,
    ("efficientnet", "b0"): 4_049_564, ("efficientnet", "b1"): 6_575_232,
    ("efficientnet", "b2"): 7_768_562, ("efficientnet", "b3"): 10_783_528,
    ("efficientnet", "b4"): 17_673_816, ("efficientnet", "b5"): 28_513_520,
    ("efficientnet", "b6"): 40_960_136, ("efficientnet", "b7"): 64_097_680,
}


def build(key, norm_act="bn_relu", input_shape=SMALL, **kwargs):
    if key[0] == "resnet":
        return B.resnet(key[1], key[2], norm_act, input_shape=input_shape, **kwargs)
    if key[0] == "efficientnet":
        return B.efficientnet(key[1], norm_act, input_shape=input_shape, **kwargs)
    return B.MobileNet(key[0], norm_act, input_shape=input_shape, **kwargs)


@functools.lru_cache(maxsize=None)
def cached(key, norm_act):
    return build(key, norm_act)


def trainable_count(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


def test_resnet50_v1_has_model_gardens_exact_parameter_count():
    from official.vision.modeling.backbones import resnet as mg_resnet
    ours = B.resnet(50, version=1, norm_act="bn_relu", input_shape=(224, 224, 3))
    theirs = mg_resnet.ResNet(50, input_specs=MG_SPEC_224)
    assert ours.count_params() == theirs.count_params() == 23_561_152
    assert {k: v.as_list() for k, v in ours.output_specs.items()} == \
        {k: v.as_list() for k, v in theirs.output_specs.items()}


def test_mobilenet_v2_and_efficientnet_b0_match_model_garden_counts():
    from official.vision.modeling.backbones import efficientnet as mg_eff
    from official.vision.modeling.backbones import mobilenet as mg_mobile
    assert cached(("mobilenet_v2",), "bn_relu").count_params() == \
        mg_mobile.MobileNet("MobileNetV2", input_specs=MG_SPEC_64).count_params()
    # Model Garden's config default is se_ratio=0; the paper's EfficientNet (and ours) uses 0.25.
    assert cached(("efficientnet", "b0"), "bn_relu").count_params() == \
        mg_eff.EfficientNet("b0", input_specs=MG_SPEC_64, se_ratio=0.25).count_params()


@pytest.mark.parametrize("key", [("resnet", 18, 1), ("resnet", 18, 2), ("mobilenet_v2",), ("mnasnet_b1",),
                                 ("efficientnet", "b0")])
def test_pinned_parameter_counts(key):
    assert cached(key, "bn_relu").count_params() == PINNED[key]


@pytest.mark.parametrize("key,published", [(("mobilenet_v2",), 3_504_872), (("mnasnet_b1",), 4_383_312),
                                           (("efficientnet", "b0"), 5_288_548)])
def test_trainable_counts_with_1000_class_head_match_published_models(key, published):
    # torchvision's published parameter counts (mobilenet_v2, mnasnet1_0, efficientnet_b0): trainable
    # weights only, 1000-class classifier included, no learnable parameter in the activations.
    model = B.classification_model(cached(key, "bn_relu"), 1000)
    assert trainable_count(model) == published


@pytest.mark.slow
def test_every_depth_matches_model_garden():
    from official.vision.modeling.backbones import efficientnet as mg_eff
    from official.vision.modeling.backbones import resnet as mg_resnet
    for key, count in PINNED.items():
        assert build(key).count_params() == count, key
        if key[0] == "resnet" and key[2] == 1:
            assert mg_resnet.ResNet(key[1], input_specs=MG_SPEC_64).count_params() == count
        if key[0] == "efficientnet":
            assert mg_eff.EfficientNet(key[1], input_specs=MG_SPEC_64, se_ratio=0.25).count_params() == count


FAMILIES = [("resnet", 18, 2), ("mobilenet_v2",), ("mnasnet_b1",), ("efficientnet", "b0")]
CHANNELS = {("resnet", 18, 2): (64, 128, 256, 512), ("mobilenet_v2",): (24, 32, 96, 320),
            ("mnasnet_b1",): (24, 40, 96, 320), ("efficientnet", "b0"): (24, 40, 112, 320)}


@pytest.mark.parametrize("norm_act", ["evonorm_b0", "evonorm_s0"])
@pytest.mark.parametrize("key", FAMILIES)
def test_builds_with_evonorms_endpoints_by_level_and_no_batchnorm(key, norm_act):
    model = cached(key, norm_act)
    out = model(tf.random.normal((2,) + SMALL), training=True)
    for level, channels in zip(("2", "3", "4", "5"), CHANNELS[key]):
        side = SMALL[0] // 2 ** int(level)
        assert out[level].shape == (2, side, side, channels)
        assert model.output_specs[level].as_list() == [None, side, side, channels]
        assert np.all(np.isfinite(out[level].numpy()))
    if key[0] != "resnet":
        assert out["6"].shape == (2, 2, 2, 1280)  # the 1x1 head conv, as Model Garden's level '6'
    layers = list(model.submodules)
    assert not any(isinstance(l, tf_keras.layers.BatchNormalization) for l in layers)
    assert not any(isinstance(l, (tf_keras.layers.Activation, tf_keras.layers.ReLU)) for l in layers)
    norm_acts = [l for l in layers if isinstance(l, NormActBase)]
    assert norm_acts and all(l.registry_name == norm_act for l in norm_acts)


def test_group_rule_handles_channels_not_divisible_by_32_and_kwargs_pass_through():
    model = cached(("efficientnet", "b0"), "evonorm_s0")
    groups = {l.name: l.effective_groups for l in model.submodules if isinstance(l, NormActBase)}
    assert groups["s1_b1_project_norm"] == 24 and groups["s2_b1_project_norm"] == 20  # 24 and 40 ch
    assert groups["s4_b0_project_norm"] == 28 and groups["head_na"] == 32  # 112 and 1280 channels
    model = B.mobilenet_v2("evonorm_s0", {"groups": 8, "epsilon": 1e-3}, input_shape=(32, 32, 3))
    norm_acts = [l for l in model.submodules if isinstance(l, NormActBase)]
    assert {(l.effective_groups, l.epsilon) for l in norm_acts} == {(8, 1e-3)}
    assert model.get_config()["norm_kwargs"] == {"groups": 8, "epsilon": 1e-3}


def test_apply_act_false_positions():
    model = cached(("resnet", 18, 1), "bn_relu")
    no_act = {l.name for l in model.submodules if isinstance(l, NormActBase) and not l.apply_act}
    assert "g3_b0_proj_norm" in no_act and "g2_b1_norm_out" in no_act and "g2_b1_na1" not in no_act
    mobile = cached(("mobilenet_v2",), "bn_relu")
    no_act = {l.name for l in mobile.submodules if isinstance(l, NormActBase) and not l.apply_act}
    assert no_act == {l.name for l in mobile.layers if l.name.endswith("_project_norm")}


def test_evonorm_in_post_activation_resnet_is_refused_unless_overridden():
    with pytest.raises(ValueError, match="pre-activation form"):
        B.resnet(18, version=1, norm_act="evonorm_b0", input_shape=SMALL)
    model = B.resnet(18, version=1, norm_act="evonorm_s0", input_shape=(32, 32, 3),
                     allow_post_activation_evonorm=True)
    assert model.output_specs["5"].as_list() == [None, 1, 1, 512]


@pytest.mark.parametrize("kwargs,match", [
    (dict(depth=42), "unsupported ResNet depth"),
    (dict(version=3), "version must be 1"),
    (dict(norm_act="batchnorm"), "unknown norm-act layer"),
    (dict(norm_kwargs={"apply_act": False}), "must not contain 'apply_act'"),
    (dict(norm_kwargs={"data_format": "channels_first"}), "channels_last"),
    (dict(input_shape=(16, 16, 3)), "input sides must be >= 32"),
    (dict(zero_init_residual=True), "version=1"),
    (dict(width_multiplier=0), "> 0"),
])
def test_bad_arguments_raise_clear_errors(kwargs, match):
    args = dict(depth=18, version=2, input_shape=SMALL)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        B.resnet(**args)


def test_get_config_round_trip_and_json():
    model = B.resnet(18, 2, "evonorm_s0", {"groups": 16}, input_shape=(32, 32, 3),
                     kernel_regularizer=tf_keras.regularizers.l2(1e-4))
    clone = B.ResNet.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    x = tf.random.normal((2, 32, 32, 3))
    np.testing.assert_allclose(clone(x)["5"].numpy(), model(x)["5"].numpy(), rtol=1e-5, atol=1e-5)
    # The registered name ('evonorm_vision>ResNet') makes the JSON self-describing.
    serialized = json.loads(json.dumps(tf_keras.saving.serialize_keras_object(model)))
    restored = tf_keras.saving.deserialize_keras_object(serialized)
    assert isinstance(restored, B.ResNet) and restored.count_params() == model.count_params()
    assert restored.get_config() == model.get_config()
    assert len(restored.losses) == len(model.losses) > 0


def test_weight_decay_excludes_norm_act_variables():
    model = B.classification_model(cached(("mnasnet_b1",), "evonorm_b0"), 10)
    decayed = B.weight_decay_variables(model)
    norm_ids = {id(v) for v in B.norm_act_variables(model)}
    assert decayed and not norm_ids & {id(v) for v in decayed}
    assert all(("kernel" in v.name) or ("bias" in v.name) for v in decayed)
    assert len(decayed) + len([v for v in model.trainable_variables if id(v) in norm_ids]) == \
        len(model.trainable_variables)
    assert float(B.l2_weight_decay(model, 1e-4)) > 0


def test_drop_connect_drops_whole_examples_in_training_only():
    from evonorm.vision.backbones.common import DropConnect
    layer = DropConnect(0.5)
    x = tf.ones((64, 2, 2, 3))
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x.numpy())
    y = layer(x, training=True).numpy().reshape(64, -1)
    assert set(np.unique(y)) <= {0.0, 2.0} and all(len(set(row)) == 1 for row in y)


@pytest.mark.parametrize("key,norm_act", [(("resnet", 18, 2), "evonorm_b0"), (("mnasnet_b1",), "evonorm_s0"),
                                          (("efficientnet", "b0"), "evonorm_s0")])
def test_one_training_step_updates_every_trainable_variable_group(key, norm_act):
    model = B.classification_model(cached(key, norm_act), 10, dropout_rate=0.1)
    x = tf.random.normal((2,) + SMALL)
    y = tf.constant([0, 1])
    before = [v.numpy().copy() for v in model.trainable_variables]
    optimizer = tf_keras.optimizers.SGD(0.1)
    with tf.GradientTape() as tape:
        logits = model(x, training=True)
        loss = tf.reduce_mean(tf_keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
        loss += B.l2_weight_decay(model, 1e-4)
    grads = tape.gradient(loss, model.trainable_variables)
    assert np.isfinite(float(loss)) and all(g is not None for g in grads)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    changed = [not np.array_equal(b, v.numpy()) for b, v in zip(before, model.trainable_variables)]
    assert np.mean(changed) > 0.9
    assert any(c for c, v in zip(changed, model.trainable_variables) if "v1" in v.name or "gamma" in v.name)

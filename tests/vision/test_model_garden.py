"""Model Garden registration: factory builds from configs, norm-act config mapping, idempotence."""

import importlib

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from official.core import registry
from official.vision.configs import common
from official.vision.modeling.backbones import factory

from evonorm.layers import NormActBase
from evonorm.vision import model_garden as mg

SPEC = tf_keras.layers.InputSpec(shape=[None, 64, 64, 3])


def norm_acts(model):
    return [l for l in model.submodules if isinstance(l, NormActBase)]


def test_import_twice_and_reload_are_harmless():
    importlib.import_module("evonorm.vision.model_garden")
    reloaded = importlib.reload(mg)
    reloaded.register_backbones()
    for key in mg.BUILDERS:
        builder = registry.lookup(factory._REGISTERED_BACKBONE_CLS, key)  # noqa: SLF001
        assert (builder.__module__, builder.__qualname__) == ("evonorm.vision.model_garden", f"build_{key}")
    assert mg.Backbone().evonorm_resnet.version == 2


def test_foreign_builder_under_our_key_is_an_error(monkeypatch):
    registered = factory._REGISTERED_BACKBONE_CLS  # noqa: SLF001 - inspecting the registry under test
    monkeypatch.setitem(registered, "evonorm_mnasnet", lambda **kwargs: None)
    with pytest.raises(ValueError, match="already registered"):
        mg.register_backbones()


@pytest.mark.parametrize("key,sub,norm_act,channels", [
    ("evonorm_resnet", mg.EvoNormResNet(model_id=18), "evonorm_b0", 512),
    ("evonorm_mobilenet", mg.EvoNormMobileNet(width_multiplier=0.5), "evonorm_s0", 160),
    ("evonorm_mnasnet", mg.EvoNormMnasNet(), "gn_relu", 320),
    ("evonorm_efficientnet", mg.EvoNormEfficientNet(model_id="b0"), "evonorm_s0", 320),
])
def test_factory_builds_every_key_from_config(key, sub, norm_act, channels):
    backbone_config = mg.Backbone(type=key, **{key: sub})
    norm_config = mg.EvoNormActivation(type=norm_act, use_sync_bn=False, epsilon=1e-5, momentum=0.9)
    model = factory.build_backbone(SPEC, backbone_config, norm_config,
                                   l2_regularizer=tf_keras.regularizers.l2(1e-5))
    assert sorted(model.output_specs) == ["2", "3", "4", "5"]
    assert model.output_specs["5"].as_list() == [None, 2, 2, channels]
    layers = norm_acts(model)
    assert {l.registry_name for l in layers} == {norm_act}
    assert {(l.epsilon, l.momentum, l.synchronized) for l in layers} == {(1e-5, 0.9, False)}
    assert model.losses  # the l2 regularizer reached the convolutions
    out = model(tf.random.normal((1, 64, 64, 3)), training=True)
    assert np.all(np.isfinite(out["5"].numpy()))


def test_plain_norm_activation_config_gives_model_garden_parity():
    # Model Garden's own 'resnet' and our post-activation 'evonorm_resnet' from the same configs.
    norm_config = common.NormActivation(activation="relu", use_sync_bn=False)
    theirs = factory.build_backbone(SPEC, mg.Backbone(type="resnet", resnet={"model_id": 18}), norm_config)
    ours = factory.build_backbone(SPEC, mg.Backbone(type="evonorm_resnet", evonorm_resnet=mg.EvoNormResNet(
        model_id=18, version=1)), norm_config)
    assert ours.count_params() == theirs.count_params() == 11_190_464
    assert {(l.registry_name, l.epsilon, l.momentum) for l in norm_acts(ours)} == {("bn_relu", 1e-3, 0.99)}


def test_norm_act_from_config_mapping():
    assert mg.norm_act_from_config(common.NormActivation(activation="swish")) == (
        "bn_silu", dict(epsilon=0.001, momentum=0.99, synchronized=True))
    name, kwargs = mg.norm_act_from_config(mg.EvoNormActivation(type="evonorm_s0", group_size=8,
                                                                no_act_mode="affine", epsilon=1e-5))
    assert name == "evonorm_s0"
    assert kwargs == dict(epsilon=1e-5, momentum=0.99, synchronized=True, group_size=8, no_act_mode="affine")
    with pytest.raises(ValueError, match="has no norm-act layer"):
        mg.norm_act_from_config(common.NormActivation(activation="gelu"))


def test_config_overrides_from_dicts_and_type_checks():
    config = mg.Backbone()
    config.override({"type": "evonorm_efficientnet", "evonorm_efficientnet": {"model_id": "b3"}})
    assert config.get().model_id == "b3" and config.get().se_ratio == 0.25
    norm = mg.EvoNormActivation()
    norm.override({"type": "evonorm_b0", "groups": 4})
    assert mg.norm_act_from_config(norm)[1]["groups"] == 4
    with pytest.raises(ValueError, match="expected 'evonorm_resnet'"):
        mg.build_evonorm_resnet(SPEC, mg.Backbone(type="evonorm_mnasnet"), norm)
    with pytest.raises(ValueError, match="pre-activation form"):
        factory.build_backbone(SPEC, mg.Backbone(type="evonorm_resnet", evonorm_resnet=mg.EvoNormResNet(
            model_id=18, version=1)), mg.EvoNormActivation(type="evonorm_b0"))


def test_model_gardens_classification_model_uses_the_head_endpoint():
    from official.vision.modeling.classification_model import ClassificationModel
    backbone = factory.build_backbone(SPEC, mg.Backbone(type="evonorm_mnasnet"),
                                      mg.EvoNormActivation(type="evonorm_s0", use_sync_bn=False))
    model = ClassificationModel(backbone, num_classes=5, input_specs=SPEC)
    logits = model(tf.random.normal((2, 64, 64, 3)), training=False)
    assert logits.shape == (2, 5)
    assert model.count_params() == backbone.count_params() + 1280 * 5 + 5

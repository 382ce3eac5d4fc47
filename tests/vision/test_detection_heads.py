"""FPN and Mask R-CNN heads through the seam: Model Garden's outputs with bn_relu and equal weights,
EvoNorm layers at every norm position, and the per-RoI semantics of the box head's FC norm."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from official.vision.modeling.decoders import fpn as mg_fpn
from official.vision.modeling.heads import dense_prediction_heads as mg_dense
from official.vision.modeling.heads import instance_heads as mg_instance

from evonorm.layers import NormActBase
from evonorm.vision.detection import fpn, heads

EPS, MOMENTUM = 1e-4, 0.997
BN = dict(norm_act="bn_relu", norm_kwargs=dict(epsilon=EPS, momentum=MOMENTUM))
SPECS = {str(level): tf.TensorShape([None, 64 // 2 ** (level - 2), 64 // 2 ** (level - 2), 8 * 2 ** level])
         for level in range(2, 6)}


def _copy_weights(source, target):
    """Copies ``source``'s weights into ``target`` by name (the FC norm's wrapper adds '/norm')."""
    def key(weight, owner):
        return weight.name.removeprefix(owner.name + "/").replace("/norm/", "/")

    by_name = {key(w, source): w for w in source.weights}
    assert len(by_name) == len(target.weights)
    for weight in target.weights:
        weight.assign(by_name[key(weight, target)])


def _features(seed=0, batch=2):
    rng = np.random.default_rng(seed)
    return {level: tf.constant(rng.normal(size=(batch, *spec[1:])), tf.float32)
            for level, spec in SPECS.items()}


def _assert_close(a, b):
    for x, y in zip(tf.nest.flatten(a), tf.nest.flatten(b)):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-4, atol=1e-4)


def _seam_layers(layer):
    return list({id(m): m for m in layer.submodules if isinstance(m, NormActBase)}.values())


def _batch_norms(layer):
    return [m for m in layer.submodules if isinstance(m, tf_keras.layers.BatchNormalization)]


@pytest.mark.parametrize("training", [False, True])
def test_fpn_equals_model_garden_with_bn_relu(training):
    theirs = mg_fpn.FPN(SPECS, min_level=2, max_level=6, num_filters=32, norm_epsilon=EPS,
                        norm_momentum=MOMENTUM)
    ours = fpn.FPN(SPECS, min_level=2, max_level=6, num_filters=32, **BN)
    _copy_weights(theirs, ours)
    x = _features()
    _assert_close(theirs(x, training=training), ours(x, training=training))
    assert sorted(ours.output_specs) == ["2", "3", "4", "5", "6"]
    assert len(_seam_layers(ours)) == 5 and not _batch_norms(ours)


@pytest.mark.parametrize("layer", ["evonorm_b0", "evonorm_s0"])
def test_fpn_norms_have_no_activation_and_no_batchnorm(layer):
    ours = fpn.FPN(SPECS, min_level=2, max_level=6, num_filters=32, norm_act=layer)
    norms = _seam_layers(ours)
    assert [n.name for n in norms] == [f"norm_{level}" for level in range(2, 7)]
    assert all(not n.apply_act for n in norms) and not _batch_norms(ours)
    rebuilt = fpn.FPN.from_config(ours.get_config())
    assert rebuilt.count_params() == ours.count_params()


def test_fpn_rejects_bad_levels():
    with pytest.raises(ValueError, match="lowest level"):
        fpn.FPN({"3": SPECS["3"], "4": SPECS["4"]}, min_level=2, max_level=6)
    with pytest.raises(ValueError, match="fusion_type"):
        fpn.FPN(SPECS, min_level=2, max_level=6, fusion_type="max")


def _rpn(cls, **kwargs):
    return cls(min_level=2, max_level=5, num_anchors_per_location=3, num_filters=16, norm_epsilon=EPS,
               norm_momentum=MOMENTUM, **kwargs)


def _box(cls, **kwargs):
    return cls(num_classes=5, num_convs=2, num_filters=16, num_fcs=1, fc_dims=32, norm_epsilon=EPS,
               norm_momentum=MOMENTUM, **kwargs)


def _mask(cls, **kwargs):
    return cls(num_classes=5, num_convs=2, num_filters=16, norm_epsilon=EPS, norm_momentum=MOMENTUM,
               **kwargs)


def _rpn_input(seed=0):
    rng = np.random.default_rng(seed)
    return {str(level): tf.constant(rng.normal(size=(2, 32 // 2 ** (level - 2), 32 // 2 ** (level - 2), 16)),
                                    tf.float32) for level in range(2, 6)}


def _roi_input(seed=0, rois=6, size=7):
    return tf.constant(np.random.default_rng(seed).normal(size=(2, rois, size, size, 16)), tf.float32)


def _mask_input(seed=0):
    return [_roi_input(seed, rois=3, size=14), tf.constant([[1, 2, 3], [4, 0, 1]], tf.int32)]


HEADS = [(_rpn, mg_dense.RPNHead, heads.RPNHead, _rpn_input),
         (_box, mg_instance.DetectionHead, heads.DetectionHead, _roi_input),
         (_mask, mg_instance.MaskHead, heads.MaskHead, _mask_input)]


@pytest.mark.parametrize("make, theirs_cls, ours_cls, inputs", HEADS, ids=["rpn", "box", "mask"])
@pytest.mark.parametrize("training", [False, True])
def test_heads_equal_model_garden_with_bn_relu(make, theirs_cls, ours_cls, inputs, training):
    theirs, ours = make(theirs_cls), make(ours_cls, **BN)
    x = inputs()
    theirs(x, training=False)
    ours(x, training=False)
    _copy_weights(theirs, ours)
    _assert_close(theirs(x, training=training), ours(x, training=training))
    assert not _batch_norms(ours)
    assert sum(np.prod(w.shape) for w in ours.trainable_weights) == sum(
        np.prod(w.shape) for w in theirs.trainable_weights)


EXPECTED_NORMS = {  # Model Garden's names, pinned: the heads replace its private norm attributes
    "rpn": [f"rpn-conv-norm_{level}_0" for level in range(2, 6)],
    "box": ["detection-conv-bn_0", "detection-conv-bn_1", "norm"],
    "mask": ["mask-conv-bn_0", "mask-conv-bn_1", "mask-deconv-bn"],
}


@pytest.mark.parametrize("make, theirs_cls, ours_cls, inputs", HEADS, ids=["rpn", "box", "mask"])
@pytest.mark.parametrize("layer", ["evonorm_b0", "evonorm_s0", "gn_relu"])
def test_heads_put_the_layer_at_every_norm(make, theirs_cls, ours_cls, inputs, layer):
    head = make(ours_cls, norm_act=layer, norm_kwargs=dict(groups=4))
    head(inputs())
    norms = _seam_layers(head)
    kind = {heads.RPNHead: "rpn", heads.DetectionHead: "box", heads.MaskHead: "mask"}[ours_cls]
    assert sorted(n.name for n in norms) == sorted(EXPECTED_NORMS[kind])
    assert all(n.apply_act for n in norms) and not _batch_norms(head)
    assert {type(n).__name__ for n in norms} == {type(norms[0]).__name__}
    assert head.get_config()["norm_act"] == layer
    rebuilt = ours_cls.from_config(head.get_config())
    rebuilt(inputs())
    assert rebuilt.count_params() == head.count_params()


def _fc_norm(layer):
    head = _box(heads.DetectionHead, norm_act=layer, norm_kwargs=dict(groups=4))
    head(_roi_input())
    return head._fc_norms[0]  # noqa: SLF001


def _moved_rois(layer):
    """Which RoIs of a [2 images, 6 RoIs, 32] input move when RoI 3 of image 0 is scaled by 10."""
    norm = _fc_norm(layer)
    x = np.random.default_rng(1).normal(size=(2, 6, 32)).astype(np.float32)
    perturbed = x.copy()
    perturbed[0, 3] *= 10.0
    y, y2 = (norm(tf.constant(v), training=True).numpy() for v in (x, perturbed))
    return np.abs(y2 - y).max(axis=-1) > 1e-5


@pytest.mark.parametrize("layer", ["evonorm_s0", "gn_relu"])
def test_fc_norm_groups_statistics_per_roi(layer):
    moved = _moved_rois(layer)
    assert moved[0, 3] and moved.sum() == 1  # only the perturbed RoI moves


@pytest.mark.parametrize("layer", ["bn_relu", "evonorm_b0"])
def test_fc_norm_batch_statistics_over_all_rois(layer):
    assert _moved_rois(layer)[1].all()  # the other image's RoIs move too


def test_fc_norm_bn_relu_is_batchnorm_over_batch_and_rois():
    norm = _fc_norm("bn_relu")
    x = np.random.default_rng(3).normal(size=(2, 6, 32)).astype(np.float32)
    y = norm(tf.constant(x), training=True).numpy()
    mean, var = x.reshape(-1, 32).mean(0), x.reshape(-1, 32).var(0)
    np.testing.assert_allclose(y, np.maximum((x - mean) / np.sqrt(var + EPS), 0), rtol=1e-4, atol=1e-4)


def test_seam_head_rejects_unknown_heads():
    with pytest.raises(TypeError, match="no seam version"):
        heads.seam_head(tf_keras.layers.Dense(3), "bn_relu")


def test_decoder_and_experiment_registration_survive_reload():
    import importlib  # noqa: PLC0415

    from official.vision.modeling.decoders import factory  # noqa: PLC0415

    from evonorm.vision.detection import experiments  # noqa: PLC0415

    importlib.reload(fpn)
    importlib.reload(experiments)
    assert factory._REGISTERED_DECODER_CLS["evonorm_fpn"].__qualname__ == "build_evonorm_fpn"  # noqa: SLF001

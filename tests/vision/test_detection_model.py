"""The whole Mask R-CNN: Model Garden's parameter counts with bn_relu, Table 5's with EvoNorms, not one
BatchNormalization left with an EvoNorm, and Model Garden's outputs with equal weights."""

import copy
import re

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from official.core import task_factory
from official.vision.configs import decoders as mg_decoders
from official.vision.modeling import factory as mg_factory

from evonorm.layers import NormActBase
from evonorm.vision import model_garden as mg
from evonorm.vision.detection import maskrcnn, task

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _config(layer="bn_relu", backbone=None, size=256, **model):
    config = task.EvoNormMaskRCNN(**{"num_classes": 91, "input_size": [size, size, 3], **model})
    config.norm_activation.override({"type": layer, "use_sync_bn": False})
    if backbone is not None:
        config.backbone = backbone
    return config


def _spinenet(model_id):
    return mg.Backbone(type="evonorm_spinenet", evonorm_spinenet=mg.EvoNormSpineNet(model_id=model_id))


def _counts(model):
    return (sum(int(np.prod(v.shape)) for v in model.trainable_variables),
            sum(int(np.prod(v.shape)) for v in model.non_trainable_variables))


def _build(config):
    task_config = task.EvoNormMaskRCNNTask(model=config)
    return task_factory.get_task(task_config).build_model()


def _modules(model, cls):
    return list({id(m): m for m in model.submodules if isinstance(m, cls)}.values())


def test_r50_fpn_bn_relu_has_model_gardens_counts():
    model = _build(_config("bn_relu"))
    assert _counts(model) == (46_367_089, 64_896)  # Model Garden's maskrcnn_resnetfpn_coco; Table 5 46.37M


def test_r50_fpn_evonorm_s0_has_table5_counts_and_no_batchnorm():
    model = _build(_config("evonorm_s0"))
    assert _counts(model) == (46_379_313, 0)  # Table 5: 46.38M; S0 keeps no moving statistics
    assert not _modules(model, tf_keras.layers.BatchNormalization)
    norms = _modules(model, NormActBase)
    assert {type(n).__name__ for n in norms} == {"EvoNormS0"}
    # backbone 53 + FPN 5 + RPN 5 + box 4 conv + 1 FC + mask 4 conv + 1 deconv
    assert len(norms) == 53 + 5 + 5 + 5 + 5


def _tiny_fields():
    return dict(rpn_head={"num_filters": 16}, detection_head={"num_convs": 1, "num_filters": 16, "fc_dims": 32},
                mask_head={"num_convs": 1, "num_filters": 16},
                roi_sampler={"num_sampled_rois": 16}, mask_sampler={"num_sampled_masks": 8},
                roi_generator={"test_num_proposals": 50, "num_proposals": 100})


def test_outputs_equal_model_gardens_with_bn_relu():
    """Same backbone, Model Garden's FPN and heads vs the seam's, equal weights: equal detections."""
    config = _config("bn_relu", backbone=mg.Backbone(type="evonorm_resnet", evonorm_resnet=mg.EvoNormResNet(
        model_id=18, version=1, width_multiplier=0.25)), size=128, num_classes=5)
    config.override(_tiny_fields())
    config.decoder.evonorm_fpn.num_filters = 16
    specs = tf_keras.layers.InputSpec(shape=[None, 128, 128, 3])
    ours = maskrcnn.build_maskrcnn(specs, config)
    mg_config = copy.deepcopy(config)
    mg_config.decoder = task.Decoder(type="fpn", fpn=mg_decoders.FPN(num_filters=16))
    theirs = mg_factory.build_maskrcnn(specs, mg_config)
    images = tf.constant(np.random.default_rng(0).uniform(-1, 1, (2, 128, 128, 3)), tf.float32)
    shapes = tf.constant([[128, 128], [128, 128]], tf.float32)
    theirs(images, image_shape=shapes, training=False)
    ours(images, image_shape=shapes, training=False)
    def key(variable, model):  # Keras numbers the second model's head names: strip that
        name = variable.name.removeprefix(model.name + "/").replace("/norm/", "/")
        return re.sub(r"^(rpn_head|detection_head|mask_head)(_\d+)?/", r"\1/", name)

    by_name = {key(v, theirs): v for v in theirs.weights}
    assert len(by_name) == len(ours.weights)
    rng = np.random.default_rng(1)
    for variable in ours.weights:  # random values everywhere, so every path matters
        value = rng.normal(0, 0.05, variable.shape) if "moving" not in variable.name else rng.uniform(
            0.5, 1.5, variable.shape)
        variable.assign(value)
        by_name[key(variable, ours)].assign(value)
    a = ours(images, image_shape=shapes, training=False)
    b = theirs(images, image_shape=shapes, training=False)
    for key in ("rpn_scores", "rpn_boxes", "decoder_features", "class_outputs", "box_outputs"):
        for x, y in zip(tf.nest.flatten(a[key]), tf.nest.flatten(b[key])):
            np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-4, atol=1e-6, err_msg=key)
    np.testing.assert_array_equal(a["num_detections"].numpy(), b["num_detections"].numpy())
    # Random weights give many equal scores, whose order (and so which tied boxes survive NMS) is left
    # open by top-k: compare the sorted scores; the heads' outputs on equal RoIs are compared above,
    # and the mask head's in test_detection_heads.py.
    for image, count in enumerate(a["num_detections"].numpy()):
        np.testing.assert_allclose(np.sort(a["detection_scores"][image, :count].numpy()),
                                   np.sort(b["detection_scores"][image, :count].numpy()), rtol=1e-4, atol=1e-6)


def test_cascade_is_refused():
    config = _config()
    config.roi_sampler.cascade_iou_thresholds = [0.6]
    with pytest.raises(ValueError, match="cascade"):
        maskrcnn.build_maskrcnn(tf_keras.layers.InputSpec(shape=[None, 256, 256, 3]), config)


SPINENET = [("49", 640, "bn_relu", (40_753_521, 97_920)), ("96", 1024, "bn_relu", (55_185_009, 131_968)),
            ("96", 1024, "evonorm_b0", (55_207_729, 65_984))]


@pytest.mark.slow
@pytest.mark.parametrize("model_id, size, layer, counts", SPINENET)
def test_spinenet_counts(model_id, size, layer, counts):
    config = _config(layer, backbone=_spinenet(model_id), size=size, min_level=3, max_level=7,
                     decoder=task.Decoder(type="identity"))
    config.anchor.anchor_size = 3
    assert _counts(_build(config)) == counts  # bn_relu: Model Garden's; B0: Table 5's 55.21M

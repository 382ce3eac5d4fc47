"""Mask R-CNN assembly: Model Garden's model with the project's backbone, decoder and heads.

:func:`build_maskrcnn` asks Model Garden's ``factory.build_maskrcnn`` for the model of a config (so its
anchors, ROI generator, ROI sampler, ROI aligner, detection generator, mask sampler and every option
of its config are Model Garden's, unchanged), handing it the project's backbone and decoder, and then
assembles the same ``MaskRCNNModel`` with the seam versions of its RPN, box and mask heads
(:mod:`evonorm.vision.detection.heads`), built from the very constructor configs Model Garden gave
its own heads. Model Garden's factory builds its own RPN head once on symbolic decoder features;
that throw-away head is never part of the returned model.

With ``norm_activation.type='bn_relu'`` and Model Garden's epsilon/momentum the model has exactly
Model Garden's trainable and non-trainable parameter counts (pinned in the tests).
"""

from __future__ import annotations

import tf_keras
from official.vision.modeling import factory, maskrcnn_model
from official.vision.modeling.backbones import factory as backbone_factory
from official.vision.modeling.decoders import factory as decoder_factory

from evonorm.vision import model_garden as mg
from evonorm.vision.detection import fpn  # noqa: F401 - registers the 'evonorm_fpn' decoder
from evonorm.vision.detection.heads import seam_head


def build_maskrcnn(input_specs: tf_keras.layers.InputSpec, model_config,
                   l2_regularizer=None) -> maskrcnn_model.MaskRCNNModel:
    """The Mask R-CNN model of a Model Garden ``MaskRCNN`` config, every norm-act from the seam.

    Args:
      input_specs: image input spec ``[batch, height, width, 3]``.
      model_config: a :class:`evonorm.vision.detection.task.EvoNormMaskRCNN` (or Model Garden's
        ``MaskRCNN`` config: its ``norm_activation.activation`` then picks ``bn_relu``/``bn_silu``).
      l2_regularizer: kernel regularizer of backbone, decoder and heads (norm-act variables are
        never regularized).

    Raises:
      ValueError: a cascade config (not part of the paper) or a norm-act the config cannot name.
    """
    if model_config.roi_sampler.cascade_iou_thresholds:
        raise ValueError("cascade heads (roi_sampler.cascade_iou_thresholds) are not supported: Table 5 "
                         "uses one box head.")
    norm_act, norm_kwargs = mg.norm_act_from_config(model_config.norm_activation)
    backbone = backbone_factory.build_backbone(
        input_specs=input_specs, backbone_config=model_config.backbone,
        norm_activation_config=model_config.norm_activation, l2_regularizer=l2_regularizer)
    decoder = decoder_factory.build_decoder(input_specs=backbone.output_specs, model_config=model_config,
                                            l2_regularizer=l2_regularizer)
    reference = factory.build_maskrcnn(input_specs, model_config, l2_regularizer,
                                       backbone=backbone, decoder=decoder)
    components = dict(reference.get_config())
    for key in ("rpn_head", "detection_head", "mask_head"):
        if components.get(key) is not None:
            components[key] = seam_head(components[key], norm_act, norm_kwargs)
    model = maskrcnn_model.MaskRCNNModel(**components)
    if decoder is not None:  # as Model Garden's factory does: build the RPN head on the decoder's outputs
        features = decoder(backbone(tf_keras.Input(input_specs.shape[1:])))
        model.rpn_head(features)
    return model

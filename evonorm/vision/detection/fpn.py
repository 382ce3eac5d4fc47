"""Feature Pyramid Network (Lin et al. 2017) whose output norms come from the norm-act seam.

The topology, layer names and convolution settings are those of Model Garden's ``FPN`` decoder
(lateral 1x1 convs ``lateral_{l}``, nearest-neighbour top-down sum, 3x3 ``post_hoc_{l}`` convs, 3x3
stride-2 ``coarser_{l}`` convs for levels above the backbone, all with bias and
``'VarianceScaling'`` init), so with ``bn_relu`` and equal weights it gives Model Garden's outputs.
Model Garden ends every output level with a BatchNormalization and *no* activation; here that
position is ``create_norm_act(name, apply_act=False, name=f'norm_{l}')``. What an ``apply_act=False``
layer keeps is the layer's ``no_act_mode`` (default ``'norm'``: BN stays BN, EvoNorm-B0 becomes
``x / sqrt(s2_bwh + eps) * gamma + beta``, EvoNorm-S0 ``x / group_std * gamma + beta``; ``'affine'``
keeps only ``x * gamma + beta``), set through ``EvoNormActivation.no_act_mode``.

Model Garden applies its activation function (not a norm) to the input of the second and further
extra coarse levels (RetinaNet's P7); that stays a plain activation of
``norm_activation.activation``.
"""

from __future__ import annotations

from typing import Mapping

import tensorflow as tf
import tf_keras
from official.modeling import tf_utils
from official.vision.modeling.decoders import factory

from evonorm.vision.backbones.common import SERIALIZATION_PACKAGE, NormActSeam, serialize_regularizer
from evonorm.vision.model_garden import norm_act_from_config, register_once

FUSION_TYPES = ("sum", "concat")


@tf_keras.utils.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class FPN(tf_keras.Model):
    """FPN decoder: a dict of backbone feature maps by level -> a dict of ``num_filters`` maps.

    Args:
      input_specs: dict level (str) -> TensorShape of the backbone endpoints (``backbone.output_specs``).
      min_level, max_level: output levels (Mask R-CNN R-50-FPN: 2..6).
      num_filters: channels of every output level.
      fusion_type: 'sum' (FPN) or 'concat' of the upsampled and lateral maps.
      use_separable_conv: separable 3x3 convs.
      norm_act, norm_kwargs: the norm-act layer of the output norms (see the module docstring).
      activation: the plain activation before extra coarse levels beyond ``backbone max + 1``.
      kernel_initializer, kernel_regularizer, bias_regularizer: of the convolutions.

    Raises:
      ValueError: a backbone whose lowest level is above ``min_level``, levels out of order, an
        unknown fusion type.
    """

    def __init__(self, input_specs: Mapping[str, tf.TensorShape], min_level: int = 3, max_level: int = 7,
                 num_filters: int = 256, fusion_type: str = "sum", use_separable_conv: bool = False,
                 norm_act: str = "bn_relu", norm_kwargs: dict | None = None, activation: str = "relu",
                 kernel_initializer="VarianceScaling", kernel_regularizer=None, bias_regularizer=None,
                 **kwargs):
        if not hasattr(input_specs, "items") or not input_specs:
            raise ValueError(f"input_specs must be a non-empty dict level -> shape, got {input_specs!r}.")
        input_specs = {str(level): tf.TensorShape(spec) for level, spec in input_specs.items()}
        if not min_level <= max_level:
            raise ValueError(f"min_level ({min_level}) must be <= max_level ({max_level}).")
        if fusion_type not in FUSION_TYPES:
            raise ValueError(f"fusion_type must be one of {FUSION_TYPES}, got {fusion_type!r}.")
        backbone_levels = sorted(int(level) for level in input_specs)
        if backbone_levels[0] > min_level:
            raise ValueError(f"the backbone's lowest level ({backbone_levels[0]}) is above the FPN's "
                             f"min_level ({min_level}).")
        seam = NormActSeam(norm_act, norm_kwargs)
        self._config_dict = dict(
            input_specs=input_specs, min_level=min_level, max_level=max_level, num_filters=num_filters,
            fusion_type=fusion_type, use_separable_conv=use_separable_conv, norm_act=seam.name,
            norm_kwargs=dict(seam.kwargs), activation=activation, kernel_initializer=kernel_initializer,
            kernel_regularizer=serialize_regularizer(kernel_regularizer),
            bias_regularizer=serialize_regularizer(bias_regularizer))
        conv_op = tf_keras.layers.SeparableConv2D if use_separable_conv else tf_keras.layers.Conv2D

        def conv(x, kernel, strides, name):
            return conv_op(num_filters, kernel, strides=strides, padding="same",
                           kernel_initializer=kernel_initializer,
                           kernel_regularizer=tf_keras.regularizers.get(kernel_regularizer),
                           bias_regularizer=tf_keras.regularizers.get(bias_regularizer), name=name)(x)

        inputs = {level: tf_keras.Input(shape=tuple(spec)[1:], name=f"level_{level}")
                  for level, spec in input_specs.items()}
        top = min(backbone_levels[-1], max_level)
        lateral = {level: conv(inputs[str(level)], 1, 1, f"lateral_{level}") for level in
                   range(min_level, top + 1)}
        feats = {top: lateral[top]}
        for level in range(top - 1, min_level - 1, -1):
            upsampled = tf_keras.layers.UpSampling2D(2, interpolation="nearest",
                                                     name=f"upsample_{level}")(feats[level + 1])
            merge = tf_keras.layers.Add if fusion_type == "sum" else tf_keras.layers.Concatenate
            feats[level] = merge(name=f"fuse_{level}")([upsampled, lateral[level]])
        for level in range(min_level, top + 1):
            feats[level] = conv(feats[level], 3, 1, f"post_hoc_{level}")
        activation_fn = tf_utils.get_activation(activation, use_keras_layer=True)
        for level in range(top + 1, max_level + 1):
            x = feats[level - 1]
            if level > top + 1:
                x = activation_fn(x)
            feats[level] = conv(x, 3, 2, f"coarser_{level}")
        outputs = {str(level): seam(feats[level], name=f"norm_{level}", apply_act=False)
                   for level in range(min_level, max_level + 1)}
        self._output_specs = {level: value.shape for level, value in outputs.items()}
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

    @property
    def output_specs(self) -> dict:
        """Dict level (str) -> TensorShape of the outputs."""
        return self._output_specs

    def get_config(self):
        return dict(self._config_dict)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)


def build_evonorm_fpn(input_specs, model_config, l2_regularizer=None, **kwargs) -> FPN:
    """Model Garden decoder builder for ``decoder.type='evonorm_fpn'`` (config: Model Garden's FPN)."""
    del kwargs
    if model_config.decoder.type != "evonorm_fpn":
        raise ValueError(f"decoder.type is {model_config.decoder.type!r}, expected 'evonorm_fpn'.")
    cfg = model_config.decoder.get()
    name, kwargs = norm_act_from_config(model_config.norm_activation)
    return FPN(input_specs=input_specs, min_level=model_config.min_level, max_level=model_config.max_level,
               num_filters=cfg.num_filters, fusion_type=cfg.fusion_type,
               use_separable_conv=cfg.use_separable_conv, norm_act=name, norm_kwargs=kwargs,
               activation=model_config.norm_activation.activation, kernel_regularizer=l2_regularizer)


register_once(factory._REGISTERED_DECODER_CLS, "evonorm_fpn", build_evonorm_fpn,  # noqa: SLF001
              factory.register_decoder_builder, "decoder")

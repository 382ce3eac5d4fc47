"""MobileNetV2 (Sandler et al. 2018) and MnasNet-B1 (Tan et al. 2019) with any norm-act layer.

The originals use ReLU6 (MobileNetV2) and ReLU (MnasNet) after BN; with ``'bn_relu'`` both become
BN-ReLU (the paper's MobileNetV2 baseline), and with an EvoNorm every BN-activation pair becomes
the EvoNorm. Norms after the linear bottleneck projection use ``apply_act=False``.
"""

from __future__ import annotations

import tf_keras

from evonorm.vision.backbones.base import Backbone
from evonorm.vision.backbones.common import (DEFAULT_KERNEL_INITIALIZER, SERIALIZATION_PACKAGE,
                                             NormActSeam, check_input_shape, serialize_regularizer)
from evonorm.vision.backbones.mobile import Scaling, Stage, build_mobile_network

MOBILENET_V2_STAGES = (
    Stage(1, 16, 1, 1, 3),
    Stage(6, 24, 2, 2, 3, is_output=True),
    Stage(6, 32, 3, 2, 3, is_output=True),
    Stage(6, 64, 4, 2, 3),
    Stage(6, 96, 3, 1, 3, is_output=True),
    Stage(6, 160, 3, 2, 3),
    Stage(6, 320, 1, 1, 3, is_output=True),
)

# MnasNet-B1: the first (depthwise-separable) and last stages have no identity skip.
MNASNET_B1_STAGES = (
    Stage(1, 16, 1, 1, 3, skip=False),
    Stage(3, 24, 3, 2, 3, is_output=True),
    Stage(3, 40, 3, 2, 5, is_output=True),
    Stage(6, 80, 3, 2, 5),
    Stage(6, 96, 2, 1, 3, is_output=True),
    Stage(6, 192, 4, 2, 5),
    Stage(6, 320, 1, 1, 3, is_output=True, skip=False),
)

MODELS = {
    "mobilenet_v2": (MOBILENET_V2_STAGES, dict(keep_head_width=True)),
    "mnasnet_b1": (MNASNET_B1_STAGES, dict(keep_head_width=False)),
}


@tf_keras.utils.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class MobileNet(Backbone):
    """MobileNetV2 or MnasNet-B1 backbone: endpoints '2'..'5' (strides 4..32) and '6' (head conv).

    Args:
      model_id: 'mobilenet_v2' or 'mnasnet_b1'.
      norm_act: norm-act registry name, e.g. 'bn_relu', 'evonorm_b0', 'evonorm_s0'.
      norm_kwargs: kwargs passed unchanged to every norm-act layer.
      input_shape: (height, width, channels); None sides for variable sizes.
      width_multiplier: channel multiplier (rounded to multiples of 8). MobileNetV2 keeps its
        1280-channel head for multipliers below 1, as in the paper.
      stochastic_depth_rate: residual-branch drop rate of the last block (0: off, the original).
      include_head_conv: build the 1x1 head convolution (endpoint '6') used for classification.
      kernel_initializer: initializer of the convolution kernels.
      kernel_regularizer: regularizer of the convolution kernels (never of norm-act variables).
      name: model name.
    """

    def __init__(self, model_id: str = "mobilenet_v2", norm_act: str = "bn_relu",
                 norm_kwargs: dict | None = None, input_shape=(224, 224, 3),
                 width_multiplier: float = 1.0, stochastic_depth_rate: float = 0.0,
                 include_head_conv: bool = True, kernel_initializer=DEFAULT_KERNEL_INITIALIZER,
                 kernel_regularizer=None, name=None):
        if model_id not in MODELS:
            raise ValueError(f"unknown MobileNet model_id {model_id!r}; choose from {sorted(MODELS)}.")
        if width_multiplier <= 0:
            raise ValueError(f"width_multiplier must be > 0, got {width_multiplier!r}.")
        seam = NormActSeam(norm_act, norm_kwargs)
        input_shape = check_input_shape(input_shape)
        config = dict(model_id=model_id, norm_act=seam.name, norm_kwargs=dict(seam.kwargs),
                      input_shape=input_shape, width_multiplier=float(width_multiplier),
                      stochastic_depth_rate=float(stochastic_depth_rate),
                      include_head_conv=bool(include_head_conv), kernel_initializer=kernel_initializer,
                      kernel_regularizer=serialize_regularizer(kernel_regularizer))
        stages, extra = MODELS[model_id]
        scaling = Scaling(width=width_multiplier, drop_connect_rate=stochastic_depth_rate,
                          head_filters=1280 if include_head_conv else 0, **extra)
        conv_kwargs = dict(kernel_initializer=kernel_initializer,
                           kernel_regularizer=tf_keras.regularizers.get(kernel_regularizer))
        inputs = tf_keras.Input(shape=input_shape, name="image")
        endpoints = build_mobile_network(inputs, stages, scaling, seam, conv_kwargs)
        super().__init__(inputs, endpoints, config, name=name or model_id)


def mobilenet_v2(norm_act: str = "bn_relu", norm_kwargs=None, input_shape=(224, 224, 3),
                 width_multiplier: float = 1.0, **kwargs) -> MobileNet:
    """Builds a MobileNetV2 :class:`MobileNet` backbone (see its Args)."""
    return MobileNet("mobilenet_v2", norm_act=norm_act, norm_kwargs=norm_kwargs,
                     input_shape=input_shape, width_multiplier=width_multiplier, **kwargs)


def mnasnet_b1(norm_act: str = "bn_relu", norm_kwargs=None, input_shape=(224, 224, 3),
               width_multiplier: float = 1.0, **kwargs) -> MobileNet:
    """Builds a MnasNet-B1 :class:`MobileNet` backbone (see its Args)."""
    return MobileNet("mnasnet_b1", norm_act=norm_act, norm_kwargs=norm_kwargs,
                     input_shape=input_shape, width_multiplier=width_multiplier, **kwargs)

"""EfficientNet-B0..B7 (Tan & Le 2019) with any norm-act layer.

Compound scaling multiplies channels by ``width`` (rounded to multiples of 8) and block counts by
``depth`` (rounded up); blocks carry squeeze-and-excitation (ratio 0.25 of the block input) and
drop-connect increasing linearly to ``drop_connect_rate``. Every BN-SiLU of the original becomes the
chosen norm-act (the faithful default is ``'bn_silu'``; ``'bn_relu'`` matches Model Garden's default
activation); the BN after each linear projection gets ``apply_act=False``. The SE block's inner SiLU
and sigmoid gate act on pooled descriptors and are kept as in the original.
"""

from __future__ import annotations

import tf_keras

from evonorm.vision.backbones.base import Backbone
from evonorm.vision.backbones.common import (DEFAULT_KERNEL_INITIALIZER, SERIALIZATION_PACKAGE,
                                             NormActSeam, check_input_shape, serialize_regularizer)
from evonorm.vision.backbones.mobile import Scaling, Stage, build_mobile_network

EFFICIENTNET_B0_STAGES = (
    Stage(1, 16, 1, 1, 3),
    Stage(6, 24, 2, 2, 3, is_output=True),
    Stage(6, 40, 2, 2, 5, is_output=True),
    Stage(6, 80, 3, 2, 3),
    Stage(6, 112, 3, 1, 5, is_output=True),
    Stage(6, 192, 4, 2, 5),
    Stage(6, 320, 1, 1, 3, is_output=True),
)

# model_id -> (width, depth, resolution, dropout rate of the classifier), from the paper.
EFFICIENTNET_PARAMS = {
    "b0": (1.0, 1.0, 224, 0.2),
    "b1": (1.0, 1.1, 240, 0.2),
    "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3),
    "b4": (1.4, 1.8, 380, 0.4),
    "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5),
    "b7": (2.0, 3.1, 600, 0.5),
}


@tf_keras.utils.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class EfficientNet(Backbone):
    """EfficientNet backbone: endpoints '2'..'5' (strides 4..32) and '6' (the 1x1 head conv).

    Args:
      model_id: 'b0'..'b7'.
      norm_act: norm-act registry name ('bn_silu' is the original BN-Swish).
      norm_kwargs: kwargs passed unchanged to every norm-act layer.
      input_shape: (height, width, channels); None (default) uses the model's paper resolution.
      se_ratio: squeeze-and-excitation ratio (0 disables SE, as Model Garden's default config).
      drop_connect_rate: drop rate of the last block's residual branch (original: 0.2).
      include_head_conv: build the 1x1 head convolution (endpoint '6').
      kernel_initializer: initializer of the convolution kernels.
      kernel_regularizer: regularizer of the convolution kernels (never of norm-act variables).
      name: model name.
    """

    def __init__(self, model_id: str = "b0", norm_act: str = "bn_silu", norm_kwargs: dict | None = None,
                 input_shape=None, se_ratio: float = 0.25, drop_connect_rate: float = 0.2,
                 include_head_conv: bool = True, kernel_initializer=DEFAULT_KERNEL_INITIALIZER,
                 kernel_regularizer=None, name=None):
        if model_id not in EFFICIENTNET_PARAMS:
            raise ValueError(f"unknown EfficientNet model_id {model_id!r}; choose from "
                             f"{sorted(EFFICIENTNET_PARAMS)}.")
        if not 0.0 <= se_ratio <= 1.0:
            raise ValueError(f"se_ratio must be in [0, 1], got {se_ratio!r}.")
        width, depth, resolution, _ = EFFICIENTNET_PARAMS[model_id]
        seam = NormActSeam(norm_act, norm_kwargs)
        input_shape = check_input_shape(input_shape or (resolution, resolution, 3))
        config = dict(model_id=model_id, norm_act=seam.name, norm_kwargs=dict(seam.kwargs),
                      input_shape=input_shape, se_ratio=float(se_ratio),
                      drop_connect_rate=float(drop_connect_rate),
                      include_head_conv=bool(include_head_conv), kernel_initializer=kernel_initializer,
                      kernel_regularizer=serialize_regularizer(kernel_regularizer))
        scaling = Scaling(width=width, depth=depth, se_ratio=se_ratio,
                          drop_connect_rate=drop_connect_rate,
                          head_filters=1280 if include_head_conv else 0)
        conv_kwargs = dict(kernel_initializer=kernel_initializer,
                           kernel_regularizer=tf_keras.regularizers.get(kernel_regularizer))
        inputs = tf_keras.Input(shape=input_shape, name="image")
        endpoints = build_mobile_network(inputs, EFFICIENTNET_B0_STAGES, scaling, seam, conv_kwargs)
        super().__init__(inputs, endpoints, config, name=name or f"efficientnet_{model_id}")


def efficientnet(model_id: str = "b0", norm_act: str = "bn_silu", norm_kwargs=None, input_shape=None,
                 **kwargs) -> EfficientNet:
    """Builds an :class:`EfficientNet` backbone (see its Args)."""
    return EfficientNet(model_id, norm_act=norm_act, norm_kwargs=norm_kwargs, input_shape=input_shape,
                        **kwargs)


def classifier_dropout(model_id: str) -> float:
    """The paper's dropout rate before the classifier for EfficientNet ``model_id``."""
    if model_id not in EFFICIENTNET_PARAMS:
        raise ValueError(f"unknown EfficientNet model_id {model_id!r}.")
    return EFFICIENTNET_PARAMS[model_id][3]

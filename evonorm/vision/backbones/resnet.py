"""ResNet v1 (post-activation, Model Garden-compatible) and v2 (pre-activation), any norm-act layer.

* v1 (He et al. 2015, as Model Garden's ``resnet`` backbone: stride on the 3x3 convolution, a
  projection shortcut in the first block of every group). With ``'bn_relu'`` its parameter count
  equals Model Garden's exactly (ResNet-50: 23,561,152). Norms before the residual add and on
  projection shortcuts use ``apply_act=False``; the ReLU after the add is a plain activation.
* v2 (He et al. 2016, "Identity Mappings in Deep Residual Networks"): a norm-act before each
  convolution, projection shortcuts fed by the first pre-activation, no norm-act in the stem, one
  final norm-act after the last group. This is the form EvoNorms require: the reference code raises
  'Evonorms require the pre-activation form', because a v1 block needs a separate activation after
  the add that an EvoNorm cannot replace.
"""

from __future__ import annotations

import tf_keras

from evonorm.vision.backbones.base import Backbone
from evonorm.vision.backbones.common import (DEFAULT_KERNEL_INITIALIZER, SERIALIZATION_PACKAGE,
                                             NormActSeam, check_input_shape, conv2d,
                                             serialize_regularizer)

# depth -> (block kind, blocks per group); filters per group are 64, 128, 256, 512 (x width).
RESNET_SPECS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}
GROUP_FILTERS = (64, 128, 256, 512)


class _Blocks:
    """The four residual block variants, sharing one seam and conv settings."""

    def __init__(self, seam: NormActSeam, conv_kwargs: dict, zero_init_residual: bool):
        self.na = seam
        self.conv_kwargs = conv_kwargs
        self.zero_init = zero_init_residual

    def conv(self, x, filters, kernel, strides, name):
        return conv2d(x, filters, kernel, strides, name=name, **self.conv_kwargs)

    def v1(self, x, kind, filters, strides, projection, name):
        out_filters = filters * 4 if kind == "bottleneck" else filters
        shortcut = x
        if projection:
            shortcut = self.conv(x, out_filters, 1, strides, f"{name}_proj")
            shortcut = self.na(shortcut, f"{name}_proj_norm", apply_act=False)
        if kind == "bottleneck":
            x = self.na(self.conv(x, filters, 1, 1, f"{name}_conv1"), f"{name}_na1")
            x = self.na(self.conv(x, filters, 3, strides, f"{name}_conv2"), f"{name}_na2")
            x = self.conv(x, out_filters, 1, 1, f"{name}_conv3")
        else:
            x = self.na(self.conv(x, filters, 3, strides, f"{name}_conv1"), f"{name}_na1")
            x = self.conv(x, out_filters, 3, 1, f"{name}_conv2")
        x = self.na(x, f"{name}_norm_out", apply_act=False, zero_init=self.zero_init)
        x = tf_keras.layers.Add(name=f"{name}_add")([x, shortcut])
        return self.na.post_add_activation(x, f"{name}_out_act")

    def v2(self, x, kind, filters, strides, projection, name):
        out_filters = filters * 4 if kind == "bottleneck" else filters
        shortcut = x
        x = self.na(x, f"{name}_preact")
        if projection:
            shortcut = self.conv(x, out_filters, 1, strides, f"{name}_proj")
        if kind == "bottleneck":
            x = self.na(self.conv(x, filters, 1, 1, f"{name}_conv1"), f"{name}_na1")
            x = self.na(self.conv(x, filters, 3, strides, f"{name}_conv2"), f"{name}_na2")
            x = self.conv(x, out_filters, 1, 1, f"{name}_conv3")
        else:
            x = self.na(self.conv(x, filters, 3, strides, f"{name}_conv1"), f"{name}_na1")
            x = self.conv(x, out_filters, 3, 1, f"{name}_conv2")
        return tf_keras.layers.Add(name=f"{name}_add")([x, shortcut])


@tf_keras.utils.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class ResNet(Backbone):
    """ResNet backbone with endpoints '2'..'5' (strides 4..32); see the module docstring.

    Args:
      depth: 18, 34 (basic blocks), 50, 101, 152 or 200 (bottleneck blocks).
      version: 1 (post-activation, Model Garden layout) or 2 (pre-activation).
      norm_act: norm-act registry name, e.g. 'bn_relu', 'evonorm_b0', 'evonorm_s0'.
      norm_kwargs: kwargs passed unchanged to every norm-act layer.
      input_shape: (height, width, channels); None sides for variable sizes.
      width_multiplier: scales every channel count (stem included), as Model Garden's
        ``depth_multiplier``.
      zero_init_residual: start the last norm of each residual branch at gamma = 0 (v1 only: v2
        branches end in a convolution).
      allow_post_activation_evonorm: build v1 with an EvoNorm anyway (not what the paper did).
      kernel_initializer: initializer of the convolution kernels.
      kernel_regularizer: regularizer of the convolution kernels (never of norm-act variables).
      name: model name.

    Raises:
      ValueError: unknown depth or version, or an EvoNorm in a v1 network without the override.
    """

    def __init__(self, depth: int = 50, version: int = 2, norm_act: str = "bn_relu",
                 norm_kwargs: dict | None = None, input_shape=(224, 224, 3),
                 width_multiplier: float = 1.0, zero_init_residual: bool = False,
                 allow_post_activation_evonorm: bool = False,
                 kernel_initializer=DEFAULT_KERNEL_INITIALIZER, kernel_regularizer=None, name=None):
        if depth not in RESNET_SPECS:
            raise ValueError(f"unsupported ResNet depth {depth!r}; choose from {sorted(RESNET_SPECS)}.")
        if version not in (1, 2):
            raise ValueError(f"ResNet version must be 1 (post-activation) or 2 (pre-activation), "
                             f"got {version!r}.")
        if width_multiplier <= 0:
            raise ValueError(f"width_multiplier must be > 0, got {width_multiplier!r}.")
        if zero_init_residual and version == 2:
            raise ValueError("zero_init_residual applies to version=1 only: v2 residual branches end in "
                             "a convolution, not a norm.")
        seam = NormActSeam(norm_act, norm_kwargs)
        if version == 1 and seam.is_evonorm and not allow_post_activation_evonorm:
            raise ValueError(f"Evonorms require the pre-activation form: use version=2 with "
                             f"norm_act={norm_act!r}, or pass allow_post_activation_evonorm=True.")
        input_shape = check_input_shape(input_shape)
        config = dict(depth=depth, version=version, norm_act=seam.name, norm_kwargs=dict(seam.kwargs),
                      input_shape=input_shape, width_multiplier=float(width_multiplier),
                      zero_init_residual=bool(zero_init_residual),
                      allow_post_activation_evonorm=bool(allow_post_activation_evonorm),
                      kernel_initializer=kernel_initializer,
                      kernel_regularizer=serialize_regularizer(kernel_regularizer))
        conv_kwargs = dict(kernel_initializer=kernel_initializer,
                           kernel_regularizer=tf_keras.regularizers.get(kernel_regularizer))
        blocks = _Blocks(seam, conv_kwargs, zero_init_residual)
        block_fn = blocks.v1 if version == 1 else blocks.v2
        kind, repeats = RESNET_SPECS[depth]

        inputs = tf_keras.Input(shape=input_shape, name="image")
        x = blocks.conv(inputs, int(64 * width_multiplier), 7, 2, "stem_conv")
        if version == 1:  # v2 normalizes in the first block's pre-activation instead
            x = seam(x, "stem_na")
        x = tf_keras.layers.MaxPool2D(3, strides=2, padding="same", name="stem_pool")(x)
        endpoints = {}
        for group, (filters, count) in enumerate(zip(GROUP_FILTERS, repeats)):
            filters = int(filters * width_multiplier)
            for index in range(count):
                strides = 2 if (index == 0 and group > 0) else 1
                x = block_fn(x, kind, filters, strides, projection=index == 0,
                             name=f"g{group + 2}_b{index}")
            if version == 2 and group == len(repeats) - 1:
                x = seam(x, "final_na")
            endpoints[str(group + 2)] = x
        super().__init__(inputs, endpoints, config, name=name or f"resnet{depth}_v{version}")


def resnet(depth: int = 50, version: int = 2, norm_act: str = "bn_relu", norm_kwargs=None,
           input_shape=(224, 224, 3), width_multiplier: float = 1.0, **kwargs) -> ResNet:
    """Builds a :class:`ResNet` backbone (see its Args); returns a tf_keras.Model of endpoints."""
    return ResNet(depth=depth, version=version, norm_act=norm_act, norm_kwargs=norm_kwargs,
                  input_shape=input_shape, width_multiplier=width_multiplier, **kwargs)

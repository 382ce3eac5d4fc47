"""Inverted-residual networks (MobileNetV2, MnasNet, EfficientNet) from one stage table.

Each network is a stem convolution, stages of inverted residual blocks (Sandler et al. 2018:
1x1 expansion, depthwise kxk, optional squeeze-and-excitation, linear 1x1 projection) and a 1x1 head
convolution. Every "BN + activation" of the originals is one norm-act layer; the norm after the
linear projection has no activation in the originals and gets ``apply_act=False``.
"""

from __future__ import annotations

import dataclasses
import math

import tf_keras

from evonorm.vision.backbones.common import (DropConnect, NormActSeam, SqueezeExcite, conv2d,
                                             depthwise_conv2d, round_filters)


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of identical blocks (the first one may downsample).

    Attributes:
      expand: expansion ratio of the 1x1 convolution (1: no expansion convolution).
      filters: output channels before width scaling.
      repeats: number of blocks before depth scaling.
      strides: stride of the first block's depthwise convolution.
      kernel: depthwise kernel size.
      is_output: the stage's output is an endpoint (the next level).
      skip: identity shortcut where shapes allow (stride 1, same channels).
    """

    expand: int
    filters: int
    repeats: int
    strides: int
    kernel: int
    is_output: bool = False
    skip: bool = True


@dataclasses.dataclass(frozen=True)
class Scaling:
    """Width/depth scaling and the per-network details that differ between the originals.

    Attributes:
      width: channel multiplier (rounded to multiples of ``divisor``).
      depth: block-count multiplier (``ceil(depth * repeats)``, EfficientNet's compound scaling).
      head_filters: channels of the 1x1 head convolution before scaling (0: no head convolution).
      keep_head_width: never shrink the head below ``head_filters`` (MobileNetV2 keeps its last
        layer large for multipliers below 1).
      se_ratio: squeeze channels as a fraction of each block's input channels (0: no SE).
      drop_connect_rate: residual-branch drop rate of the last block, increasing linearly from 0.
      divisor: channel counts are rounded to multiples of this.
    """

    width: float = 1.0
    depth: float = 1.0
    stem_filters: int = 32
    head_filters: int = 1280
    keep_head_width: bool = False
    se_ratio: float = 0.0
    drop_connect_rate: float = 0.0
    divisor: int = 8


def inverted_residual(x, seam: NormActSeam, out_filters: int, expand: int, kernel: int, strides: int,
                      name: str, se_filters: int = 0, drop_rate: float = 0.0, skip: bool = True,
                      conv_kwargs: dict | None = None):
    """One inverted residual (MBConv) block on ``x``; returns its output tensor."""
    conv_kwargs = conv_kwargs or {}
    in_filters = int(x.shape[-1])
    shortcut = x
    if expand != 1:
        x = conv2d(x, in_filters * expand, 1, name=f"{name}_expand", **conv_kwargs)
        x = seam(x, f"{name}_expand_na")
    x = depthwise_conv2d(x, kernel, strides, name=f"{name}_dw", **conv_kwargs)
    x = seam(x, f"{name}_dw_na")
    if se_filters:
        x = SqueezeExcite(se_filters, kernel_initializer=conv_kwargs.get("kernel_initializer", "he_normal"),
                          kernel_regularizer=conv_kwargs.get("kernel_regularizer"), name=f"{name}_se")(x)
    x = conv2d(x, out_filters, 1, name=f"{name}_project", **conv_kwargs)
    x = seam(x, f"{name}_project_norm", apply_act=False)
    if skip and strides == 1 and in_filters == out_filters:
        if drop_rate > 0:
            x = DropConnect(drop_rate, name=f"{name}_drop")(x)
        x = tf_keras.layers.Add(name=f"{name}_add")([x, shortcut])
    return x


def build_mobile_network(inputs, stages, scaling: Scaling, seam: NormActSeam, conv_kwargs: dict):
    """Builds the graph on ``inputs``; returns the endpoint dict ('2'..'5', and '6' for the head)."""
    def width(filters):
        return round_filters(filters, scaling.width, scaling.divisor)

    repeats = [int(math.ceil(scaling.depth * stage.repeats)) for stage in stages]
    total_blocks = sum(repeats)
    x = conv2d(inputs, width(scaling.stem_filters), 3, 2, name="stem_conv", **conv_kwargs)
    x = seam(x, "stem_na")
    endpoints, level, block_id = {}, 2, 0
    for stage_id, (stage, count) in enumerate(zip(stages, repeats)):
        out_filters = width(stage.filters)
        for index in range(count):
            in_filters = int(x.shape[-1])
            se_filters = max(1, int(in_filters * scaling.se_ratio)) if scaling.se_ratio > 0 else 0
            x = inverted_residual(
                x, seam, out_filters, stage.expand, stage.kernel, stage.strides if index == 0 else 1,
                name=f"s{stage_id}_b{index}", se_filters=se_filters,
                drop_rate=scaling.drop_connect_rate * block_id / total_blocks, skip=stage.skip,
                conv_kwargs=conv_kwargs)
            block_id += 1
        if stage.is_output:
            endpoints[str(level)] = x
            level += 1
    if scaling.head_filters:
        head = width(scaling.head_filters)
        if scaling.keep_head_width:
            head = max(head, scaling.head_filters)
        x = conv2d(x, head, 1, name="head_conv", **conv_kwargs)
        endpoints["6"] = seam(x, "head_na")
    return endpoints

"""Pre-activation ResNet-(6n+2) for small images (CIFAR-10, Fashion-MNIST), with a pluggable norm-act.

He, Zhang, Ren, Sun, *Identity Mappings in Deep Residual Networks* (ECCV 2016): a 3x3 stem convolution,
three stages of ``n`` basic pre-activation blocks with ``width``, ``2 * width`` and ``4 * width``
channels (16/32/64 in the paper), a final norm-act, global average pooling and a dense classifier.
ResNet-8 has n=1, ResNet-20 n=3, ResNet-56 n=9.

EvoNorms need the pre-activation form (the authors' reference code refuses v1 blocks), because the
layer replaces the whole "BN then ReLU" pair that precedes each convolution. Every normalization-
activation here is created through ``evonorm.layers.legacy.create_norm_act``; nothing instantiates a
``BatchNormalization`` or a separate activation layer.

Usage::

    from evonorm.vision.cifar_resnet import build_preact_resnet
    model = build_preact_resnet(depth=20, norm_act='evonorm_s0', input_shape=(32, 32, 3))
"""

from __future__ import annotations

import tf_keras

from evonorm.layers import legacy

STAGES = 3


def blocks_per_stage(depth: int) -> int:
    """The ``n`` of a ResNet-(6n+2), or ValueError naming the valid depths."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"pre-activation CIFAR ResNet depth must be 6n+2 with n >= 1 "
                         f"(8, 14, 20, 26, 32, 44, 56, 110...), got {depth!r}.")
    return (depth - 2) // 6


def _conv(filters, kernel_size, strides, name):
    # No bias: a norm-act (with its own beta) or the residual add always follows.
    return tf_keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False,
                                  kernel_initializer="he_normal", name=name)


def preact_block(x, filters: int, strides: int, norm_act: str, name: str, **norm_kwargs):
    """One basic pre-activation block: norm-act, conv3x3(strides), norm-act, conv3x3, plus shortcut.

    The shortcut is the block input itself when the shape is kept, else a strided 1x1 convolution of
    the *pre-activated* input (He et al. 2016, Fig. 4e / the reference ``residual_block_v2``).

    Args:
      x: input tensor, NHWC.
      filters: output channels of both convolutions.
      strides: stride of the first convolution (and of the projection shortcut).
      norm_act: registry name of the norm-act layer (see ``evonorm.layers.list_norm_acts()``).
      name: prefix of the convolution layer names.
      **norm_kwargs: passed to every ``create_norm_act`` call (e.g. ``groups=8``).

    Returns:
      The block output tensor.
    """
    preact = legacy.create_norm_act(norm_act, apply_act=True, **norm_kwargs)(x)
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv(filters, 1, strides, f"{name}_proj")(preact)
    else:
        shortcut = x
    y = _conv(filters, 3, strides, f"{name}_conv1")(preact)
    y = legacy.create_norm_act(norm_act, apply_act=True, **norm_kwargs)(y)
    y = _conv(filters, 3, 1, f"{name}_conv2")(y)
    return tf_keras.layers.Add(name=f"{name}_add")([shortcut, y])


def build_preact_resnet(depth: int = 8, norm_act: str = "bn_relu", input_shape=(32, 32, 3),
                        num_classes: int = 10, width: int = 16, name: str | None = None,
                        **norm_kwargs) -> tf_keras.Model:
    """Builds a tf_keras pre-activation ResNet-``depth`` for small images.

    Args:
      depth: 6n+2 (8, 14, 20, 32, 56, 110...): n basic blocks per stage, two 3x3 convs each.
      norm_act: registry name of the normalization-activation, e.g. ``'bn_relu'``, ``'evonorm_s0'``.
      input_shape: (height, width, channels) of one image, channels last.
      num_classes: outputs of the final dense layer (logits, no softmax).
      width: channels of the first stage; stages use ``width``, ``2 * width``, ``4 * width``
        (16 gives the paper's 16/32/64).
      name: model name; default ``'preact_resnet{depth}_{norm_act}'``.
      **norm_kwargs: forwarded to every ``create_norm_act`` call (``groups``, ``epsilon``,
        ``momentum``...).

    Returns:
      A ``tf_keras.Model`` mapping float images to ``[batch, num_classes]`` logits.

    Raises:
      ValueError: for a depth that is not 6n+2, a non-positive width or class count, a malformed
        input shape or an unknown norm-act name.
    """
    n = blocks_per_stage(depth)
    for arg, value in (("width", width), ("num_classes", num_classes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{arg} must be a positive integer, got {value!r}.")
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or any(d is not None and (not isinstance(d, int) or d < 1)
                                    for d in input_shape) or input_shape[-1] is None:
        raise ValueError(f"input_shape must be (height, width, channels) with known channels, "
                         f"got {input_shape!r}.")
    legacy.get_norm_act_class(norm_act)  # fail early, listing the known names

    inputs = tf_keras.Input(shape=input_shape, name="images")
    x = _conv(width, 3, 1, "stem_conv")(inputs)
    for stage in range(STAGES):
        filters = width * 2 ** stage
        for block in range(n):
            strides = 2 if stage > 0 and block == 0 else 1
            x = preact_block(x, filters, strides, norm_act, f"stage{stage + 1}_block{block + 1}",
                             **norm_kwargs)
    x = legacy.create_norm_act(norm_act, apply_act=True, **norm_kwargs)(x)
    x = tf_keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = tf_keras.layers.Dense(num_classes, name="logits")(x)
    return tf_keras.Model(inputs, outputs, name=name or f"preact_resnet{depth}_{norm_act}")

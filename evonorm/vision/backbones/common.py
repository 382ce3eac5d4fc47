"""Building blocks shared by every backbone: the norm-act seam, convolutions, SE, drop-connect.

All layers are tf_keras (Keras 2), the generation TF Model Garden is written against; a Keras 3 layer
inside these models would silently lose its weights. Normalization-activation is only ever created
through :class:`NormActSeam` (which calls ``evonorm.layers.legacy.create_norm_act``), never as a
BatchNormalization plus an activation layer.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras

from evonorm.layers import legacy
from evonorm.layers.registry import canonical_name

SERIALIZATION_PACKAGE = "evonorm_vision"
DEFAULT_KERNEL_INITIALIZER = "he_normal"


class NormActSeam:
    """Creates the norm-act layers of one model: one registry name, the user's kwargs, per-site tweaks.

    Args:
      norm_act: registry name of the norm-act layer (``evonorm.layers.list_norm_acts()``), e.g.
        ``'bn_relu'``, ``'evonorm_b0'``, ``'evonorm_s0'``.
      norm_kwargs: constructor kwargs passed unchanged to every norm-act layer (``groups``,
        ``group_size``, ``epsilon``, ``momentum``, ``synchronized``, ``no_act_mode``...). Channel
        counts that 32 does not divide (24, 40, 112...) are handled by the layers' default group rule.

    Raises:
      ValueError: for an unknown norm-act name, a non-dict ``norm_kwargs``, or kwargs the seam sets
        itself per site (``apply_act``, ``name``) or that these channels-last models cannot honour.
    """

    def __init__(self, norm_act: str = "bn_relu", norm_kwargs: dict | None = None):
        self.name = canonical_name(norm_act)
        if norm_kwargs is None:
            norm_kwargs = {}
        if not isinstance(norm_kwargs, dict):
            raise ValueError(f"norm_kwargs must be a dict or None, got {type(norm_kwargs).__name__}.")
        for reserved in ("apply_act", "name"):
            if reserved in norm_kwargs:
                raise ValueError(f"norm_kwargs must not contain {reserved!r}: the backbone sets it per "
                                 f"position (got norm_kwargs={norm_kwargs}).")
        if norm_kwargs.get("data_format", "channels_last") != "channels_last":
            raise ValueError("these backbones are channels_last (NHWC) only; got norm_kwargs "
                             f"data_format={norm_kwargs['data_format']!r}.")
        self.kwargs = dict(norm_kwargs)
        self.is_evonorm = self.name.startswith("evonorm")

    def layer(self, name: str, apply_act: bool = True, zero_init: bool = False):
        """A fresh norm-act layer named ``name``.

        ``zero_init=True`` starts ``gamma`` at zero (last norm of a residual branch) unless the user
        set ``zero_init`` explicitly in ``norm_kwargs``.
        """
        kwargs = dict(self.kwargs)
        if zero_init:
            kwargs.setdefault("zero_init", True)
        return legacy.create_norm_act(self.name, apply_act=apply_act, name=name, **kwargs)

    def __call__(self, x, name: str, apply_act: bool = True, zero_init: bool = False):
        """Applies a fresh norm-act layer (see :meth:`layer`) to ``x``."""
        return self.layer(name, apply_act=apply_act, zero_init=zero_init)(x)

    def post_add_activation(self, x, name: str):
        """The activation after a residual add in post-activation (v1) blocks.

        It is not part of any norm-act layer, so it follows the family of the chosen layer: SiLU for
        ``*_silu`` layers, ReLU otherwise (He et al. 2015).
        """
        act = "swish" if self.name.endswith("_silu") else "relu"
        return tf_keras.layers.Activation(act, name=name)(x)


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Rounds ``value`` to a multiple of ``divisor``, never dropping more than 10% (MobileNet rule)."""
    min_value = divisor if min_value is None else min_value
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return int(new_value)


def round_filters(filters: int, multiplier: float, divisor: int = 8, min_depth: int | None = None) -> int:
    """Channel count ``filters * multiplier`` rounded by :func:`make_divisible`."""
    if multiplier <= 0:
        raise ValueError(f"width multiplier must be > 0, got {multiplier!r}.")
    return make_divisible(filters * multiplier, divisor, min_depth)


def conv2d(x, filters: int, kernel_size: int, strides: int = 1, name: str = None,
           kernel_initializer=DEFAULT_KERNEL_INITIALIZER, kernel_regularizer=None, use_bias=False):
    """A 'same'-padded, bias-free Conv2D (a norm-act always follows, whose beta is the bias)."""
    return tf_keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", use_bias=use_bias,
        kernel_initializer=kernel_initializer, kernel_regularizer=kernel_regularizer, name=name)(x)


def depthwise_conv2d(x, kernel_size: int, strides: int = 1, name: str = None,
                     kernel_initializer=DEFAULT_KERNEL_INITIALIZER, kernel_regularizer=None):
    """A 'same'-padded, bias-free depthwise Conv2D with depth multiplier 1."""
    return tf_keras.layers.DepthwiseConv2D(
        kernel_size, strides=strides, padding="same", use_bias=False,
        depthwise_initializer=kernel_initializer, depthwise_regularizer=kernel_regularizer,
        name=name)(x)


@tf_keras.utils.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class SqueezeExcite(tf_keras.layers.Layer):
    """Squeeze-and-excitation (Hu et al. 2018) as in EfficientNet: pool, reduce, SiLU, expand, gate.

    The inner SiLU and the sigmoid gate act on pooled channel descriptors, not on normalized
    feature maps, so they are not a norm-act position and stay fixed whatever layer is chosen.

    Args:
      reduced_filters: channels of the squeeze (EfficientNet: ``max(1, int(block_in * se_ratio))``).
      kernel_initializer, kernel_regularizer: for both 1x1 convolutions (which have biases).
    """

    def __init__(self, reduced_filters: int, kernel_initializer=DEFAULT_KERNEL_INITIALIZER,
                 kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if reduced_filters < 1:
            raise ValueError(f"reduced_filters must be >= 1, got {reduced_filters}.")
        self.reduced_filters = int(reduced_filters)
        self.kernel_initializer = kernel_initializer
        self.kernel_regularizer = tf_keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        common = dict(kernel_size=1, use_bias=True, kernel_initializer=self.kernel_initializer,
                      kernel_regularizer=self.kernel_regularizer)
        self.reduce = tf_keras.layers.Conv2D(self.reduced_filters, name="reduce", **common)
        self.expand = tf_keras.layers.Conv2D(channels, name="expand", **common)
        pooled = (input_shape[0], 1, 1, channels)
        self.reduce.build(pooled)
        self.expand.build((input_shape[0], 1, 1, self.reduced_filters))
        super().build(input_shape)

    def call(self, inputs):
        s = tf.reduce_mean(inputs, axis=[1, 2], keepdims=True)
        s = tf.nn.silu(self.reduce(s))
        return inputs * tf.sigmoid(self.expand(s))

    def get_config(self):
        config = super().get_config()
        config.update(reduced_filters=self.reduced_filters,
                      kernel_initializer=tf_keras.initializers.serialize(
                          tf_keras.initializers.get(self.kernel_initializer)),
                      kernel_regularizer=tf_keras.regularizers.serialize(self.kernel_regularizer)
                      if self.kernel_regularizer else None)
        return config


@tf_keras.utils.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class DropConnect(tf_keras.layers.Layer):
    """Drops a residual branch per example in training and rescales survivors (stochastic depth).

    Args:
      rate: probability of dropping the branch, in [0, 1).
    """

    def __init__(self, rate: float, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"drop-connect rate must be in [0, 1), got {rate!r}.")
        self.rate = float(rate)

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        keep = 1.0 - self.rate
        shape = tf.concat([tf.shape(inputs)[:1], tf.ones([tf.rank(inputs) - 1], tf.int32)], axis=0)
        mask = tf.floor(keep + tf.random.uniform(shape, dtype=inputs.dtype))
        return inputs / keep * mask

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate)
        return config


def serialize_regularizer(regularizer):
    """A regularizer as a JSON-able config (None stays None)."""
    regularizer = tf_keras.regularizers.get(regularizer)
    return tf_keras.regularizers.serialize(regularizer) if regularizer is not None else None


def check_input_shape(input_shape, min_side: int = 32):
    """Validates an (H, W, C) input shape; None spatial sides are allowed."""
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels), got {input_shape!r}.")
    if shape[-1] is None:
        raise ValueError(f"the channel count of input_shape must be known, got {input_shape!r}.")
    for side in shape[:2]:
        if side is not None and side < min_side:
            raise ValueError(f"input sides must be >= {min_side} (the backbone downsamples by 32), "
                             f"got input_shape={input_shape!r}.")
    return shape

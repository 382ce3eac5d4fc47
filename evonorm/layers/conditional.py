"""Class-conditional normalization-activation: any registered layer with a per-sample affine.

BigGAN's conditional BatchNorm generalized to every layer of the registry: the wrapped layer keeps its
formula and its own state (v1, moving statistics, groups) but owns no gamma/beta; instead

    gamma = 1 + W_gamma c,    beta = W_beta c

are predicted from the conditioning vector ``c`` (in BigGAN-deep: the whole z concatenated with the shared
class embedding) by bias-free projections, spectrally normalized by default, as in the official BigGAN
generator (TF Hub module, BigGAN-PyTorch ``ccbn``). The ``1 +`` matters: compare_gan's version without it
is the reported reason its BigGAN-deep never trained well (google/compare_gan#54).

Where the affine sits is where each layer has it (paper footnote 4: "Each custom layer is followed by a
channel-wise affine transform"): after the normalization and before the activation for BN/GN/LN/PN-ReLU
(exactly BigGAN's cBN followed by ReLU), at the very end for the EvoNorms, whose nonlinearity is inside the
formula. v1 stays per channel and unconditional: the paper defines nothing else. Choices and their sources:
``gan/README.md``.

tf_keras only (the generation of every model in this project).

Example:
  >>> norm = ConditionalNormAct("evonorm_b0")
  >>> y = norm((tf.random.normal([8, 16, 16, 64]), tf.random.normal([8, 256])), training=True)
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras

from evonorm import ops
from evonorm.layers import legacy, registry
from evonorm.layers.spectral import DEFAULT_SN_EPSILON, SNDense


@tf_keras.utils.register_keras_serializable(package="evonorm")
class ConditionalNormAct(tf_keras.layers.Layer):
    """A registered norm-act whose channel-wise affine is predicted from a conditioning vector.

    Args:
      norm: registry name (``evonorm.layers.list_norm_acts()``), e.g. ``'bn_relu'``, ``'evonorm_s0'``.
      apply_act: as for ``create_norm_act``.
      spectral_norm: spectrally normalize the two projections (BigGAN: yes).
      sn_epsilon: epsilon of the power iteration.
      norm_kwargs: the shared constructor contract of the wrapped layer (``groups``, ``epsilon``,
        ``momentum``, ``synchronized``...); ``data_format`` must stay channels_last.
      **kwargs: Keras ``Layer`` arguments (``name``...).

    Call: ``layer((x, c), training=...)`` with ``x`` ``[B, ..., C]`` and ``c`` ``[B, D]``.
    """

    def __init__(self, norm="bn_relu", apply_act=True, spectral_norm=True, sn_epsilon=DEFAULT_SN_EPSILON,
                 norm_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        self.norm = registry.canonical_name(norm)
        self.apply_act = bool(apply_act)
        self.spectral_norm = bool(spectral_norm)
        self.sn_epsilon = float(sn_epsilon)
        self.norm_kwargs = dict(norm_kwargs or {})
        if self.norm_kwargs.get("data_format", ops.CHANNELS_LAST) != ops.CHANNELS_LAST:
            raise ValueError(f"{type(self).__name__}: only channels_last inputs are supported.")
        self.inner = legacy.create_norm_act(self.norm, apply_act=self.apply_act, name="norm",
                                            **self.norm_kwargs)
        self.inner.external_affine = True
        self.gain = self.bias = None

    def build(self, input_shape):
        x_shape, c_shape = (tf.TensorShape(s) for s in input_shape)
        cls = type(self).__name__
        if c_shape.rank != 2 or c_shape[-1] is None:
            raise ValueError(f"{cls}: the condition must be [batch, features] with known features, "
                             f"got shape {c_shape}.")
        kwargs = dict(use_bias=False, spectral=self.spectral_norm, sn_epsilon=self.sn_epsilon)
        self.gain = SNDense(x_shape[-1], name="gain", **kwargs)
        self.bias = SNDense(x_shape[-1], name="bias", **kwargs)
        for layer, shape in ((self.inner, x_shape), (self.gain, c_shape), (self.bias, c_shape)):
            with tf.name_scope(layer.name):  # variable names as if each were called on its own
                layer.build(shape)
        super().build(input_shape)

    def call(self, inputs, training=None):
        x, c = inputs
        c = tf.cast(c, tf.float32)
        shape = tf.concat([tf.shape(c)[:1], tf.ones([x.shape.rank - 2], tf.int32), [-1]], axis=0)
        gamma = tf.reshape(1.0 + self.gain(c, training=training), shape)
        beta = tf.reshape(self.bias(c, training=training), shape)
        return self.inner.call_with_affine(x, gamma, beta, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(norm=self.norm, apply_act=self.apply_act, spectral_norm=self.spectral_norm,
                      sn_epsilon=self.sn_epsilon, norm_kwargs=dict(self.norm_kwargs))
        return config

    def compute_output_shape(self, input_shape):
        return input_shape[0]


def create_conditional_norm_act(name: str, /, apply_act: bool = True, spectral_norm: bool = True,
                                **kwargs) -> ConditionalNormAct:
    """``create_norm_act``'s conditional twin: ``kwargs`` are the wrapped layer's (plus ``name``)."""
    layer_name = kwargs.pop("name", None)
    return ConditionalNormAct(name, apply_act=apply_act, spectral_norm=spectral_norm, norm_kwargs=kwargs,
                              name=layer_name)

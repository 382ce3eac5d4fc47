"""Spectrally normalized Dense, Conv2D and Embedding layers (Miyato et al., 2018), tf_keras.

``tf_keras.layers.SpectralNormalization`` cannot serve: in tf_keras 2.20.1 wrapping a layer raises
``TypeError: Layer input_spec must be an instance of InputSpec`` (keras-team/tf-keras#816), and where it
works it overwrites the kernel with ``W / sigma``. These layers keep ``W`` as the trained variable and use
``W / sigma(W)`` in the forward pass, as SN-GAN, compare_gan and BigGAN-PyTorch do: one power iteration
per training call, ``u`` not trained, no gradient through ``u`` and ``v``. At inference the stored ``u``
gives ``sigma`` without updating it.

Under ``tf.distribute`` the ``u`` vector depends only on the (mirrored) kernel, so every replica computes
the same update; it is kept with ``ONLY_FIRST_REPLICA`` aggregation so the assignment is well defined.

``spectral=False`` turns any of them into the plain layer (same variables, minus ``u``), so one model
definition serves both. Used by the BigGAN-deep generator and discriminator (``evonorm.gan``) and by the
projections of ``ConditionalNormAct``.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras

DEFAULT_SN_EPSILON = 1e-6  # BigGAN-PyTorch's launch scripts; compare_gan 1e-12, TF Hub 1e-4


def _l2_normalize(v, epsilon):
    return v / (tf.norm(v) + epsilon)


class _SpectralKernel(tf_keras.layers.Layer):
    """Owns ``kernel`` (and ``u``) and returns the kernel divided by its largest singular value."""

    def __init__(self, spectral=True, sn_epsilon=DEFAULT_SN_EPSILON, kernel_initializer="orthogonal",
                 **kwargs):
        super().__init__(**kwargs)
        self.spectral = bool(spectral)
        self.sn_epsilon = float(sn_epsilon)
        self.kernel_initializer = tf_keras.initializers.get(kernel_initializer)

    def _build_kernel(self, shape):
        self.kernel = self.add_weight("kernel", shape=shape, initializer=self.kernel_initializer)
        if self.spectral:
            # u lives in the output space of the kernel seen as a [fan_in, fan_out] matrix.
            self.u = self.add_weight(
                "u", shape=(1, shape[-1]), trainable=False,
                initializer=tf_keras.initializers.RandomNormal(stddev=1.0),
                synchronization=tf.VariableSynchronization.ON_WRITE,
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

    def normalized_kernel(self, training=None):
        """``kernel / sigma``; in training, one power iteration that also updates ``u``."""
        if not self.spectral:
            return self.kernel
        w = tf.reshape(self.kernel, [-1, self.kernel.shape[-1]])
        u = tf.identity(self.u)
        v = tf.stop_gradient(_l2_normalize(tf.matmul(u, w, transpose_b=True), self.sn_epsilon))
        if training:
            u = tf.stop_gradient(_l2_normalize(tf.matmul(v, w), self.sn_epsilon))
            self.u.assign(u)
        sigma = tf.squeeze(tf.matmul(tf.matmul(v, w), u, transpose_b=True))
        return self.kernel / sigma

    def get_config(self):
        config = super().get_config()
        config.update(spectral=self.spectral, sn_epsilon=self.sn_epsilon,
                      kernel_initializer=tf_keras.initializers.serialize(self.kernel_initializer))
        return config


@tf_keras.utils.register_keras_serializable(package="evonorm")
class SNDense(_SpectralKernel):
    """Dense layer ``x @ (W / sigma(W)) + b`` on the last axis.

    Example:
      >>> layer = SNDense(64, use_bias=False)
      >>> y = layer(tf.random.normal([8, 128]), training=True)
    """

    def __init__(self, units, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.use_bias = bool(use_bias)

    def build(self, input_shape):
        self._build_kernel((int(input_shape[-1]), self.units))
        if self.use_bias:
            self.bias = self.add_weight("bias", shape=(self.units,), initializer="zeros")
        super().build(input_shape)

    def call(self, inputs, training=None):
        y = tf.tensordot(inputs, self.normalized_kernel(training), [[-1], [0]])
        return y + self.bias if self.use_bias else y

    def get_config(self):
        return {**super().get_config(), "units": self.units, "use_bias": self.use_bias}


@tf_keras.utils.register_keras_serializable(package="evonorm")
class SNConv2D(_SpectralKernel):
    """2-D convolution (NHWC, stride 1, 'SAME' padding) with a spectrally normalized kernel."""

    def __init__(self, filters, kernel_size, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.use_bias = bool(use_bias)

    def build(self, input_shape):
        k = self.kernel_size
        self._build_kernel((k, k, int(input_shape[-1]), self.filters))
        if self.use_bias:
            self.bias = self.add_weight("bias", shape=(self.filters,), initializer="zeros")
        super().build(input_shape)

    def call(self, inputs, training=None):
        y = tf.nn.conv2d(inputs, self.normalized_kernel(training), strides=1, padding="SAME")
        return tf.nn.bias_add(y, self.bias) if self.use_bias else y

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "use_bias": self.use_bias}


@tf_keras.utils.register_keras_serializable(package="evonorm")
class SNEmbedding(_SpectralKernel):
    """Embedding table ``W[y]`` with ``W`` (``[num_classes, dim]``) spectrally normalized.

    The largest singular value does not depend on which side is called the output, so this is the
    projection discriminator's ``SNEmbedding`` of BigGAN-PyTorch. ``spectral=False`` gives the plain
    table (BigGAN's shared class embedding in G is not normalized).
    """

    def __init__(self, num_classes, dim, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.dim = int(dim)

    def build(self, input_shape):
        self._build_kernel((self.num_classes, self.dim))
        super().build(input_shape)

    def call(self, labels, training=None):
        labels = tf.convert_to_tensor(labels)
        if labels.dtype.is_floating:
            raise TypeError(f"{type(self).__name__}: expects integer class labels, got {labels.dtype.name}.")
        return tf.gather(self.normalized_kernel(training), labels)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "dim": self.dim}

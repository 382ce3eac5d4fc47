"""The building blocks of BigGAN-deep (Brock, Donahue, Simonyan, ICLR 2019): bottleneck residual blocks
of the generator and the discriminator, and the non-local self-attention block.

Layouts follow the public references read for this project (``../shared/research/biggan.md`` 1.2-1.5):
compare_gan's ``resnet_biggan_deep.py`` (Google's re-implementation, whose test pins the parameter counts)
and BigGAN-PyTorch's ``BigGANdeep.py``. Every conv is spectrally normalized and orthogonally initialized.
The generator's four norm-acts per block come from the one seam (``ConditionalNormAct`` over
``create_norm_act``), so BN-ReLU, any EvoNorm or any baseline drops in.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras

from evonorm.layers.conditional import ConditionalNormAct
from evonorm.layers.spectral import SNConv2D


def upsample(x):
    """Nearest-neighbour x2 (BigGAN's generator)."""
    return tf.repeat(tf.repeat(x, 2, axis=1), 2, axis=2)


def downsample(x):
    """2x2 average pooling (BigGAN's discriminator)."""
    return tf.nn.avg_pool2d(x, 2, 2, "VALID")


class GeneratorBlock(tf_keras.layers.Layer):
    """cN-act, 1x1 (in -> b); cN-act, [up], 3x3; cN-act, 3x3; cN-act, 1x1 (b -> out); plus the skip.

    ``b = in // 4``. The skip keeps the first ``out`` channels of the input, then upsamples: no 1x1 conv
    (compare_gan ``BigGanDeepResNetBlock``, BigGAN-PyTorch ``GBlock``), so ``out <= in`` is required.
    """

    def __init__(self, in_channels, out_channels, up, norm, norm_kwargs=None, spectral_norm=True,
                 sn_epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        if out_channels > in_channels:
            raise ValueError(f"GeneratorBlock: out_channels ({out_channels}) > in_channels ({in_channels}); "
                             f"BigGAN-deep's generator skip only drops channels.")
        self.in_channels, self.out_channels, self.up = in_channels, out_channels, bool(up)
        b = in_channels // 4
        conv = dict(spectral=spectral_norm, sn_epsilon=sn_epsilon)
        cond = dict(norm=norm, norm_kwargs=norm_kwargs, spectral_norm=spectral_norm, sn_epsilon=sn_epsilon)
        self.norms = [ConditionalNormAct(name=f"cnorm{i}", **cond) for i in range(4)]
        self.convs = [SNConv2D(b, 1, name="conv0", **conv), SNConv2D(b, 3, name="conv1", **conv),
                      SNConv2D(b, 3, name="conv2", **conv), SNConv2D(out_channels, 1, name="conv3", **conv)]

    def call(self, inputs, training=None):
        x, c = inputs
        h = x
        for i, (norm, conv) in enumerate(zip(self.norms, self.convs)):
            h = norm((h, c), training=training)
            if i == 1 and self.up:
                h = upsample(h)
            h = conv(h, training=training)
        skip = x[..., :self.out_channels]
        if self.up:
            skip = upsample(skip)
        return h + skip


class DiscriminatorBlock(tf_keras.layers.Layer):
    """act, 1x1 (in -> b); act, 3x3; act, 3x3; act, [down], 1x1 (b -> out); plus the skip.

    ``b = out // 4``, no normalization (BigGAN's D has none). The skip average-pools, then, when
    ``out > in``, concatenates a learned 1x1 conv that supplies the missing ``out - in`` channels.
    """

    def __init__(self, in_channels, out_channels, down, spectral_norm=True, sn_epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.in_channels, self.out_channels, self.down = in_channels, out_channels, bool(down)
        b = out_channels // 4
        conv = dict(spectral=spectral_norm, sn_epsilon=sn_epsilon)
        self.convs = [SNConv2D(b, 1, name="conv0", **conv), SNConv2D(b, 3, name="conv1", **conv),
                      SNConv2D(b, 3, name="conv2", **conv), SNConv2D(out_channels, 1, name="conv3", **conv)]
        self.extra = (SNConv2D(out_channels - in_channels, 1, name="skip_conv", **conv)
                      if out_channels > in_channels else None)

    def call(self, x, training=None):
        h = x
        for i, conv in enumerate(self.convs):
            h = tf.nn.relu(h)
            if i == 3 and self.down:
                h = downsample(h)
            h = conv(h, training=training)
        skip = downsample(x) if self.down else x
        if self.extra is not None:
            skip = tf.concat([skip, self.extra(skip, training=training)], axis=-1)
        return h + skip


class SelfAttention(tf_keras.layers.Layer):
    """Non-local block of SA-GAN / BigGAN: ``x + sigma * o(softmax(theta phi^T) g)``.

    theta, phi: 1x1 convs to C/8; g: 1x1 to C/2; phi and g max-pooled 2x2; o: 1x1 C/2 -> C; all without
    bias and spectrally normalized; ``sigma`` a learned scalar initialized to 0, so the block starts as
    the identity.
    """

    def __init__(self, channels, spectral_norm=True, sn_epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        if channels % 8:
            raise ValueError(f"SelfAttention: channels ({channels}) must be divisible by 8.")
        self.channels = channels
        conv = dict(use_bias=False, spectral=spectral_norm, sn_epsilon=sn_epsilon)
        self.theta = SNConv2D(channels // 8, 1, name="theta", **conv)
        self.phi = SNConv2D(channels // 8, 1, name="phi", **conv)
        self.g = SNConv2D(channels // 2, 1, name="g", **conv)
        self.o = SNConv2D(channels, 1, name="o", **conv)

    def build(self, input_shape):
        self.sigma = self.add_weight("sigma", shape=(), initializer="zeros")
        super().build(input_shape)

    def call(self, x, training=None):
        shape = tf.shape(x)
        n = shape[1] * shape[2]
        theta = tf.reshape(self.theta(x, training=training), [shape[0], n, self.channels // 8])
        phi = tf.nn.max_pool2d(self.phi(x, training=training), 2, 2, "VALID")
        phi = tf.reshape(phi, [shape[0], n // 4, self.channels // 8])
        g = tf.nn.max_pool2d(self.g(x, training=training), 2, 2, "VALID")
        g = tf.reshape(g, [shape[0], n // 4, self.channels // 2])
        attention = tf.nn.softmax(tf.matmul(theta, phi, transpose_b=True), axis=-1)
        o = tf.reshape(tf.matmul(attention, g), [shape[0], shape[1], shape[2], self.channels // 2])
        return x + self.sigma * self.o(o, training=training)

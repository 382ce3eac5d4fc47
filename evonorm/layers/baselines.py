"""Baselines the paper compares EvoNorms against, under the same constructor contract.

BatchNorm and GroupNorm with ReLU or SiLU/Swish (Tables 3, 4, 8), Filter Response Normalization
(Table 4), LayerNorm-ReLU and PixelNorm-ReLU (Table 6), and the three searched reference layers of
Table 3: 'Random', 'Random + rej' and 'RS + rej'. Every layer ends with the channel-wise affine; the
"normalize then activate" layers apply their activation after it, as in the paper's expressions.
"""

from __future__ import annotations

import tensorflow as tf

from evonorm import ops
from evonorm.layers.base import NormActBase, smart_cond


class _ReLU:
    def _activation(self, z):
        return tf.nn.relu(z)


class _SiLU:
    """SiLU/Swish with a learnable per-channel slope: ``z * sigmoid(v1 * z)`` (paper Table 3)."""

    has_v1 = True

    def _activation(self, z):
        return ops.silu(z, self._param(self.v1))


class _BatchNorm(NormActBase):
    """BatchNorm over (b, w, h) with moving mean and variance; fused kernel where TensorFlow has one."""

    moving_stat = "moving_variance"

    def _create_variables(self, channels):
        super()._create_variables(channels)
        if not self.affine_only:
            self.moving_mean = self._add("moving_mean", channels, "zeros", trainable=False, moving=True)

    def _fusable(self, x):
        # The fused kernel is NHWC/NCHW rank 4 only and cannot all-reduce across replicas.
        return x.shape.rank == 4 and not self.synchronized

    def _forward(self, x, training):
        if self.affine_only:
            return super()._forward(x, training)
        z = smart_cond(training, lambda: self._train(x), lambda: self._infer(x))
        return self._activation(z) if self.apply_act else z

    def _train(self, x):
        if self._fusable(x):
            gamma, beta, after = self._kernel_affine()
            fmt = "NHWC" if self.data_format == ops.CHANNELS_LAST else "NCHW"
            y, mean, var = tf.compat.v1.nn.fused_batch_norm(
                x, tf.reshape(gamma, [-1]), tf.reshape(beta, [-1]), epsilon=self.epsilon,
                data_format=fmt, is_training=True)
            y = self._apply_affine(y, after)
            # The kernel returns the Bessel-corrected variance; keep the biased one, as every other
            # batch-dependent layer here does.
            n = tf.cast(tf.size(x) // tf.shape(x)[ops.channel_axis(4, self.data_format)], tf.float32)
            var = var * (n - 1.0) / tf.maximum(n, 1.0)
        else:
            mean, var = ops.batch_moments(x, self.data_format, self.synchronized)
            y = self._affine((x - self._bc(mean)) * tf.math.rsqrt(self._bc(var) + self.epsilon))
        self._update_moving(self.moving_mean, mean)
        self._update_moving(self.moving_variance, var)
        return y

    def _infer(self, x):
        mean = self._param(self.moving_mean)
        var = self._param(self.moving_variance)
        return self._affine((x - mean) * tf.math.rsqrt(var + self.epsilon))

    def _bc(self, v):
        return ops.broadcast_channels(v, self._rank, self.data_format)

    def _affine(self, y):
        gamma, beta = self._affine_params()
        return y * gamma + beta


class BNReLU(_ReLU, _BatchNorm):
    """BatchNorm followed by ReLU: ``max((x - mu_bwh) / sqrt(s2_bwh + eps) * gamma + beta, 0)``.

    Uses TensorFlow's fused batch-norm kernel (rank 4, not synchronized), so it runs at the speed of
    ``tf.keras.layers.BatchNormalization`` + ReLU. Variables: gamma, beta, moving_mean, moving_variance.
    """

    registry_name = "bn_relu"


class BNSiLU(_SiLU, _BatchNorm):
    """BatchNorm followed by SiLU/Swish ``z * sigmoid(v1 * z)`` with learnable per-channel v1 (Table 3)."""

    registry_name = "bn_silu"


class _GroupNorm(NormActBase):
    uses_groups = True

    def _normalize(self, x, training):
        return ops.group_norm(x, self.effective_groups, self.epsilon, self.data_format)


class GNReLU(_ReLU, _GroupNorm):
    """GroupNorm followed by ReLU: ``max((x - mu_{w,h,c/g}) / sqrt(s2_{w,h,c/g} + eps) * gamma + beta, 0)``.
    """

    registry_name = "gn_relu"


class GNSiLU(_SiLU, _GroupNorm):
    """GroupNorm followed by SiLU/Swish ``z * sigmoid(v1 * z)`` (paper Table 8)."""

    registry_name = "gn_silu"


class FRN(NormActBase):
    """Filter Response Normalization with its Thresholded Linear Unit (Singh & Krishnan, 2019).

    ``max(x / sqrt(mu_wh(x^2) + eps) * gamma + beta, tau)`` with a learned per-channel threshold
    ``tau`` (the paper's v0, init 0). Default epsilon 1e-6 as in the FRN paper.
    """

    registry_name = "frn"
    default_epsilon = 1e-6

    def _create_variables(self, channels):
        super()._create_variables(channels)
        if self.apply_act:
            self.tau = self._add("tau", channels, "zeros")

    def _normalize(self, x, training):
        return ops.frn(x, self.epsilon, self.data_format)

    def _activation(self, z):
        return tf.maximum(z, self._param(self.tau))


class LayerNormReLU(_ReLU, NormActBase):
    """LayerNorm over (w, h, c) per sample, per-channel affine, then ReLU (paper Table 6)."""

    registry_name = "ln_relu"

    def _normalize(self, x, training):
        return ops.group_norm(x, 1, self.epsilon, self.data_format)


class PixelNormReLU(_ReLU, NormActBase):
    """PixelNorm ``x / sqrt(mu_c(x^2) + eps)`` (Karras et al., 2018), per-channel affine, then ReLU."""

    registry_name = "pn_relu"

    def _normalize(self, x, training):
        return ops.pixel_norm(x, self.epsilon, self.data_format)


class RandomLayer(NormActBase):
    """Table 3 'Random': ``sign(z) sqrt(|z|) * gamma + beta``, ``z = sqrt(s2_wh(sigmoid(x)) + eps)``.

    A typical random member of the search space; trains to chance accuracy. Kept to reproduce Table 3.
    With ``apply_act=False`` it is the affine transform alone (the whole formula is the nonlinearity).
    """

    registry_name = "random"

    def _normalize(self, x, training):
        if not self.apply_act:
            return x
        z = ops.instance_std(tf.sigmoid(x), self.epsilon, self.data_format)
        return ops.signed_sqrt(tf.broadcast_to(z, tf.shape(x)))


class RandomRejLayer(NormActBase):
    """Table 3 'Random + rej': ``tanh(max(x, tanh(x))) * gamma + beta`` (found by random search with
    the rejection protocols; no normalization at all)."""

    registry_name = "random_rej"

    def _normalize(self, x, training):
        if not self.apply_act:
            return x
        return tf.tanh(tf.maximum(x, tf.tanh(x)))


class RSRejLayer(NormActBase):
    """Table 3 'RS + rej': ``max(x, 0) / sqrt(mu_bwh(x^2) + eps) * gamma + beta``.

    Batch-dependent: keeps ``moving_mean_square`` (mu_bwh(x^2), init 1) for inference.
    """

    registry_name = "rs_rej"
    moving_stat = "moving_mean_square"

    def _normalize(self, x, training):
        mean_square = self._batch_stat(
            x, training, lambda t: ops.batch_mean_square(t, self.data_format, self.synchronized))
        denom = tf.sqrt(mean_square + self.epsilon)
        return (tf.nn.relu(x) if self.apply_act else x) / denom


BASELINE_LAYERS = (BNReLU, BNSiLU, GNReLU, GNSiLU, FRN, LayerNormReLU, PixelNormReLU, RandomLayer,
                   RandomRejLayer, RSRejLayer)

"""Pure TensorFlow math of normalization-activation layers.

Every function here takes and returns plain tensors, so both Keras generations (the tf_keras layers
used by Model Garden and the Keras 3 front end) and the layer search share one implementation of each
formula. Shapes are channels-last by default; ``data_format='channels_first'`` is supported for the
aggregations. Statistics are always computed by the caller in float32 (see ``layers``).

Notation follows the paper (Liu et al., 2020, Table 2): ``b, w, h, c`` are the batch, spatial and
channel axes; ``mu_I`` is a mean over the index set ``I``; ``s2_I`` is the (biased) variance over ``I``.
"""

from __future__ import annotations

import tensorflow as tf

CHANNELS_LAST = "channels_last"
CHANNELS_FIRST = "channels_first"
DEFAULT_EPSILON = 1e-5
DEFAULT_GROUPS = 32


def channel_axis(rank: int, data_format: str = CHANNELS_LAST) -> int:
    """Index of the channel axis for a tensor of ``rank``."""
    return rank - 1 if data_format == CHANNELS_LAST else 1


def spatial_axes(rank: int, data_format: str = CHANNELS_LAST) -> list[int]:
    """Indices of the spatial axes (w, h, ...) for a tensor of ``rank``."""
    return list(range(1, rank - 1)) if data_format == CHANNELS_LAST else list(range(2, rank))


def batch_axes(rank: int, data_format: str = CHANNELS_LAST) -> list[int]:
    """Index set (b, w, h): everything but the channels."""
    return [0] + spatial_axes(rank, data_format)


def instance_axes(rank: int, data_format: str = CHANNELS_LAST) -> list[int]:
    """Index set (w, h, c): everything but the batch."""
    return list(range(1, rank))


def broadcast_channels(v: tf.Tensor, rank: int, data_format: str = CHANNELS_LAST) -> tf.Tensor:
    """Reshapes a per-channel vector so it broadcasts over the channel axis only.

    Channels-last tensors broadcast a ``[C]`` vector correctly on their own; channels-first ones need
    ``[C, 1, 1]``. Doing this in one place avoids the classic NHWC/NCHW broadcasting slip.
    """
    if data_format == CHANNELS_LAST:
        return v
    return tf.reshape(v, [-1] + [1] * (rank - 2))


def moments(x: tf.Tensor, axes, keepdims: bool = True):
    """Mean and biased variance over ``axes`` (two-pass, numerically safe)."""
    mean = tf.reduce_mean(x, axis=axes, keepdims=True)
    var = tf.reduce_mean(tf.math.squared_difference(x, tf.stop_gradient(mean)), axis=axes, keepdims=True)
    # The stop_gradient above is exact: d var / d mean is zero at the true mean.
    if not keepdims:
        mean = tf.squeeze(mean, axes)
        var = tf.squeeze(var, axes)
    return mean, var


def _grouped(x: tf.Tensor, groups: int, data_format: str):
    """Reshapes ``x`` so each group of channels gets its own axis; returns (xg, reduce_axes)."""
    rank = x.shape.rank
    shape = tf.shape(x)
    channels = x.shape[channel_axis(rank, data_format)]
    if data_format == CHANNELS_LAST:
        new_shape = tf.concat([shape[:-1], [groups, channels // groups]], axis=0)
        axes = list(range(1, rank - 1)) + [rank]
    else:
        new_shape = tf.concat([shape[:1], [groups, channels // groups], shape[2:]], axis=0)
        axes = list(range(2, rank + 1))
    return tf.reshape(x, new_shape), axes


def group_moments(x: tf.Tensor, groups: int, data_format: str = CHANNELS_LAST):
    """Mean and variance over (w, h, c/g), broadcast back to the shape of ``x``."""
    xg, axes = _grouped(x, groups, data_format)
    mean, var = moments(xg, axes)
    shape = tf.shape(x)
    xg_shape = tf.shape(xg)
    mean = tf.reshape(tf.broadcast_to(mean, xg_shape), shape)
    var = tf.reshape(tf.broadcast_to(var, xg_shape), shape)
    return mean, var


def group_reduce(x: tf.Tensor, groups: int, fn, data_format: str = CHANNELS_LAST) -> tf.Tensor:
    """Applies an elementwise-to-group map ``fn(xg, axes) -> stat`` and broadcasts it back to x."""
    xg, axes = _grouped(x, groups, data_format)
    stat = fn(xg, axes)
    return tf.reshape(tf.broadcast_to(stat, tf.shape(xg)), tf.shape(x))


def group_std(x: tf.Tensor, groups: int, epsilon: float, data_format: str = CHANNELS_LAST) -> tf.Tensor:
    """sqrt(s2_{w,h,c/g}(x) + eps), shaped like x."""
    return group_reduce(x, groups, lambda xg, axes: tf.sqrt(moments(xg, axes)[1] + epsilon), data_format)


def group_rms(x: tf.Tensor, groups: int, epsilon: float, data_format: str = CHANNELS_LAST) -> tf.Tensor:
    """sqrt(mu_{w,h,c/g}(x^2) + eps), shaped like x."""
    return group_reduce(
        x, groups, lambda xg, axes: tf.sqrt(tf.reduce_mean(tf.square(xg), axes, keepdims=True) + epsilon),
        data_format)


def instance_std(x: tf.Tensor, epsilon: float, data_format: str = CHANNELS_LAST) -> tf.Tensor:
    """sqrt(s2_{w,h}(x) + eps), one value per (sample, channel), broadcastable to x."""
    _, var = moments(x, spatial_axes(x.shape.rank, data_format))
    return tf.sqrt(var + epsilon)


def instance_rms(x: tf.Tensor, epsilon: float, data_format: str = CHANNELS_LAST) -> tf.Tensor:
    """sqrt(mu_{w,h}(x^2) + eps), broadcastable to x."""
    axes = spatial_axes(x.shape.rank, data_format)
    return tf.sqrt(tf.reduce_mean(tf.square(x), axes, keepdims=True) + epsilon)


def batch_moments(x: tf.Tensor, data_format: str = CHANNELS_LAST, synchronized: bool = False):
    """Per-channel mean and biased variance over (b, w, h), shaped ``[C]``.

    With ``synchronized=True`` inside a ``tf.distribute`` replica context, sums and counts are
    all-reduced so every replica sees the statistics of the global batch (cross-replica BatchNorm).
    """
    rank = x.shape.rank
    axes = batch_axes(rank, data_format)
    ctx = tf.distribute.get_replica_context() if synchronized else None
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return moments(x, axes, keepdims=False)
    local_sum = tf.reduce_sum(x, axis=axes)
    local_sq = tf.reduce_sum(tf.square(x), axis=axes)
    count = tf.cast(tf.reduce_prod(tf.gather(tf.shape(x), axes)), x.dtype)
    total_sum, total_sq, total_count = ctx.all_reduce(
        tf.distribute.ReduceOp.SUM, [local_sum, local_sq, count])
    mean = total_sum / total_count
    var = tf.maximum(total_sq / total_count - tf.square(mean), 0.0)
    return mean, var


def batch_mean_square(x: tf.Tensor, data_format: str = CHANNELS_LAST, synchronized: bool = False):
    """Per-channel mu_{b,w,h}(x^2), shaped ``[C]``, optionally all-reduced across replicas."""
    rank = x.shape.rank
    axes = batch_axes(rank, data_format)
    ctx = tf.distribute.get_replica_context() if synchronized else None
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return tf.reduce_mean(tf.square(x), axis=axes)
    local_sq = tf.reduce_sum(tf.square(x), axis=axes)
    count = tf.cast(tf.reduce_prod(tf.gather(tf.shape(x), axes)), x.dtype)
    total_sq, total_count = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [local_sq, count])
    return total_sq / total_count


def signed_sqrt(x: tf.Tensor) -> tf.Tensor:
    """sign(x) * sqrt(|x|), the paper's Sqrt primitive."""
    return tf.sign(x) * tf.sqrt(tf.abs(x))


def signed_log(x: tf.Tensor, epsilon: float = DEFAULT_EPSILON) -> tf.Tensor:
    """sign(x) * ln(|x|), the paper's Log primitive, with eps keeping it finite at 0."""
    return tf.sign(x) * tf.math.log(tf.abs(x) + epsilon)


def silu(x: tf.Tensor, v1=None) -> tf.Tensor:
    """x * sigmoid(v1 * x) (SiLU/Swish; v1 = 1 when omitted)."""
    return x * tf.sigmoid(x if v1 is None else v1 * x)


# ---------------------------------------------------------------------------------------------------
# The formulas of the paper, before the channel-wise affine transform. ``batch_std`` is
# sqrt(s2_{b,w,h}(x) + eps) per channel (from the batch in training, the moving variance in inference).
# ---------------------------------------------------------------------------------------------------


def evonorm_b0(x, v1, batch_std, epsilon, data_format=CHANNELS_LAST):
    """x / max(sqrt(s2_bwh(x)), v1 x + sqrt(s2_wh(x)))  (paper Table 1)."""
    return x / tf.maximum(batch_std, v1 * x + instance_std(x, epsilon, data_format))


def evonorm_b1(x, batch_std, epsilon, data_format=CHANNELS_LAST):
    """x / max(sqrt(s2_bwh(x)), (x + 1) sqrt(mu_wh(x^2)))  (paper Table 3)."""
    return x / tf.maximum(batch_std, (x + 1.0) * instance_rms(x, epsilon, data_format))


def evonorm_b2(x, batch_std, epsilon, data_format=CHANNELS_LAST):
    """x / max(sqrt(s2_bwh(x)), sqrt(mu_wh(x^2)) - x)  (paper Table 3)."""
    return x / tf.maximum(batch_std, instance_rms(x, epsilon, data_format) - x)


def evonorm_s0(x, v1, groups, epsilon, data_format=CHANNELS_LAST):
    """x sigmoid(v1 x) / sqrt(s2_{w,h,c/g}(x))  (paper Table 4)."""
    return silu(x, v1) / group_std(x, groups, epsilon, data_format)


def evonorm_s1(x, groups, epsilon, data_format=CHANNELS_LAST):
    """x sigmoid(x) / sqrt(s2_{w,h,c/g}(x))  (paper Table 4)."""
    return silu(x) / group_std(x, groups, epsilon, data_format)


def evonorm_s2(x, groups, epsilon, data_format=CHANNELS_LAST):
    """x sigmoid(x) / sqrt(mu_{w,h,c/g}(x^2))  (paper Table 4)."""
    return silu(x) / group_rms(x, groups, epsilon, data_format)


def group_norm(x, groups, epsilon, data_format=CHANNELS_LAST):
    """(x - mu_{w,h,c/g}(x)) / sqrt(s2_{w,h,c/g}(x) + eps)  (GroupNorm without its affine)."""
    def normalize(xg, axes):
        mean, var = moments(xg, axes)
        return (xg - mean) * tf.math.rsqrt(var + epsilon)
    xg, axes = _grouped(x, groups, data_format)
    return tf.reshape(normalize(xg, axes), tf.shape(x))


def pixel_norm(x, epsilon, data_format=CHANNELS_LAST):
    """x / sqrt(mu_c(x^2) + eps)  (PixelNorm, Karras et al. 2018: per pixel over channels)."""
    axis = channel_axis(x.shape.rank, data_format)
    return x * tf.math.rsqrt(tf.reduce_mean(tf.square(x), axis=axis, keepdims=True) + epsilon)


def frn(x, epsilon, data_format=CHANNELS_LAST):
    """x / sqrt(mu_wh(x^2) + eps)  (Filter Response Normalization, Singh & Krishnan 2019)."""
    return x / instance_rms(x, epsilon, data_format)

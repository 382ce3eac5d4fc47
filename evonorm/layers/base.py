"""The constructor contract and call logic shared by every normalization-activation layer.

``NormActBase`` is a plain mixin, not a Keras class: ``generations.py`` combines it with the ``Layer``
of each Keras generation (tf_keras for Model Garden, Keras 3 for plain ``tf.keras`` users), so one
implementation of the math and of the validation serves both.

Subclasses describe themselves with class attributes and implement ``_normalize`` (the formula before
the channel-wise affine) and, for "normalize then activate" baselines, ``_activation`` (after it).
"""

from __future__ import annotations

import threading

import tensorflow as tf

from evonorm import ops

NO_ACT_MODES = ("norm", "affine")
# The per-sample affine of a ``call_with_affine`` in progress, per thread and layer: MirroredStrategy runs
# its replicas in threads that share the layer objects, so this cannot live on the layer itself.
_CONDITION = threading.local()


def _conditions() -> dict:
    if not hasattr(_CONDITION, "by_layer"):
        _CONDITION.by_layer = {}
    return _CONDITION.by_layer


def smart_cond(pred, true_fn, false_fn):
    """Python branch for Python booleans (the common case), ``tf.cond`` for symbolic ones."""
    if pred is None or isinstance(pred, bool):
        return true_fn() if pred else false_fn()
    if isinstance(pred, (int,)):
        return true_fn() if pred else false_fn()
    static = tf.get_static_value(pred)
    if static is not None:
        return true_fn() if bool(static) else false_fn()
    return tf.cond(tf.cast(pred, tf.bool), true_fn, false_fn)


class NormActBase:
    """Shared behaviour of all norm-act layers (see the class docstrings of the concrete layers).

    Args:
      apply_act: when False, the layer drops its nonlinearity. What remains is chosen by
        ``no_act_mode``: ``'norm'`` (default) keeps the normalization (timm's semantics; e.g. BN-ReLU
        becomes BN, EvoNorm-S0 becomes x / group_std); ``'affine'`` keeps only ``x * gamma + beta``,
        which is what the authors' reference code does for ``nonlinearity=False``.
      groups: number of channel groups for grouped statistics (S series, GN). Mutually exclusive with
        ``group_size``. If both are None, 32 groups are used when the channels divide by 32, otherwise
        the largest divisor of the channel count below 32 (the reference code's rule, made explicit;
        the chosen value is exposed as ``effective_groups``). An explicit ``groups`` that does not
        divide the channels is an error.
      group_size: channels per group, alternative to ``groups``.
      epsilon: added to every variance / mean square inside the square root.
      momentum: moving-average decay for batch statistics (``moving = m * moving + (1 - m) * batch``).
      synchronized: for batch-dependent layers under ``tf.distribute``, compute batch statistics over
        the global batch (all replicas) instead of each replica's share.
      data_format: ``'channels_last'`` (NHWC, default) or ``'channels_first'``.
      zero_init: initialize ``gamma`` to zeros (the last norm of a residual branch, as the reference
        code's ``init_zero``).
      **kwargs: passed to the Keras ``Layer`` (``name``, ``dtype``, ``trainable``...).
    """

    registry_name: str = ""
    uses_groups = False
    has_v1 = False  # learnable per-channel v1 (init 1), present only when the activation is applied
    moving_stat = None  # name of a moving statistic kept for inference, e.g. 'moving_variance'
    default_epsilon = ops.DEFAULT_EPSILON
    # Set by ``ConditionalNormAct`` before build: the channel-wise affine then comes per sample from a
    # conditioning vector (``call_with_affine``) and the layer owns no gamma/beta variables.
    external_affine = False

    def __init__(self, apply_act=True, groups=None, group_size=None, epsilon=None, momentum=0.9,
                 synchronized=False, data_format=ops.CHANNELS_LAST, no_act_mode="norm", zero_init=False,
                 **kwargs):
        super().__init__(**kwargs)
        cls = type(self).__name__
        if groups is not None and group_size is not None:
            raise ValueError(f"{cls}: pass either groups={groups} or group_size={group_size}, not both.")
        for arg, value in (("groups", groups), ("group_size", group_size)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"{cls}: {arg} must be a positive integer, got {value!r}.")
        if data_format not in (ops.CHANNELS_LAST, ops.CHANNELS_FIRST):
            raise ValueError(f"{cls}: data_format must be 'channels_last' or 'channels_first', "
                             f"got {data_format!r}.")
        if no_act_mode not in NO_ACT_MODES:
            raise ValueError(f"{cls}: no_act_mode must be one of {NO_ACT_MODES}, got {no_act_mode!r}.")
        if not 0.0 <= float(momentum) <= 1.0:
            raise ValueError(f"{cls}: momentum must be in [0, 1], got {momentum!r}.")
        epsilon = self.default_epsilon if epsilon is None else float(epsilon)
        if epsilon < 0:
            raise ValueError(f"{cls}: epsilon must be >= 0, got {epsilon!r}.")
        self.apply_act = bool(apply_act)
        self.groups = groups
        self.group_size = group_size
        self.epsilon = epsilon
        self.momentum = float(momentum)
        self.synchronized = bool(synchronized)
        self.data_format = data_format
        self.no_act_mode = no_act_mode
        self.zero_init = bool(zero_init)
        self.effective_groups = None
        self._rank = None

    # -- build ------------------------------------------------------------------------------------

    @property
    def affine_only(self) -> bool:
        return not self.apply_act and self.no_act_mode == "affine"

    def _resolve_groups(self, channels: int) -> int:
        cls = type(self).__name__
        if self.group_size is not None:
            if channels % self.group_size:
                raise ValueError(f"{cls}: channels ({channels}) are not divisible by "
                                 f"group_size={self.group_size}.")
            return channels // self.group_size
        if self.groups is not None:
            if channels % self.groups:
                divisors = [d for d in range(1, channels + 1) if channels % d == 0]
                raise ValueError(f"{cls}: channels ({channels}) are not divisible by groups={self.groups}; "
                                 f"valid group counts are {divisors}, or pass group_size=...")
            return self.groups
        return max(d for d in range(1, min(ops.DEFAULT_GROUPS, channels) + 1) if channels % d == 0)

    def build(self, input_shape):
        cls = type(self).__name__
        shape = tf.TensorShape(input_shape)
        if shape.rank is None:
            raise ValueError(f"{cls}: input rank must be known (got shape {shape}).")
        if not 3 <= shape.rank <= 5:
            raise ValueError(f"{cls}: expects a rank-4 (batch, height, width, channels) input, or rank 3/5 "
                             f"with 1/3 spatial axes; got rank {shape.rank}, shape {shape}.")
        self._rank = shape.rank
        channels = shape[ops.channel_axis(shape.rank, self.data_format)]
        if channels is None:
            raise ValueError(f"{cls}: the channel dimension ({self.data_format}) must be known when the "
                             f"layer is built; got shape {shape}.")
        if self.uses_groups:
            self.effective_groups = self._resolve_groups(channels)
        self._create_variables(channels)
        super().build(input_shape)

    def _add(self, name, channels, init, trainable=True, moving=False):
        kwargs = dict(self._no_autocast_kwargs)
        if moving:
            kwargs.update(self._moving_kwargs)
        return self.add_weight(name=name, shape=(channels,), initializer=init, trainable=trainable, **kwargs)

    def _create_variables(self, channels):
        self._channels = channels
        if not self.external_affine:
            self.gamma = self._add("gamma", channels, "zeros" if self.zero_init else "ones")
            self.beta = self._add("beta", channels, "zeros")
        if self.has_v1 and self.apply_act:
            self.v1 = self._add("v1", channels, "ones")
        if self.moving_stat and not self.affine_only:
            setattr(self, self.moving_stat, self._add(self.moving_stat, channels, "ones", trainable=False,
                                                      moving=True))

    # -- call -------------------------------------------------------------------------------------

    def _param(self, variable):
        """A per-channel variable as float32, broadcastable over the channel axis only."""
        return ops.broadcast_channels(tf.cast(variable, tf.float32), self._rank, self.data_format)

    def _affine_params(self):
        """(gamma, beta) broadcastable to the input: the per-channel variables, or the per-sample
        ``[B, 1.., C]`` tensors given to ``call_with_affine``."""
        affine = _conditions().get(id(self))
        if affine is not None:
            return affine
        return self._param(self.gamma), self._param(self.beta)

    def _kernel_affine(self):
        """(gamma, beta) to hand a fused kernel (which takes per-channel ones), and the per-sample
        affine still to apply after it (None for an ordinary layer)."""
        affine = _conditions().get(id(self))
        if affine is None:
            return self._param(self.gamma), self._param(self.beta), None
        ones = self._param(tf.ones([self._channels]))
        return ones, ones * 0.0, affine

    @staticmethod
    def _apply_affine(y, affine):
        return y if affine is None else y * affine[0] + affine[1]

    def call_with_affine(self, inputs, gamma, beta, training=None):
        """The layer with a given per-sample affine in place of its own (class-conditional norms).

        ``gamma`` and ``beta`` are float32 tensors broadcastable to ``inputs`` (``[B, 1, 1, C]`` for
        NHWC images). They sit where the layer's own affine sits: before the activation of the
        "normalize then activate" baselines, at the very end of the EvoNorms.
        """
        conditions = _conditions()
        conditions[id(self)] = (gamma, beta)
        try:
            return self.call(inputs, training=training)
        finally:
            del conditions[id(self)]

    def call(self, inputs, training=None):
        cls = type(self).__name__
        x = tf.convert_to_tensor(inputs)
        if not x.dtype.is_floating:
            raise TypeError(f"{cls}: expects a floating-point input, got dtype {x.dtype.name}. "
                            f"Cast it first, e.g. tf.cast(x, tf.float32).")
        if x.shape.rank != self._rank:
            raise ValueError(f"{cls}: was built for rank-{self._rank} inputs, got shape {x.shape}.")
        out_dtype = x.dtype
        if x.dtype != tf.float32:  # statistics always in float32 (mixed precision safety)
            x = tf.cast(x, tf.float32)
        y = self._forward(x, training)
        return tf.cast(y, out_dtype) if out_dtype != tf.float32 else y

    def _forward(self, x, training):
        gamma, beta = self._affine_params()
        if self.affine_only:
            return x * gamma + beta
        z = self._normalize(x, training) * gamma + beta
        return self._activation(z) if self.apply_act else z

    def _normalize(self, x, training):  # pragma: no cover - abstract
        raise NotImplementedError

    def _activation(self, z):
        return z

    # -- batch statistics (B series) ---------------------------------------------------------------

    def _batch_stat(self, x, training, compute):
        """Batch statistic per channel in training (updating its moving average), moving one otherwise."""
        moving = getattr(self, self.moving_stat)

        def train():
            stat = compute(x)
            self._update_moving(moving, stat)
            return stat

        stat = smart_cond(training, train, lambda: tf.cast(tf.identity(moving), tf.float32))
        return ops.broadcast_channels(stat, self._rank, self.data_format)

    def _update_moving(self, moving, stat):
        """moving <- momentum * moving + (1 - momentum) * stat (no gradient through the update)."""
        decay = tf.constant(self.momentum, tf.float32)
        moving.assign(moving * decay + tf.stop_gradient(stat) * (1.0 - decay))

    def _batch_std(self, x, training):
        """sqrt(s2_{b,w,h}(x) + eps), broadcastable to x."""
        var = self._batch_stat(
            x, training, lambda t: ops.batch_moments(t, self.data_format, self.synchronized)[1])
        return tf.sqrt(var + self.epsilon)

    # -- serialization -----------------------------------------------------------------------------

    def get_config(self):
        config = super().get_config()
        config.update(apply_act=self.apply_act, groups=self.groups, group_size=self.group_size,
                      epsilon=self.epsilon, momentum=self.momentum, synchronized=self.synchronized,
                      data_format=self.data_format, no_act_mode=self.no_act_mode, zero_init=self.zero_init)
        return config

    def compute_output_shape(self, input_shape):
        return input_shape

"""The generator's exponential moving average and BigGAN's "standing statistics" for its norm layers.

BigGAN samples and is evaluated with an EMA of G's weights (decay 0.9999, started after 20k-40k steps; before
the start step the EMA simply copies G). Batch-dependent norms (BN-ReLU, EvoNorm-B0) keep moving statistics
that belong to G's *trajectory*, not to the averaged weights, so before sampling BigGAN recomputes them for
the weights being evaluated: "standing statistics" (research note ``biggan.md`` 1.3 and 2.4 item 8;
compare_gan re-accumulates its BN moments, BigGAN-PyTorch ``accumulate_standing_stats``). Layers without
moving statistics (EvoNorm-S0, GN, LN, PN) have nothing to recompute.

Usage::

    ema = GeneratorEMA(generator, ema_generator, decay=0.999, start_step=100)
    ema.update(step, strategy)                      # after each G update, inside the train tf.function
    standing_statistics(ema_generator, [(z, y) for ...])   # before evaluation
"""

from __future__ import annotations

import weakref

import numpy as np
import tensorflow as tf

_FORWARD = weakref.WeakKeyDictionary()  # generator -> its traced training-mode forward (momentum 0)


def moving_stat_layers(model) -> list:
    """The norm layers of ``model`` that keep moving statistics for inference (built ones only)."""
    return [m for m in model.submodules
            if getattr(m, "moving_stat", None) and getattr(m, m.moving_stat, None) is not None]


def moving_stat_variables(layer) -> list:
    """The moving statistics of one norm layer: the one named by ``layer.moving_stat`` (+ BN's mean)."""
    names = [layer.moving_stat] + (["moving_mean"] if layer.moving_stat != "moving_mean" else [])
    return [getattr(layer, n) for n in names if isinstance(getattr(layer, n, None), tf.Variable)]


class GeneratorEMA:
    """``ema = decay * ema + (1 - decay) * w`` over G's trainable weights; the rest is copied.

    Before ``start_step`` the EMA copies G outright (BigGAN's ``ema_start``: averaging the first, fast-moving
    weights only delays the EMA). Non-trainable variables (spectral-norm ``u`` vectors, moving statistics)
    are copied every step: they are not weights to average, and standing statistics replace the moving ones.

    Args:
      generator: the trained generator (built).
      ema_generator: a second generator built from the same config (built); holds the average.
      decay: EMA decay per update, e.g. 0.9999 (BigGAN) or 0.999 (short runs).
      start_step: the first step that averages instead of copying.
    """

    def __init__(self, generator, ema_generator, decay: float, start_step: int = 0):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay!r}.")
        self.generator, self.ema_generator = generator, ema_generator
        self.decay, self.start_step = float(decay), int(start_step)
        self.averaged = self._pairs(ema_generator.trainable_variables, generator.trainable_variables)
        self.copied = self._pairs(ema_generator.non_trainable_variables, generator.non_trainable_variables)

    @staticmethod
    def _pairs(targets, sources):
        if len(targets) != len(sources):
            raise ValueError(f"the EMA generator has {len(targets)} variables where the generator has "
                             f"{len(sources)}: build both from the same config (and call both once).")
        for t, s in zip(targets, sources):
            if t.shape != s.shape:
                raise ValueError(f"EMA variable {t.name} {t.shape} does not match {s.name} {s.shape}.")
        return list(zip(targets, sources))

    def copy(self, strategy=None) -> None:
        """Sets every EMA variable to G's value (used before ``start_step`` and at initialization)."""
        self._apply(lambda e, g: g, self.averaged + self.copied, strategy)

    def update(self, step, strategy=None) -> None:
        """One EMA step for global ``step`` (a tensor or int); call in cross-replica context.

        Works inside a ``tf.function``: the decay is ``0`` (a copy) while ``step < start_step``.
        """
        decay = tf.where(tf.cast(step, tf.int64) < self.start_step, 0.0, self.decay)
        self._apply(lambda e, g: decay * e + (1.0 - decay) * g, self.averaged, strategy)
        self._apply(lambda e, g: g, self.copied, strategy)

    @staticmethod
    def _apply(fn, pairs, strategy):
        strategy = strategy or tf.distribute.get_strategy()
        for target, source in pairs:
            # extended.update runs fn on each device with that device's copy of the mirrored source.
            strategy.extended.update(target, lambda t, s: t.assign(fn(t, tf.cast(s, t.dtype))),
                                     args=(source,))


def standing_statistics(generator, sample_batches, strategy=None) -> int:
    """Recomputes every moving statistic of ``generator`` for its current weights (BigGAN's standing stats).

    Runs the generator in training mode on each ``(z, y)`` of ``sample_batches`` and sets each moving
    statistic to the average of its per-batch statistics: the cumulative average BigGAN-PyTorch's
    ``accumulate_standing_stats`` gets with momentum ``k/(k+1)`` at batch ``k``. Here each layer's momentum
    is set to 0 (moving stat = this batch's stat) for one traced function, and the average is kept outside,
    so the function is traced once; momenta are restored afterwards, also on error. Outputs of training-mode
    calls use batch statistics only, so earlier batches do not influence later ones. Spectral-norm ``u``
    vectors advance by one power iteration per batch, as in BigGAN-PyTorch (a better estimate for the
    averaged weights, whose ``u`` was copied from G).

    Args:
      generator: a built generator with ``generator((z, y), training=True)``.
      sample_batches: iterable of ``(z, y)`` (NumPy or tensors); BigGAN-PyTorch uses 16 batches.
      strategy: when given, each batch runs through ``strategy.run`` (per-replica shares of ``z, y``
        from ``experimental_distribute_values_from_function``); synchronized norms then see the whole batch.

    Returns:
      The number of layers updated: 0 for generators without moving statistics (S0, GN, LN, PN), in which
      case nothing is run at all.
    """
    layers = moving_stat_layers(generator)
    if not layers:
        return 0
    variables = [v for layer in layers for v in moving_stat_variables(layer)]
    momenta = [layer.momentum for layer in layers]
    sums = [np.zeros(v.shape, np.float64) for v in variables]
    count = 0
    try:
        for layer in layers:
            layer.momentum = 0.0  # read when traced: the function below is traced with it
        forward = _FORWARD.get(generator)
        if forward is None:
            # Cached per generator: it only ever runs with momentum 0, so one trace serves every call.
            forward = _FORWARD[generator] = tf.function(lambda z, y: generator((z, y), training=True))

        for z, y in sample_batches:
            if strategy is None or strategy.num_replicas_in_sync == 1:
                forward(tf.convert_to_tensor(z, tf.float32), tf.convert_to_tensor(y, tf.int32))
            else:
                strategy.run(forward, args=split_batch(strategy, z, y))
            for i, v in enumerate(variables):
                sums[i] += v.numpy().astype(np.float64)  # ON_READ MEAN variables read as the replica mean
            count += 1
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    if not count:
        raise ValueError("standing_statistics needs at least one (z, y) batch.")
    for v, total in zip(variables, sums):
        v.assign((total / count).astype(v.dtype.as_numpy_dtype))
    return len(layers)


def split_batch(strategy, z, y):
    """Per-replica shares ``(z, y)`` (two PerReplica values) of one global NumPy ``(z, y)`` batch."""
    z, y = np.asarray(z, np.float32), np.asarray(y, np.int32)
    n = strategy.num_replicas_in_sync
    if len(z) % n:
        raise ValueError(f"a batch of {len(z)} does not split over {n} replicas.")
    share = len(z) // n

    def value(ctx):
        i = ctx.replica_id_in_sync_group
        return tf.constant(z[i * share:(i + 1) * share]), tf.constant(y[i * share:(i + 1) * share])

    return strategy.experimental_distribute_values_from_function(value)

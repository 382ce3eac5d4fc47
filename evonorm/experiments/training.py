"""A small, reusable SGD trainer for tf_keras classifiers: the main job, the search proxy and benchmarks.

What it does, following the authors' reference training code (tensorflow/tpu ``resnet_main.py``):

* SGD with momentum 0.9; cosine or step learning-rate decay after a linear warmup.
* L2 weight decay ``weight_decay * sum(l2_loss(w))`` added to the loss for convolution and dense
  kernels only. Variables of norm-act layers (``evonorm.layers.NormActBase``: gamma, beta, v1...) are
  never decayed, as the reference excludes EvoNorm and batch-norm variables; biases are not decayed.
* A ``tf.function`` train step without XLA (whole-model XLA is ~2x slower on CPU, see FACTS.md).
* A non-finite loss stops the run at once and marks it diverged, so a layer search can reject
  unstable candidates and a comparison can report them instead of crashing.

Usage::

    config = TrainConfig(steps=1000, base_lr=0.1, warmup_steps=100)
    history = train(model, train_ds, config, eval_ds=test_ds)
    print(history.final_eval_acc, history.diverged)
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable

import numpy as np
import tensorflow as tf
import tf_keras

from evonorm.layers import NormActBase

SCHEDULES = ("cosine", "step", "constant")
_KERNEL_ATTRS = ("kernel", "depthwise_kernel", "pointwise_kernel")


@dataclasses.dataclass
class TrainConfig:
    """Hyper-parameters of one training run.

    Attributes:
      steps: number of optimizer steps.
      base_lr: peak learning rate (reached at the end of warmup).
      momentum: SGD momentum.
      weight_decay: coefficient of the L2 penalty on conv/dense kernels.
      schedule: 'cosine' (to 0 at ``steps``), 'step' (x ``step_decay`` at each ``step_boundaries``
        fraction of ``steps``) or 'constant'.
      warmup_steps: linear warmup from 0 to ``base_lr``.
      step_boundaries: fractions of ``steps`` where the 'step' schedule decays.
      step_decay: factor applied at each boundary.
      label_smoothing: of the cross-entropy.
      eval_every: evaluate every this many steps (0: only at the end).
      log_every: call ``on_log`` every this many steps (and at the last step).
    """

    steps: int
    base_lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_steps: int = 0
    step_boundaries: tuple = (0.5, 0.75)
    step_decay: float = 0.1
    label_smoothing: float = 0.0
    eval_every: int = 0
    log_every: int = 50

    def __post_init__(self):
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be a positive integer, got {self.steps!r}.")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}.")
        for name in ("warmup_steps", "eval_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}.")
        if self.log_every < 1:
            raise ValueError(f"log_every must be >= 1, got {self.log_every!r}.")
        if self.base_lr <= 0 or self.weight_decay < 0:
            raise ValueError(f"need base_lr > 0 and weight_decay >= 0, got base_lr={self.base_lr}, "
                             f"weight_decay={self.weight_decay}.")


class WarmupDecay(tf_keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup to ``base_lr``, then cosine / step decay / constant (see ``TrainConfig``)."""

    def __init__(self, config: TrainConfig):
        self.config = config

    def __call__(self, step):
        c = self.config
        step = tf.cast(step, tf.float32)
        warmup = float(max(c.warmup_steps, 1))
        if c.schedule == "cosine":
            span = float(max(c.steps - c.warmup_steps, 1))
            progress = tf.clip_by_value((step - c.warmup_steps) / span, 0.0, 1.0)
            decayed = c.base_lr * 0.5 * (1.0 + tf.cos(math.pi * progress))
        elif c.schedule == "step":
            drops = tf.add_n([tf.cast(step >= int(b * c.steps), tf.float32) for b in c.step_boundaries]
                             or [tf.constant(0.0)])
            decayed = c.base_lr * tf.pow(c.step_decay, drops)
        else:
            decayed = tf.constant(c.base_lr, tf.float32)
        if c.warmup_steps:
            return tf.where(step < c.warmup_steps, c.base_lr * (step + 1.0) / warmup, decayed)
        return decayed

    def get_config(self):
        return dataclasses.asdict(self.config)


def decayed_variables(model) -> list:
    """The trainable conv/dense kernels of ``model`` that weight decay applies to.

    Variables of norm-act layers (``NormActBase``) are excluded even if a layer happened to name one
    'kernel'; biases and other variables are excluded because they are not kernels.
    """
    excluded = {id(v) for layer in model.submodules if isinstance(layer, NormActBase)
                for v in layer.weights}
    chosen, seen = [], set()
    for layer in [model] + list(model.submodules):
        if isinstance(layer, NormActBase):
            continue
        for attr in _KERNEL_ATTRS:
            var = getattr(layer, attr, None)
            if isinstance(var, tf.Variable) and var.trainable and id(var) not in excluded | seen:
                seen.add(id(var))
                chosen.append(var)
    return chosen


@dataclasses.dataclass
class TrainHistory:
    """What a run did. ``log`` and ``evals`` are lists of dicts; times are seconds."""

    steps: int
    completed_steps: int = 0
    diverged: bool = False
    diverged_at: int | None = None
    log: list = dataclasses.field(default_factory=list)
    evals: list = dataclasses.field(default_factory=list)
    final_train_loss: float | None = None
    final_train_acc: float | None = None
    final_eval_acc: float | None = None
    final_eval_loss: float | None = None
    steps_per_sec: float | None = None
    train_time_s: float = 0.0
    eval_time_s: float = 0.0
    wall_time_s: float = 0.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def evaluate(model, dataset) -> tuple:
    """``(accuracy, mean cross-entropy)`` of ``model`` (inference mode) over a finite dataset."""
    correct, total, loss_sum = 0, 0, 0.0
    predict = _predict_fn(model)
    for images, labels in dataset:
        batch_correct, batch_loss = predict(images, labels)
        correct += int(batch_correct)
        loss_sum += float(batch_loss)
        total += int(labels.shape[0])
    if total == 0:
        raise ValueError("evaluation dataset is empty.")
    return correct / total, loss_sum / total


def _predict_fn(model):
    # Cached on the model so repeated evaluations reuse one trace.
    fn = getattr(model, "_evonorm_eval_fn", None)
    if fn is None:
        @tf.function
        def fn(images, labels):
            logits = model(images, training=False)
            labels = tf.cast(labels, tf.int32)
            hits = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels),
                                         tf.int32))
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, tf.cast(logits, tf.float32))
            return hits, tf.reduce_sum(losses)
        model._evonorm_eval_fn = fn
    return fn


def _train_step_fn(model, optimizer, config: TrainConfig):
    decayed = decayed_variables(model)
    loss_obj = tf_keras.losses.CategoricalCrossentropy(from_logits=True,
                                                       label_smoothing=config.label_smoothing)
    num_classes = int(model.output_shape[-1])

    @tf.function
    def step(images, labels):
        labels = tf.cast(labels, tf.int32)
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            xent = loss_obj(tf.one_hot(labels, num_classes), logits)
            penalty = tf.add_n([tf.nn.l2_loss(v) for v in decayed]) if decayed else 0.0
            loss = xent + config.weight_decay * penalty
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels),
                                     tf.float32))
        return xent, acc

    return step


class MomentumSGD:
    """SGD with momentum: exactly the update of ``tf_keras.optimizers.SGD(schedule, momentum)``.

    ``m <- -lr * g + m * momentum; w <- w + m`` with ``lr = schedule(iterations)`` taken before the
    step, then ``iterations += 1`` -- the same ops in the same order, so the weights are bit-identical
    (``tests/experiments/test_trainer.py``). What it leaves out is Keras's per-variable optimizer
    machinery (distribution merge calls, gradient filtering, clipping and decay hooks, slot
    bookkeeping), which made tracing the train step take about twice as long
    (``official/results/search/throughput.md``); the layer search traces a new step for every candidate.

    Args:
      schedule: a callable ``step -> learning rate`` (e.g. :class:`WarmupDecay`) or a float.
      momentum: the momentum coefficient.
      variables: the variables it will update (their momentum slots are created now, eagerly).
    """

    def __init__(self, schedule, momentum: float, variables):
        self.schedule = schedule
        self.momentum = float(momentum)
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
        self._slots = {id(v): tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False, name="momentum")
                       for v in variables}

    @property
    def variables(self) -> list:
        """The step counter and every momentum slot."""
        return [self.iterations, *self._slots.values()]

    def apply_gradients(self, grads_and_vars):
        lr_value = self.schedule(self.iterations) if callable(self.schedule) else self.schedule
        for grad, var in grads_and_vars:
            if grad is None:
                continue
            if isinstance(grad, tf.IndexedSlices):
                grad = tf.convert_to_tensor(grad)
            slot = self._slots.get(id(var))
            if slot is None:
                raise ValueError(f"MomentumSGD was not built for variable {var.name}")
            lr = tf.cast(lr_value, var.dtype)
            slot.assign(-grad * lr + slot * tf.cast(self.momentum, var.dtype))
            var.assign_add(slot)
        return self.iterations.assign_add(1)


class Trainer:
    """The schedule, optimizer and traced train step of one model, reusable across runs.

    ``train(..., trainer=Trainer(model, config))`` trains with them after :meth:`reset` (step 0, zero
    momentum), so a caller that trains one model several times from fresh weights traces the step
    once. ``optimizer='keras'`` uses ``tf_keras.optimizers.SGD`` instead of :class:`MomentumSGD` (the
    same weights, a slower trace; the search's throughput benchmark uses it as its baseline).
    """

    def __init__(self, model, config: TrainConfig, optimizer: str = "lean"):
        if optimizer not in ("lean", "keras"):
            raise ValueError(f"Trainer optimizer must be 'lean' (MomentumSGD) or 'keras', got {optimizer!r}")
        self.model, self.config = model, config
        self.schedule = WarmupDecay(config)
        self.optimizer = (MomentumSGD(self.schedule, config.momentum, model.trainable_variables)
                          if optimizer == "lean" else
                          tf_keras.optimizers.SGD(learning_rate=self.schedule, momentum=config.momentum))
        self.step_fn = _train_step_fn(model, self.optimizer, config)

    def reset(self) -> None:
        """Step counter and momentum back to zero."""
        for var in self.optimizer.variables:
            var.assign(tf.zeros_like(var))


def train(model, train_data, config: TrainConfig, eval_data=None,
          on_log: Callable[[dict], None] | None = None,
          on_eval: Callable[[dict], None] | None = None,
          on_step: Callable[[int, float], bool] | None = None,
          trainer: Trainer | None = None) -> TrainHistory:
    """Trains ``model`` in place for ``config.steps`` steps.

    Args:
      model: a tf_keras model returning logits ``[batch, classes]``.
      train_data: a ``tf.data.Dataset`` (or any iterable) of ``(images, integer labels)`` batches with
        at least ``config.steps`` batches (repeat it).
      config: the ``TrainConfig``.
      eval_data: a finite dataset evaluated every ``config.eval_every`` steps and at the end, or None.
      on_log: called with ``{step, loss, train_acc, lr, steps_per_sec, elapsed_s}`` every
        ``config.log_every`` steps (loss and accuracy are means over the window).
      on_eval: called with ``{step, eval_acc, eval_loss}`` after each evaluation.
      on_step: called after every finite step with ``(step, training cross-entropy of that batch)``;
        a true return stops the run after that step (``completed_steps`` says where; no final
        ``on_log`` record is written for a stopped run, and the final evaluation still runs). The
        layer search's quality-test hurdle uses it. None (the default) changes nothing.
      trainer: a :class:`Trainer` of this model and config to reuse (reset first); None builds one.

    Returns:
      A ``TrainHistory``. A non-finite training loss stops the run with ``diverged=True``.
    """
    start = time.perf_counter()
    history = TrainHistory(steps=config.steps)
    if trainer is None:
        trainer = Trainer(model, config)
    elif trainer.model is not model or trainer.config != config:
        raise ValueError("train(trainer=...) needs a Trainer built for this model and this TrainConfig")
    else:
        trainer.reset()
    schedule, step_fn = trainer.schedule, trainer.step_fn
    iterator = iter(train_data)
    window_loss, window_acc = [], []
    train_time, first_step_time = 0.0, 0.0

    def run_eval(step):
        t0 = time.perf_counter()
        acc, loss = evaluate(model, eval_data)
        history.eval_time_s += time.perf_counter() - t0
        record = {"step": step, "eval_acc": acc, "eval_loss": loss}
        history.evals.append(record)
        if on_eval:
            on_eval(record)
        return acc, loss

    for step in range(1, config.steps + 1):
        try:
            images, labels = next(iterator)
        except StopIteration as err:
            raise ValueError(f"train_data ran out after {step - 1} of {config.steps} steps; "
                             f"repeat the dataset.") from err
        t0 = time.perf_counter()
        loss, acc = step_fn(images, labels)
        loss, acc = float(loss), float(acc)  # synchronizes: timing covers the whole step
        elapsed = time.perf_counter() - t0
        train_time += elapsed
        if step == 1:
            first_step_time = elapsed  # tracing, excluded from the rate
        history.completed_steps = step
        if not np.isfinite(loss):
            history.diverged, history.diverged_at = True, step
            break
        window_loss.append(loss)
        window_acc.append(acc)
        if step % config.log_every == 0 or step == config.steps:
            rate = (step - 1) / (train_time - first_step_time) if step > 1 else None
            record = {"step": step, "loss": float(np.mean(window_loss)),
                      "train_acc": float(np.mean(window_acc)),
                      "lr": float(schedule(step - 1)), "steps_per_sec": rate,
                      "elapsed_s": time.perf_counter() - start}
            history.log.append(record)
            history.final_train_loss, history.final_train_acc = record["loss"], record["train_acc"]
            window_loss, window_acc = [], []
            if on_log:
                on_log(record)
        if eval_data is not None and config.eval_every and step % config.eval_every == 0 \
                and step != config.steps:
            run_eval(step)
        if on_step is not None and on_step(step, loss):
            break

    history.train_time_s = train_time
    done = history.completed_steps
    if done > 1 and train_time > first_step_time:
        history.steps_per_sec = (done - 1) / (train_time - first_step_time)
    if eval_data is not None and not history.diverged:
        history.final_eval_acc, history.final_eval_loss = run_eval(done)
    history.wall_time_s = time.perf_counter() - start
    return history

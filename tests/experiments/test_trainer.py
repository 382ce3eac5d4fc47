"""The reusable trainer: weight-decay selection, schedules, learning, divergence stop."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from evonorm.experiments import training
from evonorm.layers import legacy
from evonorm.vision.cifar_resnet import build_preact_resnet


def test_weight_decay_skips_norm_act_variables_and_biases():
    model = build_preact_resnet(depth=8, norm_act="evonorm_b0", input_shape=(8, 8, 1), width=8)
    decayed = training.decayed_variables(model)
    # stem + 6 block convs + 2 projections + dense kernel; no gamma/beta/v1, no dense bias.
    assert len(decayed) == 10
    names = [v.name for v in decayed]
    assert all("kernel" in n for n in names), names
    norm_vars = {id(v) for layer in model.submodules if isinstance(layer, legacy.EvoNormB0)
                 for v in layer.weights}
    assert norm_vars and not norm_vars & {id(v) for v in decayed}


def _lr(config, step):
    return float(training.WarmupDecay(config)(step))


def test_schedules():
    cosine = training.TrainConfig(steps=100, base_lr=0.4, warmup_steps=10)
    assert _lr(cosine, 0) == pytest.approx(0.04)
    assert _lr(cosine, 9) == pytest.approx(0.4)
    assert _lr(cosine, 10) == pytest.approx(0.4)
    assert _lr(cosine, 55) == pytest.approx(0.2)
    assert _lr(cosine, 100) == pytest.approx(0.0, abs=1e-7)
    step = training.TrainConfig(steps=100, base_lr=1.0, schedule="step", step_boundaries=(0.5, 0.75))
    assert [_lr(step, s) for s in (0, 49, 50, 74, 75, 99)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


@pytest.mark.parametrize("kwargs, match", [
    ({"steps": 0}, "steps"), ({"steps": 10, "schedule": "linear"}, "schedule"),
    ({"steps": 10, "log_every": 0}, "log_every"), ({"steps": 10, "base_lr": 0.0}, "base_lr"),
])
def test_bad_config_is_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        training.TrainConfig(**kwargs)


def _toy_data(rng, n=256):
    # Unit-test data only: the class is which image half is brighter, learnable in a few steps.
    y = rng.integers(0, 2, n)
    x = rng.normal(0, 0.3, (n, 8, 8, 1)).astype("float32")
    x[y == 0, :4] += 1.0
    x[y == 1, 4:] += 1.0
    return x, y


def _small_model():
    tf_keras.utils.set_random_seed(0)
    return build_preact_resnet(depth=8, norm_act="bn_relu", input_shape=(8, 8, 1), num_classes=2, width=4)


def test_training_learns_and_reports_history(rng):
    x, y = _toy_data(rng)
    train_ds = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(32)
    eval_ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
    logs, evals = [], []
    config = training.TrainConfig(steps=40, base_lr=0.05, warmup_steps=4, eval_every=20, log_every=10)
    history = training.train(_small_model(), train_ds, config, eval_data=eval_ds,
                             on_log=logs.append, on_eval=evals.append)
    assert not history.diverged and history.completed_steps == 40
    assert [r["step"] for r in logs] == [10, 20, 30, 40] and [r["step"] for r in evals] == [20, 40]
    assert logs[-1]["loss"] < logs[0]["loss"]
    assert history.final_eval_acc > 0.9
    assert history.steps_per_sec > 0 and history.wall_time_s >= history.train_time_s > 0
    assert history.to_dict()["evals"] == evals


def test_non_finite_loss_stops_the_run_as_diverged(rng):
    # A learning rate near the float32 limit overflows a linear classifier in a step or two. (All-NaN
    # inputs would not do: in the traced train step of the ResNet the loss stayed finite (ln 2) on
    # this CPU although an eager forward gives NaN; divergence is provoked through the weights.)
    x, y = _toy_data(rng, 64)
    train_ds = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(32)
    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential([tf_keras.Input((8, 8, 1)), tf_keras.layers.Flatten(),
                                 tf_keras.layers.Dense(2)])
    config = training.TrainConfig(steps=50, base_lr=1e38, weight_decay=0.0, log_every=5)
    history = training.train(model, train_ds, config, eval_data=train_ds.take(1))
    assert history.diverged and history.diverged_at is not None and history.diverged_at < 50
    assert history.completed_steps == history.diverged_at
    assert history.final_eval_acc is None


def test_short_dataset_is_an_error(rng):
    x, y = _toy_data(rng, 32)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    with pytest.raises(ValueError, match="ran out after 1 of 5 steps"):
        training.train(_small_model(), ds, training.TrainConfig(steps=5))


def _weights_after_steps(optimizer_kind, steps=12):
    tf_keras.backend.clear_session()
    tf_keras.utils.set_random_seed(3)
    model = _small_model()
    config = training.TrainConfig(steps=steps, base_lr=0.2, warmup_steps=3, schedule="cosine")
    schedule = training.WarmupDecay(config)
    if optimizer_kind == "keras":
        optimizer = tf_keras.optimizers.SGD(learning_rate=schedule, momentum=config.momentum)
    else:
        optimizer = training.MomentumSGD(schedule, config.momentum, model.trainable_variables)
    step = training._train_step_fn(model, optimizer, config)  # noqa: SLF001
    x, y = _toy_data(np.random.default_rng(5), n=64)
    for _ in range(steps):
        step(tf.constant(x), tf.constant(y))
    return [w.copy() for w in model.get_weights()], int(optimizer.iterations.numpy())


def test_momentum_sgd_is_bit_identical_to_keras_sgd():
    keras_weights, keras_steps = _weights_after_steps("keras")
    lean_weights, lean_steps = _weights_after_steps("lean")
    assert keras_steps == lean_steps == 12
    for a, b in zip(keras_weights, lean_weights):
        np.testing.assert_array_equal(a, b)


def test_trainer_reuses_one_traced_step_and_resets_between_runs(rng):
    tf_keras.backend.clear_session()
    model = _small_model()
    config = training.TrainConfig(steps=5, base_lr=0.1, log_every=5)
    trainer = training.Trainer(model, config)
    initial = model.get_weights()
    x, y = _toy_data(rng, n=80)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16).repeat()
    first = training.train(model, ds, config, trainer=trainer)
    after_first = model.get_weights()
    model.set_weights(initial)
    second = training.train(model, ds, config, trainer=trainer)
    assert int(trainer.optimizer.iterations.numpy()) == 5  # reset, not 10
    for a, b in zip(after_first, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # same start, same batches, zeroed momentum: same run
    assert first.final_train_loss == second.final_train_loss
    assert trainer.step_fn.experimental_get_tracing_count() == 1
    with pytest.raises(ValueError, match="Trainer built for this model"):
        training.train(_small_model(), ds, config, trainer=trainer)

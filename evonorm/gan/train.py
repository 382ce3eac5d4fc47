"""The BigGAN-deep training loop: hinge loss, D steps per G step, EMA generator, checkpoints, metrics.

``train_and_evaluate(config, workdir, strategy)`` trains a :class:`~evonorm.gan.configs.GANConfig` under
any ``tf.distribute`` strategy of :mod:`evonorm.distribute` and writes, under ``workdir``::

    config.json          the config (a rerun must match it, except the loop fields RESUMABLE_FIELDS)
    checkpoints/         G, D, G_ema, both Adam states, the step and the noise generator (resumable)
    tensorboard/         d_loss, g_loss, D(x), D(G(z)), steps/s, metrics, sample grids
    metrics.json         a list of evaluation records (step, is, is_std, fid, kid, ..., feature_network)
    best_metrics.json    the record with the lowest FID; best/ holds that step's G_ema weights
    samples/step_XXXXXX.png   a grid of G_ema samples, one row per class, fixed z
    summary.json         what train_and_evaluate returns

Each train step (one ``tf.function``) runs ``d_steps_per_g_step`` D updates, each on its own real batch,
then one G update, then the EMA update, all through ``strategy.run``. Under several replicas the batch-
dependent norms (BN, EvoNorm-B0) get ``synchronized=True``, so their statistics are those of the global
batch, as BigGAN's cross-replica BN. Evaluation recomputes G_ema's moving statistics first (standing
statistics, :mod:`evonorm.gan.ema`). Only the chief writes files.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time

import numpy as np
import tensorflow as tf
import tf_keras

from evonorm import distribute
from evonorm.data import gan_data
from evonorm.gan import biggan, configs, ema, losses
from evonorm.gan.errors import GANError
from evonorm.gan.evaluation import Evaluator, best_record, generate_samples, save_grid, to_uint8
from evonorm.search.progress import format_duration  # stdlib only: no search machinery




@dataclasses.dataclass
class Run:
    """Everything a loaded run holds: models, optimizers, step, checkpointing."""

    config: configs.GANConfig
    strategy: object
    generator: object
    discriminator: object
    generator_ema: object
    g_opt: object
    d_opt: object
    step: object
    noise: object
    ema: ema.GeneratorEMA
    checkpoint: object
    manager: object
    chief: bool
    functions: dict = dataclasses.field(default_factory=dict)  # traced helpers, reused across evaluations


def model_config_for(config: configs.GANConfig, strategy) -> biggan.BigGANConfig:
    """The model config to build: ``synchronized=True`` for batch-dependent norms over several replicas."""
    from evonorm.layers import registry  # noqa: PLC0415

    model = config.model
    batch_dependent = getattr(registry.get_norm_act_class(model.norm, "tf_keras"), "moving_stat", None)
    if strategy.num_replicas_in_sync > 1 and batch_dependent:
        model = dataclasses.replace(model, norm_kwargs={**model.norm_kwargs, "synchronized": True})
    return model


def _adam(config, lr):
    return tf_keras.optimizers.Adam(learning_rate=lr, beta_1=config.beta1, beta_2=config.beta2,
                                    epsilon=config.adam_eps)


def load_run(config: configs.GANConfig, workdir: str, strategy=None, restore: bool = True) -> Run:
    """Builds G, D, G_ema and the optimizers under ``strategy`` and restores the latest checkpoint.

    Returns the :class:`Run`; ``run.step`` is the restored step (0 on a fresh start, G_ema = G then).
    """
    strategy = strategy or tf.distribute.get_strategy()
    chief = distribute.is_chief(strategy)
    model_cfg = model_config_for(config, strategy)
    with strategy.scope():
        generator, discriminator = biggan.Generator(model_cfg), biggan.Discriminator(model_cfg)
        generator_ema = biggan.Generator(model_cfg, name="generator_ema")
        z = tf.zeros([2, model_cfg.z_dim])
        y = tf.zeros([2], tf.int32)
        discriminator((generator((z, y), training=False), y), training=False)
        generator_ema((z, y), training=False)
        g_opt, d_opt = _adam(config, config.g_lr), _adam(config, config.d_lr)
        g_opt.build(generator.trainable_variables)
        d_opt.build(discriminator.trainable_variables)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step",
                           aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        noise = tf.random.Generator.from_seed(config.seed)
    averager = ema.GeneratorEMA(generator, generator_ema, config.ema_decay, config.ema_start_step)
    checkpoint = tf.train.Checkpoint(generator=generator, discriminator=discriminator,
                                     generator_ema=generator_ema, g_optimizer=g_opt, d_optimizer=d_opt,
                                     step=step, noise=noise)
    # Non-chief workers must still take part in saving; they write to a scratch directory.
    directory = os.path.join(workdir, "checkpoints") if chief else tempfile.mkdtemp(prefix="gan_worker_")
    manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=3)
    if restore and manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    else:
        averager.copy(strategy)
    return Run(config, strategy, generator, discriminator, generator_ema, g_opt, d_opt, step, noise,
               averager, checkpoint, manager, chief)


def check_workdir_config(config: configs.GANConfig, workdir: str, write: bool) -> bool:
    """Compares ``config`` with ``workdir/config.json``; raises :class:`GANError` naming the differences.

    Loop fields (``configs.RESUMABLE_FIELDS``: train_steps, eval_every...) may differ. With ``write``
    (the chief) the requested config is then saved there. Returns whether a saved config existed.
    """
    path = os.path.join(workdir, "config.json")
    requested = json.loads(json.dumps(config.to_dict()))
    existed = tf.io.gfile.exists(path)
    if existed:
        with tf.io.gfile.GFile(path) as f:
            saved = json.load(f)
        diffs = configs.config_differences(saved, requested)
        if diffs:
            raise GANError(f"{workdir} holds a run of a different config, so it cannot be resumed; "
                           f"differing fields (saved -> requested): {'; '.join(diffs)}. Use a new "
                           f"--workdir, or the saved config's values.")
    if write:
        tf.io.gfile.makedirs(workdir)
        with tf.io.gfile.GFile(path, "w") as f:
            f.write(json.dumps(requested, indent=1))
    return existed


def make_train_step(run: Run):
    """The ``tf.function`` ``train_step(iterator) -> dict of global scalars`` (see the module docstring)."""
    cfg, strategy = run.config, run.strategy
    global_batch = cfg.global_batch_size
    replica_batch = global_batch // strategy.num_replicas_in_sync
    z_dim, classes = cfg.model.z_dim, cfg.model.num_classes
    G, D = run.generator, run.discriminator

    def sample_noise():
        z = run.noise.normal([replica_batch, z_dim])
        y = run.noise.uniform([replica_batch], minval=0, maxval=classes, dtype=tf.int32)
        return z, y

    def d_step(images, labels):
        z, y_fake = sample_noise()
        fake = G((z, y_fake), training=True)
        with tf.GradientTape() as tape:
            # One D call on real and fake together: one spectral-norm power iteration per D step.
            logits = D((tf.concat([images, fake], 0), tf.concat([labels, y_fake], 0)), training=True)
            real_logits, fake_logits = logits[:replica_batch], logits[replica_batch:]
            loss = losses.discriminator_hinge_loss(real_logits, fake_logits, global_batch)
        grads = tape.gradient(loss, D.trainable_variables)
        run.d_opt.apply_gradients(zip(grads, D.trainable_variables))
        return {"d_loss": loss,
                "d_real": tf.nn.compute_average_loss(real_logits, global_batch_size=global_batch),
                "d_fake": tf.nn.compute_average_loss(fake_logits, global_batch_size=global_batch)}

    def g_step():
        z, y = sample_noise()
        out = {}
        with tf.GradientTape() as tape:
            fake_logits = D((G((z, y), training=True), y), training=True)
            loss = out["g_loss"] = losses.generator_hinge_loss(fake_logits, global_batch)
            if cfg.g_ortho_reg:
                # Same value on every replica: divide so the summed gradient counts it once.
                out["g_ortho"] = losses.orthogonal_regularization(
                    losses.generator_kernels(G), cfg.g_ortho_reg) / strategy.num_replicas_in_sync
                loss += out["g_ortho"]
        grads = tape.gradient(loss, G.trainable_variables)
        run.g_opt.apply_gradients(zip(grads, G.trainable_variables))
        return out

    @tf.function
    def train_step(iterator):
        out = {}
        for _ in range(cfg.d_steps_per_g_step):
            out = strategy.run(d_step, args=next(iterator))
        out.update(strategy.run(g_step))
        run.step.assign_add(1)
        run.ema.update(run.step, strategy)
        return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in out.items()}

    return train_step


def _train_loop(run: Run, evaluator, train_step, iterator, writer):
    """Steps from ``run.step`` to ``train_steps``: summaries, progress lines, checkpoints, evaluations.

    Returns ``(final step, last logs, seconds spent training)``.
    """
    config = run.config
    step = start = int(run.step.numpy())
    total, logs = config.train_steps, {}
    last_time, last_step, train_seconds = time.time(), start, 0.0
    while step < total:
        logs = train_step(iterator)
        step += 1
        if step % config.summary_every == 0 or step == total:
            logs = {k: float(v) for k, v in logs.items()}
            if not all(np.isfinite(v) for v in logs.values()):
                raise GANError(f"non-finite loss at step {step}: {logs}; lower the learning rates.")
            elapsed = time.time() - last_time
            train_seconds += elapsed
            rate = (step - last_step) / max(elapsed, 1e-9)
            last_time, last_step = time.time(), step
            with writer.as_default(step=step):
                for key, value in logs.items():
                    tf.summary.scalar(f"train/{key}", value)
                tf.summary.scalar("train/steps_per_s", rate)
            print(f"step {step}/{total} ({100.0 * step / total:.1f}%)  d_loss {logs['d_loss']:.4f}  "
                  f"g_loss {logs['g_loss']:.4f}  D(x) {logs['d_real']:+.3f}  D(G(z)) {logs['d_fake']:+.3f}  "
                  f"{rate:.2f} steps/s  ETA {format_duration((total - step) / max(rate, 1e-9))}", flush=True)
        if step % config.checkpoint_every == 0 or step == total:
            run.manager.save(checkpoint_number=step)
        if step % config.eval_every == 0 or step == total:
            evaluator.evaluate(run, step, writer)
            last_time = time.time()  # evaluation time is not training time
    return step, {k: float(v) for k, v in logs.items()}, train_seconds


def train_and_evaluate(config: configs.GANConfig, workdir: str, strategy=None) -> dict:
    """Trains to ``config.train_steps`` (resuming from ``workdir``), evaluating as configured.

    Returns:
      A summary dict: start/final step, whether it resumed, steps/s, last losses, last and best metrics.

    Raises:
      GANError: the workdir holds a different config, or the data / feature network is missing.
    """
    strategy = strategy or tf.distribute.get_strategy()
    chief = distribute.is_chief(strategy)
    if config.global_batch_size % strategy.num_replicas_in_sync:
        raise GANError(f"global_batch_size {config.global_batch_size} does not split over "
                       f"{strategy.num_replicas_in_sync} replicas.")
    check_workdir_config(config, workdir, write=chief)
    evaluator = Evaluator(config, workdir, chief)  # fails fast on a bad feature network
    try:
        dataset = gan_data.distributed_train_dataset(strategy, config.dataset, config.global_batch_size,
                                                     seed=config.seed, resolution=config.model.resolution,
                                                     data_dir=config.data_dir)
    except gan_data.GANDataError as err:
        raise GANError(str(err)) from err
    start_wall = time.time()
    run = load_run(config, workdir, strategy)
    start_step = int(run.step.numpy())
    resumed = start_step > 0
    if resumed:
        print(f"Resumed from step {start_step} ({run.manager.latest_checkpoint}).", flush=True)
    writer = (tf.summary.create_file_writer(os.path.join(workdir, "tensorboard")) if chief
              else tf.summary.create_noop_writer())
    train_step = make_train_step(run)
    try:
        step, logs, train_seconds = _train_loop(run, evaluator, train_step, iter(dataset), writer)
    except KeyboardInterrupt:
        if chief:  # keep the work done so far: a rerun resumes here
            run.manager.save(checkpoint_number=int(run.step.numpy()))
            print(f"Interrupted: saved step {int(run.step.numpy())} to {run.manager.directory}.", flush=True)
        raise
    if step == start_step and not evaluator.records_for(step):
        evaluator.evaluate(run, step, writer)  # nothing left to train: still report the saved model
    writer.flush()
    records = evaluator.load_records()
    summary = {
        "workdir": workdir, "start_step": start_step, "final_step": step, "resumed": resumed,
        "steps_run": step - start_step, "train_steps": config.train_steps,
        "replicas": strategy.num_replicas_in_sync, "worker": distribute.worker_label(strategy),
        "chief": chief,
        "steps_per_s": round((step - start_step) / train_seconds, 3) if train_seconds else None,
        "wall_s": round(time.time() - start_wall, 1),
        "losses": {k: float(v) for k, v in logs.items()},
        "feature_network": evaluator.network_name,
        "last": records[-1] if records else None, "best": best_record(records),
    }
    if chief:
        with tf.io.gfile.GFile(os.path.join(workdir, "summary.json"), "w") as f:
            f.write(json.dumps(summary, indent=1))
    return summary


def _restored(config, workdir, strategy=None) -> Run:
    if not tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")):
        raise GANError(f"no checkpoint in {os.path.join(workdir, 'checkpoints')}: train first "
                       f"(evonorm-gan --mode=train --workdir={workdir} ...).")
    check_workdir_config(config, workdir, write=False)
    return load_run(config, workdir, strategy)


def evaluate(config: configs.GANConfig, workdir: str, strategy=None) -> dict:
    """Evaluates the latest checkpoint of ``workdir``; appends the record to metrics.json and returns it."""
    strategy = strategy or tf.distribute.get_strategy()
    evaluator = Evaluator(config, workdir, distribute.is_chief(strategy))
    run = _restored(config, workdir, strategy)
    return evaluator.evaluate(run, int(run.step.numpy()), None, mode="eval")


def sample(config: configs.GANConfig, workdir: str, num: int, out_path: str, strategy=None) -> dict:
    """Writes ``num`` class-balanced G_ema samples of the latest checkpoint to ``out_path``.

    ``*.npz`` gets ``images`` (uint8 ``[N, R, R, C]``) and ``labels``; any other path a PNG grid (one row
    per class, ``ceil(num / classes)`` columns). Standing statistics are recomputed first.
    """
    run = _restored(config, workdir, strategy)
    images, labels = generate_samples(run, num, seed=config.seed + 7)
    if out_path.endswith(".npz"):
        with tf.io.gfile.GFile(out_path, "wb") as f:
            np.savez_compressed(f, images=to_uint8(images), labels=labels)
    else:
        save_grid(images, labels, config.model.num_classes, out_path)
    return {"out_path": out_path, "num": int(num), "step": int(run.step.numpy())}

"""Sampling and evaluation of a BigGAN-deep run: G_ema samples, standing statistics, grids, metrics.json.

Used by the training loop (``evonorm.gan.train``) at every evaluation and by ``--mode=eval|sample``. The
``run`` arguments are ``train.Run`` bundles (models, strategy, config, traced functions).
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse

import numpy as np
import tensorflow as tf

from evonorm.data import gan_data
from evonorm.gan import configs, ema, features, metrics, scoring
from evonorm.gan.errors import GANError


def load_feature_network(spec: str):
    """The feature network of ``spec``: a name or path for ``features.get_feature_network``, or
    ``fashion_mnist_classifier?epochs=1&train_limit=5000`` for a smaller cached classifier (tests).

    Raises:
      GANError: the network cannot be had (the message says why and what to pass instead).
    """
    name, _, query = spec.partition("?")
    try:
        if query:
            if name != features.FASHION_MNIST_NAME:
                raise ValueError(f"options ('?...') exist only for {features.FASHION_MNIST_NAME}")
            options = {k: int(v) for k, v in urllib.parse.parse_qsl(query, strict_parsing=True)}
            return features.get_feature_network(name, **options)
        return features.get_feature_network(name)
    except Exception as err:  # noqa: BLE001 - any failure here is one clear line for the user
        raise GANError(f"feature network {spec!r}: {err} (choose one with --feature_network=NAME_OR_PATH)."
                       ) from err


def sample_z(rng: np.random.Generator, num: int, dim: int, truncation: float | None = None) -> np.ndarray:
    """``z ~ N(0, I)``, or with ``truncation`` t the BigGAN paper's truncated normal (|z_i| > t resampled)."""
    z = rng.standard_normal((num, dim)).astype(np.float32)
    if truncation is not None:
        if truncation <= 0:
            raise GANError(f"truncation must be positive (or None), got {truncation!r}.")
        while True:
            outside = np.abs(z) > truncation
            if not outside.any():
                break
            z[outside] = rng.standard_normal(int(outside.sum())).astype(np.float32)
    return z


def balanced_labels(num: int, num_classes: int) -> np.ndarray:
    """``0, 1, ..., K-1, 0, 1, ...``: every class equally often (up to one) among ``num`` samples."""
    return (np.arange(num) % num_classes).astype(np.int32)


def generate(run, z: np.ndarray, y: np.ndarray, generator=None) -> np.ndarray:
    """Images of ``generator`` (default G_ema) in inference mode, in chunks of the global batch."""
    generator = generator or run.generator_ema
    strategy = run.strategy
    key = ("generate", id(generator))
    if key not in run.functions:
        def one(zz, yy):
            return generator((zz, yy), training=False)
        # Several replicas: each generates its share, gathered in one traced function (an eager
        # strategy.gather retraces on every call).
        run.functions[key] = tf.function(one) if strategy.num_replicas_in_sync == 1 else tf.function(
            lambda zz, yy: strategy.gather(strategy.run(one, args=(zz, yy)), axis=0))
    fn = run.functions[key]
    chunk = run.config.global_batch_size
    out = []
    for start in range(0, len(z), chunk):
        zc, yc = z[start:start + chunk], y[start:start + chunk]
        n = len(zc)
        if n < chunk:  # a fixed shape: one trace (and TPUs need static shapes)
            zc = np.concatenate([zc, np.zeros((chunk - n, z.shape[1]), np.float32)])
            yc = np.concatenate([yc, np.zeros(chunk - n, np.int32)])
        if strategy.num_replicas_in_sync == 1:
            images = fn(tf.constant(zc), tf.constant(yc))
        else:
            images = fn(*ema.split_batch(strategy, zc, yc))
        out.append(images.numpy()[:n])
    return np.concatenate(out)


def refresh_statistics(run, seed: int) -> int:
    """Standing statistics of G_ema on ``config.standing_stat_batches`` global batches (ema.py)."""
    cfg = run.config
    rng = np.random.default_rng(seed)
    batches = [(sample_z(rng, cfg.global_batch_size, cfg.model.z_dim, cfg.truncation),
                rng.integers(0, cfg.model.num_classes, cfg.global_batch_size).astype(np.int32))
               for _ in range(cfg.standing_stat_batches)]
    return ema.standing_statistics(run.generator_ema, batches, run.strategy)


def generate_samples(run, num: int, seed: int, refresh: bool = True):
    """``(images [num, R, R, C] in [-1, 1], labels [num])`` from G_ema, class-balanced labels."""
    if refresh:
        refresh_statistics(run, seed)
    cfg = run.config
    z = sample_z(np.random.default_rng(seed + 1), num, cfg.model.z_dim, cfg.truncation)
    labels = balanced_labels(num, cfg.model.num_classes)
    return generate(run, z, labels), labels


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[-1, 1] floats to uint8 pixels."""
    return np.clip(np.rint((np.asarray(images) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def save_grid(images: np.ndarray, labels: np.ndarray, num_classes: int, path: str, max_rows: int = 10):
    """A PNG with one row per class (its samples left to right), no padding: ``cols*R x rows*R`` pixels.

    At most ``max_rows`` classes (evenly spaced ids when there are more, e.g. ImageNet's 1000).
    """
    from PIL import Image  # noqa: PLC0415

    rows = np.unique(np.linspace(0, num_classes - 1, min(num_classes, max_rows)).round().astype(int))
    per_row = [images[labels == c] for c in rows]
    cols = max(len(r) for r in per_row)
    res, channels = images.shape[1], images.shape[3]
    grid = np.zeros((len(rows) * res, cols * res, channels), np.uint8)
    for i, row in enumerate(per_row):
        for j, image in enumerate(to_uint8(row)):
            grid[i * res:(i + 1) * res, j * res:(j + 1) * res] = image
    tf.io.gfile.makedirs(os.path.dirname(path) or ".")
    picture = Image.fromarray(grid[..., 0] if channels == 1 else grid, "L" if channels == 1 else "RGB")
    with tf.io.gfile.GFile(path, "wb") as f:
        picture.save(f, format="PNG")
    return grid


def best_record(records: list) -> dict | None:
    """The record with the lowest FID (``None`` without records with an FID)."""
    scored = [r for r in records if r.get("fid") is not None]
    return min(scored, key=lambda r: r["fid"]) if scored else None


_REAL_CACHE: dict = {}


class Evaluator:
    """Scores G_ema against the real test split and writes metrics.json, best_metrics.json, sample grids.

    Built before training starts, so a missing feature network or test data fails fast.
    """

    def __init__(self, config: configs.GANConfig, workdir: str, chief: bool):
        self.config, self.workdir, self.chief = config, workdir, chief
        self.net = load_feature_network(config.feature_network)
        self.network_name = self.net.name
        key = (self.net.identifier, config.dataset, config.num_real_samples, config.model.resolution)
        if key not in _REAL_CACHE:
            try:
                real, _ = gan_data.real_images(config.dataset, "test", config.num_real_samples,
                                               config.model.resolution, config.data_dir)
            except gan_data.GANDataError as err:
                raise GANError(str(err)) from err
            features, logits = self.net.features_and_logits(real)
            # Real features and their mean/covariance once per process, not at every evaluation.
            _REAL_CACHE[key] = (scoring.RealReference(features, self.net.identifier),
                                metrics.inception_score(logits, from_logits=True)[0])
        self.reference, self.real_is = _REAL_CACHE[key]
        self.path = os.path.join(workdir, "metrics.json")

    def load_records(self) -> list:
        if not tf.io.gfile.exists(self.path):
            return []
        with tf.io.gfile.GFile(self.path) as f:
            return json.load(f)

    def records_for(self, step: int) -> list:
        return [r for r in self.load_records() if r["step"] == step]

    def _write_json(self, path, value):
        with tf.io.gfile.GFile(path + ".tmp", "w") as f:
            f.write(json.dumps(value, indent=1))
        tf.io.gfile.rename(path + ".tmp", path, overwrite=True)

    def evaluate(self, run, step: int, writer=None, mode: str = "train") -> dict:
        """Standing statistics, ``num_eval_samples`` samples, metrics, grid; returns the record."""
        cfg, start = self.config, time.time()
        fake, _ = generate_samples(run, cfg.num_eval_samples, seed=cfg.seed + 1000 + step)
        scores = scoring.evaluate_images(fake, self.reference, self.net, seed=cfg.seed)
        record = {"step": int(step), "mode": mode, **{k: scores[k] for k in (
            "is", "is_std", "fid", "kid", "kid_stderr", "feature_network", "num_real", "feature_dim",
            "feature_network_id")}, "num_samples": int(cfg.num_eval_samples),
            "real_is": float(self.real_is), "truncation": cfg.truncation,
            "eval_seconds": round(time.time() - start, 1), "wall_time": time.time()}
        # The grid's z is fixed across evaluations, so rows show one class changing over training.
        per_class = 10
        classes = cfg.model.num_classes
        z = sample_z(np.random.default_rng(1234), per_class * classes, cfg.model.z_dim, cfg.truncation)
        labels = np.repeat(np.arange(classes, dtype=np.int32), per_class)
        keep = np.isin(labels, np.unique(np.linspace(0, classes - 1, min(classes, 10)).round().astype(int)))
        grid_images = generate(run, z[keep], labels[keep])
        print(f"eval step {step}: IS {record['is']:.3f}  FID {record['fid']:.3f}  KID {record['kid']:.4f}  "
              f"({record['feature_network']}, {cfg.num_eval_samples} samples vs {record['num_real']} real, "
              f"{record['eval_seconds']:.0f}s)", flush=True)
        if not self.chief:
            return record
        grid = save_grid(grid_images, labels[keep], classes,
                         os.path.join(self.workdir, "samples", f"step_{step:06d}.png"))
        records = self.load_records() + [record]
        self._write_json(self.path, records)
        if best_record(records) is record:
            self._write_json(os.path.join(self.workdir, "best_metrics.json"), record)
            tf.train.Checkpoint(generator_ema=run.generator_ema).write(
                os.path.join(self.workdir, "best", "generator_ema"))
        if writer is not None:
            with writer.as_default(step=step):
                for key in ("is", "fid", "kid"):
                    if record[key] is not None:
                        tf.summary.scalar(f"eval/{key}_{self.net.name}", record[key])
                tf.summary.image("eval/samples", grid[None].astype(np.float32) / 255.0)
        return record

"""Feature networks for IS / FID / KID: a Fashion-MNIST classifier (offline default) and Inception-v3.

A ``FeatureNetwork`` turns images ``[N, H, W, C]`` in [-1, 1] (the GAN's output range) into features
``[N, d]`` (FID, KID) and logits ``[N, K]`` (IS), doing its own resizing and channel handling. Its
``name`` goes into every report, so a classifier FID is never passed off as an Inception FID.

- ``FashionMNISTClassifier``: a small CNN trained here on the Fashion-MNIST train split, padded 2 px a
  side to 32x32 and scaled to [-1, 1] exactly like the GAN's data; the features are its 128-d
  penultimate layer. Trained once and cached under ``$EVONORM_CACHE_DIR/feature_nets/`` (default
  ``~/.cache/evonorm/feature_nets/``) with a JSON sidecar (test accuracy, epochs, seed, examples,
  version). Default settings (3 epochs, 60k examples), measured on 2 shared CPU cores with
  ``python -c "from evonorm.gan import features as f; print(f.FashionMNISTClassifier.load_or_train())"``:
  test accuracy 0.9128 after 111 s of training (126 s wall in all; two runs gave identical losses and
  accuracy). Reference values of real data under it: IS of the 10k test images 7.96 ± 0.05 (the
  ceiling is 10), FID 0.23 and KID -0.03 ± 0.05 between the first 10k train and the 10k test images.
- ``InceptionV3Features.from_path``: Inception-v3 from weights already on disk; nothing downloads.

Usage::

    net = get_feature_network("fashion_mnist_classifier")      # or a path to Inception-v3 weights
    features, logits = net.features_and_logits(images)         # images in [-1, 1]

Scoring images or a folder against real ones: ``evonorm.gan.scoring``.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import tensorflow as tf
import tf_keras

from evonorm.data import fashion_mnist, gan_data

__all__ = ["FeatureNetwork", "FashionMNISTClassifier", "InceptionV3Features", "get_feature_network",
           "to_model_range", "pad_to_32", "feature_nets_dir"]

FASHION_MNIST_NAME = "fashion_mnist_classifier"
INCEPTION_NAME = "inception_v3"
# Bump when the architecture, preprocessing or training recipe changes: old cache entries then miss.
CLASSIFIER_VERSION = 1
DEFAULT_EPOCHS = 3
_RANGE_TOL = 1e-3


def feature_nets_dir(cache_dir: str | None = None) -> str:
    """``cache_dir``, else ``$EVONORM_CACHE_DIR/feature_nets``, else ``~/.cache/evonorm/feature_nets``."""
    if cache_dir:
        return cache_dir
    root = os.environ.get("EVONORM_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "evonorm")
    return os.path.join(root, "feature_nets")


def to_model_range(images) -> np.ndarray:
    """uint8 images in [0, 255] as float32 in [-1, 1] (the GAN's and the feature networks' range)."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"to_model_range expects uint8 images, got {images.dtype}.")
    return images.astype(np.float32) / 127.5 - 1.0


def pad_to_32(images: np.ndarray) -> np.ndarray:
    """28x28 images padded 2 px a side with -1 (black, the background) to 32x32; 32x32 unchanged."""
    if images.shape[1:3] == (28, 28):
        return np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)), constant_values=-1.0)
    if images.shape[1:3] != (32, 32):
        raise ValueError(f"{FASHION_MNIST_NAME} takes 28x28 or 32x32 images, got {images.shape[1:3]}.")
    return images


class FeatureNetwork:
    """Interface of a network that scores images: ``features_and_logits`` plus what reports need.

    Attributes:
      name: the network's name in reports (``'FID (name)'``).
      identifier: ``name`` plus what distinguishes one set of weights from another (cache key of
        real-data statistics).
      feature_dim, num_classes: widths of the features and of the logits.
      input_range: value range of the images it takes, ``(-1.0, 1.0)``.
      image_size: ``(H, W)`` the network runs at, after its own resizing.
      input_channels: 1 (grayscale) or 3; the other kind of input is converted.
    """

    name = ""
    feature_dim = 0
    num_classes = 0
    input_range = (-1.0, 1.0)
    image_size = (0, 0)
    input_channels = 1
    default_batch_size = 256

    @property
    def identifier(self) -> str:
        return self.name

    def features_and_logits(self, images, batch_size: int | None = None):
        """``(features [N, d], logits [N, K])`` as float64 for images ``[N, H, W, C]`` in [-1, 1]."""
        x = np.asarray(images)
        if x.ndim != 4 or x.shape[-1] not in (1, 3) or len(x) == 0:
            raise ValueError(f"{self.name}: images must be [N, H, W, C] with C in (1, 3) and N > 0, got "
                             f"shape {x.shape}.")
        x = x.astype(np.float32, copy=False)
        lo, hi = float(x.min()), float(x.max())
        if lo < self.input_range[0] - _RANGE_TOL or hi > self.input_range[1] + _RANGE_TOL:
            raise ValueError(f"{self.name}: images must lie in {list(self.input_range)}, got [{lo:.3g}, "
                             f"{hi:.3g}] (scale uint8 images with to_model_range).")
        if x.shape[-1] != self.input_channels:
            # Grayscale -> RGB repeats the channel; RGB -> grayscale takes the channel mean.
            x = np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x.mean(axis=-1, keepdims=True)
        batch_size = batch_size or self.default_batch_size
        feats, logits = [], []
        for start in range(0, len(x), batch_size):
            f, lg = self._forward(x[start:start + batch_size])
            feats.append(np.asarray(f, dtype=np.float64).reshape(len(f), -1))
            logits.append(np.asarray(lg, dtype=np.float64))
        return np.concatenate(feats), np.concatenate(logits)

    def _forward(self, batch: np.ndarray):
        """One batch ``[B, H, W, input_channels]`` float32 in range -> ``(features, logits)``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.identifier!r}, {self.feature_dim}-d, {self.num_classes} classes)"


def _classifier_model() -> tf_keras.Model:
    layers = tf_keras.layers
    inputs = tf_keras.Input((32, 32, 1))
    x = inputs
    for filters in (32, 64, 128):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=0.9)(x)  # 0.99 lags in short runs
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    features = layers.Dense(128, activation="relu", name="features")(x)
    logits = layers.Dense(fashion_mnist.NUM_CLASSES, name="logits")(layers.Dropout(0.3)(features))
    return tf_keras.Model(inputs, [features, logits], name=FASHION_MNIST_NAME)


class _ProgressLine(tf_keras.callbacks.Callback):
    """One stderr line every ``interval_s`` seconds and at each epoch's end."""

    def __init__(self, epochs: int, steps: int, interval_s: float = 15.0):
        super().__init__()
        self.epochs, self.steps, self.interval_s = epochs, steps, interval_s
        self.start = self.last = time.time()
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def _line(self, step, logs):
        print(f"[{FASHION_MNIST_NAME}] epoch {self.epoch + 1}/{self.epochs} step {step}/{self.steps} "
              f"loss {logs.get('loss', float('nan')):.4f} acc {logs.get('accuracy', float('nan')):.4f} "
              f"({time.time() - self.start:.0f}s)", file=sys.stderr, flush=True)

    def on_train_batch_end(self, batch, logs=None):
        if time.time() - self.last >= self.interval_s:
            self.last = time.time()
            self._line(batch + 1, logs or {})

    def on_epoch_end(self, epoch, logs=None):
        self.last = time.time()
        self._line(self.steps, logs or {})


def _classifier_key(epochs, seed, train_examples, batch_size, version=CLASSIFIER_VERSION) -> str:
    """Cache file stem and ``identifier`` of one training recipe: different recipes, different weights."""
    return f"{FASHION_MNIST_NAME}-v{version}-e{epochs}-s{seed}-n{train_examples}-b{batch_size}"


class FashionMNISTClassifier(FeatureNetwork):
    """The offline default feature network (see the module docstring); build with ``load_or_train``."""

    name = FASHION_MNIST_NAME
    feature_dim = 128
    num_classes = fashion_mnist.NUM_CLASSES
    image_size = (32, 32)
    input_channels = 1

    def __init__(self, model: tf_keras.Model, info: dict):
        self.model, self.info = model, dict(info)
        self._call = tf.function(lambda x: model(x, training=False), reduce_retracing=True, autograph=False)

    @property
    def test_accuracy(self) -> float:
        return float(self.info["test_accuracy"])

    @property
    def identifier(self) -> str:
        return _classifier_key(self.info["epochs"], self.info["seed"], self.info["train_examples"],
                               self.info["batch_size"], self.info["version"])

    def _forward(self, batch):
        feats, logits = self._call(tf.constant(pad_to_32(batch)))
        return feats.numpy(), logits.numpy()

    @classmethod
    def load_or_train(cls, cache_dir: str | None = None, epochs: int = DEFAULT_EPOCHS, seed: int = 0,
                      train_limit: int | None = None, batch_size: int = 128, data_path: str | None = None,
                      verbose: bool = True) -> FashionMNISTClassifier:
        """The cached classifier for these settings, training (and caching) it on a miss.

        Args:
          cache_dir: directory of the cache (see ``feature_nets_dir``).
          epochs, seed, batch_size: training recipe (Adam, cosine-decayed learning rate, no augmentation).
          train_limit: train on only the first ``train_limit`` training examples (tests, quick runs).
          data_path: Fashion-MNIST directory (see ``fashion_mnist.data_dir``).
          verbose: print progress lines to stderr while training.

        Raises:
          fashion_mnist.FashionMNISTNotFoundError: on a cache miss without the dataset on disk.
        """
        n_train = 60000 if train_limit is None else min(int(train_limit), 60000)
        key = _classifier_key(epochs, seed, n_train, batch_size)
        directory = feature_nets_dir(cache_dir)
        weights_path = os.path.join(directory, key + ".weights.h5")
        info_path = os.path.join(directory, key + ".json")
        if os.path.isfile(weights_path) and os.path.isfile(info_path):
            try:
                with open(info_path, encoding="utf-8") as f:
                    info = json.load(f)
                if info.get("version") == CLASSIFIER_VERSION:
                    model = _classifier_model()
                    model.load_weights(weights_path)
                    return cls(model, {**info, "cache_hit": True, "weights_path": weights_path})
            except (OSError, ValueError, KeyError) as err:  # corrupt or foreign file: retrain over it
                print(f"[{FASHION_MNIST_NAME}] ignoring unreadable cache {weights_path} ({err})",
                      file=sys.stderr, flush=True)
        # Exactly the GAN's data: the same padding and scaling (evonorm.data.gan_data).
        x_tr, y_tr = gan_data.fashion_mnist_arrays("train", n_train, data_path)
        x_te, y_te = gan_data.fashion_mnist_arrays("test", None, data_path)
        steps = -(-n_train // batch_size)
        if verbose:
            print(f"[{FASHION_MNIST_NAME}] training on {n_train} examples for {epochs} epochs (cache miss: "
                  f"{weights_path})", file=sys.stderr, flush=True)
        tf_keras.utils.set_random_seed(seed)
        model = _classifier_model()
        trainer = tf_keras.Model(model.input, model.outputs[1])
        schedule = tf_keras.optimizers.schedules.CosineDecay(2e-3, decay_steps=max(1, epochs * steps))
        trainer.compile(optimizer=tf_keras.optimizers.Adam(schedule), metrics=["accuracy"],
                        loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        start = time.time()
        trainer.fit(x_tr, y_tr, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0,
                    callbacks=[_ProgressLine(epochs, steps)] if verbose else [])
        train_seconds = time.time() - start
        net = cls(model, {"version": CLASSIFIER_VERSION, "epochs": epochs, "seed": seed,
                          "train_examples": n_train, "batch_size": batch_size, "test_accuracy": None})
        _, logits = net.features_and_logits(x_te)
        accuracy = float(np.mean(logits.argmax(axis=1) == y_te))
        info = {**net.info, "test_accuracy": accuracy, "test_examples": len(y_te),
                "train_seconds": round(train_seconds, 1), "tensorflow": tf.__version__,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        os.makedirs(directory, exist_ok=True)
        # Write-then-rename (the JSON last, as the commit marker): a concurrent reader or an interrupted
        # run never sees half a cache entry.
        tmp = os.path.join(directory, f".{key}.{os.getpid()}")
        model.save_weights(tmp + ".weights.h5")
        os.replace(tmp + ".weights.h5", weights_path)
        with open(tmp + ".json", "w", encoding="utf-8") as f:
            json.dump(info, f, indent=2, sort_keys=True)
        os.replace(tmp + ".json", info_path)
        if verbose:
            print(f"[{FASHION_MNIST_NAME}] test accuracy {accuracy:.4f} after {train_seconds:.0f}s; cached "
                  f"at {weights_path}", file=sys.stderr, flush=True)
        return cls(model, {**info, "cache_hit": False, "weights_path": weights_path})


def _missing_weights_message(path: str) -> str:
    return (f"Inception-v3 weights not found at {path!r}. Nothing is downloaded: supply them from disk "
            f"(e.g. --feature_network=PATH), as a tf_keras weights file (.h5 / .weights.h5 of "
            f"tf_keras.applications.InceptionV3(include_top=True)) or a SavedModel directory with "
            f"'pool_3' and 'logits' outputs (see InceptionV3Features).")


class InceptionV3Features(FeatureNetwork):
    """Inception-v3 ``pool_3`` features (2048-d) and logits, from weights on disk; see ``from_path``.

    Images are resized to 299x299 with ``tf.image.resize(method='bilinear', antialias=True)`` (close to
    PIL's resampling, clean-fid's recommendation) and grayscale is repeated to 3 channels. Keras's
    ImageNet weights are not the 2015-12-05 graph of the published FID numbers: scores from different
    weight files are not comparable, which is why ``identifier`` names the file.
    """

    name = INCEPTION_NAME
    image_size = (299, 299)
    input_channels = 3
    default_batch_size = 32

    def __init__(self, fn, path: str, feature_dim: int, num_classes: int):
        self._fn, self.path = fn, path
        self.feature_dim, self.num_classes = feature_dim, num_classes

    @property
    def identifier(self) -> str:
        return f"{self.name}({os.path.basename(os.path.normpath(self.path))})"

    @classmethod
    def from_path(cls, path: str) -> InceptionV3Features:
        """Loads Inception-v3 from ``path``; never downloads.

        Args:
          path: either a tf_keras weights file (``.h5`` / ``.weights.h5``) for
            ``tf_keras.applications.InceptionV3(weights=None, include_top=True)`` (1000 classes; features
            are the ``avg_pool`` layer, logits the ``predictions`` layer before its softmax), or a TF2
            SavedModel directory whose ``serving_default`` signature (or the loaded object itself, if
            callable) takes one float32 ``[B, 299, 299, 3]`` batch in [-1, 1] and returns a dict with
            ``'pool_3'`` (``[B, 2048]`` or ``[B, 1, 1, 2048]``) and ``'logits'`` (``[B, K]``).

        Raises:
          FileNotFoundError: ``path`` does not exist (the message says the weights must be supplied).
          ValueError: not a recognised format, or a SavedModel without the outputs above.
        """
        if not os.path.exists(path):
            raise FileNotFoundError(_missing_weights_message(path))
        if os.path.isdir(path):
            return cls._from_saved_model(path)
        if not path.endswith(".h5"):
            raise ValueError(f"{path!r}: expected a .h5 / .weights.h5 weights file or a SavedModel "
                             f"directory.")
        base = tf_keras.applications.InceptionV3(weights=None, include_top=True)
        base.load_weights(path)
        pooled = tf_keras.Model(base.input, base.get_layer("avg_pool").output)
        head = base.get_layer("predictions")

        @tf.function(reduce_retracing=True)
        def fn(x):
            feats = pooled(x, training=False)
            return feats, tf.matmul(feats, head.kernel) + head.bias

        return cls(fn, path, int(head.kernel.shape[0]), int(head.kernel.shape[1]))

    @classmethod
    def _from_saved_model(cls, path: str) -> InceptionV3Features:
        loaded = tf.saved_model.load(path)
        signature = getattr(loaded, "signatures", {}).get("serving_default")
        if signature is not None:
            (input_name,) = signature.structured_input_signature[1]
            call = lambda x: signature(**{input_name: x})  # noqa: E731
        elif callable(loaded):
            call = loaded
        else:
            raise ValueError(f"{path!r}: SavedModel has no 'serving_default' signature and is not callable.")

        def fn(x):
            outputs = call(tf.convert_to_tensor(x))
            missing = [k for k in ("pool_3", "logits") if k not in outputs]
            if missing:
                raise ValueError(f"{path!r}: SavedModel outputs {sorted(outputs)} lack {missing}.")
            pool = tf.reshape(outputs["pool_3"], [tf.shape(x)[0], -1])
            return pool, outputs["logits"]

        feats, logits = fn(tf.zeros([1, 299, 299, 3]))  # checks the outputs now, not mid-evaluation
        return cls(fn, path, int(feats.shape[-1]), int(logits.shape[-1]))

    def _forward(self, batch):
        x = tf.image.resize(tf.constant(batch), self.image_size, method="bilinear", antialias=True)
        feats, logits = self._fn(x)
        return np.asarray(feats), np.asarray(logits)


def get_feature_network(spec, **kwargs) -> FeatureNetwork:
    """A feature network from a command-line style spec.

    Args:
      spec: ``'fashion_mnist_classifier'`` (the default, ``load_or_train(**kwargs)``), a filesystem path
        of Inception-v3 weights (``InceptionV3Features.from_path``), or a ``FeatureNetwork`` (returned).

    Raises:
      ValueError: anything else (the message lists the options).
      FileNotFoundError: a path-like spec that does not exist.
    """
    if isinstance(spec, FeatureNetwork):
        return spec
    if spec == FASHION_MNIST_NAME:
        return FashionMNISTClassifier.load_or_train(**kwargs)
    if spec == INCEPTION_NAME:
        raise ValueError(f"{INCEPTION_NAME!r} needs its weights: pass the path of a local weights file "
                         f"or SavedModel directory instead (nothing is downloaded).")
    if isinstance(spec, str) and (os.path.exists(spec) or os.sep in spec or spec.endswith(".h5")):
        return InceptionV3Features.from_path(spec)
    raise ValueError(f"unknown feature network {spec!r}: use {FASHION_MNIST_NAME!r} (offline default) or "
                     f"the path of local Inception-v3 weights (.h5 / .weights.h5 file or SavedModel dir).")

"""Fashion-MNIST from local IDX files: the offline default data of the proxy task and small experiments.

Xiao, Rasul, Vollgraf, *Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine Learning
Algorithms* (2017): 60,000 training and 10,000 test 28x28 grayscale images in 10 classes, MIT licence.
Debian and Ubuntu package it as ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist/``).
Nothing here downloads anything: when the files are missing, ``FashionMNISTNotFoundError`` says how
to get them.

Usage::

    from evonorm.data import fashion_mnist
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load()
    train_ds = fashion_mnist.make_dataset(x_train, y_train, batch_size=128, training=True, seed=0)
"""

from __future__ import annotations

import gzip
import os

import numpy as np

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
ENV_VAR = "EVONORM_FASHION_MNIST_DIR"
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000),
}
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
               "Bag", "Ankle boot")
NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28, 1)
# Mean and standard deviation of the 60k training pixels scaled to [0, 1] (computed from the data by
# ``pixel_stats``; pinned here so every run normalizes alike whatever split it trains on).
MEAN = 0.28604
STD = 0.35302
VALIDATION_SIZE = 10000

_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension


class FashionMNISTNotFoundError(FileNotFoundError):
    """The Fashion-MNIST IDX files are not on disk; the message says how to install them."""


class FashionMNISTFormatError(ValueError):
    """A Fashion-MNIST file is present but is not the expected IDX content."""


def data_dir(path: str | None = None) -> str:
    """The directory to read: ``path``, else ``$EVONORM_FASHION_MNIST_DIR``, else the Debian location."""
    return path or os.environ.get(ENV_VAR) or DEFAULT_DIR


def missing_message(directory: str, missing) -> str:
    """The error text for missing files: which ones, and the two ways to provide them."""
    return (f"Fashion-MNIST not found in {directory!r} (missing: {', '.join(missing)}). "
            f"Install it with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu; files go to "
            f"{DEFAULT_DIR}), or set {ENV_VAR} (or pass --data_dir) to a directory holding the 4 "
            f"standard files {', '.join(f for split in FILES.values() for f in split[:2])}. "
            f"Nothing is downloaded automatically.")


def _read_idx(path: str, magic: int, count: int, item_shape: tuple) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError
        raise FashionMNISTFormatError(f"{path}: not a readable gzip file ({err}).") from err
    ndim = 1 + len(item_shape)
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise FashionMNISTFormatError(f"{path}: {len(raw)} bytes, too short for an IDX header.")
    header = np.frombuffer(raw[:header_len], dtype=">u4")
    if int(header[0]) != magic:
        raise FashionMNISTFormatError(f"{path}: IDX magic number {int(header[0]):#010x}, expected "
                                      f"{magic:#010x} (wrong file, or images and labels swapped?).")
    shape = tuple(int(d) for d in header[1:])
    if shape != (count,) + tuple(item_shape):
        raise FashionMNISTFormatError(f"{path}: IDX shape {shape}, expected {(count,) + tuple(item_shape)}.")
    body = raw[header_len:]
    if len(body) != int(np.prod(shape)):
        raise FashionMNISTFormatError(f"{path}: {len(body)} data bytes, expected {int(np.prod(shape))} "
                                      f"(truncated or corrupt file).")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def _require(directory: str, names) -> None:
    missing = [name for name in names if not os.path.isfile(os.path.join(directory, name))]
    if missing:
        raise FashionMNISTNotFoundError(missing_message(directory, missing))


def load_split(split: str, path: str | None = None):
    """One split as uint8 arrays: images ``[N, 28, 28, 1]`` and labels ``[N]`` in 0..9.

    Args:
      split: ``'train'`` (60,000 examples) or ``'test'`` (10,000).
      path: directory of the IDX files (see ``data_dir``).

    Raises:
      FashionMNISTNotFoundError: a file is missing (the message says how to install the data).
      FashionMNISTFormatError: a file is corrupt or not the expected IDX array.
    """
    if split not in FILES:
        raise ValueError(f"split must be one of {sorted(FILES)}, got {split!r}.")
    directory = data_dir(path)
    images_name, labels_name, count = FILES[split]
    _require(directory, (images_name, labels_name))
    images = _read_idx(os.path.join(directory, images_name), _IMAGES_MAGIC, count, (28, 28))
    labels = _read_idx(os.path.join(directory, labels_name), _LABELS_MAGIC, count, ())
    if labels.max() >= NUM_CLASSES:
        raise FashionMNISTFormatError(f"{labels_name}: label {int(labels.max())} out of range 0..9.")
    return images[..., None], labels


def load(path: str | None = None):
    """``((x_train, y_train), (x_test, y_test))`` as uint8 arrays (see ``load_split``)."""
    _require(data_dir(path), [name for split in FILES.values() for name in split[:2]])
    return load_split("train", path), load_split("test", path)


def train_validation_split(images: np.ndarray, labels: np.ndarray, validation_size: int = VALIDATION_SIZE):
    """Holds out the *last* ``validation_size`` training examples as a validation set.

    The layer search scores candidates on this held-out part so the test set stays untouched; a
    fixed tail (not a random draw) keeps it identical across processes and runs.

    Returns:
      ``((x_train, y_train), (x_val, y_val))``.
    """
    if len(images) != len(labels):
        raise ValueError(f"images ({len(images)}) and labels ({len(labels)}) differ in length.")
    if not 0 < validation_size < len(images):
        raise ValueError(f"validation_size must be in 1..{len(images) - 1}, got {validation_size}.")
    cut = len(images) - validation_size
    return (images[:cut], labels[:cut]), (images[cut:], labels[cut:])


def pixel_stats(images: np.ndarray):
    """Mean and standard deviation of ``images`` scaled to [0, 1] (how ``MEAN``/``STD`` were derived)."""
    scaled = images.astype(np.float64) / 255.0
    return float(scaled.mean()), float(scaled.std())


def make_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int, training: bool = False,
                 seed: int = 0, augment: bool | None = None, pad: int = 2, flip: bool = True,
                 mean: float = MEAN, std: float = STD, drop_remainder: bool | None = None):
    """A ``tf.data`` pipeline of ``(float32 images [B, H, W, C], int32 labels [B])``.

    Args:
      images: uint8 ``[N, H, W, C]``.
      labels: integer ``[N]``.
      batch_size: examples per batch.
      training: shuffle (seeded) and repeat forever; else one ordered pass.
      seed: shuffle and augmentation seed, for reproducible runs.
      augment: random crop after ``pad`` pixels of zero padding, plus a horizontal flip when ``flip``;
        default: on when ``training``.
      pad: padding of the random crop, in pixels.
      flip: with ``augment``, also flip left-right at random (valid for clothes, not for digits).
      mean, std: normalization applied to pixels scaled to [0, 1].
      drop_remainder: default ``training`` (full batches keep batch statistics comparable).
    """
    import tensorflow as tf  # noqa: PLC0415 - keep ``load`` usable without importing TensorFlow

    if len(images) != len(labels):
        raise ValueError(f"images ({len(images)}) and labels ({len(labels)}) differ in length.")
    if images.ndim != 4:
        raise ValueError(f"images must be [N, H, W, C], got shape {images.shape}.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    augment = training if augment is None else augment
    drop_remainder = training if drop_remainder is None else drop_remainder
    height, width, channels = images.shape[1:]

    ds = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int32)))
    if training:
        ds = ds.shuffle(min(len(images), 60000), seed=seed, reshuffle_each_iteration=True).repeat()

    def scale(image, label):
        return tf.cast(image, tf.float32) / 255.0, label

    def random_augment(x, label, pair_seed):
        # Stateless ops keyed on per-element seeds drawn from ``seed``: reproducible in any run.
        # Padding happens before normalization so padded pixels are black, like the background.
        x = tf.pad(x, [[pad, pad], [pad, pad], [0, 0]])
        x = tf.image.stateless_random_crop(x, [height, width, channels], seed=pair_seed[0])
        if flip:
            x = tf.image.stateless_random_flip_left_right(x, seed=pair_seed[1])
        return x, label

    def normalize(x, label):
        return (x - mean) / std, label

    ds = ds.map(scale, num_parallel_calls=tf.data.AUTOTUNE)
    if augment:
        seeds = tf.data.Dataset.random(seed=seed).batch(4).map(lambda s: tf.reshape(s, [2, 2]))
        ds = tf.data.Dataset.zip((ds, seeds)).map(lambda xy, s: random_augment(xy[0], xy[1], s),
                                                  num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(normalize, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)

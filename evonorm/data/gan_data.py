"""Class-conditional image data for the BigGAN-deep runs: Fashion-MNIST (offline default), ImageNet (TFDS).

Images are float32 in [-1, 1] (the generator's tanh range), labels int32. Fashion-MNIST's 28x28 digits are
padded with 2 black pixels per side to 32x32x1 so the generator's 4 -> 8 -> 16 -> 32 upsampling applies as
it does at 128 px. ImageNet comes only from an already prepared TFDS ``imagenet2012`` (the ILSVRC-2012
archives must be downloaded by hand, so this never downloads anything); images are center-cropped to a
square and resized to the model's resolution, BigGAN's preprocessing.

Usage::

    from evonorm.data import gan_data
    dist_ds = gan_data.distributed_train_dataset(strategy, "fashion_mnist", global_batch=64, seed=0)
    images, labels = gan_data.real_images("fashion_mnist", "test", limit=10000)   # metrics' reference
"""

from __future__ import annotations

import numpy as np

from evonorm.data import fashion_mnist

DATASETS = ("fashion_mnist", "imagenet2012")
NUM_CLASSES = {"fashion_mnist": 10, "imagenet2012": 1000}
FASHION_MNIST_PAD = 2  # 28 + 2 * 2 = 32
IMAGENET_PREPARE_HINT = (
    "TFDS cannot download ILSVRC-2012: put ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar in "
    "<data_dir>/downloads/manual/ and run `tfds build imagenet2012 --data_dir=<data_dir>` once, then pass "
    "the same directory as data_dir (or set TFDS_DATA_DIR).")


class GANDataError(ValueError):
    """The requested data set is unknown or not on disk; the message says what to do."""


def _check_dataset(name: str) -> None:
    if name not in DATASETS:
        raise GANDataError(f"unknown GAN dataset {name!r}; known: {', '.join(DATASETS)}.")


def fashion_mnist_arrays(split: str, limit: int | None = None, path: str | None = None):
    """Padded, scaled Fashion-MNIST: float32 images ``[N, 32, 32, 1]`` in [-1, 1] and int32 labels ``[N]``.

    Raises:
      fashion_mnist.FashionMNISTNotFoundError: the IDX files are missing (the message gives the apt
        command).
    """
    images, labels = fashion_mnist.load_split(split, path)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    pad = FASHION_MNIST_PAD
    images = np.pad(images, [(0, 0), (pad, pad), (pad, pad), (0, 0)])
    return (images.astype(np.float32) / 127.5 - 1.0), labels.astype(np.int32)


def _imagenet_builder(data_dir: str | None):
    import tensorflow_datasets as tfds  # noqa: PLC0415 - slow import, only for ImageNet

    try:
        builder = tfds.builder("imagenet2012", data_dir=data_dir)
    except Exception as err:  # noqa: BLE001 - TFDS raises many kinds for a broken data_dir
        raise GANDataError(f"cannot open TFDS imagenet2012 in data_dir={data_dir!r}: {err}. "
                           f"{IMAGENET_PREPARE_HINT}") from err
    if not builder.is_prepared():
        raise GANDataError(f"TFDS imagenet2012 is not prepared in {builder.data_dir!r} "
                           f"(nothing is downloaded). {IMAGENET_PREPARE_HINT}")
    return builder


def _center_crop_resize(image, resolution: int):
    """BigGAN's preprocessing: the largest central square, resized (area-preserving) to ``resolution``."""
    import tensorflow as tf  # noqa: PLC0415

    shape = tf.shape(image)
    side = tf.minimum(shape[0], shape[1])
    top, left = (shape[0] - side) // 2, (shape[1] - side) // 2
    image = tf.image.crop_to_bounding_box(image, top, left, side, side)
    image = tf.image.resize(image, [resolution, resolution], method="bicubic", antialias=True)
    return tf.clip_by_value(image / 127.5 - 1.0, -1.0, 1.0)


def train_dataset_fn(dataset: str, seed: int = 0, resolution: int = 32, data_dir: str | None = None,
                     limit: int | None = None):
    """A ``dataset_fn(input_context)`` for :func:`evonorm.distribute.distributed_dataset`.

    It returns the *unbatched*, shuffled, repeated training split of ``(image, label)`` pairs; batching
    per replica and sharding per input pipeline happen in ``distributed_dataset``. Data errors are raised
    here, before any pipeline is built, so they surface as one clear line.
    """
    import tensorflow as tf  # noqa: PLC0415

    _check_dataset(dataset)
    if dataset == "fashion_mnist":
        if resolution != 32:
            raise GANDataError(f"fashion_mnist is 32x32 after padding; the model's resolution is "
                               f"{resolution}.")
        images, labels = fashion_mnist.load_split("train")
        if limit is not None:
            images, labels = images[:limit], labels[:limit]
        pad = FASHION_MNIST_PAD

        def to_model(image, label):
            image = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
            return tf.cast(image, tf.float32) / 127.5 - 1.0, label

        def dataset_fn(input_context=None):
            del input_context  # the same seed on every worker: its every-n-th shard is then disjoint
            # uint8 in memory (47 MB, not 245 MB of float32 constants); scaled per element.
            ds = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int32)))
            ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True).repeat()
            return ds.map(to_model, num_parallel_calls=tf.data.AUTOTUNE)
        return dataset_fn

    import tensorflow_datasets as tfds  # noqa: PLC0415

    builder = _imagenet_builder(data_dir)

    def imagenet_fn(input_context=None):
        del input_context  # one seed everywhere; distributed_dataset keeps every n-th element per worker
        ds = builder.as_dataset(split="train", shuffle_files=True,
                                read_config=tfds.ReadConfig(shuffle_seed=seed))
        if limit:
            ds = ds.take(limit)
        ds = ds.map(lambda ex: (_center_crop_resize(tf.cast(ex["image"], tf.float32), resolution),
                                tf.cast(ex["label"], tf.int32)), num_parallel_calls=tf.data.AUTOTUNE)
        return ds.shuffle(10_000, seed=seed).repeat()
    return imagenet_fn


def distributed_train_dataset(strategy, dataset: str, global_batch: int, seed: int = 0,
                              resolution: int = 32, data_dir: str | None = None, limit: int | None = None):
    """Per-replica batches ``(images [b, R, R, C], labels [b])`` of the train split, b = global / replicas.

    Built through :func:`evonorm.distribute.distributed_dataset`, so each replica reads its own share.
    """
    from evonorm import distribute  # noqa: PLC0415

    fn = train_dataset_fn(dataset, seed, resolution, data_dir, limit)
    return distribute.distributed_dataset(strategy, fn, global_batch)


def real_images(dataset: str, split: str = "test", limit: int | None = 10000, resolution: int = 32,
                data_dir: str | None = None):
    """NumPy ``(images float32 [N, R, R, C] in [-1, 1], labels int32 [N])``: the metrics' real reference.

    Args:
      dataset: ``'fashion_mnist'`` or ``'imagenet2012'``.
      split: ``'test'``/``'train'`` (Fashion-MNIST) or ``'validation'``/``'train'`` (ImageNet; ``'test'`` is
        read as ``'validation'``, ImageNet's test labels being unpublished).
      limit: the first ``limit`` examples (all when ``None``).
    """
    _check_dataset(dataset)
    if dataset == "fashion_mnist":
        return fashion_mnist_arrays(split, limit)
    import tensorflow as tf  # noqa: PLC0415

    builder = _imagenet_builder(data_dir)
    ds = builder.as_dataset(split="validation" if split == "test" else split, shuffle_files=False)
    if limit:
        ds = ds.take(limit)
    ds = ds.map(lambda ex: (_center_crop_resize(tf.cast(ex["image"], tf.float32), resolution),
                            tf.cast(ex["label"], tf.int32))).batch(256)
    parts = [(x.numpy(), y.numpy()) for x, y in ds]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

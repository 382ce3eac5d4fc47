"""Fashion-MNIST as TFRecords in TF Model Garden's image-classification format, written once.

Model Garden's classification input pipeline reads ``tf.train.Example`` records with an encoded image
under ``'image/encoded'`` and an integer label under ``'image/class/label'``. This module converts the
local Fashion-MNIST IDX files (``evonorm.data.fashion_mnist``, nothing is downloaded) into such
records: PNG-encoded 28x28 grayscale images (Model Garden's parser decodes them to 3 channels),
labels 0..9, ``train-NNNNN-of-NNNNN.tfrecord`` and ``test-...`` shards plus a ``manifest.json``.

Writing is atomic and idempotent: every shard goes to a temporary name and is renamed into place,
and the manifest, written last, marks the directory complete; a directory whose manifest matches the
request is left alone. The default location is ``~/.cache/evonorm/records/fashion_mnist`` (or
``$EVONORM_RECORDS_DIR/fashion_mnist``).

Usage::

    python -m evonorm.data.records                  # write the full 60k/10k records once
    python -m evonorm.data.records --limit=512      # a small subset (tests), in its own directory

    from evonorm.data import records
    patterns = records.prepare_fashion_mnist()      # {'train': '.../train-*.tfrecord', 'test': ...}
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile

import numpy as np

from evonorm.data import fashion_mnist

ENV_VAR = "EVONORM_RECORDS_DIR"
IMAGE_KEY = "image/encoded"
LABEL_KEY = "image/class/label"
FORMAT_VERSION = 1
DEFAULT_SHARDS = {"train": 4, "test": 1}
MANIFEST = "manifest.json"


def records_root() -> str:
    """``$EVONORM_RECORDS_DIR``, else ``~/.cache/evonorm/records``."""
    return os.environ.get(ENV_VAR) or os.path.join(os.path.expanduser("~"), ".cache", "evonorm",
                                                   "records")


def default_dir(limit: int | None = None) -> str:
    """Where the Fashion-MNIST records live: ``<root>/fashion_mnist`` (``..._first<limit>`` subsets)."""
    return os.path.join(records_root(), "fashion_mnist" if limit is None else f"fashion_mnist_first{limit}")


def file_pattern(split: str, out_dir: str | None = None) -> str:
    """The glob of one split's shards, as Model Garden's ``DataConfig.input_path`` takes it."""
    if split not in DEFAULT_SHARDS:
        raise ValueError(f"split must be one of {sorted(DEFAULT_SHARDS)}, got {split!r}.")
    return os.path.join(out_dir or default_dir(), f"{split}-*.tfrecord")


def prepare_command(out_dir: str | None = None) -> str:
    """The shell command that writes the records (for error messages)."""
    suffix = f" --out_dir={out_dir}" if out_dir else ""
    return f"python -m evonorm.data.records{suffix}"


def _encoder():
    """PNG encoder of one uint8 [H, W] image: Pillow (3x faster here) or TensorFlow's."""
    try:
        from PIL import Image  # noqa: PLC0415 - optional speed-up; matplotlib depends on Pillow
    except ImportError:  # pragma: no cover - Pillow ships with matplotlib
        import tensorflow as tf  # noqa: PLC0415

        return lambda image: tf.io.encode_png(image[..., None]).numpy()

    def encode(image):
        buffer = io.BytesIO()
        Image.fromarray(image, mode="L").save(buffer, format="PNG")
        return buffer.getvalue()
    return encode


def _example(png: bytes, label: int) -> bytes:
    import tensorflow as tf  # noqa: PLC0415 - keep the module importable without TensorFlow

    feature = {
        IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[png])),
        LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
        "image/format": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"png"])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _write_shard(path: str, images: np.ndarray, labels: np.ndarray, encode) -> None:
    import tensorflow as tf  # noqa: PLC0415

    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".tfrecord", dir=directory)
    os.close(fd)
    try:
        with tf.io.TFRecordWriter(tmp) as writer:
            for image, label in zip(images, labels):
                writer.write(_example(encode(image[..., 0]), label))
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; a shared cache must stay readable
        os.replace(tmp, path)  # atomic: readers never see a half-written shard
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def read_manifest(out_dir: str) -> dict | None:
    """The manifest of a complete records directory, or None when absent or unreadable."""
    try:
        with open(os.path.join(out_dir, MANIFEST), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def is_prepared(out_dir: str | None = None, limit: int | None = None) -> bool:
    """True when ``out_dir`` holds complete records written for ``limit`` (None: every example)."""
    out_dir = out_dir or default_dir(limit)
    manifest = read_manifest(out_dir)
    if not manifest or manifest.get("format_version") != FORMAT_VERSION or manifest.get("limit") != limit:
        return False
    return all(os.path.isfile(os.path.join(out_dir, name))
               for split in manifest["splits"].values() for name in split["files"])


def prepare_fashion_mnist(out_dir: str | None = None, source_dir: str | None = None,
                          limit: int | None = None, shards: dict | None = None,
                          verbose: bool = False) -> dict:
    """Writes the Fashion-MNIST records once and returns ``{split: file pattern}``.

    Args:
      out_dir: output directory (default :func:`default_dir` of ``limit``).
      source_dir: directory of the IDX files (see ``fashion_mnist.data_dir``).
      limit: keep only the first ``limit`` examples of each split (tests); None keeps all.
      shards: split -> number of shards (default 4 train, 1 test).
      verbose: print one line per split.

    Returns:
      Dict ``{'train': pattern, 'test': pattern}`` of globs for ``DataConfig.input_path``.

    Raises:
      fashion_mnist.FashionMNISTNotFoundError: the IDX files are missing (says how to install them).
      ValueError: a bad ``limit`` or shard count.
    """
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}.")
    shards = dict(DEFAULT_SHARDS, **(shards or {}))
    for split, count in shards.items():
        if split not in DEFAULT_SHARDS or not isinstance(count, int) or count < 1:
            raise ValueError(f"shards must map 'train'/'test' to positive integers, got {shards!r}.")
    out_dir = out_dir or default_dir(limit)
    patterns = {split: file_pattern(split, out_dir) for split in DEFAULT_SHARDS}
    if is_prepared(out_dir, limit):
        return patterns
    os.makedirs(out_dir, exist_ok=True)
    encode = _encoder()
    manifest = {"format_version": FORMAT_VERSION, "limit": limit, "image_key": IMAGE_KEY,
                "label_key": LABEL_KEY, "num_classes": fashion_mnist.NUM_CLASSES,
                "source": os.path.abspath(fashion_mnist.data_dir(source_dir)), "splits": {}}
    for split, count in shards.items():
        images, labels = fashion_mnist.load_split(split, source_dir)
        if limit is not None:
            images, labels = images[:limit], labels[:limit]
        count = min(count, len(images))
        names = [f"{split}-{i:05d}-of-{count:05d}.tfrecord" for i in range(count)]
        for name, part in zip(names, np.array_split(np.arange(len(images)), count)):
            _write_shard(os.path.join(out_dir, name), images[part], labels[part], encode)
        manifest["splits"][split] = {"files": names, "num_examples": int(len(images))}
        if verbose:
            print(f"{split}: {len(images)} examples in {count} shard(s) -> {patterns[split]}")
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=out_dir)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
    os.chmod(tmp, 0o644)
    os.replace(tmp, os.path.join(out_dir, MANIFEST))  # written last: marks the directory complete
    return patterns


def main(argv=None) -> int:
    """Command line: ``python -m evonorm.data.records [--out_dir DIR] [--source_dir DIR] [--limit N]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out_dir", default=None, help="output directory (default: %(default)s -> "
                        "~/.cache/evonorm/records/fashion_mnist)")
    parser.add_argument("--source_dir", default=None, help="directory of the Fashion-MNIST IDX files")
    parser.add_argument("--limit", type=int, default=None, help="first N examples of each split only")
    args = parser.parse_args(argv)
    try:
        patterns = prepare_fashion_mnist(args.out_dir, args.source_dir, args.limit, verbose=True)
    except (fashion_mnist.FashionMNISTNotFoundError, fashion_mnist.FashionMNISTFormatError,
            ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for split, pattern in patterns.items():
        print(f"{split}: {pattern}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

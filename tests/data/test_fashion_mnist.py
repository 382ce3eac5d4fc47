"""Fashion-MNIST reader: the real files, the missing-data message, corrupt files, splits and tf.data."""

import gzip
import os
import struct

import numpy as np
import pytest

from evonorm.data import fashion_mnist as fm

HAVE_DATA = all(os.path.isfile(os.path.join(fm.data_dir(), name))
                for split in fm.FILES.values() for name in split[:2])
needs_data = pytest.mark.skipif(not HAVE_DATA, reason="Fashion-MNIST not installed "
                                "(sudo apt-get install dataset-fashion-mnist)")


@pytest.fixture(scope="module")
def real():
    return fm.load()


@needs_data
def test_real_data_shapes_dtypes_and_labels(real):
    (x_train, y_train), (x_test, y_test) = real
    assert x_train.shape == (60000, 28, 28, 1) and x_test.shape == (10000, 28, 28, 1)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.uint8
    assert set(np.unique(y_train)) == set(range(10))
    # The official test set is balanced: 1,000 images per class.
    assert np.bincount(y_test).tolist() == [1000] * 10
    assert 0 < x_train.mean() < 255 and x_train.max() == 255


@needs_data
def test_pinned_normalization_matches_the_training_pixels(real):
    mean, std = fm.pixel_stats(real[0][0])
    assert mean == pytest.approx(fm.MEAN, abs=1e-4) and std == pytest.approx(fm.STD, abs=1e-4)


def test_missing_files_raise_a_helpful_error(tmp_path):
    with pytest.raises(fm.FashionMNISTNotFoundError) as info:
        fm.load(str(tmp_path))
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    assert "sudo apt-get install dataset-fashion-mnist" in message
    assert fm.ENV_VAR in message and str(tmp_path) in message
    for split in fm.FILES.values():
        assert split[0] in message and split[1] in message


def test_env_var_overrides_the_default_directory(tmp_path, monkeypatch):
    monkeypatch.setenv(fm.ENV_VAR, str(tmp_path))
    assert fm.data_dir() == str(tmp_path)
    assert fm.data_dir("/explicit") == "/explicit"
    with pytest.raises(fm.FashionMNISTNotFoundError, match=str(tmp_path)):
        fm.load_split("test")


def _write_idx(path, magic, dims, payload, compress=True):
    data = struct.pack(">I", magic) + struct.pack(f">{len(dims)}I", *dims) + payload
    with (gzip.open(path, "wb") if compress else open(path, "wb")) as f:
        f.write(data)


def _fake_test_split(tmp_path, images=None, labels=None):
    """Writes test files; each argument is (magic, dims, payload[, compress]) or None for a valid file."""
    valid_images = (0x803, (10000, 28, 28), bytes(10000 * 28 * 28))
    valid_labels = (0x801, (10000,), bytes(range(10)) * 1000)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", *(images or valid_images))
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", *(labels or valid_labels))


def test_a_well_formed_split_reads_back(tmp_path):
    _fake_test_split(tmp_path)
    x, y = fm.load_split("test", str(tmp_path))
    assert x.shape == (10000, 28, 28, 1) and y[:12].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]


@pytest.mark.parametrize("images, labels, match", [
    ((0x801, (10000, 28, 28), bytes(10000 * 784)), None, "magic number"),
    ((0x803, (10000, 28, 27), bytes(10000 * 756)), None, "IDX shape"),
    ((0x803, (10000, 28, 28), bytes(1000)), None, "truncated or corrupt"),
    ((0x803, (10000, 28, 28), bytes(10000 * 784), False), None, "not a readable gzip"),
    (None, (0x801, (10000,), bytes([11]) * 10000), "out of range"),
])
def test_corrupt_files_raise_format_errors(tmp_path, images, labels, match):
    _fake_test_split(tmp_path, images, labels)
    with pytest.raises(fm.FashionMNISTFormatError, match=match):
        fm.load_split("test", str(tmp_path))


def test_unknown_split_is_rejected():
    with pytest.raises(ValueError, match="split must be one of"):
        fm.load_split("validation")


def test_validation_split_holds_out_the_tail():
    x = np.arange(100, dtype=np.uint8).reshape(100, 1, 1, 1)
    y = np.arange(100) % 10
    (xt, yt), (xv, yv) = fm.train_validation_split(x, y, validation_size=20)
    assert len(xt) == 80 and len(xv) == 20 and xv[0, 0, 0, 0] == 80 and yv.tolist() == y[80:].tolist()
    with pytest.raises(ValueError, match="validation_size"):
        fm.train_validation_split(x, y, validation_size=100)


def _images(rng, n=64):
    return rng.integers(0, 256, size=(n, 28, 28, 1), dtype=np.uint8), rng.integers(0, 10, size=n)


def test_eval_pipeline_normalizes_and_keeps_every_example(rng):
    x, y = _images(rng, 70)
    batches = list(fm.make_dataset(x, y, 32, mean=0.5, std=0.25))
    assert [b[0].shape[0] for b in batches] == [32, 32, 6]
    got = np.concatenate([b[0].numpy() for b in batches])
    np.testing.assert_allclose(got, (x / 255.0 - 0.5) / 0.25, rtol=1e-5, atol=1e-5)
    assert np.concatenate([b[1].numpy() for b in batches]).tolist() == y.tolist()
    assert batches[0][0].dtype.name == "float32" and batches[0][1].dtype.name == "int32"


def test_training_pipeline_is_seeded_augmented_and_repeats(rng):
    x, y = _images(rng, 40)

    def first_batches(seed):
        ds = fm.make_dataset(x, y, 16, training=True, seed=seed)
        return [b[0].numpy() for b in ds.take(4)]  # 64 examples from 40: repeats

    a, b, c = first_batches(1), first_batches(1), first_batches(2)
    assert all(batch.shape == (16, 28, 28, 1) for batch in a)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not np.array_equal(a[0], c[0])


def test_crop_padding_is_black_not_the_mean():
    # White images: any shifted crop shows padding, which must be pixel value 0, not 0 after normalizing.
    x, y = np.full((32, 28, 28, 1), 255, np.uint8), np.zeros(32, np.int64)
    batch = next(iter(fm.make_dataset(x, y, 32, training=True, seed=0)))[0].numpy()
    assert batch.min() == pytest.approx(-fm.MEAN / fm.STD, abs=1e-5)
    assert batch.max() == pytest.approx((1 - fm.MEAN) / fm.STD, abs=1e-5)


def test_pipeline_rejects_bad_input(rng):
    x, y = _images(rng, 8)
    with pytest.raises(ValueError, match="differ in length"):
        fm.make_dataset(x, y[:4], 4)
    with pytest.raises(ValueError, match="batch_size"):
        fm.make_dataset(x, y, 0)

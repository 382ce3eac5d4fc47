"""Feature networks of ``evonorm.gan.features``: the cached Fashion-MNIST classifier, Inception-v3 from
local files, and the image / folder evaluation built on them."""

import json
import os
import time

import numpy as np
import pytest
import tensorflow as tf

from evonorm.data import fashion_mnist
from evonorm.gan import features, metrics, scoring

_HAVE_FMNIST = all(os.path.isfile(os.path.join(fashion_mnist.data_dir(), name))
                   for split in fashion_mnist.FILES.values() for name in split[:2])
needs_fmnist = pytest.mark.skipif(not _HAVE_FMNIST, reason=f"Fashion-MNIST not in {fashion_mnist.data_dir()} "
                                  "(apt-get install dataset-fashion-mnist, or set EVONORM_FASHION_MNIST_DIR)")


class ToyNet(features.FeatureNetwork):
    """4x4 average-pooled pixels as 16-d features and 3 fixed linear logits: fast and exactly known."""

    name = "toy_net"
    feature_dim, num_classes, image_size, input_channels = 16, 3, (16, 16), 1

    def _forward(self, batch):
        feats = batch.reshape(len(batch), 4, 4, 4, 4).mean(axis=(2, 4)).reshape(len(batch), 16)
        return feats, feats[:, :3] * 5.0


def _toy_images(rng, n, shift=0.0):
    return np.clip(rng.normal(shift, 0.4, size=(n, 16, 16, 1)), -1, 1).astype(np.float32)


# ----- Fashion-MNIST classifier -----

@pytest.fixture(scope="module")
def small_classifier(tmp_path_factory):
    cache = str(tmp_path_factory.mktemp("feature_nets"))
    kwargs = dict(cache_dir=cache, epochs=1, train_limit=2000, batch_size=32, verbose=False)
    return features.FashionMNISTClassifier.load_or_train(**kwargs), kwargs


@pytest.fixture(scope="module")
def test_images():
    if not _HAVE_FMNIST:
        pytest.skip("Fashion-MNIST missing")
    (x, y) = fashion_mnist.load_split("test")
    return x[:2000], y[:2000]


@needs_fmnist
def test_classifier_trains_caches_and_reloads(small_classifier, test_images, capsys):
    net, kwargs = small_classifier
    assert not net.info["cache_hit"]
    assert net.test_accuracy > 0.5  # chance is 0.1
    with open(net.info["weights_path"][:-len(".weights.h5")] + ".json", encoding="utf-8") as f:
        sidecar = json.load(f)
    assert sidecar["test_accuracy"] == net.test_accuracy
    assert (sidecar["epochs"], sidecar["seed"], sidecar["train_examples"]) == (1, 0, 2000)
    assert sidecar["version"] == features.CLASSIFIER_VERSION and sidecar["test_examples"] == 10000

    start = time.time()
    again = features.FashionMNISTClassifier.load_or_train(**{**kwargs, "verbose": True})
    assert time.time() - start < 10
    assert again.info["cache_hit"] and "training" not in capsys.readouterr().err
    assert again.identifier == net.identifier == "fashion_mnist_classifier-v1-e1-s0-n2000-b32"
    images = features.to_model_range(test_images[0][:300])
    f1, l1 = net.features_and_logits(images)
    f2, l2 = again.features_and_logits(images, batch_size=64)
    # Different batch sizes may pick different CPU kernels: equal to float32 rounding, not bit for bit.
    np.testing.assert_allclose(f1, f2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(l1, l2, rtol=1e-5, atol=1e-5)
    assert f1.shape == (300, 128) and l1.shape == (300, 10) and f1.dtype == np.float64


@needs_fmnist
def test_classifier_accepts_28_and_32_pixels_and_checks_range(small_classifier, test_images):
    net, _ = small_classifier
    x28 = features.to_model_range(test_images[0][:50])
    x32 = np.pad(x28, ((0, 0), (2, 2), (2, 2), (0, 0)), constant_values=-1.0)
    np.testing.assert_allclose(net.features_and_logits(x28)[0], net.features_and_logits(x32)[0], atol=1e-6)
    np.testing.assert_allclose(net.features_and_logits(np.repeat(x32, 3, axis=-1))[0],
                               net.features_and_logits(x32)[0], atol=1e-5)
    with pytest.raises(ValueError, match=r"\[-1.0, 1.0\]"):
        net.features_and_logits(test_images[0][:5].astype(np.float32))
    with pytest.raises(ValueError, match="28x28 or 32x32"):
        net.features_and_logits(np.zeros((2, 30, 30, 1), np.float32))


@needs_fmnist
def test_classifier_fid_grows_with_noise(small_classifier, test_images, rng):
    net, _ = small_classifier
    x, y = test_images
    real, fake = x[:1000], features.to_model_range(x[1000:])
    noisy = np.clip(fake + rng.normal(0, 0.5, size=fake.shape), -1, 1).astype(np.float32)
    kw = dict(kid_subsets=10, kid_subset_size=500)
    clean = scoring.evaluate_images(fake, real, net, fake_labels=y[1000:], **kw)
    corrupted = scoring.evaluate_images(noisy, real, net, **kw)
    assert corrupted["fid"] > 3 * clean["fid"] and corrupted["kid"] > clean["kid"]
    assert clean["fake_label_accuracy"] == pytest.approx(
        np.mean(net.features_and_logits(fake)[1].argmax(1) == y[1000:]))
    assert clean["feature_network"] == "fashion_mnist_classifier" and clean["feature_dim"] == 128
    assert "FID (fashion_mnist_classifier)" in metrics.format_scores(clean)


# ----- Evaluation of images and folders (toy network: no dataset needed) -----

def test_evaluate_images_matches_metrics_and_caches_reference(rng, tmp_path):
    net = ToyNet()
    real, fake = _toy_images(rng, 300), _toy_images(rng, 200, shift=0.2)
    cache = str(tmp_path / "real.npz")
    report = scoring.evaluate_images(fake, real, net, real_cache=cache, kid_subsets=5)
    want = metrics.score_features(net.features_and_logits(real)[0], *net.features_and_logits(fake),
                                  feature_network="toy_net", kid_subsets=5)
    for key in ("is", "fid", "kid", "num_real", "num_fake", "feature_dim"):
        assert report[key] == pytest.approx(want[key], rel=1e-12), key
    reference = scoring.real_reference(real, net, cache_path=cache)
    assert os.path.isfile(cache) and reference.fingerprint
    assert scoring.evaluate_images(fake, reference, net, kid_subsets=5)["fid"] == report["fid"]
    other = scoring.real_reference(real[:150], net, cache_path=cache)  # other images: recomputed
    assert other.features.shape == (150, 16)

    class OtherNet(ToyNet):
        name = "other_net"

    with pytest.raises(ValueError, match="not comparable"):
        scoring.evaluate_images(fake, reference, OtherNet())


def test_evaluate_folder_reads_pngs(rng, tmp_path):
    from PIL import Image

    net = ToyNet()
    fake = rng.integers(0, 256, size=(40, 16, 16, 1), dtype=np.uint8)
    for i, im in enumerate(fake):
        Image.fromarray(im[..., 0]).save(tmp_path / f"{i:03d}.png")
    real = _toy_images(rng, 60)
    report = scoring.evaluate_folder(str(tmp_path), real, net, is_splits=4, kid_subsets=3)
    assert report == {**scoring.evaluate_images(fake, real, net, is_splits=4, kid_subsets=3),
                      "folder": str(tmp_path)}
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "odd.png")
    with pytest.raises(ValueError, match="differ in size"):
        scoring.evaluate_folder(str(tmp_path), real, net)
    with pytest.raises(FileNotFoundError, match="no"):
        scoring.evaluate_folder(str(tmp_path / "empty"), real, net)


def test_get_feature_network_specs(tmp_path):
    net = ToyNet()
    assert features.get_feature_network(net) is net
    with pytest.raises(ValueError, match="fashion_mnist_classifier"):
        features.get_feature_network("resnet50")
    with pytest.raises(ValueError, match="needs its weights"):
        features.get_feature_network("inception_v3")
    missing = str(tmp_path / "inception.weights.h5")
    with pytest.raises(FileNotFoundError, match="must|supply") as err:
        features.get_feature_network(missing)
    assert missing in str(err.value) and "Nothing is downloaded" in str(err.value)


# ----- Inception-v3 from local files -----

def test_inception_from_keras_weights_file(tmp_path, rng):
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    model = tf_keras.applications.InceptionV3(weights=None, include_top=True)
    path = str(tmp_path / "inception.weights.h5")
    model.save_weights(path)
    net = features.get_feature_network(path)
    assert isinstance(net, features.InceptionV3Features)
    assert (net.name, net.feature_dim, net.num_classes) == ("inception_v3", 2048, 1000)
    images = _toy_images(rng, 2)[:, :, :, :]  # 16x16 grayscale: resized to 299 and repeated to RGB
    feats, logits = net.features_and_logits(images)
    assert feats.shape == (2, 2048) and logits.shape == (2, 1000)
    resized = tf.image.resize(np.repeat(images, 3, -1), (299, 299), method="bilinear", antialias=True)
    np.testing.assert_allclose(tf.nn.softmax(logits).numpy(), model(resized, training=False).numpy(),
                               rtol=1e-4, atol=1e-7)


class _TinySavedModel(tf.Module):
    def __init__(self, keys=("pool_3", "logits")):
        super().__init__()
        self.keys = keys

    @tf.function(input_signature=[tf.TensorSpec([None, 299, 299, 3], tf.float32)])
    def serve(self, images):
        pooled = tf.reduce_mean(images, axis=[1, 2], keepdims=True)  # [B, 1, 1, 3], like pool_3's shape
        return {self.keys[0]: pooled, self.keys[1]: tf.concat([pooled[:, 0, 0], -pooled[:, 0, 0]], 1)}


def test_inception_from_saved_model(tmp_path, rng):
    good, bad = str(tmp_path / "good"), str(tmp_path / "bad")
    module = _TinySavedModel()
    tf.saved_model.save(module, good, signatures=module.serve)
    net = features.InceptionV3Features.from_path(good)
    assert (net.feature_dim, net.num_classes) == (3, 6) and net.identifier == "inception_v3(good)"
    images = _toy_images(rng, 3)
    feats, logits = net.features_and_logits(images)
    np.testing.assert_allclose(feats, np.repeat(images.mean(axis=(1, 2)), 3, -1), atol=1e-4)
    np.testing.assert_allclose(logits, np.concatenate([feats, -feats], 1), atol=1e-6)

    wrong = _TinySavedModel(keys=("features", "logits"))
    tf.saved_model.save(wrong, bad, signatures=wrong.serve)
    with pytest.raises(ValueError, match="lack.*pool_3"):
        features.InceptionV3Features.from_path(bad)

"""Scores for any images: IS, FID and KID of a set of images or a folder of PNGs against real images.

Works for any generator's output, not only this project's: ``evaluate_images(fake, real, net)`` or
``evaluate_folder(folder, real, net)``, with ``net`` a feature network of ``evonorm.gan.features``. The
real side may be a ``RealReference`` (features computed once, optionally cached as ``.npz``).
"""

from __future__ import annotations

import glob
import hashlib
import os

import numpy as np

from evonorm.gan import metrics
from evonorm.gan.features import get_feature_network, to_model_range


def _as_network_input(images) -> np.ndarray:
    images = np.asarray(images)
    return to_model_range(images) if images.dtype == np.uint8 else images


class RealReference:
    """Features of real images under one feature network: FID's statistics and KID's samples.

    ``identifier`` is the network's; ``fingerprint`` a hash of the images, so a cached reference is
    never reused for other images or another network.
    """

    def __init__(self, features: np.ndarray, identifier: str, fingerprint: str = ""):
        self.features = np.asarray(features, dtype=np.float64)
        self.identifier, self.fingerprint = identifier, fingerprint
        self.mu, self.sigma = metrics.feature_stats(self.features)

    def save(self, path: str) -> None:
        tmp = f"{path}.{os.getpid()}.tmp.npz"
        np.savez(tmp, features=self.features, identifier=self.identifier, fingerprint=self.fingerprint)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str) -> RealReference:
        with np.load(path) as data:
            return cls(data["features"], str(data["identifier"]), str(data["fingerprint"]))


def real_reference(real_images, feature_network, batch_size: int | None = None,
                   cache_path: str | None = None) -> RealReference:
    """The ``RealReference`` of ``real_images`` (uint8 or [-1, 1]), reusing ``cache_path`` (.npz) when it
    holds the same images under the same network, else computing it and writing it there."""
    net = get_feature_network(feature_network)
    x = _as_network_input(real_images)
    fingerprint = hashlib.sha1(np.ascontiguousarray(x).tobytes() + str(x.shape).encode()).hexdigest()
    if cache_path and os.path.isfile(cache_path):
        cached = RealReference.load(cache_path)
        if (cached.identifier, cached.fingerprint) == (net.identifier, fingerprint):
            return cached
    reference = RealReference(net.features_and_logits(x, batch_size)[0], net.identifier, fingerprint)
    if cache_path:
        reference.save(cache_path)
    return reference


def evaluate_images(fake_images, real, feature_network, fake_labels=None, *, batch_size: int | None = None,
                    real_cache: str | None = None, **metric_kwargs) -> dict:
    """IS / FID / KID of ``fake_images`` against real images, under ``feature_network``.

    Args:
      fake_images: ``[N, H, W, C]`` uint8, or float in [-1, 1].
      real: real images (as ``fake_images``) or a ``RealReference`` of the same network.
      feature_network: a ``FeatureNetwork`` or a ``get_feature_network`` spec.
      fake_labels: class labels the samples were conditioned on: adds ``'fake_label_accuracy'``, how
        often the network classifies a sample as its label.
      batch_size: feature extraction batch size (default: the network's).
      real_cache: ``.npz`` path caching the real reference (see ``real_reference``).
      **metric_kwargs: ``is_splits``, ``kid_subsets``, ``kid_subset_size``, ``seed`` of
        ``metrics.score_features``.

    Returns:
      ``metrics.score_features``'s dict plus ``'feature_network_id'`` (and ``'fake_label_accuracy'``).
    """
    net = get_feature_network(feature_network)
    if isinstance(real, RealReference):
        if real.identifier != net.identifier:
            raise ValueError(f"the real reference was computed with {real.identifier!r}, not "
                             f"{net.identifier!r}: scores under different networks are not comparable.")
        reference = real
    else:
        reference = real_reference(real, net, batch_size, real_cache)
    features, logits = net.features_and_logits(_as_network_input(fake_images), batch_size)
    report = metrics.score_features(reference.features, features, logits, feature_network=net.name,
                                    real_stats=(reference.mu, reference.sigma), **metric_kwargs)
    report["feature_network_id"] = net.identifier
    if fake_labels is not None:
        labels = np.asarray(fake_labels).reshape(-1)
        if labels.shape[0] != logits.shape[0]:
            raise ValueError(f"fake_labels has {labels.shape[0]} entries for {logits.shape[0]} images.")
        report["fake_label_accuracy"] = float(np.mean(logits.argmax(axis=1) == labels))
    return report


def load_png_folder(folder: str, channels: int = 1, pattern: str = "*.png") -> np.ndarray:
    """The images of ``folder`` matching ``pattern``, sorted by name, as uint8 ``[N, H, W, channels]``."""
    from PIL import Image  # noqa: PLC0415 - only this reader needs Pillow

    paths = sorted(glob.glob(os.path.join(folder, pattern)))
    if not paths:
        raise FileNotFoundError(f"no {pattern} files in {folder!r}.")
    images = []
    for path in paths:
        with Image.open(path) as im:
            images.append(np.asarray(im.convert("L" if channels == 1 else "RGB")))
    shapes = sorted({im.shape for im in images})
    if len(shapes) > 1:
        raise ValueError(f"{folder!r}: images differ in size ({shapes[:4]}); resize them to one size first.")
    return np.stack(images).reshape(len(images), *shapes[0][:2], channels)


def evaluate_folder(folder: str, real, feature_network, pattern: str = "*.png", **kwargs) -> dict:
    """``evaluate_images`` on the images of a folder (any generator's samples, not only ours)."""
    net = get_feature_network(feature_network)
    fake = load_png_folder(folder, net.input_channels, pattern)
    report = evaluate_images(fake, real, net, **kwargs)
    report["folder"] = folder
    return report

"""BigGAN-deep: the reference parameter counts, shapes at every resolution, and the norm seam."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from evonorm.gan import biggan
from evonorm.layers.base import NormActBase
from evonorm.layers.conditional import ConditionalNormAct

TABLE6_LAYERS = ("bn_relu", "evonorm_b0", "evonorm_s0", "gn_relu", "ln_relu", "pn_relu")


def _small(resolution=32, norm="bn_relu", **kwargs):
    kwargs.setdefault("ch", 8 if resolution == 32 else 4)
    return biggan.BigGANConfig(resolution=resolution, num_classes=5, image_channels=1, z_dim=16, embed_dim=8,
                               norm=norm, **kwargs)


@pytest.fixture(scope="module")
def paper_scale():
    """G and D at 128 px, ch 128, 1000 classes, BN-ReLU: built once (about 15 s)."""
    return biggan.build(biggan.BigGANConfig(), batch_size=1)


def test_parameter_counts_equal_compare_gans(paper_scale):
    g, d = paper_scale
    # compare_gan resnet_biggan_deep_test.py: 50,244,484 and 34,590,210 trainable weights.
    assert biggan.count_parameters(g)[0] == 50_244_484
    assert biggan.count_parameters(d)[0] == 34_590_210


def test_paper_scale_structure(paper_scale):
    g, d = paper_scale
    cond = [m for m in g.submodules if isinstance(m, ConditionalNormAct)]
    assert len(cond) == 40  # 10 blocks x 4 class-conditional BN-ReLU
    assert g.attention_after == 7 and d.attention_after == 1  # at 64x64 in both
    assert not any(isinstance(m, tf_keras.layers.BatchNormalization) for m in g.submodules)
    assert min(m.inner._channels for m in cond) == 64  # so 16 (GN) and 32 (S0) groups divide every layer


def test_hub_to_rgb_gives_the_papers_50_4m():
    g = biggan.Generator(biggan.BigGANConfig(to_rgb="hub"))
    g((tf.zeros([1, 128]), tf.zeros([1], tf.int32)))
    assert biggan.count_parameters(g)[0] == 50_388_609


@pytest.mark.parametrize("resolution", [32, 64])
def test_shapes_and_range(resolution):
    cfg = _small(resolution)
    g, d = biggan.Generator(cfg), biggan.Discriminator(cfg)
    y = tf.constant([0, 1, 2, 4], tf.int32)
    images = g((tf.random.normal([4, cfg.z_dim]), y), training=True)
    assert images.shape == (4, resolution, resolution, 1)
    assert float(tf.reduce_max(tf.abs(images))) <= 1.0
    assert d((images, y), training=True).shape == (4,)
    assert (g.attention_after is not None) == (resolution == 64)


@pytest.mark.parametrize("norm", TABLE6_LAYERS)
def test_every_table6_layer_trains_one_step_and_replaces_every_norm(norm):
    cfg = _small(norm=norm, norm_kwargs={"groups": 2} if norm in ("gn_relu", "evonorm_s0") else {})
    g, d = biggan.Generator(cfg), biggan.Discriminator(cfg)
    z, y = tf.random.normal([6, cfg.z_dim]), tf.constant([0, 1, 2, 3, 4, 0])
    with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(d((g((z, y), training=True), y), training=True))
    grads = tape.gradient(loss, g.trainable_variables)
    assert all(gr is not None and np.isfinite(tf.convert_to_tensor(gr).numpy()).all() for gr in grads)
    norms = [m for m in g.submodules if isinstance(m, NormActBase)]
    assert {m.registry_name for m in norms} == {norm}
    assert len(norms) == 4 * len(g.blocks) + 1  # the final one is unconditional
    assert not any(isinstance(m, tf_keras.layers.BatchNormalization) for m in g.submodules)


def test_the_class_changes_the_image():
    cfg = _small(norm="evonorm_s0", norm_kwargs={"groups": 2})
    g = biggan.Generator(cfg)
    z = tf.random.normal([2, cfg.z_dim])
    for var in g.trainable_variables:  # leave the near-identity start so every path carries signal
        var.assign(var + tf.random.normal(var.shape, stddev=0.05))
    a = g((z, tf.constant([0, 0])), training=False)
    b = g((z, tf.constant([3, 3])), training=False)
    assert float(tf.reduce_max(tf.abs(a - b))) > 1e-3
    np.testing.assert_array_equal(a.numpy(), g((z, tf.constant([0, 0])), training=False).numpy())


def test_config_round_trip_and_errors():
    cfg = _small(norm="EvoNorm-B0", norm_kwargs={"momentum": 0.95})
    assert cfg.norm == "evonorm_b0"
    assert biggan.BigGANConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="resolution must be one of"):
        biggan.BigGANConfig(resolution=48)
    with pytest.raises(ValueError, match="unknown fields"):
        biggan.BigGANConfig.from_dict({"width": 3})
    with pytest.raises(ValueError, match="unknown norm-act layer"):
        biggan.BigGANConfig(norm="batchnorm")
    with pytest.raises(ValueError, match="not divisible by groups=3"):
        g = biggan.Generator(_small(norm="gn_relu", norm_kwargs={"groups": 3}))
        g((tf.zeros([1, 16]), tf.zeros([1], tf.int32)))

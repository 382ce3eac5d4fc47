"""The anchor proxies build with a registry name or a graph layer, use it everywhere, and train a step."""

import numpy as np
import pytest

from evonorm.search.known_graphs import KNOWN_GRAPHS
from evonorm.search.proxy import ARCHITECTURES, ProxySpec, build_proxy, count_norm_acts, norm_act_factory

tf = pytest.importorskip("tensorflow")
tf_keras = pytest.importorskip("tf_keras")

EXPECTED_NORM_ACTS = {"resnet": 7, "mobilenetv2": 13, "efficientnet": 13}


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("candidate", ["bn_relu", KNOWN_GRAPHS["evonorm_s0"]], ids=["bn_relu", "graph_s0"])
def test_proxy_builds_and_trains_one_step(arch, candidate):
    model = build_proxy(arch, candidate, input_shape=(28, 28, 1), width=0.25)
    assert count_norm_acts(model) == EXPECTED_NORM_ACTS[arch]
    if not isinstance(candidate, str):
        names = {type(layer).__name__ for layer in model.layers if hasattr(layer, "registry_name")}
        assert names == {"GraphNormAct"}
    x = tf.random.normal([4, 28, 28, 1], seed=1)
    y = tf.constant([0, 1, 2, 3])
    optimizer = tf_keras.optimizers.SGD(0.1)
    before = [v.numpy().copy() for v in model.trainable_variables]
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, model(x, training=True)))
    grads = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None for g in grads)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    assert np.isfinite(float(loss))
    assert any(not np.allclose(a, v.numpy()) for a, v in zip(before, model.trainable_variables))


def test_factory_gives_fresh_layers_and_rejects_unknown_names():
    make = norm_act_factory(KNOWN_GRAPHS["evonorm_b0"])
    assert make(name="a") is not make(name="b")
    with pytest.raises(ValueError):
        norm_act_factory("no_such_layer")


def test_spec_validation():
    with pytest.raises(ValueError, match="unknown proxy"):
        ProxySpec("vgg")
    with pytest.raises(ValueError):
        ProxySpec("resnet", depth=9)
    assert ProxySpec("mobilenetv2").depth == 1 and ProxySpec("resnet").depth == 8

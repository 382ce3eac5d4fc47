"""Pins the fix for EvoNorm-B0 collapsing on the EfficientNet proxy (seed 2 of the reproduction suite).

Mechanism (official/results/reproduce/b0_efficientnet.md): at the MBConv linear projection (a norm
position without activation) a registry B-series layer defaulted to ``x / sqrt(s2_bwh(x) + eps)``, a
division by the *centered* batch std without centering. A channel with offset ``mu`` and spread
``sigma`` comes out with offset ``mu / sigma``: when training at peak learning rate shrank ``sigma``,
the per-channel offsets were amplified block after block until 99.8% of the head's input variance was
the same for every image, the pooled features were constant and the loss sat at ln 10. The proxy now
gives an EvoNorm at those positions the reference code's ``nonlinearity=False`` (``x * gamma + beta``),
as it already did for search graphs; the baselines keep their normalization.
"""

import numpy as np
import pytest

from evonorm.search.known_graphs import KNOWN_GRAPHS
from evonorm.search.proxy import build_proxy, norm_act_factory

tf = pytest.importorskip("tensorflow")
tf_keras = pytest.importorskip("tf_keras")


def _project_norms(model):
    return [layer for layer in model.layers if layer.name.endswith("_project_norm")]


def _offset_input():
    # One channel-wise offset far above the spread: the state the failing run drifted into.
    noise = tf.random.normal([8, 4, 4, 16], seed=3)
    return 5.0 + 0.01 * noise


@pytest.mark.parametrize("arch", ["efficientnet", "mobilenetv2"])
def test_evonorm_projection_norms_are_affine_like_search_graphs(arch):
    model = build_proxy(arch, "evonorm_b0", input_shape=(28, 28, 1), width=0.25)
    norms = _project_norms(model)
    assert len(norms) == 4
    for layer in norms:
        assert not layer.apply_act and layer.no_act_mode == "affine"
        assert not hasattr(layer, "moving_variance")  # no batch statistic at all there
    graph_model = build_proxy(arch, KNOWN_GRAPHS["evonorm_b0"], input_shape=(28, 28, 1), width=0.25)
    assert all(not layer.apply_act for layer in _project_norms(graph_model))


@pytest.mark.parametrize("name", ["bn_relu", "gn_relu", "frn"])
def test_baselines_keep_their_normalization_at_projections(name):
    for layer in _project_norms(build_proxy("efficientnet", name, input_shape=(28, 28, 1), width=0.25)):
        assert not layer.apply_act and layer.no_act_mode == "norm"


@pytest.mark.parametrize("name", ["evonorm_b0", "evonorm_s0"])
def test_projection_does_not_amplify_channel_offsets(name):
    x = _offset_input()
    make = norm_act_factory(name)
    proxy_out = make(name="p", apply_act=False)(x, training=True).numpy()
    np.testing.assert_allclose(proxy_out, x.numpy(), rtol=1e-6)  # gamma=1, beta=0: offset stays 5
    if name == "evonorm_b0":
        # The old default (the layer's own no_act_mode='norm'): offset 5 / std 0.01 -> ~500.
        old = norm_act_factory(name, no_act_mode="norm")(name="o", apply_act=False)(x, training=True).numpy()
        assert abs(old.mean()) > 50 * abs(proxy_out.mean())  # ~477 against 5


def test_explicit_no_act_mode_is_respected():
    layer = norm_act_factory("evonorm_b0", no_act_mode="norm")(name="n", apply_act=False)
    assert layer.no_act_mode == "norm"
    assert norm_act_factory("evonorm_b0")(name="a", apply_act=True).apply_act

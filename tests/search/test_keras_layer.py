"""Graph-built Keras layers equal the hand-written layers of evonorm.layers (both Keras generations)."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from evonorm.layers import keras3, legacy  # noqa: E402
from evonorm.search.graph import Graph  # noqa: E402
from evonorm.search.keras_layer import graph_layer_class, graph_to_layer  # noqa: E402
from evonorm.search.known_graphs import APPROXIMATIONS, EXACT, KNOWN_GRAPHS  # noqa: E402

GENERATIONS = {"tf_keras": legacy, "keras3": keras3}
SHAPE = (4, 5, 5, 16)
GROUPS = 4


def _name(variable):
    return variable.name.split("/")[-1].split(":")[0]


def _pair(name, generation, randomize_affine):
    """(hand-written layer, graph layer) built on SHAPE, the graph layer holding the same weights."""
    kwargs = {"groups": GROUPS} if "gn_" in name or "_s" in name else {}
    ref = GENERATIONS[generation].create_norm_act(name, **kwargs)
    lay = graph_to_layer(KNOWN_GRAPHS[name], generation=generation, groups=GROUPS)
    ref.build(SHAPE)
    lay.build(SHAPE)
    rng = np.random.default_rng(1)
    values = {}
    for v in ref.weights:
        if randomize_affine or _name(v) not in ("gamma", "beta"):
            v.assign(rng.uniform(0.5, 1.5, v.shape).astype("float32"))
        values[_name(v)] = v.numpy()
    if name == "frn":  # max(z g + b, tau) == max(z, v0) g + b with v0 = (tau - b) / g
        values["v0"] = (values["tau"] - values["beta"]) / values["gamma"]
    for v in lay.weights:
        v.assign(values[_name(v)])
    return ref, lay


def _inputs():
    return tf.random.stateless_normal(SHAPE, seed=(1, 2)) * 2.0 + 0.5


@pytest.mark.parametrize("generation", sorted(GENERATIONS))
@pytest.mark.parametrize("name", EXACT)
def test_exact_graphs_match_hand_written_layers(name, generation):
    ref, lay = _pair(name, generation, randomize_affine=True)
    assert sorted(map(_name, lay.weights)) == sorted(map(_name, ref.weights))
    x = _inputs()
    for training in (True, False, True, False):  # inference after training uses the updated stats
        np.testing.assert_allclose(lay(x, training=training), ref(x, training=training), rtol=1e-5, atol=1e-5)
    for a, b in zip(sorted(lay.weights, key=_name), sorted(ref.weights, key=_name)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(APPROXIMATIONS))
def test_approximations_match_at_initial_affine(name):
    ref, lay = _pair(name, "tf_keras", randomize_affine=False)
    x = _inputs()
    for training in (True, False):
        np.testing.assert_allclose(lay(x, training=training), ref(x, training=training), rtol=1e-5, atol=1e-5)


def test_moving_statistics_per_batch_node():
    g = Graph([("mean_bwh", (0,)), ("std_bwh", (0,)), ("std_bwh", (4,)), ("add", (5, 6)), ("div", (0, 7))])
    layer = graph_to_layer(g, generation="tf_keras", momentum=0.5)
    x = _inputs()
    layer(x, training=True)
    names = sorted(_name(v) for v in layer.non_trainable_weights)
    assert names == ["moving_mean", "moving_variance_5", "moving_variance_6"]
    mean, var = tf.nn.moments(x, [0, 1, 2])
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.5 * mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.moving_variance_5.numpy(), 0.5 + 0.5 * var.numpy(), rtol=1e-5)
    # Batch variance of a per-channel constant (mu_bwh broadcast over b, w, h) is 0.
    np.testing.assert_allclose(layer.moving_variance_6.numpy(), 0.5, atol=1e-6)


@pytest.mark.parametrize("generation", sorted(GENERATIONS))
def test_config_round_trip_and_symbolic_training(generation):
    layer = graph_to_layer(KNOWN_GRAPHS["evonorm_b0"].to_json(), generation=generation, momentum=0.8,
                           name="searched")
    x = _inputs()
    y = layer(x, training=True)
    config = layer.get_config()
    assert config["graph"] == KNOWN_GRAPHS["evonorm_b0"].to_dict() and config["momentum"] == 0.8
    clone = graph_layer_class(generation).from_config(config)
    clone.build(SHAPE)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(x, training=False), layer(x, training=False), rtol=1e-6)

    @tf.function
    def run(flag):
        return layer(x, training=flag)

    np.testing.assert_allclose(run(tf.constant(False)), layer(x, training=False), rtol=1e-6)
    assert np.isfinite(y.numpy()).all()


def test_keras3_model_saves_and_loads(tmp_path):
    keras = pytest.importorskip("keras")
    layer = graph_to_layer(KNOWN_GRAPHS["evonorm_s0"], generation="keras3", groups=GROUPS)
    inputs = keras.Input(SHAPE[1:])
    model = keras.Model(inputs, layer(inputs))
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    x = _inputs()
    np.testing.assert_allclose(loaded(x), model(x), rtol=1e-6)


def test_apply_act_false_is_affine_and_gradients_flow():
    layer = graph_to_layer(KNOWN_GRAPHS["evonorm_b0"], generation="tf_keras", apply_act=False)
    x = _inputs()
    np.testing.assert_allclose(layer(x, training=True), x, rtol=1e-6)
    assert sorted(_name(v) for v in layer.weights) == ["beta", "gamma"]
    layer = graph_to_layer(KNOWN_GRAPHS["evonorm_s0"], generation="tf_keras", groups=GROUPS)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, training=True) ** 2)
    grads = tape.gradient(loss, layer.trainable_weights)
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in grads)
    with pytest.raises(TypeError, match="expected a Graph"):
        graph_to_layer(42, generation="tf_keras")

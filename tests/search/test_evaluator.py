"""The evaluator rejects bad graphs for the right reason and accepts EvoNorm-B0 above chance."""

import pickle

import numpy as np
import pytest

from evonorm.search.evaluator import Evaluator, EvaluatorConfig, make_problem, stability_test
from evonorm.search.graph import Graph
from evonorm.search.known_graphs import KNOWN_GRAPHS

pytest.importorskip("tensorflow")

TINY = EvaluatorConfig(archs=(("resnet", 0.25, None),), batch_size=32, quality_steps=40, stability_steps=3,
                       stability_batch=8, val_examples=256)


def test_constant_graph_is_rejected_before_training():
    constant = Graph([("sigmoid", (1,))])  # the output ignores x (node 0)
    result = Evaluator(TINY)(constant.to_dict(), 0)
    assert result.rejected == "constant"
    assert "data_s" not in result.timings  # no TensorFlow work was spent


def test_batch_ops_excluded_in_s_series_search():
    result = Evaluator(TINY, allow_batch_ops=False)(KNOWN_GRAPHS["evonorm_b0"].to_dict(), 0)
    assert result.rejected == "batch_ops"


def test_table3_random_layer_fails_quality_and_b0_passes():
    evaluator = pickle.loads(pickle.dumps(Evaluator(TINY)))  # runs in worker processes
    bad = evaluator(KNOWN_GRAPHS["random"].to_dict(), 3)
    assert bad.rejected == "quality" and bad.scores == {}
    assert bad.extras["accuracy"]["resnet"] < 0.2
    good = evaluator(KNOWN_GRAPHS["evonorm_b0"].to_dict(), 3)
    assert good.rejected is None
    assert good.scores["resnet"] > 0.2  # 2 x chance on 10 classes
    assert {"resnet_stability_s", "resnet_quality_s", "resnet_eval_s"} <= set(good.timings)


def test_stability_test_rejects_exploding_gradients():
    import tf_keras

    # A model whose gradient norm grows without bound under ascent: logits = (w x)^3 scaled up.
    inputs = tf_keras.Input((4,))
    hidden = tf_keras.layers.Dense(4, use_bias=False, kernel_initializer="ones")(inputs)
    outputs = tf_keras.layers.Lambda(lambda h: 1e3 * h ** 5)(hidden)
    model = tf_keras.Model(inputs, outputs)
    x = np.ones((2, 4), np.float32)
    result = stability_test(model, x, np.array([0, 1], np.int32), steps=50, step_size=0.5)
    assert not result["passed"] and result["steps"] < 50


def test_problem_assembly_dedups_equivalent_graphs():
    problem = make_problem(TINY, allow_batch_ops=False)
    g = problem.generate(np.random.default_rng(0))
    assert not g.uses_batch_stats
    assert problem.from_json(problem.to_json(g)) == g
    a = Graph([("add", (0, 2))])
    b = Graph([("add", (2, 0))])
    assert problem.key(a) == problem.key(b)
    assert problem.objectives == ("resnet",)


def test_restored_weights_give_the_rebuilt_models_result():
    """The evaluator restores the initial weights after the ascent instead of rebuilding the proxy:
    the quality test must be the one the old two-build protocol ran (same seed, same data)."""
    import tf_keras

    from evonorm.search import evaluator as ev
    from evonorm.search.proxy import ProxySpec, build_proxy, norm_act_factory

    graph, seed = KNOWN_GRAPHS["evonorm_s0"], 5
    result = Evaluator(TINY)(graph.to_dict(), seed)
    x_train, y_train, x_val, y_val, mean, std = ev.load_data(TINY.data, None, TINY.validation_size)
    x_val, y_val = x_val[:TINY.val_examples], y_val[:TINY.val_examples]

    def fresh():
        tf_keras.backend.clear_session()
        tf_keras.utils.set_random_seed(seed)
        return build_proxy(ProxySpec("resnet", 0.25), factory=norm_act_factory(graph, group_size=TINY.group_size),
                           input_shape=x_train.shape[1:], num_classes=10)

    rebuilt = ev.quality_test(fresh(), ev._batches(x_train, y_train, TINY.batch_size, mean, std, seed),  # noqa: SLF001
                              ev._eval_batches(x_val, y_val, 256, mean, std), TINY)  # noqa: SLF001
    assert result.extras["quality"]["resnet"]["losses"] == rebuilt["losses"]
    assert result.scores["resnet"] == rebuilt["accuracy"]


def test_without_short_circuit_every_proxy_is_scored_after_a_failure():
    # Figure 2's protocol (configs.figure2): a layer failing on the first proxy is still trained on
    # the next. A threshold no 10-step run reaches makes every quality test fail.
    import dataclasses

    two = dataclasses.replace(TINY, archs=(("resnet", 0.25, None), ("mobilenetv2", 0.25, None)), quality_steps=10,
                              quality_threshold=0.99)
    s0 = KNOWN_GRAPHS["evonorm_s0"].to_dict()
    stopped = Evaluator(two)(s0, 0)
    assert stopped.rejected == "quality" and set(stopped.extras["accuracy"]) == {"resnet"}
    scored = Evaluator(dataclasses.replace(two, short_circuit=False))(s0, 0)
    assert scored.rejected == "quality" and scored.scores == {}
    assert set(scored.extras["accuracy"]) == {"resnet", "mobilenetv2"}
    assert all(0.0 <= v <= 1.0 for v in scored.extras["accuracy"].values())


def test_figure2_config_is_default_protocol_without_short_circuit():
    import dataclasses

    from evonorm.search import configs

    fig2, default = configs.get_config("figure2"), configs.get_config("default")
    assert fig2.budget == 5000 and fig2.rerank_top_k == 0 and not fig2.evaluator.short_circuit
    assert dataclasses.replace(fig2.evaluator, short_circuit=True) == default.evaluator


def test_expected_retracing_warnings_are_dropped_from_the_tensorflow_log():
    # Each candidate's model gets new traced functions; TensorFlow's retracing warning about that
    # flooded the search's log (one per few candidates) and says nothing wrong.
    import logging

    import tensorflow as tf

    from evonorm.search import evaluator

    evaluator._configure_threads(1)
    seen = []
    handler = logging.Handler()
    handler.emit = seen.append
    tf.get_logger().addHandler(handler)
    try:
        for n in range(8):  # new functions in a loop: what triggers the warning
            tf.function(lambda x: x * 2.0)(tf.ones([n + 1]))
        tf.get_logger().warning("another tensorflow warning")
    finally:
        tf.get_logger().removeHandler(handler)
    messages = [r.getMessage() for r in seen]
    assert "another tensorflow warning" in messages
    assert not any("retracing" in m for m in messages)

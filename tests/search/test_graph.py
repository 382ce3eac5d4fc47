"""Graph representation, primitives, random generation and mutation (paper Sec. 3, 4.1)."""

import json
import random

import numpy as np
import pytest

from evonorm.search import primitives
from evonorm.search.generator import SpaceConfig, random_graph
from evonorm.search.graph import NUM_INITIAL, Graph, evaluate, evaluate_numpy
from evonorm.search.mutation import mutate, mutate_with_index

B0_NODES = [("std_bwh", (0,)), ("mul", (3, 0)), ("std_wh", (0,)), ("add", (5, 6)), ("max", (4, 7)),
            ("div", (0, 8))]


def test_table2_primitives():
    ops = primitives.op_names()
    assert len(ops) == 12 + 12
    batch = {p.name for p in primitives.ALL_PRIMITIVES if p.batch_dependent}
    assert batch == {"mean_bwh", "rms_bwh", "std_bwh"}
    assert set(primitives.op_names(allow_batch_ops=False)) == set(ops) - {"mean_bwh", "rms_bwh", "std_bwh"}
    assert sum(p.arity == 2 for p in primitives.ALL_PRIMITIVES) == 4  # Add, Mul, Div, Max
    with pytest.raises(ValueError, match="unknown primitive op 'relu'"):
        primitives.get("relu")


# EvoNorm-B0 with a dead node (tanh of v0) at index 5.
B0_WITH_DEAD = [("std_bwh", (0,)), ("tanh", (2,)), ("mul", (3, 0)), ("std_wh", (0,)), ("add", (6, 7)),
                ("max", (4, 8)), ("div", (0, 9))]


def test_json_round_trip_keeps_dead_nodes():
    g = Graph(B0_WITH_DEAD)
    again = Graph.from_json(g.to_json())
    assert again.nodes == g.nodes and again == g
    assert json.loads(g.to_json())["nodes"][1] == {"op": "tanh", "inputs": [2]}
    assert Graph.from_json(g.to_dict()) == g


@pytest.mark.parametrize("payload, message", [
    ('{"nodes": [{"op": "add", "inputs": [0]}]}', "node 4 \\(add\\): has 1 inputs, the op takes 2"),
    ('{"nodes": [{"op": "neg", "inputs": [4]}]}', "node 4 \\(neg\\): input 4 is not an earlier node"),
    ('{"nodes": [{"op": "relu", "inputs": [0]}]}', "unknown primitive op 'relu'"),
    ('{"nodes": []}', "at least one intermediate node"),
    ('{"nodes": [{"op": "neg"}]}', "node 4: expected"),
    ('{"format": "other/2", "nodes": []}', "format 'other/2'"),
    ('{"edges": []}', "no 'nodes' list"),
    ('[1, 2]', "must be an object"),
    ('{nodes', "does not parse"),
    ('{"nodes": [{"op": "neg", "inputs": [true]}]}', "input True is not an earlier node"),
])
def test_from_json_names_the_problem(payload, message):
    with pytest.raises(ValueError, match=message):
        Graph.from_json(payload)


def test_from_json_max_nodes():
    with pytest.raises(ValueError, match="more than max_nodes=3"):
        Graph.from_json(Graph(B0_NODES).to_json(), max_nodes=3)


def test_prune_equality_and_hash():
    g = Graph(B0_NODES)
    with_dead = Graph(B0_WITH_DEAD)
    assert with_dead.num_nodes == 7 and with_dead.prune().num_nodes == 6
    assert with_dead.prune().nodes == g.nodes
    assert with_dead == g and hash(with_dead) == hash(g) and len({g, with_dead}) == 1
    assert g != Graph(B0_NODES[:-1] + [("div", (8, 0))])
    assert g.uses_batch_stats and g.uses_v1 and not g.uses_v0 and not g.uses_groups
    assert [i for i, _ in g.batch_nodes()] == [4]
    constant = Graph([("neg", (0,)), ("sigmoid", (3,))])
    assert not constant.depends_on_input and constant.prune().num_nodes == 1


def test_generator_validity_over_many_seeds():
    for allow in (True, False):
        config = SpaceConfig(max_nodes=10, allow_batch_ops=allow)
        for seed in range(300):
            g = random_graph(random.Random(seed), config)
            assert g.num_nodes == 10
            for k, node in enumerate(g.nodes):
                assert node.op in config.ops
                assert len(node.inputs) == primitives.get(node.op).arity
                assert all(0 <= i < NUM_INITIAL + k for i in node.inputs)
            assert Graph.from_json(g.to_json()).nodes == g.nodes
            if not allow:
                assert not any(primitives.get(n.op).batch_dependent for n in g.nodes)


def test_generator_variable_length_and_require_input():
    config = SpaceConfig(max_nodes=6, min_nodes=2, require_input=True)
    lengths = {random_graph(seed, config).num_nodes for seed in range(200)}
    assert lengths == {2, 3, 4, 5, 6}
    assert all(random_graph(seed, config).depends_on_input for seed in range(50))
    with pytest.raises(ValueError, match="min_nodes"):
        SpaceConfig(max_nodes=3, min_nodes=5)


def test_generator_and_mutation_deterministic_per_seed():
    for make in (random.Random, np.random.default_rng):
        a = [random_graph(make(7)).nodes for _ in range(2)]
        assert a[0] == a[1]
        parent = random_graph(make(1))
        assert mutate(parent, make(3)).nodes == mutate(parent, make(3)).nodes
    assert random_graph(1).nodes != random_graph(2).nodes
    with pytest.raises(TypeError, match="rng must be"):
        random_graph("seed")


def test_mutation_changes_exactly_one_node():
    config = SpaceConfig(max_nodes=10, allow_batch_ops=False)
    rng = random.Random(0)
    chosen = set()
    for seed in range(300):
        parent = random_graph(seed, config)
        child, index = mutate_with_index(parent, rng, config)
        changed = [NUM_INITIAL + k for k, (a, b) in enumerate(zip(parent.nodes, child.nodes)) if a != b]
        assert changed == [index] and child.num_nodes == parent.num_nodes
        assert all(i < index for i in child.node(index).inputs)
        assert not child.uses_batch_stats
        chosen.add(index)
    assert chosen == set(range(NUM_INITIAL, NUM_INITIAL + 10))  # every node can be picked
    live = mutate_with_index(Graph(B0_NODES), random.Random(5), live_only=True)[1]
    assert live in Graph(B0_NODES).live_indices()
    with pytest.raises(ValueError, match="max_nodes=3"):
        mutate(Graph(B0_NODES), rng, SpaceConfig(max_nodes=3))


def test_numpy_and_tensorflow_evaluators_agree():
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4, 4, 8)).astype(np.float32)
    v0 = rng.normal(size=8).astype(np.float32)
    v1 = (1 + rng.normal(size=8)).astype(np.float32)
    checked = 0
    for seed in range(60):
        g = random_graph(seed, SpaceConfig(max_nodes=6, require_input=True))
        ref = evaluate_numpy(g, x.astype(np.float64), v0, v1, groups=2)
        out, stats = evaluate(g, tf.constant(x), v0, v1, groups=2, training=True)
        assert set(stats) == {i for i, _ in g.batch_nodes()}
        finite = np.isfinite(ref) & (np.abs(ref) < 1e4)
        np.testing.assert_allclose(out.numpy()[finite], ref[finite], rtol=2e-3, atol=2e-3)
        checked += finite.all()
    assert checked > 30


def test_evaluate_inference_needs_moving_stats():
    tf = pytest.importorskip("tensorflow")
    g = Graph(B0_NODES)
    x = tf.random.normal([2, 3, 3, 4])
    with pytest.raises(ValueError, match=r"moving_stats\[4\]"):
        evaluate(g, x, v1=tf.ones([4]))
    with pytest.raises(ValueError, match="the graph uses v1"):
        evaluate(g, x, training=True)
    y, stats = evaluate(g, x, v1=tf.ones([4]), moving_stats={4: tf.ones([4])})
    assert y.shape == x.shape and stats == {}

"""Mutation of a layer graph (paper Sec. 4.1), in the paper's three steps:

1. select an intermediate node uniformly at random;
2. replace its operation with one of Table 2, uniformly at random;
3. select new predecessors for it uniformly at random among the nodes before it.

Nothing else changes, so the child keeps the parent's node count. Randomness comes only from the
injected generator. By default a draw that reproduces the node exactly is redrawn, so every child
differs from its parent in exactly one node (the mutated node may be dead, as in the paper: the child
is then functionally its parent, which the evolution's fingerprint cache recognizes for free).

Neutral children and live nodes. Most of a graph's 10 nodes are dead (most random graphs that pass
the NumPy filters have 1-3 live nodes), so most children are functionally their parent: measured on
150 such graphs (40 mutations each), a mutation is neutral with probability 0.91 / 0.80 / 0.71 for
1 / 2 / 3 live nodes; in the stored ``default`` evolution run, 80% of mutation proposals were. The
operator here stays the paper's (uniform over *all* intermediate nodes) and the evolution loop
(:mod:`evonorm.search.evolution`, ``max_redraws``) mutates a child whose fingerprint equals its
parent's again, a few fingerprints of about 0.1-0.15 ms each. Why there and not ``live_only`` here:

* a dead node's change never changes the function, so conditioning on a changed fingerprint already
  puts the function-changing step on a live node, (nearly) uniformly among them, as ``live_only``
  would;
* the neutral dead-node changes before it are kept (the loop mutates the neutral child, not the
  parent), so dead nodes still drift as they would through the paper's population of copies, and a
  later mutation that rewires a live node onto a dead one exposes drifted content; with
  ``live_only`` dead nodes would keep their random initial content forever. Any graph of the space
  stays reachable either way (make a node live by rewiring, then mutate it), but only the uniform
  operator keeps the paper's distribution over genotypes;
* the loop stays generic (it only compares keys), so the same rule serves any
  :class:`~evonorm.search.evolution.SearchProblem`.

``live_only=True`` remains available for experiments; it is not the paper's rule.

Example:
  >>> import random
  >>> from evonorm.search.known_graphs import KNOWN_GRAPHS
  >>> child, index = mutate_with_index(KNOWN_GRAPHS["evonorm_s0"], random.Random(1))
"""

from __future__ import annotations

from evonorm.search.generator import RandomSource, SpaceConfig, random_node
from evonorm.search.graph import NUM_INITIAL, Graph


def mutate_with_index(graph: Graph, rng, config: SpaceConfig = SpaceConfig(), ensure_change: bool = True,
                      live_only: bool = False):
    """Mutates one node; returns ``(child, index of the mutated node)``.

    Args:
      graph: the parent.
      rng: ``random.Random``, ``numpy.random.Generator`` or int seed.
      config: search space; its ``allow_batch_ops`` restricts the new op, and the parent may not have
        more than ``max_nodes`` intermediate nodes.
      ensure_change: redraw steps 2-3 while they reproduce the node's current op and inputs.
      live_only: pick among the nodes the output depends on instead of all intermediate nodes (not
        the paper's rule; it spends no offspring on neutral changes).

    Raises:
      ValueError: if the parent exceeds ``config.max_nodes``.
    """
    if not isinstance(graph, Graph):
        raise TypeError(f"mutate expects a Graph, got {type(graph).__name__}")
    if graph.num_nodes > config.max_nodes:
        raise ValueError(f"parent has {graph.num_nodes} intermediate nodes, more than "
                         f"config.max_nodes={config.max_nodes}")
    source = RandomSource(rng)
    candidates = list(range(NUM_INITIAL, NUM_INITIAL + graph.num_nodes))
    if live_only:
        candidates = [i for i in candidates if i in graph.live_indices()]
    index = source.choice(candidates)
    old = graph.node(index)
    for _ in range(1000):
        op, inputs = random_node(source, index, config.ops)
        if not ensure_change or (op, inputs) != (old.op, old.inputs):
            break
    else:  # pragma: no cover - would need a space of one op with one input
        raise RuntimeError(f"could not draw a node different from {old} at index {index}")
    return graph.replace_node(index, op, inputs), index


def mutate(graph: Graph, rng, config: SpaceConfig = SpaceConfig(), ensure_change: bool = True,
           live_only: bool = False) -> Graph:
    """The child graph of :func:`mutate_with_index` (same arguments)."""
    return mutate_with_index(graph, rng, config, ensure_change, live_only)[0]

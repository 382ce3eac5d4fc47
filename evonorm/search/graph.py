"""Computation graphs of normalization-activation layers (paper Sec. 3, Figure 1).

A :class:`Graph` is an immutable DAG with 4 initial nodes -- the input ``x`` (index 0), a constant
zero (1), and two trainable per-channel vectors ``v0`` (2, initialized to 0) and ``v1`` (3, initialized
to 1) -- followed by intermediate nodes, each a primitive op of Table 2 applied to earlier nodes. The
last node is the output. The channel-wise affine ``* gamma + beta`` that follows every searched layer
is not part of the graph (the Keras layer adds it).

Graphs keep their dead nodes (the genotype: mutation may revive them), but compare and hash by their
pruned structure, so two graphs that compute through the same live nodes are equal.

Example:
  >>> g = Graph([("std_bwh", (0,)), ("mul", (3, 0)), ("std_wh", (0,)), ("add", (5, 6)),
  ...            ("max", (4, 7)), ("div", (0, 8))])       # EvoNorm-B0
  >>> Graph.from_json(g.to_json()) == g
  True
"""

from __future__ import annotations

import json
from typing import NamedTuple

import numpy as np

from evonorm.search import primitives

NUM_INITIAL = 4
INPUT, ZERO, V0, V1 = range(NUM_INITIAL)
INITIAL_NAMES = ("x", "zero", "v0", "v1")
FORMAT = "evonorm.graph/1"


class Node(NamedTuple):
    """An intermediate node: a primitive op name and the indices of its operands (all earlier nodes)."""

    op: str
    inputs: tuple


class Graph:
    """An immutable, hashable, JSON-serializable layer computation graph.

    Args:
      nodes: the intermediate nodes in order, as :class:`Node` or ``(op, inputs)`` pairs. Node ``k`` of
        the list has graph index ``4 + k``; its inputs must be smaller indices. At least one node.

    Raises:
      ValueError: naming the offending node for an unknown op, a wrong number of inputs, or an input
        that is not an earlier node.
    """

    __slots__ = ("_nodes", "_live", "_pruned", "_hash")

    def __init__(self, nodes):
        if isinstance(nodes, (str, bytes)) or not hasattr(nodes, "__iter__"):
            raise TypeError(f"Graph expects a sequence of (op, inputs) nodes, got {type(nodes).__name__}")
        checked = []
        for k, node in enumerate(nodes):
            index = NUM_INITIAL + k
            try:
                op, inputs = node
            except (TypeError, ValueError):
                raise ValueError(f"node {index}: expected an (op, inputs) pair, got {node!r}") from None
            prim = primitives.get(op) if isinstance(op, str) else None
            if prim is None:
                raise ValueError(f"node {index}: op must be a string, got {op!r}")
            if isinstance(inputs, (str, bytes)) or not hasattr(inputs, "__iter__"):
                raise ValueError(f"node {index} ({op}): inputs must be a list of node indices, "
                                 f"got {inputs!r}")
            inputs = tuple(inputs)
            if len(inputs) != prim.arity:
                raise ValueError(f"node {index} ({op}): has {len(inputs)} inputs, the op takes {prim.arity}")
            for i in inputs:
                if not isinstance(i, (int, np.integer)) or isinstance(i, bool) or not 0 <= i < index:
                    raise ValueError(f"node {index} ({op}): input {i!r} is not an earlier node index "
                                     f"(0..{index - 1})")
            checked.append(Node(op, tuple(int(i) for i in inputs)))
        if not checked:
            raise ValueError("a graph needs at least one intermediate node (the output)")
        self._nodes = tuple(checked)
        self._live = None
        self._pruned = None
        self._hash = None

    # -- structure ---------------------------------------------------------------------------------

    @property
    def nodes(self) -> tuple:
        """The intermediate nodes (graph indices ``4 .. 4 + len - 1``), dead ones included."""
        return self._nodes

    @property
    def num_nodes(self) -> int:
        """Number of intermediate nodes (the paper's budget of 10 counts these)."""
        return len(self._nodes)

    @property
    def output_index(self) -> int:
        return NUM_INITIAL + len(self._nodes) - 1

    def node(self, index: int) -> Node:
        """The intermediate node with graph index ``index`` (>= 4)."""
        if not NUM_INITIAL <= index <= self.output_index:
            raise IndexError(f"node index {index} is not an intermediate node (4..{self.output_index})")
        return self._nodes[index - NUM_INITIAL]

    def live_indices(self) -> frozenset:
        """Indices of the nodes the output depends on (initial nodes included), the output itself too."""
        if self._live is None:
            live, stack = set(), [self.output_index]
            while stack:
                i = stack.pop()
                if i in live:
                    continue
                live.add(i)
                if i >= NUM_INITIAL:
                    stack.extend(self._nodes[i - NUM_INITIAL].inputs)
            self._live = frozenset(live)
        return self._live

    def prune(self) -> "Graph":
        """The same function without dead nodes, renumbered (initial nodes keep indices 0..3)."""
        if self._pruned is None:
            live = self.live_indices()
            remap = {i: i for i in range(NUM_INITIAL)}
            kept = []
            for k, node in enumerate(self._nodes):
                index = NUM_INITIAL + k
                if index in live:
                    remap[index] = NUM_INITIAL + len(kept)
                    kept.append(Node(node.op, tuple(remap[i] for i in node.inputs)))
            pruned = self if len(kept) == len(self._nodes) else Graph(kept)
            pruned._pruned = pruned
            self._pruned = pruned
        return self._pruned

    def replace_node(self, index: int, op: str, inputs) -> "Graph":
        """A copy with intermediate node ``index`` replaced by ``(op, inputs)`` (validated)."""
        self.node(index)
        nodes = list(self._nodes)
        nodes[index - NUM_INITIAL] = (op, tuple(inputs))
        return Graph(nodes)

    def _live_ops(self):
        live = self.live_indices()
        return [primitives.get(n.op) for k, n in enumerate(self._nodes) if NUM_INITIAL + k in live]

    @property
    def uses_batch_stats(self) -> bool:
        """True if a live node aggregates over the batch (B series: needs moving statistics)."""
        return any(p.batch_dependent for p in self._live_ops())

    @property
    def uses_groups(self) -> bool:
        """True if a live node aggregates over channel groups ``(w,h,c/g)``."""
        return any(p.index_set == "whcg" for p in self._live_ops())

    @property
    def uses_v0(self) -> bool:
        return V0 in self.live_indices()

    @property
    def uses_v1(self) -> bool:
        return V1 in self.live_indices()

    @property
    def depends_on_input(self) -> bool:
        """False if the output is structurally a constant (no path from ``x``)."""
        return INPUT in self.live_indices()

    def batch_nodes(self) -> tuple:
        """``(index, primitive)`` of the live batch-aggregation nodes, in graph order."""
        live = self.live_indices()
        found = []
        for k, node in enumerate(self._nodes):
            prim = primitives.get(node.op)
            if prim.batch_dependent and NUM_INITIAL + k in live:
                found.append((NUM_INITIAL + k, prim))
        return tuple(found)

    # -- identity ----------------------------------------------------------------------------------

    def structure_key(self) -> tuple:
        """Hashable key of the pruned structure: what equality and hashing use."""
        return self.prune()._nodes

    def __eq__(self, other):
        if not isinstance(other, Graph):
            return NotImplemented
        return self is other or self.structure_key() == other.structure_key()

    def __hash__(self):
        if self._hash is None:
            self._hash = hash(self.structure_key())
        return self._hash

    def __len__(self):
        return len(self._nodes)

    def __repr__(self):
        return f"Graph({self.to_text()!r}, nodes={len(self._nodes)})"

    # -- serialization -----------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """JSON-ready dict: ``{"format": ..., "nodes": [{"op": ..., "inputs": [...]}, ...]}``."""
        return {"format": FORMAT, "nodes": [{"op": n.op, "inputs": list(n.inputs)} for n in self._nodes]}

    def to_json(self) -> str:
        """Compact JSON string of :meth:`to_dict` (dead nodes included, so the genotype round-trips)."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data, max_nodes: int | None = None) -> "Graph":
        """Graph from :meth:`to_dict` output; ValueError naming the problem on malformed input."""
        if not isinstance(data, dict):
            raise ValueError(f"graph JSON must be an object, got {type(data).__name__}")
        if data.get("format", FORMAT) != FORMAT:
            raise ValueError(f"graph JSON has format {data.get('format')!r}, expected {FORMAT!r}")
        if "nodes" not in data:
            raise ValueError("graph JSON has no 'nodes' list")
        if not isinstance(data["nodes"], list):
            raise ValueError(f"graph JSON 'nodes' must be a list, got {type(data['nodes']).__name__}")
        nodes = []
        for k, node in enumerate(data["nodes"]):
            if not isinstance(node, dict) or set(node) != {"op", "inputs"}:
                raise ValueError(f"graph JSON node {NUM_INITIAL + k}: expected "
                                 f"{{'op': ..., 'inputs': [...]}}, got {node!r}")
            if not isinstance(node["inputs"], list):
                raise ValueError(f"graph JSON node {NUM_INITIAL + k}: 'inputs' must be a list, "
                                 f"got {node['inputs']!r}")
            nodes.append((node["op"], node["inputs"]))
        graph = cls(nodes)
        if max_nodes is not None and graph.num_nodes > max_nodes:
            raise ValueError(f"graph has {graph.num_nodes} intermediate nodes, "
                             f"more than max_nodes={max_nodes}")
        return graph

    @classmethod
    def from_json(cls, text, max_nodes: int | None = None) -> "Graph":
        """Graph from a JSON string (or an already-parsed dict)."""
        if isinstance(text, dict):
            return cls.from_dict(text, max_nodes)
        try:
            data = json.loads(text)
        except (TypeError, json.JSONDecodeError) as err:
            raise ValueError(f"graph JSON does not parse: {err}") from None
        return cls.from_dict(data, max_nodes)

    # -- rendering (see render.py) -----------------------------------------------------------------

    def to_text(self) -> str:
        """Plain-text formula, e.g. ``x / max(sqrt(s2_bwh(x)), v1*x + sqrt(s2_wh(x)))``."""
        from evonorm.search import render  # noqa: PLC0415 - render imports this module
        return render.to_text(self)

    def to_latex(self) -> str:
        """LaTeX formula, as in the paper's tables."""
        from evonorm.search import render  # noqa: PLC0415
        return render.to_latex(self)


# --- evaluation -----------------------------------------------------------------------------------


def evaluate(graph: Graph, x, v0=None, v1=None, *, groups=None, epsilon=1e-5, training=False,
             moving_stats=None, data_format="channels_last", synchronized=False):
    """Computes the graph's output (before the affine) with TensorFlow ops.

    Batch aggregations (``(b,w,h)``) use the statistics of ``x`` when ``training`` is True and return
    them, so the caller can update one moving average per batch-aggregation node -- the mean for
    ``mu_bwh``, the mean square for ``sqrt(mu_bwh(x^2))``, the variance for ``sqrt(s2_bwh(x))`` -- exactly
    as the B-series EvoNorms keep ``moving_variance``. When ``training`` is False they read
    ``moving_stats[index]`` instead.

    Args:
      graph: the graph to evaluate (dead nodes are skipped).
      x: float32 input, NHWC (or NCHW with ``data_format='channels_first'``).
      v0, v1: per-channel vectors ``[C]``; required only if the graph uses them.
      groups: channel groups for ``(w,h,c/g)`` aggregations.
      epsilon: inside aggregation square roots and ``Log``.
      training: Python bool (wrap calls in ``smart_cond`` for symbolic flags).
      moving_stats: ``{node index: [C] statistic}`` for inference with batch aggregations.
      data_format: ``'channels_last'`` or ``'channels_first'``.
      synchronized: all-reduce batch statistics across ``tf.distribute`` replicas.

    Returns:
      ``(output, batch_stats)``: the output, shaped like ``x``, and ``{node index: [C] statistic}`` of
      the batch aggregations computed in training mode (empty otherwise).
    """
    import tensorflow as tf  # noqa: PLC0415 - lazy: the search loop itself never needs TF
    from evonorm import ops  # noqa: PLC0415

    x = tf.convert_to_tensor(x)
    rank = x.shape.rank
    if rank is None or rank < 3:
        raise ValueError(f"evaluate needs an input of known rank >= 3, got shape {x.shape}")
    ctx = primitives.EvalContext(tf.shape(x), rank, groups, float(epsilon), data_format, synchronized)
    live = graph.live_indices()
    values = {INPUT: x, ZERO: tf.zeros([1] * rank, x.dtype)}
    for index, vec, name in ((V0, v0, "v0"), (V1, v1, "v1")):
        if index in live:
            if vec is None:
                raise ValueError(f"the graph uses {name}; pass {name}=<[C] vector>")
            vec = tf.cast(vec, x.dtype)
            values[index] = ops.broadcast_channels(vec, rank, data_format) if vec.shape.rank == 1 else vec
    stats = {}
    for k, node in enumerate(graph.nodes):
        index = NUM_INITIAL + k
        if index not in live:
            continue
        prim = primitives.get(node.op)
        args = [values[i] for i in node.inputs]
        if prim.batch_dependent:
            if training:
                stat = stats[index] = primitives.batch_stat(prim, args[0], ctx)
            else:
                if moving_stats is None or index not in moving_stats:
                    raise ValueError(f"inference with batch aggregation node {index} ({node.op}) needs "
                                     f"moving_stats[{index}] (its moving {prim.stat_kind})")
                stat = moving_stats[index]
            values[index] = primitives.stat_to_value(prim, stat, ctx)
        else:
            values[index] = prim.tf_fn(args, ctx)
    return tf.broadcast_to(values[graph.output_index], ctx.shape), stats


def evaluate_numpy(graph: Graph, x: np.ndarray, v0=None, v1=None, *, groups=None, epsilon=1e-5):
    """NumPy twin of :func:`evaluate` in training mode (batch statistics from ``x``), channels-last.

    Used by the fingerprint and output filters, where TensorFlow's per-op overhead would dominate.
    ``x`` may have extra leading axes (``[P, B, H, W, C]``): the aggregations address axes from the
    end, so P independent batches are evaluated at once. Computes in ``x``'s dtype; floating-point
    errors (overflow, 0/0) produce inf/nan silently.
    """
    x = np.asarray(x)
    if x.ndim < 4:
        raise ValueError(f"evaluate_numpy needs a channels-last input of rank >= 4, got shape {x.shape}")
    ctx = primitives.EvalContext(x.shape, x.ndim, groups, float(epsilon))
    live = graph.live_indices()
    values = {INPUT: x, ZERO: np.zeros((1,) * x.ndim, x.dtype)}
    for index, vec, name in ((V0, v0, "v0"), (V1, v1, "v1")):
        if index in live:
            if vec is None:
                raise ValueError(f"the graph uses {name}; pass {name}=<[C] vector>")
            values[index] = np.asarray(vec, x.dtype)
    with np.errstate(all="ignore"):
        for k, node in enumerate(graph.nodes):
            index = NUM_INITIAL + k
            if index in live:
                prim = primitives.get(node.op)
                values[index] = prim.np_fn([values[i] for i in node.inputs], ctx)
    return np.broadcast_to(values[graph.output_index], x.shape)

"""Turns a search graph into a Keras normalization-activation layer of either Keras generation.

The layer computes ``evaluate(graph, x, v0, v1) * gamma + beta`` under the shared constructor
contract of ``evonorm.layers`` (``NormActBase``): variables ``gamma``, ``beta``, and -- only when the
graph uses them -- ``v0`` (init 0), ``v1`` (init 1) and one moving statistic per batch-aggregation node
(``moving_mean`` init 0, ``moving_mean_square`` / ``moving_variance`` init 1; suffixed ``_<node>``
when a graph has several of one kind). Moving statistics follow ``moving = m * moving + (1 - m) *
batch`` in training and replace the batch statistics at inference, exactly as the B-series EvoNorms.
``get_config`` carries the graph's JSON, so the layer saves and loads like any registered layer
(``evonorm>GraphNormAct``).

``apply_act=False`` gives the affine transform alone (the reference code's ``nonlinearity=False``):
a searched graph has no separable "normalization part" to keep.

Example:
  >>> from evonorm.search.known_graphs import KNOWN_GRAPHS
  >>> layer = graph_to_layer(KNOWN_GRAPHS["evonorm_s0"], generation="tf_keras", groups=8)
  >>> y = layer(tf.random.normal([2, 8, 8, 32]), training=True)
"""

from __future__ import annotations

import collections
import functools

import tensorflow as tf

from evonorm.layers import generations
from evonorm.layers.base import NormActBase, smart_cond
from evonorm.search import graph as graph_lib
from evonorm.search.graph import Graph

_MOVING_INIT = {"mean": "zeros", "mean_square": "ones", "variance": "ones"}
# The evaluator branches on Python values only; converting it with AutoGraph would only add noise.
_evaluate_graph = tf.autograph.experimental.do_not_convert(graph_lib.evaluate)


def as_graph(graph) -> Graph:
    """A :class:`Graph` from a Graph, its dict, or its JSON string."""
    if isinstance(graph, Graph):
        return graph
    if isinstance(graph, (dict, str, bytes)):
        return Graph.from_json(graph)
    raise TypeError(f"expected a Graph, its dict or its JSON string, got {type(graph).__name__}")


class _GraphNormActMixin(NormActBase):
    """A normalization-activation layer defined by a search graph (see the module docstring).

    Args:
      graph: :class:`Graph`, its ``to_dict()`` or its JSON. Dead nodes are pruned.
      apply_act: False gives ``x * gamma + beta`` only.
      **kwargs: the ``NormActBase`` contract (``groups``, ``epsilon``, ``momentum``, ...).
    """

    registry_name = "graph"

    def __init__(self, graph, apply_act=True, **kwargs):
        super().__init__(apply_act=apply_act, **kwargs)
        self.graph = as_graph(graph).prune()
        self.uses_groups = self.graph.uses_groups  # resolved into effective_groups at build
        self._moving_names = {}

    @property
    def affine_only(self) -> bool:
        return not self.apply_act

    def _create_variables(self, channels):
        self.gamma = self._add("gamma", channels, "zeros" if self.zero_init else "ones")
        self.beta = self._add("beta", channels, "zeros")
        if self.affine_only:
            return
        if self.graph.uses_v0:
            self.v0 = self._add("v0", channels, "zeros")
        if self.graph.uses_v1:
            self.v1 = self._add("v1", channels, "ones")
        nodes = self.graph.batch_nodes()
        kinds = collections.Counter(prim.stat_kind for _, prim in nodes)
        for index, prim in nodes:
            kind = prim.stat_kind
            name = f"moving_{kind}" if kinds[kind] == 1 else f"moving_{kind}_{index}"
            # Stored as attributes (string names), not a dict keyed by node index: tf_keras
            # checkpoints refuse non-string keys in tracked containers.
            setattr(self, name, self._add(name, channels, _MOVING_INIT[kind], trainable=False, moving=True))
            self._moving_names[index] = name

    def moving_variables(self) -> dict:
        """``{node index: moving-statistic variable}`` of the batch-aggregation nodes."""
        return {index: getattr(self, name) for index, name in self._moving_names.items()}

    def _evaluate(self, x, training, moving_stats=None):
        return _evaluate_graph(
            self.graph, x,
            self._param(self.v0) if self.graph.uses_v0 else None,
            self._param(self.v1) if self.graph.uses_v1 else None,
            groups=self.effective_groups, epsilon=self.epsilon, training=training, moving_stats=moving_stats,
            data_format=self.data_format, synchronized=self.synchronized)

    def _normalize(self, x, training):
        if not self._moving_names:
            return self._evaluate(x, False)[0]

        def train():
            y, stats = self._evaluate(x, True)
            for index, stat in stats.items():
                self._update_moving(getattr(self, self._moving_names[index]), stat)
            return y

        def infer():
            moving = {i: tf.cast(tf.identity(v), tf.float32) for i, v in self.moving_variables().items()}
            return self._evaluate(x, False, moving)[0]

        return smart_cond(training, train, infer)

    def get_config(self):
        config = super().get_config()
        config["graph"] = self.graph.to_dict()
        return config


@functools.lru_cache(maxsize=None)
def graph_layer_class(generation: str):
    """The ``GraphNormAct`` Keras layer class of ``generation`` ('tf_keras' or 'keras3'), registered for
    serialization as ``evonorm>GraphNormAct``."""
    layer_base, register, no_autocast, moving = generations._generation_spec(generation)
    cls = type("GraphNormAct", (_GraphNormActMixin, layer_base), {
        "__module__": __name__,
        "__qualname__": "GraphNormAct",
        "__doc__": _GraphNormActMixin.__doc__,
        "_no_autocast_kwargs": no_autocast,
        "_moving_kwargs": moving,
        "keras_generation": generation,
    })
    return register(package=generations.PACKAGE, name="GraphNormAct")(cls)


def graph_to_layer(graph, generation: str | None = None, **layer_kwargs):
    """A Keras layer computing ``graph`` followed by the channel-wise affine.

    Args:
      graph: :class:`Graph`, its dict or its JSON string.
      generation: ``'tf_keras'`` (Keras 2, Model Garden and this project's models), ``'keras3'``, or
        None for the generation ``tf.keras`` resolves to.
      **layer_kwargs: ``apply_act``, ``groups``/``group_size``, ``epsilon``, ``momentum``,
        ``synchronized``, ``data_format``, ``zero_init``, ``name``, ...

    Returns:
      A ``GraphNormAct`` layer instance.
    """
    generation = generation or generations.default_generation()
    return graph_layer_class(generation)(graph=as_graph(graph), **layer_kwargs)

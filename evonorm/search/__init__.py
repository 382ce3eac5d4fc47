"""The layer search of the paper (Sec. 3-4): representation, generation, mutation and evolution.

Importing this package is cheap and never imports TensorFlow: the graph representation
(``graph``, ``primitives``), the random generator and mutator (``generator``, ``mutation``), the
known layers as graphs (``known_graphs``), rendering (``render``, matplotlib imported lazily) and the
NumPy fingerprint (``fingerprint``) are pure Python/NumPy. ``keras_layer`` (imported on first use of
``graph_to_layer``) turns a graph into a Keras layer of either generation.
"""

from evonorm.search.fingerprint import check_outputs, fingerprint
from evonorm.search.generator import SpaceConfig, random_graph
from evonorm.search.graph import Graph, Node, evaluate, evaluate_numpy
from evonorm.search.known_graphs import KNOWN_GRAPHS, get_known_graph
from evonorm.search.mutation import mutate, mutate_with_index
from evonorm.search.primitives import PRIMITIVES, op_names


def __getattr__(name):
    # Lazy: keras_layer imports TensorFlow.
    if name == "graph_to_layer":
        from evonorm.search.keras_layer import graph_to_layer  # noqa: PLC0415
        return graph_to_layer
    raise AttributeError(f"module 'evonorm.search' has no attribute {name!r}")


__all__ = ["Graph", "Node", "evaluate", "evaluate_numpy", "PRIMITIVES", "op_names", "SpaceConfig",
           "random_graph", "mutate", "mutate_with_index", "fingerprint", "check_outputs", "KNOWN_GRAPHS",
           "get_known_graph", "graph_to_layer"]

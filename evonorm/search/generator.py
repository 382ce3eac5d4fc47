"""Random graph generation (paper Sec. 3, "Random Graph Generation").

Starting from the 4 initial nodes, each new node samples a primitive op uniformly at random, then its
operands uniformly among all existing nodes (as many as the op's arity); the last node is the output.
Randomness comes only from the injected generator (``random.Random``, ``numpy.random.Generator`` or
an int seed), so a seed fixes the graph.

Example:
  >>> import random
  >>> g = random_graph(random.Random(0), SpaceConfig(max_nodes=10, allow_batch_ops=False))
  >>> g.num_nodes, g.uses_batch_stats
  (10, False)
"""

from __future__ import annotations

import dataclasses
import random

import numpy as np

from evonorm.search import primitives
from evonorm.search.graph import NUM_INITIAL, Graph

PAPER_MAX_NODES = 10  # "we restrict the total number of nodes to 4 + 10 = 14"


@dataclasses.dataclass(frozen=True)
class SpaceConfig:
    """The search space a generator or mutator samples from.

    Attributes:
      max_nodes: intermediate nodes per graph (paper: 10).
      min_nodes: fewest intermediate nodes a random graph gets; None means ``max_nodes`` (every graph
        is a full-length genotype whose unused nodes are dead, as in the paper's fixed budget).
      allow_batch_ops: False excludes the ``(b,w,h)`` aggregations (the S-series search).
      require_input: resample random graphs whose output does not depend on ``x`` (up to
        ``max_tries`` times); False reproduces the paper's plain sampler.
      max_tries: resampling budget for ``require_input``.
    """

    max_nodes: int = PAPER_MAX_NODES
    min_nodes: int | None = None
    allow_batch_ops: bool = True
    require_input: bool = False
    max_tries: int = 1000

    def __post_init__(self):
        for name in ("max_nodes", "max_tries"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"SpaceConfig.{name} must be a positive integer, got {value!r}")
        if self.min_nodes is not None and not (isinstance(self.min_nodes, int)
                                               and 1 <= self.min_nodes <= self.max_nodes):
            raise ValueError(f"SpaceConfig.min_nodes must be in 1..max_nodes={self.max_nodes}, "
                             f"got {self.min_nodes!r}")

    @property
    def ops(self) -> tuple:
        """Names of the ops to sample from."""
        return primitives.op_names(self.allow_batch_ops)


class RandomSource:
    """Uniform integers from ``random.Random``, ``numpy.random.Generator`` or an int seed."""

    def __init__(self, rng):
        if isinstance(rng, RandomSource):
            rng = rng.rng
        elif rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)):
            rng = random.Random(rng)
        if not isinstance(rng, (random.Random, np.random.Generator)):
            raise TypeError(f"rng must be random.Random, numpy.random.Generator or an int seed, "
                            f"got {type(rng).__name__}")
        self.rng = rng

    def below(self, n: int) -> int:
        """Uniform integer in ``[0, n)``."""
        if isinstance(self.rng, random.Random):
            return self.rng.randrange(n)
        return int(self.rng.integers(n))

    def choice(self, seq):
        return seq[self.below(len(seq))]


def random_node(source: RandomSource, index: int, ops) -> tuple:
    """``(op, inputs)`` for the node at graph ``index``: op uniform in ``ops``, inputs uniform in
    ``[0, index)``."""
    op = source.choice(ops)
    inputs = tuple(source.below(index) for _ in range(primitives.get(op).arity))
    return op, inputs


def random_graph(rng, config: SpaceConfig = SpaceConfig()) -> Graph:
    """Samples a random graph of the search space.

    Args:
      rng: ``random.Random``, ``numpy.random.Generator`` or int seed (the only source of randomness).
      config: the search space (node budget, batch ops allowed...).

    Returns:
      A :class:`Graph` with between ``config.min_nodes`` and ``config.max_nodes`` intermediate nodes.

    Raises:
      RuntimeError: if ``require_input`` is set and no graph using ``x`` came up in ``max_tries``.
    """
    source = RandomSource(rng)
    ops = config.ops
    low = config.max_nodes if config.min_nodes is None else config.min_nodes
    for _ in range(config.max_tries):
        count = low + source.below(config.max_nodes - low + 1)
        nodes = [random_node(source, NUM_INITIAL + k, ops) for k in range(count)]
        graph = Graph(nodes)
        if not config.require_input or graph.depends_on_input:
            return graph
    raise RuntimeError(f"no graph whose output depends on x in {config.max_tries} samples; "
                       f"check the SpaceConfig ({config})")

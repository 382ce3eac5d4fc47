"""Multi-objective tournament selection (paper Sec. 4.3, Fig. 5).

Each candidate layer is scored on several proxy architectures, so a tournament compares score
vectors (higher is better in every coordinate). Two criteria decide the winner:

* **Average**: the highest mean score wins (ties broken uniformly at random). Biased toward the
  architecture with the largest score variance.
* **Pareto** (the paper's choice): the winner is drawn uniformly at random from the Pareto frontier
  of the tournament -- the members no other member dominates. Every non-dominated trade-off is
  equally likely to reproduce, so no architecture is favoured.

``a`` dominates ``b`` when ``a >= b`` in every objective and ``a > b`` in at least one. Identical
score vectors do not dominate each other, so both stay on the frontier.
"""

from __future__ import annotations

from typing import Mapping, Protocol, Sequence

import numpy as np

__all__ = [
    "dominates",
    "pareto_frontier",
    "score_vector",
    "Criterion",
    "ParetoCriterion",
    "AverageCriterion",
    "get_criterion",
]


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether score vector ``a`` Pareto-dominates ``b`` (maximization)."""
    if len(a) != len(b):
        raise ValueError(f"score vectors differ in length: {len(a)} vs {len(b)}")
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


def pareto_frontier(scores: Sequence[Sequence[float]]) -> list[int]:
    """Indices (ascending) of the non-dominated score vectors.

    Args:
      scores: one score vector per candidate, all of the same length.

    Returns:
      The indices of the candidates no other candidate dominates.
    """
    if len(scores) == 0:
        return []
    try:
        arr = np.asarray(scores, dtype=np.float64)
    except ValueError as e:
        raise ValueError(f"scores must be a list of equal-length score vectors: {e}") from None
    if arr.ndim != 2:
        raise ValueError(f"scores must be a list of equal-length score vectors, got shape {arr.shape}")
    # ge[i, j]: i >= j everywhere; gt[i, j]: i > j somewhere. O(n^2 m) -- tournaments are small.
    ge = (arr[:, None, :] >= arr[None, :, :]).all(axis=2)
    gt = (arr[:, None, :] > arr[None, :, :]).any(axis=2)
    dominated = (ge & gt).any(axis=0)
    return [int(i) for i in np.flatnonzero(~dominated)]


def score_vector(scores: Mapping[str, float], objectives: Sequence[str]) -> tuple[float, ...]:
    """Orders a ``{objective: score}`` dict into a vector, failing clearly on missing objectives."""
    missing = [name for name in objectives if name not in scores]
    if missing:
        raise KeyError(f"scores {dict(scores)!r} lack objectives {missing}")
    return tuple(float(scores[name]) for name in objectives)


class Criterion(Protocol):
    """Picks a tournament winner: ``select(score_vectors, rng) -> index into score_vectors``."""

    name: str

    def select(self, scores: Sequence[Sequence[float]], rng: np.random.Generator) -> int: ...


def _check(scores: Sequence[Sequence[float]]) -> None:
    if len(scores) == 0:
        raise ValueError("a tournament needs at least one contestant")


class ParetoCriterion:
    """A uniformly random member of the tournament's Pareto frontier wins."""

    name = "pareto"

    def select(self, scores: Sequence[Sequence[float]], rng: np.random.Generator) -> int:
        _check(scores)
        frontier = pareto_frontier(scores)
        return frontier[int(rng.integers(len(frontier)))]


class AverageCriterion:
    """The contestant with the highest mean score wins; ties are broken uniformly at random."""

    name = "average"

    def select(self, scores: Sequence[Sequence[float]], rng: np.random.Generator) -> int:
        _check(scores)
        means = np.asarray(scores, dtype=np.float64).mean(axis=1)
        best = np.flatnonzero(means == means.max())
        return int(best[int(rng.integers(len(best)))])


_CRITERIA = {"pareto": ParetoCriterion, "average": AverageCriterion}


def get_criterion(name: str) -> Criterion:
    """The criterion called ``name`` ('pareto' or 'average')."""
    try:
        return _CRITERIA[name]()
    except KeyError:
        raise ValueError(f"unknown selection criterion {name!r}; expected one of {sorted(_CRITERIA)}") from None

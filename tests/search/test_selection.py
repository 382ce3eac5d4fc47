"""Pareto frontier and the two tournament criteria of paper Fig. 5."""

import numpy as np
import pytest

from evonorm.search import selection

# Fig. 5: two models; A is best on model 1, C on model 2, B is balanced with the best average;
# none of A, B, C dominates another. D is dominated by B and never wins.
FIG5 = {"A": (0.80, 0.20), "B": (0.60, 0.60), "C": (0.25, 0.85), "D": (0.50, 0.15)}


def test_dominates():
    assert selection.dominates((1, 2), (1, 1))
    assert not selection.dominates((1, 1), (1, 1))  # equal vectors do not dominate each other
    assert not selection.dominates((2, 0), (0, 2))
    with pytest.raises(ValueError, match="length"):
        selection.dominates((1, 2), (1,))


def test_pareto_frontier_of_fig5():
    names = list(FIG5)
    frontier = selection.pareto_frontier([FIG5[n] for n in names])
    assert [names[i] for i in frontier] == ["A", "B", "C"]


def test_pareto_frontier_edge_cases():
    assert selection.pareto_frontier([]) == []
    assert selection.pareto_frontier([(0.3, 0.3), (0.3, 0.3)]) == [0, 1]
    assert selection.pareto_frontier([(1.0,), (3.0,), (2.0,)]) == [1]
    # Three objectives: (1,1,1) is dominated only by a vector at least as good everywhere.
    assert selection.pareto_frontier([(1, 1, 1), (2, 1, 1), (0, 5, 0)]) == [1, 2]
    with pytest.raises(ValueError, match="equal-length"):
        selection.pareto_frontier([(1, 2), (1,)])


def test_average_criterion_picks_b():
    names = list(FIG5)
    rng = np.random.default_rng(0)
    crit = selection.get_criterion("average")
    assert {names[crit.select([FIG5[n] for n in names], rng)] for _ in range(50)} == {"B"}


def test_average_criterion_breaks_ties_at_random():
    rng = np.random.default_rng(0)
    wins = [selection.AverageCriterion().select([(1, 0), (0, 1), (0, 0)], rng) for _ in range(400)]
    assert set(wins) == {0, 1}
    assert 150 < wins.count(0) < 250


def test_pareto_criterion_each_frontier_member_wins_a_third():
    names = list(FIG5)
    rng = np.random.default_rng(1)
    crit = selection.get_criterion("pareto")
    draws = 6000
    wins = [names[crit.select([FIG5[n] for n in names], rng)] for _ in range(draws)]
    for name in "ABC":
        assert abs(wins.count(name) / draws - 1 / 3) < 0.03, (name, wins.count(name))
    assert "D" not in wins


def test_score_vector_and_errors():
    assert selection.score_vector({"b": 2, "a": 1}, ("a", "b")) == (1.0, 2.0)
    with pytest.raises(KeyError, match="lack objectives"):
        selection.score_vector({"a": 1}, ("a", "b"))
    with pytest.raises(ValueError, match="unknown selection criterion"):
        selection.get_criterion("nsga2")
    with pytest.raises(ValueError, match="at least one"):
        selection.ParetoCriterion().select([], np.random.default_rng(0))

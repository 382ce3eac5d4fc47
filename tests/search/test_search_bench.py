"""The funnel benchmark replays stored candidates through the stored runs' evaluator and today's."""

import os

import pytest

from evonorm.search import bench
from evonorm.search.evaluator import EvaluatorConfig, Evaluator
from evonorm.search.graph import Graph
from evonorm.search.known_graphs import KNOWN_GRAPHS

pytest.importorskip("tensorflow")

TINY = EvaluatorConfig(archs=(("resnet", 0.25, None),), batch_size=32, quality_steps=20, stability_steps=3,
                       stability_batch=8, val_examples=256)
STORED_DB = os.path.join(os.path.dirname(__file__), "..", "..", "official", "results", "search", "random_default",
                         "search.db")


def test_sample_stored_candidates_draws_evaluated_rows():
    picked = bench.sample_stored_candidates(STORED_DB, 5, seed=1)
    assert len(picked) == 5
    for candidate, seed, outcome in picked:
        Graph.from_dict(candidate)
        assert isinstance(seed, int) and outcome
    assert picked == bench.sample_stored_candidates(STORED_DB, 5, seed=1)


def test_stored_costs_baseline_keeps_decisions_but_skips_the_information_filter():
    uninformative = Graph([("std_bwh", (0,))]).to_dict()  # sqrt(s2_bwh(x)): same for every sample
    assert Evaluator(TINY)(uninformative, 0).rejected == "uninformative"
    assert Evaluator(TINY, stored_costs=True)(uninformative, 0).rejected == "quality"
    good = KNOWN_GRAPHS["evonorm_s0"].to_dict()
    today, stored = Evaluator(TINY)(good, 2), Evaluator(TINY, stored_costs=True)(good, 2)
    # Same weights, same batches, bit-identical optimizer: the same quality test.
    assert today.extras["quality"]["resnet"]["losses"] == stored.extras["quality"]["resnet"]["losses"]
    assert today.scores == stored.scores


@pytest.mark.slow  # ~90 s; the arms' equal decisions are pinned above
def test_bench_funnel_reports_a_ratio():
    candidates = [(KNOWN_GRAPHS["evonorm_s0"].to_dict(), 0, "accepted"),
                  (Graph([("std_bwh", (0,))]).to_dict(), 1, "quality")]
    result = bench.bench_funnel(TINY, candidates, hurdle_step=5)
    assert result["count"] == 2 and result["ratio"]["today"] > 0 and result["ratio"]["hurdle"] > 0
    good, useless = result["outcomes"]
    assert good["today"] == good["stored"]
    assert useless["today"] == "uninformative" and useless["stored"] != "uninformative"
    lines = bench.funnel_report(result, "db", "machine", "cmd", (0.0, 0.0))
    assert any(line.startswith("**Ratio, same decisions: x") for line in lines)
    assert any("hurdle at step 5 on resnet" in line for line in lines)


def test_step_split_separates_the_first_step_from_the_later_ones():
    rows = bench.bench_step_split(TINY, graph_names=("evonorm_s0",))
    (row,) = rows
    assert row["arch"] == "resnet" and row["graph"] == "evonorm_s0"
    assert row["first_s"] > 0 and row["step_ms"] > 0 and 0 < row["first_share"] < 1
    assert row["train_s"] >= row["first_s"] + (TINY.quality_steps - 2) * row["step_ms"] / 1000.0 * 0.5
    assert "| resnet | evonorm_s0 |" in "\n".join(bench.step_split_report(rows))

"""Regularized evolution and random search on a toy multi-objective problem (no TensorFlow).

Candidates are vectors of 8 digits; objective 'a' is the mean of the first half, 'b' of the second
half (both scaled to [0, 1]); a candidate whose digits sum below 40 is rejected for 'quality',
mimicking the paper's rejection of most random layers.
"""

import collections
import time

import numpy as np
import pytest

from evonorm.search import evolution as evo
from evonorm.search.executor import EvalResult, InlineExecutor, LocalExecutor
from evonorm.search.progress import ProgressReporter, format_duration
from evonorm.search.store import SearchStore

N = 8


def generate(rng):
    return [int(x) for x in rng.integers(0, 10, size=N)]


def mutate(candidate, rng):
    child = list(candidate)
    child[int(rng.integers(N))] = int(rng.integers(10))
    return child


def evaluate(candidate_json, seed):
    v = np.asarray(candidate_json["v"])
    if v.sum() < 40:
        return EvalResult(rejected="quality", timings={"train": 0.0})
    if v[0] == 9 and v[1] == 0:
        raise RuntimeError("a candidate that crashes its evaluation")
    noise = np.random.default_rng(seed).normal() * 1e-3  # uses the seed, so seeds must be reproducible
    return EvalResult(scores={"a": float(v[:4].mean() / 9 + noise), "b": float(v[4:].mean() / 9)})


PROBLEM = evo.SearchProblem(
    generate=generate,
    mutate=mutate,
    key=lambda c: ",".join(map(str, c)),
    to_json=lambda c: {"v": list(c)},
    from_json=lambda d: list(d["v"]),
    evaluate=evaluate,
    objectives=("a", "b"),
)
CONFIG = dict(population_size=20, tournament_size=5, budget=150)


def rows(store):
    return [
        (r.proposal, r.key, r.scores, r.rejected, r.status, r.duplicate_of, r.origin, r.parent_id, r.seed)
        for r in store.records()
    ]


def distinct_window(records, size):
    """The window rule: the ``size`` most recent accepted arrivals, a living member's copy left out."""
    window = []
    for r in records:
        if r.rejected is None and r.key not in {m.key for m in window}:
            window = (window + [r])[-size:]
    return [m.id for m in window]


def run_evolution(seed=0, executor=None, store=None, **overrides):
    store = store or SearchStore(":memory:")
    config = evo.EvolutionConfig(**{**CONFIG, "seed": seed, **overrides})
    summary = evo.regularized_evolution(
        PROBLEM, store, config, executor=executor or InlineExecutor(evaluate), progress=False
    )
    return summary, store


def test_same_seed_same_search_and_different_seed_differs():
    s1, a = run_evolution(seed=3)
    s2, b = run_evolution(seed=3)
    _, c = run_evolution(seed=4)
    assert rows(a) == rows(b)
    assert rows(a) != rows(c)
    assert s1.evaluated == 150 and s1.stop_reason == "budget" and s1.population == s2.population


def test_one_local_worker_reproduces_the_inline_run():
    _, inline = run_evolution(seed=5, budget=40)
    with LocalExecutor(evaluate, num_workers=1) as pool:
        _, local = run_evolution(seed=5, budget=40, executor=pool)
    assert rows(local) == rows(inline)


def test_population_rejection_dedup_and_crash_semantics():
    summary, store = run_evolution(seed=1, budget=200)
    records = list(store.records())
    evaluated = [r for r in records if r.status != "duplicate"]
    assert len(evaluated) == summary.evaluated == 200
    # Functional-equivalence cache: no key is evaluated twice; duplicates reuse the original's result.
    assert len({r.key for r in evaluated}) == len(evaluated)
    by_id = {r.id: r for r in records}
    dups = [r for r in records if r.status == "duplicate"]
    assert dups and len(dups) == summary.duplicates
    for d in dups:
        original = by_id[d.duplicate_of]
        assert (original.key, original.scores, original.rejected) == (d.key, d.scores, d.rejected)
    # Rejections (quality and evaluation crashes) are stored and counted, never selected as parents.
    assert summary.rejected.get("quality", 0) > 0
    counts = collections.Counter(r.rejected for r in evaluated if r.rejected)
    assert counts == summary.rejected
    for r in records:
        if r.parent_id is not None:
            assert by_id[r.parent_id].rejected is None and r.origin == "mutation"
    # Random proposals until P candidates are accepted, mutations afterwards.
    accepted_so_far = 0
    for r in records:
        expected = "random" if accepted_so_far < 20 else "mutation"
        assert r.origin == expected
        accepted_so_far += r.status == "accepted"
    # The final population is the sliding window of the 20 most recent accepted arrivals, each a
    # different function (see test_population.py for the rule in detail).
    assert summary.population == distinct_window(records, 20)
    assert len({by_id[i].key for i in summary.population}) == 20
    assert summary.best["mean"][0] == max(np.mean(list(r.scores.values())) for r in records if r.status == "accepted")


def test_the_stored_runs_rule_is_still_available():
    """``distinct_population=False, max_redraws=0``: every accepted arrival (copies too) enters the
    window and each mutation proposal mutates once -- the algorithm of the stored databases."""
    calls = []

    def counted(c, rng):
        calls.append(1)
        return mutate(c, rng)

    problem = evo.SearchProblem(generate, counted, PROBLEM.key, PROBLEM.to_json, PROBLEM.from_json, evaluate,
                                ("a", "b"))
    config = evo.EvolutionConfig(**{**CONFIG, "seed": 1, "budget": 200, "distinct_population": False,
                                    "max_redraws": 0})
    store = SearchStore(":memory:")
    summary = evo.regularized_evolution(problem, store, config, executor=InlineExecutor(evaluate),
                                        progress=False)
    records = list(store.records())
    assert summary.population == [r.id for r in records if r.rejected is None][-20:]
    assert len(calls) == sum(r.origin == "mutation" for r in records)
    assert summary.redraws == summary.redraw_fallbacks == 0


def test_min_population_starts_mutating_early_and_the_window_still_grows():
    summary, store = run_evolution(seed=2, budget=200, min_population=4)
    records = list(store.records())
    accepted_so_far = 0
    for r in records:
        assert r.origin == ("random" if accepted_so_far < 4 else "mutation")
        accepted_so_far += r.status == "accepted"
    assert sum(r.origin == "mutation" for r in records) > sum(r.origin == "random" for r in records)
    # The sliding window is still population_size (20) long.
    assert summary.population == distinct_window(records, 20)
    assert len(summary.population) == 20
    # Tournaments on a population below tournament_size draw every member: no crash, parents accepted.
    by_id = {r.id: r for r in records}
    assert all(by_id[r.parent_id].rejected is None for r in records if r.parent_id is not None)


def test_a_database_written_before_min_population_existed_resumes(tmp_path):
    path = str(tmp_path / "old.db")
    run_evolution(seed=0, budget=5, store=SearchStore(path))
    with SearchStore(path) as store:  # what an older version stored: no min_population field
        meta = store.get_meta()
        config = {k: v for k, v in meta["config"].items() if k != "min_population"}
        store.set_meta(config=config)
    assert run_evolution(seed=0, budget=8, store=SearchStore(path))[0].evaluated == 8
    with pytest.raises(ValueError, match="min_population"):
        run_evolution(seed=0, budget=10, store=SearchStore(path), min_population=3)


def test_crashing_candidates_are_recorded_and_the_search_goes_on():
    def gen(rng):
        return [9, 0] + [9] * (N - 2)  # always the crashing candidate, then mutations of nothing

    problem = evo.SearchProblem(gen, mutate, PROBLEM.key, PROBLEM.to_json, PROBLEM.from_json, evaluate, ("a", "b"))
    store = SearchStore(":memory:")
    summary = evo.random_search(problem, store, evo.RandomSearchConfig(budget=3), InlineExecutor(evaluate), progress=False)
    assert summary.rejected == {"crash": 1} and summary.duplicates > 0
    assert "a candidate that crashes" in next(store.records("rejected")).extras["error"]


def test_evolution_beats_random_search_at_equal_budget():
    for seed in (0, 1):
        _, evo_store = run_evolution(seed=seed, budget=300)
        rs_store = SearchStore(":memory:")
        summary = evo.random_search(
            PROBLEM, rs_store, evo.RandomSearchConfig(budget=300, seed=seed), InlineExecutor(evaluate), progress=False
        )
        assert summary.population == [] and all(r.origin == "random" for r in rs_store.records())
        top = lambda store: np.mean([np.mean(list(r.scores.values())) for r in store.top(10)])  # noqa: E731
        assert top(evo_store) > top(rs_store) + 0.1


def test_async_workers_respect_the_budget():
    with LocalExecutor(evaluate, num_workers=2) as pool:
        summary, store = run_evolution(seed=2, budget=60, executor=pool)
    assert summary.evaluated == 60 == store.count() - store.count("duplicate")
    # Which slot ran what depends on worker start-up order; every evaluation names a pool worker.
    assert {r.worker.split(":")[1] for r in store.records() if r.status != "duplicate"} <= {"0", "1"}
    assert len({r.proposal for r in store.records()}) == store.count()


def test_stop_conditions():
    tiny = evo.SearchProblem(
        generate=lambda rng: [int(rng.integers(2))] * N,
        mutate=lambda c, rng: [int(rng.integers(2))] * N,
        key=PROBLEM.key, to_json=PROBLEM.to_json, from_json=PROBLEM.from_json,
        evaluate=evaluate, objectives=("a", "b"),
    )
    # Only two distinct candidates exist: the proposal limit ends the search instead of spinning.
    summary = evo.random_search(
        tiny, ":memory:", evo.RandomSearchConfig(budget=10, max_proposals=50), InlineExecutor(evaluate), progress=False
    )
    assert (summary.stop_reason, summary.evaluated, summary.duplicates) == ("max_proposals", 2, 48)

    t0 = time.monotonic()
    summary, _ = run_evolution(budget=10**9, max_seconds=0.3)
    assert summary.stop_reason == "max_seconds" and time.monotonic() - t0 < 5 and summary.evaluated > 0


def test_resume_refuses_different_settings(tmp_path):
    path = str(tmp_path / "s.db")
    run_evolution(seed=0, budget=5, store=SearchStore(path))
    with pytest.raises(ValueError, match="tournament_size"):
        run_evolution(seed=0, budget=10, store=SearchStore(path), tournament_size=7)
    with pytest.raises(ValueError, match="kind"):
        evo.random_search(PROBLEM, path, evo.RandomSearchConfig(budget=10), InlineExecutor(evaluate), progress=False)
    # A larger budget is fine, and a spent budget returns without starting workers.
    assert run_evolution(seed=0, budget=8, store=SearchStore(path))[0].evaluated == 8
    summary = evo.regularized_evolution(PROBLEM, path, evo.EvolutionConfig(**{**CONFIG, "budget": 8}), progress=False)
    assert summary.evaluated == 8


def test_bad_configuration_is_named():
    with pytest.raises(ValueError, match="seed"):
        evo.EvolutionConfig(seed=-1).validate()
    with pytest.raises(ValueError, match="criterion"):
        evo.EvolutionConfig(criterion="best").validate()
    with pytest.raises(ValueError, match="min_population"):
        evo.EvolutionConfig(population_size=5, min_population=6).validate()
    with pytest.raises(ValueError, match="objectives"):
        evo.SearchProblem(generate, mutate, str, dict, dict, evaluate, objectives="a")
    bad = evo.SearchProblem(generate, mutate, PROBLEM.key, lambda c: {"v": set(c)}, PROBLEM.from_json, evaluate, ("a",))
    with pytest.raises(TypeError, match="JSON-serializable"):
        evo.random_search(bad, ":memory:", evo.RandomSearchConfig(budget=1), InlineExecutor(evaluate), progress=False)


def test_progress_line_and_throttle():
    now = [0.0]
    lines = []
    rep = ProgressReporter(budget=10, objectives=("a", "b"), label="evolution", interval_s=2.0,
                           log_fn=lines.append, clock=lambda: now[0])
    rep.start(evaluated=2, duplicates=1, rejected={"quality": 1}, best={"a": 0.1})
    _, store = run_evolution(seed=0, budget=6)
    for r in list(store.records())[:6]:
        rep.update(r)
    now[0] = 1.0
    assert rep.maybe_report() is None  # throttled
    now[0] = 2.5
    line = rep.maybe_report()
    assert line is not None and lines == [line]
    evaluated = sum(r.status != "duplicate" for r in list(store.records())[:6])
    assert line.startswith(f"[evolution] {2 + evaluated}/10 evaluated")
    assert f"{evaluated / 2.5:.2f} cand/s" in line and "rejected" in line and "best a=" in line and "ETA" in line
    assert format_duration(42) == "42s" and format_duration(411) == "6m51s" and format_duration(11100) == "3h05m"

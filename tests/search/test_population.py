"""A window of distinct functions, redrawn neutral mutations and the diversity series (no TensorFlow).

The stored ``default`` evolution run's window collapsed to one distinct function because duplicates
of accepted layers filled it; these tests pin the rules that prevent that (see the docstring of
:mod:`evonorm.search.evolution`).

Toy candidates are ``{"live": [...], "dead": [...]}``: the key reads only the live digits, so a change
to a dead digit gives a functionally equal child, as a dead node's change does in a layer graph.
"""

import os

import numpy as np
import pytest

from evonorm.search import evolution as evo
from evonorm.search import plots
from evonorm.search.executor import EvalResult, InlineExecutor
from evonorm.search.store import SearchStore

LIVE, DEAD = 3, 7


def generate(rng):
    return {"live": [int(x) for x in rng.integers(0, 3, LIVE)],
            "dead": [int(x) for x in rng.integers(0, 10, DEAD)]}


def key(c):
    return ",".join(map(str, c["live"]))


def mutate_uniform(c, rng):
    """The paper's rule on the toy: one uniformly drawn position of 10 gets a new value (7 are dead)."""
    child = {"live": list(c["live"]), "dead": list(c["dead"])}
    i = int(rng.integers(LIVE + DEAD))
    if i < LIVE:
        child["live"][i] = (child["live"][i] + 1 + int(rng.integers(2))) % 3
    else:
        child["dead"][i - LIVE] = (child["dead"][i - LIVE] + 1 + int(rng.integers(9))) % 10
    return child


def mutate_dead_only(c, rng):
    """Every child is functionally its parent."""
    child = {"live": list(c["live"]), "dead": list(c["dead"])}
    i = int(rng.integers(DEAD))
    child["dead"][i] = (child["dead"][i] + 1) % 10
    return child


def evaluate(candidate_json, seed):
    v = np.asarray(candidate_json["live"], dtype=float)
    return EvalResult(scores={"a": float(v[0] + 0.1 * v[1]), "b": float(v[2] + 0.1 * v[1])})


def problem(mutate=mutate_uniform, calls=None):
    def counted(c, rng):
        if calls is not None:
            calls.append(key(c))
        return mutate(c, rng)

    return evo.SearchProblem(generate, counted, key, dict, dict, evaluate, ("a", "b"))


def run(config=None, prob=None, store=None, **overrides):
    store = store if store is not None else SearchStore(":memory:")
    base = dict(population_size=8, tournament_size=3, min_population=2, budget=27, max_proposals=400, seed=0)
    config = config or evo.EvolutionConfig(**{**base, **overrides})
    summary = evo.regularized_evolution(prob or problem(), store, config, executor=InlineExecutor(evaluate),
                                        progress=False)
    return summary, store


def reference_window(records, size, distinct):
    """An independent statement of the window rule, to compare the loop's population against."""
    window = []
    for r in records:
        if r.rejected is None and not (distinct and any(m.key == r.key for m in window)):
            window = (window + [r])[-size:]
    return window


def test_a_duplicate_of_a_living_member_never_enters_the_window():
    summary, store = run()
    records = list(store.records())
    # 27 functions exist, so many proposals re-find a living member: the test is not vacuous.
    window, copies_turned_away = [], 0
    for r in records:
        living = {m.key for m in window}
        if r.status == "duplicate" and r.rejected is None and r.key in living:
            copies_turned_away += 1
        window = reference_window(records[: records.index(r) + 1], 8, True)
        assert len({m.key for m in window}) == len(window)
    assert copies_turned_away > 10
    assert summary.population == [m.id for m in window]
    assert all(d == n for _, d, n in summary.diversity)
    assert summary.diversity[-1][2] == 8  # the window still fills up to population_size
    # The copies are still stored as duplicates of the evaluated original, as before.
    by_id = {r.id: r for r in records}
    assert all(by_id[r.duplicate_of].key == r.key for r in records if r.status == "duplicate")
    # The stored runs' rule, on the same problem, lets copies crowd the window.
    legacy, legacy_store = run(distinct_population=False, max_redraws=0)
    assert legacy.population == [m.id for m in reference_window(list(legacy_store.records()), 8, False)]
    assert any(d < n for _, d, n in legacy.diversity)


@pytest.mark.parametrize("max_redraws", [0, 5])
def test_window_stays_distinct_when_every_child_is_a_copy_of_its_parent(max_redraws):
    calls = []
    summary, store = run(prob=problem(mutate_dead_only, calls), max_redraws=max_redraws, max_proposals=60)
    records = list(store.records())
    mutations = [r for r in records if r.origin == "mutation"]
    assert len(mutations) > 40 and all(r.status == "duplicate" for r in mutations)
    assert all(d == n for _, d, n in summary.diversity)
    assert len(summary.population) == summary.accepted == 2  # only the random phase's two layers
    # The bound is respected: max_redraws + 1 mutate calls per proposal, then it falls back.
    assert len(calls) == len(mutations) * (max_redraws + 1)
    assert summary.redraws == len(mutations) * max_redraws
    assert summary.redraw_fallbacks == (len(mutations) if max_redraws else 0)
    if max_redraws:
        assert all(r.extras == {"redraws": max_redraws, "redraws_exhausted": True} for r in mutations)
    # Under the stored runs' rule the same search fills the window with copies (it ends on one lineage).
    legacy, _ = run(prob=problem(mutate_dead_only), distinct_population=False, max_redraws=0,
                    max_proposals=60)
    assert legacy.diversity[-1][0::2] == (60, 8) and legacy.diversity[-1][1] <= 2


def test_unchanged_mutations_are_redrawn_and_counted_within_the_bound():
    calls = []
    summary, store = run(prob=problem(mutate_uniform, calls), max_redraws=3, budget=27)
    records = list(store.records())
    by_id = {r.id: r for r in records}
    mutations = [r for r in records if r.origin == "mutation"]
    redraws = [r.extras["redraws"] for r in mutations]
    assert max(redraws) == 3 and min(redraws) == 0 and sum(redraws) > 0
    for r in mutations:
        parent = by_id[r.parent_id]
        if r.extras.get("redraws_exhausted"):
            assert r.extras["redraws"] == 3 and r.key == parent.key
        else:
            assert r.key != parent.key  # a redraw stops at the first child that changed the function
    # 7 of 10 positions are dead, so without redraws 70% of children would copy their parent.
    exhausted = sum(bool(r.extras.get("redraws_exhausted")) for r in mutations)
    assert 0 < exhausted < 0.5 * len(mutations)
    assert summary.redraws == sum(redraws) and summary.redraw_fallbacks == exhausted
    assert len(calls) == len(mutations) + sum(redraws)
    # The redraw mutates the neutral child, so its dead-digit changes are kept (neutral drift).
    drifted = [r for r in mutations if r.extras["redraws"] and not r.extras.get("redraws_exhausted")]
    changed = [sum(a != b for a, b in zip(r.candidate["dead"], by_id[r.parent_id].candidate["dead"]))
               for r in drifted]
    assert max(changed) >= 2


def test_redraws_on_layer_graphs_change_the_function():
    """The real operator and fingerprint (NumPy only): redrawn children differ from their parent."""
    from evonorm.search.fingerprint import check_outputs, fingerprint
    from evonorm.search.generator import random_graph
    from evonorm.search.graph import Graph
    from evonorm.search.mutation import mutate

    def evaluate_graph(candidate_json, seed):
        graph = Graph.from_dict(candidate_json)
        if check_outputs(graph) is not None:
            return EvalResult(rejected="constant")
        h = int(fingerprint(graph)[:8], 16)
        return EvalResult(scores={"a": (h % 1000) / 1000, "b": (h // 1000 % 1000) / 1000})

    graphs = evo.SearchProblem(random_graph, mutate, fingerprint, lambda g: g.to_dict(), Graph.from_dict,
                               evaluate_graph, ("a", "b"))
    config = evo.EvolutionConfig(population_size=10, tournament_size=3, min_population=2, budget=60, seed=3)
    store = SearchStore(":memory:")
    summary = evo.regularized_evolution(graphs, store, config, executor=InlineExecutor(evaluate_graph),
                                        progress=False)
    records = list(store.records())
    by_id = {r.id: r for r in records}
    mutations = [r for r in records if r.origin == "mutation"]
    assert len(mutations) > 20 and summary.redraws > len(mutations)  # most first draws were neutral
    assert all(r.key != by_id[r.parent_id].key for r in mutations if not r.extras.get("redraws_exhausted"))
    assert all(d == n for _, d, n in summary.diversity)


def test_diversity_series_is_recorded_replayed_on_resume_and_plotted(tmp_path):
    path = str(tmp_path / "run" / "search.db")
    whole, whole_store = run(budget=27)
    run(store=SearchStore(path), budget=12)
    resumed, _ = run(store=SearchStore(path), budget=27)
    with SearchStore(path) as store:
        records = list(store.records())
    # Restored rows count: the resumed run reports the whole run's series and counters.
    assert resumed.diversity == whole.diversity == evo.window_history(records, 8, True)
    assert len(resumed.diversity) == len(records) and resumed.diversity[-1][0] == len(records)
    assert (resumed.redraws, resumed.redraw_fallbacks) == (whole.redraws, whole.redraw_fallbacks)
    assert resumed.population == whole.population
    # plot_diversity: one run, and a group of runs drawn as a median with a band.
    legacy, _ = run(distinct_population=False, max_redraws=0)
    single = plots.plot_diversity({"evolution": whole.diversity}, str(tmp_path / "one.png"),
                                  population_size=8)
    group = plots.plot_diversity({"distinct": [whole.diversity, resumed.diversity[:20]],
                                  "legacy": [legacy.diversity]}, str(tmp_path / "group.png"))
    assert all(os.path.getsize(p) > 1000 for p in (single, group))
    # write_plots draws it from the database, with the rule the run used.
    out = plots.write_plots(str(tmp_path / "run"), out_dir=str(tmp_path / "figs"))
    assert str(tmp_path / "figs" / "fig_diversity.png") in out
    with SearchStore(path) as store:
        assert plots.diversity_series(list(store.records()), store.get_meta()) == resumed.diversity


def test_a_database_from_before_the_distinct_rule_resumes_only_with_the_old_rule(tmp_path):
    path = str(tmp_path / "old.db")
    run(store=SearchStore(path), budget=8, distinct_population=False, max_redraws=0)
    with SearchStore(path) as store:  # what the stored runs' code wrote: neither field
        meta = store.get_meta()
        store.set_meta(config={k: v for k, v in meta["config"].items()
                               if k not in ("distinct_population", "max_redraws")})
    with pytest.raises(ValueError, match="config.distinct_population: stored False, requested True"):
        run(store=SearchStore(path), budget=12)
    summary, store = run(store=SearchStore(path), budget=12, distinct_population=False, max_redraws=0)
    assert summary.evaluated == 12
    records = list(store.records())
    assert summary.population == [m.id for m in reference_window(records, 8, False)]
    assert not any("redraws" in r.extras for r in records)  # the old algorithm never redraws


def test_bad_population_settings_are_named():
    with pytest.raises(ValueError, match="max_redraws"):
        evo.EvolutionConfig(max_redraws=-1).validate()
    with pytest.raises(ValueError, match="distinct_population"):
        evo.EvolutionConfig(distinct_population="yes").validate()
    # The defaults are the new rules; the stored runs' algorithm is opt-in.
    config = evo.EvolutionConfig()
    assert (config.distinct_population, config.max_redraws) == (True, 50)

"""The NumPy information filter: layers without per-sample information are rejected before TensorFlow.

The replay over the committed default searches takes well under a second (about 1,500 graphs).
"""

import json
import pathlib
import sqlite3

import numpy as np
import pytest

from evonorm.search.fingerprint import (BATCH_INVARIANT, PER_SAMPLE_SCALAR, check_outputs, information_check,
                                        probe_outputs)
from evonorm.search.graph import INPUT as X
from evonorm.search.graph import V1, Graph
from evonorm.search.known_graphs import KNOWN_GRAPHS

RESULTS = pathlib.Path(__file__).resolve().parents[2] / "official" / "results" / "search"

STD_BWH = Graph([("std_bwh", (X,))])  # sqrt(s2_bwh(x)): one value per channel, the same for every sample
MEAN_WHC = Graph([("mean_whc", (X,))])  # mu_whc(x), broadcast over (h, w, c)


def test_batch_invariant_layers_are_rejected():
    assert check_outputs(STD_BWH) == BATCH_INVARIANT
    assert BATCH_INVARIANT.startswith("uninformative: ")
    # slog(sqrt(s2_bwh(x))), ssqrt(sqrt(s2_bwh(max(x, v1)))), mu_bwh(mu_whc(x)), sqrt(s2_bwh(x)) * v1
    for graph in (Graph([("std_bwh", (X,)), ("log", (4,))]),
                  Graph([("max", (X, V1)), ("std_bwh", (4,)), ("sqrt", (5,))]),
                  Graph([("mean_whc", (X,)), ("mean_bwh", (4,))]),  # batch-invariant wins over per-sample
                  Graph([("std_bwh", (X,)), ("mul", (4, V1))])):  # varies over c, not over samples
        assert check_outputs(graph) == BATCH_INVARIANT, graph


def test_per_sample_scalars_are_rejected():
    assert check_outputs(MEAN_WHC) == PER_SAMPLE_SCALAR
    assert PER_SAMPLE_SCALAR.startswith("uninformative: ")
    for graph in (Graph([("std_whc", (X,)), ("log", (4,))]),  # slog(sqrt(s2_whc(x)))
                  Graph([("sqrt", (X,)), ("mean_whc", (4,)), ("abs", (5,))])):  # |mu_whc(ssqrt(x))|
        assert check_outputs(graph) == PER_SAMPLE_SCALAR, graph


def test_tolerance_absorbs_float32_cancellation_noise():
    # (x + mu_whc(x)) - x is mu_whc(x) up to float32 rounding (about 1e-6 relative on the probes).
    noisy = Graph([("mean_whc", (X,)), ("add", (X, 4)), ("neg", (X,)), ("add", (5, 6))])
    y = probe_outputs(noisy, np.float32)
    assert np.abs(y - y[:, :, :1, :1, :1]).max() > 0  # not exactly constant within a sample ...
    assert check_outputs(noisy) == PER_SAMPLE_SCALAR  # ... yet flagged
    noisy_batch = Graph([("std_bwh", (X,)), ("add", (X, 4)), ("neg", (X,)), ("add", (5, 6))])
    assert check_outputs(noisy_batch) == BATCH_INVARIANT


def test_scale_does_not_matter():
    y = probe_outputs(MEAN_WHC, np.float32).astype(np.float64)
    for factor in (1e-20, 1e-3, 1e3, 1e20):
        assert information_check(factor * y) == PER_SAMPLE_SCALAR
    varying = probe_outputs(Graph([("sigmoid", (X,))]), np.float32).astype(np.float64)
    for factor in (1e-20, 1.0, 1e20):
        assert information_check(factor * varying) is None
    # A small varying channel next to a huge constant one is not batch-invariant (per-channel scale).
    mixed = probe_outputs(STD_BWH, np.float32).astype(np.float64).copy()
    mixed[..., 0] *= 1e9
    mixed[..., 1] = varying[..., 1]
    assert information_check(mixed) is None


def test_informative_layers_pass():
    for name, graph in KNOWN_GRAPHS.items():
        assert check_outputs(graph) is None, name
    for graph in (Graph([("mean_whc", (X,)), ("mul", (4, V1))]),  # a scalar per sample times a channel vector
                  Graph([("std_wh", (X,))]),  # one value per (sample, channel)
                  Graph([("std_whcg", (X,))]),  # one value per (sample, group)
                  Graph([("sigmoid", (X,))])):  # nearly constant on the 1e-3 probe only
        assert check_outputs(graph) is None, graph


def test_evaluator_rejects_without_reaching_tensorflow(monkeypatch):
    pytest.importorskip("tensorflow")
    from evonorm.search import evaluator as evaluator_module  # noqa: PLC0415

    def no_tensorflow(*args, **kwargs):
        raise AssertionError("TensorFlow work was started for an uninformative layer")

    monkeypatch.setattr(evaluator_module, "_configure_threads", no_tensorflow)
    monkeypatch.setattr(evaluator_module, "load_data", no_tensorflow)
    config = evaluator_module.EvaluatorConfig(archs=(("resnet", 0.25, None),))
    evaluator = evaluator_module.Evaluator(config)
    for graph, reason in ((STD_BWH, BATCH_INVARIANT), (MEAN_WHC, PER_SAMPLE_SCALAR)):
        result = evaluator(graph.to_dict(), 0)
        assert result.rejected == "uninformative"
        assert result.extras["reason"] == reason
        assert set(result.timings) == {"filter_s"} and result.scores == {}


def _stored_rows(name):
    path = RESULTS / name / "search.db"
    if not path.is_file():
        pytest.skip(f"{path} is not in this checkout")
    # immutable: read-only, and no -wal/-shm files appear next to the committed database.
    db = sqlite3.connect(path.as_uri() + "?immutable=1", uri=True)
    try:
        return db.execute("SELECT candidate, status, rejected, timings, extras FROM candidates "
                          "WHERE status != 'duplicate'").fetchall()
    finally:
        db.close()


# (run, evaluated rows, rejected as uninformative, of them batch-invariant, accepted, 2nd-proxy entrants,
#  share of the stored wall time the rejected ones used)
REPLAY = [("evolution_default", 567, 109, 61, 9, 23, 0.331), ("random_default", 960, 170, 113, 4, 26, 0.368)]


@pytest.mark.parametrize("run,evaluated,flagged,batch_invariant,accepted,second,wall_share", REPLAY)
def test_replay_over_the_stored_default_searches(run, evaluated, flagged, batch_invariant, accepted, second,
                                                 wall_share):
    rows = _stored_rows(run)
    assert len(rows) == evaluated
    total_wall = saved_wall = 0.0
    reasons, n_accepted, n_second = [], 0, 0
    for candidate, status, rejected, timings, extras in rows:
        timings, extras = json.loads(timings), json.loads(extras)
        total_wall += timings.get("wall_s", 0.0)
        reason = check_outputs(Graph.from_dict(json.loads(candidate)))
        reached_second = len(extras.get("stability", {})) > 1
        n_accepted += status == "accepted"
        n_second += reached_second
        if rejected in ("constant", "nonfinite"):
            assert reason is not None and reason.split(":")[0].replace("-", "") == rejected
            continue
        if reason is None:
            continue
        # No accepted layer and nothing that reached a second proxy is rejected.
        assert status == "rejected" and not reached_second, (status, extras)
        assert rejected in ("stability", "quality")
        accuracy = extras.get("accuracy", {}).get("resnet")
        assert accuracy is None or accuracy < 0.2
        if reason == BATCH_INVARIANT:
            assert accuracy is None or accuracy <= 0.11  # chance, as the proof says
        reasons.append(reason)
        saved_wall += timings.get("wall_s", 0.0)
    assert (n_accepted, n_second) == (accepted, second)
    assert len(reasons) == flagged
    assert reasons.count(BATCH_INVARIANT) == batch_invariant
    assert saved_wall / total_wall == pytest.approx(wall_share, abs=0.001)

"""Figure 2's report: the funnel and per-proxy statistics of a random run, and the reference layers
scored by the run's own evaluator."""

import json
import os

import pytest

from evonorm.search import figure2
from evonorm.search.store import Record, SearchStore

ARCHS = ("resnet", "mobilenetv2")


def _row(i, accuracy=None, reason=None, diverged=(), status="rejected"):
    """A finished proposal: ``accuracy`` {arch: acc} for one that reached TensorFlow, else a filter ``reason``."""
    extras = {"reason": reason} if reason else {}
    if accuracy is not None or diverged:
        extras["stability"] = {arch: {"passed": True} for arch in ARCHS}
        extras["accuracy"] = {arch: (accuracy or {}).get(arch) for arch in ARCHS}
        extras["quality"] = {arch: {"diverged_at": 7 if arch in diverged else None} for arch in ARCHS}
    timings = {"data_s": 0.1} if "accuracy" in extras else {}  # the evaluator's mark past the filters
    return Record(i, f"k{i}", {}, {}, None if status == "accepted" else "quality", status, "random",
                  timings=timings, extras=extras, id=i + 1)


def test_stats_count_the_funnel_chance_and_layers_at_least_as_good_as_a_reference():
    records = [
        _row(0, reason="constant: output does not depend on x"),
        _row(1, reason="constant: output does not depend on x"),
        _row(2, reason="uninformative: identical for every sample"),
        _row(3, reason="non-finite: inf at a probe"),
        _row(4, {"resnet": 0.10, "mobilenetv2": 0.105}),
        _row(5, {"resnet": 0.60, "mobilenetv2": 0.50}),
        _row(6, {"resnet": 0.85, "mobilenetv2": 0.30}, status="accepted"),
        _row(7, {"mobilenetv2": 0.095}, diverged=("resnet",)),
        Record(8, "k6", {}, {}, None, "duplicate", "random", duplicate_of=7, id=9),
    ]
    refs = {"bn_relu": [{"resnet": 0.80, "mobilenetv2": 0.70}, {"resnet": 0.84, "mobilenetv2": 0.74}]}
    stats = figure2.figure2_stats(records, ARCHS, refs)
    assert stats["sampled"] == 8  # the duplicate is not a sample
    assert stats["filtered"] == {"constant": 2, "uninformative": 1, "nonfinite": 1}
    assert stats["reached"] == 4
    resnet, mobile = stats["archs"]["resnet"], stats["archs"]["mobilenetv2"]
    assert (resnet["trained"], resnet["diverged"], resnet["at_chance"]) == (3, 1, 1)
    assert (mobile["trained"], mobile["diverged"], mobile["at_chance"]) == (4, 0, 2)
    assert resnet["best"] == {"accuracy": 0.85, "id": 7}
    assert resnet["quantiles"]["p50"] == pytest.approx(0.60)
    assert stats["references"]["bn_relu"]["mean"] == pytest.approx({"resnet": 0.82, "mobilenetv2": 0.72})
    assert stats["references"]["bn_relu"]["min"]["resnet"] == pytest.approx(0.80)
    # Only layer 6 reaches BN-ReLU's mean on ResNet (0.85 >= 0.82); none on MobileNetV2.
    assert resnet["at_least"] == {"bn_relu": 1} and mobile["at_least"] == {"bn_relu": 0}
    # A reference that diverged on some seed has no mean there and counts nothing.
    stats = figure2.figure2_stats(records, ARCHS, {"x": [{"resnet": None, "mobilenetv2": 0.5}]})
    assert stats["references"]["x"]["mean"]["resnet"] is None
    assert stats["archs"]["resnet"]["at_least"] == {"x": None} and stats["archs"]["mobilenetv2"]["at_least"] == {"x": 1}


def test_unknown_reference_is_named():
    from evonorm.search.configs import get_config

    with pytest.raises(ValueError, match="no_such_layer"):
        figure2.reference_scores(get_config("tiny").evaluator, names=("no_such_layer",), seeds=(0,))


def test_report_scores_references_with_the_runs_own_evaluator(tmp_path):
    pytest.importorskip("tensorflow")
    from evonorm.search import main as main_lib
    from evonorm.search.evaluator import Evaluator
    from evonorm.search.known_graphs import KNOWN_GRAPHS

    config = main_lib.build_config("tiny", budget=6, population_size=3, top_k=3, evaluator__short_circuit=False,
                                   evaluator__quality_steps=10, evaluator__val_examples=128)
    workdir = str(tmp_path / "run")
    main_lib.run_search(config, workdir, backend="inline", seed=1, kind="random", log_fn=lambda *_: None)
    path = figure2.figure2_report(workdir, config, seeds=(0,), references=("bn_relu",), log_fn=lambda *_: None)
    text = open(path).read()
    assert "# Figure 2: 6 random layers on 1 proxies" in text and "| bn_relu |" in text
    assert os.path.isfile(os.path.join(workdir, "fig2_histograms.png"))
    stored = json.load(open(os.path.join(workdir, "figure2.json")))
    # The reference is exactly what the search's evaluator gives the BN-ReLU graph with that seed.
    direct = Evaluator(config.evaluator)(KNOWN_GRAPHS["bn_relu"].to_dict(), 0).extras["accuracy"]
    assert stored["reference_scores"]["bn_relu"] == [pytest.approx(direct, abs=1e-6)]
    with SearchStore(os.path.join(workdir, "search.db")) as store:
        assert stored["stats"]["sampled"] == sum(r.status != "duplicate" for r in store.records())
    # Another protocol than the run's is refused, naming the field.
    with pytest.raises(ValueError, match="quality_steps"):
        figure2.figure2_report(workdir, config.replace(evaluator__quality_steps=20), seeds=(), log_fn=lambda *_: None)

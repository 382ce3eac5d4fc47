"""End to end: a tiny search writes its database, top-k, summary and plots, and resumes without work."""

import os

import pytest

from evonorm.search import main as main_lib
from evonorm.search.store import SearchStore

pytest.importorskip("tensorflow")


def _config(budget):
    # The tiny config, smaller still: 12 candidates, 10 training steps.
    return main_lib.build_config("tiny", budget=budget, population_size=3, top_k=3,
                                 evaluator__quality_steps=10, evaluator__val_examples=128)


def test_tiny_search_writes_outputs_and_resumes(tmp_path):
    workdir = str(tmp_path / "run")
    lines = []
    summary = main_lib.run_search(_config(12), workdir, backend="inline", seed=1, log_fn=lines.append)
    assert summary.evaluated == 12
    for name in ("search.db", "summary.md", "fig2_histograms.png", "fig6_progress.png"):
        assert os.path.isfile(os.path.join(workdir, name)), name
    assert any(line.startswith("data: fashion_mnist") for line in lines)
    with SearchStore(os.path.join(workdir, "search.db")) as store:
        first = [(r.id, r.key, r.status) for r in store.records()]
        accepted = store.count("accepted")
    top_files = os.listdir(os.path.join(workdir, "top"))
    assert len([f for f in top_files if f.endswith(".png")]) == min(3, accepted)
    assert "| evaluated | accepted |" in open(os.path.join(workdir, "summary.md")).read()

    # Same command again: the budget is spent, nothing is evaluated, the rows are unchanged.
    again = main_lib.run_search(_config(12), workdir, backend="inline", seed=1, log_fn=lines.append)
    assert again.evaluated == 12
    with SearchStore(os.path.join(workdir, "search.db")) as store:
        assert [(r.id, r.key, r.status) for r in store.records()] == first

    # A larger budget continues from the stored rows.
    more = main_lib.run_search(_config(14), workdir, backend="inline", seed=1, log_fn=lines.append)
    assert more.evaluated == 14
    with SearchStore(os.path.join(workdir, "search.db")) as store:
        assert [(r.id, r.key, r.status) for r in store.records()][:len(first)] == first

    # Re-ranking trains the top layer and a baseline identically and writes the table.
    from evonorm.search.rerank import rerank_workdir

    path = rerank_workdir(workdir, _config(14), top_k=1, steps=3, baselines=("bn_relu",), log_fn=lines.append)
    table = open(path).read()
    assert "| bn_relu |" in table and "held-out validation images" in table


def test_bad_override_and_missing_cifar10(tmp_path):
    with pytest.raises(ValueError, match="unknown SearchConfig fields"):
        main_lib.build_config("tiny", no_such_field=1)
    from evonorm.search.evaluator import DataNotAvailableError, load_data

    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(DataNotAvailableError, match="never"):
        load_data("cifar10", data_dir=str(tmp_path))


def test_flags_are_defined_on_request_and_bad_values_are_usage_errors(tmp_path):
    from absl import app, flags

    assert "min_population" not in flags.FLAGS  # importing the module defines nothing globally
    fv = main_lib.define_flags(flags.FlagValues())
    assert main_lib.define_flags(fv) is fv  # idempotent
    fv(["evonorm-search", "--config=tiny"])
    with pytest.raises(app.UsageError, match="--workdir"):
        main_lib.main(["evonorm-search"], fv)
    fv(["evonorm-search", "--config=tiny", f"--workdir={tmp_path}", "--min_population=9"])
    with pytest.raises(app.UsageError, match="min_population"):
        main_lib.main(["evonorm-search"], fv)

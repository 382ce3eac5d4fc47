"""End to end: a tiny search writes its database, top-k, summary and plots, and resumes without work."""

import json
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
    for name in ("search.db", "summary.md", "fig2_histograms.png", "fig6_progress.png", "fig_diversity.png"):
        assert os.path.isfile(os.path.join(workdir, name)), name
    assert any(line.startswith("data: fashion_mnist") for line in lines)
    with SearchStore(os.path.join(workdir, "search.db")) as store:
        first = [(r.id, r.key, r.status) for r in store.records()]
        accepted = store.count("accepted")
        assert store.get_meta()["evaluator"]["quality_steps"] == 10  # stored for the resume check
    top_files = os.listdir(os.path.join(workdir, "top"))
    assert len([f for f in top_files if f.endswith(".png")]) == min(3, accepted)
    summary_md = open(os.path.join(workdir, "summary.md")).read()
    assert "| evaluated | accepted |" in summary_md and "distinct functions in a window of" in summary_md
    # The seeds study reads back the machine line the run wrote (one format, in main.py).
    assert main_lib.summary_machine(workdir) == main_lib.machine_description()
    assert main_lib.summary_machine(str(tmp_path / "no_run")) is None

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
    assert "| bn_relu |" in table and "held-out validation images" in table and "(seed 0;" in table
    # Over two seeds: mean ± standard deviation per proxy, every seed's scores listed and stored.
    path = rerank_workdir(workdir, _config(14), top_k=1, steps=3, seeds=(0, 1), baselines=("bn_relu",),
                          log_fn=lines.append)
    table = open(path).read()
    assert "over seeds 0, 1" in table and " ± " in table and "- bn_relu: seed 0: " in table
    assert f"- machine: {main_lib.machine_description()}, 1 training process(es)" in table
    rows = json.load(open(os.path.join(workdir, "rerank.json")))
    assert all(len(row["per_seed"]) == 2 and row["seeds"] == [0, 1] for row in rows)


def test_seed_statistics_mean_spread_and_divergence():
    from evonorm.search.rerank import seed_statistics

    stats = seed_statistics([{"a": 0.8, "b": 0.5}, {"a": 0.9, "b": None}, {"a": 0.7, "b": 0.6}], ["a", "b"])
    assert stats["mean"]["a"] == pytest.approx(0.8) and stats["std"]["a"] == pytest.approx(0.1)
    # A proxy on which one seed diverged has no mean, and neither has the layer.
    assert stats["mean"]["b"] is None and stats["diverged"] == {"a": 0, "b": 1} and stats["overall"] is None
    one = seed_statistics([{"a": 0.8}], ["a"])
    assert one["std"]["a"] == 0.0 and one["overall"] == pytest.approx(0.8)


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


# -- damaged databases and changed settings: refused at once -------------------------------------------

# Runs the console entry point and reports, at exit, whether TensorFlow was imported by then.
_CLI = ("import atexit, sys; "
        "atexit.register(lambda: print('tensorflow imported:', 'tensorflow' in sys.modules)); "
        "from evonorm.search import main; sys.argv = ['evonorm-search'] + sys.argv[1:]; main.run()")


def _cli(*args, timeout=120):
    """``evonorm-search ARGS`` in a subprocess: ``(returncode, stdout + stderr, seconds)``."""
    import subprocess
    import sys
    import time

    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", _CLI, *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - start


def _sha256(path):
    import hashlib

    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _search_db(path, config, rows=300):
    """A database as a search with ``config`` leaves it: meta, evaluator settings, candidate rows."""
    from evonorm.search.store import Record

    main_lib.check_resume_settings(path, config)
    with SearchStore(path) as store:
        store.set_meta(kind="evolution", seed=1, objectives=list(config.evaluator.objectives))
        for i in range(rows):
            store.add(Record(i, f"k{i}", {"v": [i] * 20}, {"resnet": 0.5}, None, "accepted", "random",
                             extras={"reason": "padding " * 40}))
    return path


@pytest.mark.parametrize("damage", ["random_bytes", "truncated"])
def test_cli_fails_at_once_on_a_damaged_db_and_leaves_it_untouched(tmp_path, damage):
    path = str(tmp_path / "search.db")
    if damage == "random_bytes":
        with open(path, "wb") as f:
            f.write(os.urandom(50_000))
        expected = "is not a SQLite database"
    else:
        _search_db(path, _config(12))
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
        expected = "is truncated or damaged: integrity check failed"
    before = _sha256(path)
    rc, output, seconds = _cli("--config=tiny", f"--workdir={tmp_path}")
    assert rc == 2, output
    assert f"{path} {expected}" in output and "another --workdir" in output
    assert "Traceback" not in output and "tensorflow imported: False" in output
    assert seconds < 5, f"took {seconds:.1f} s"
    assert _sha256(path) == before and sorted(os.listdir(tmp_path)) == ["search.db"]


def test_resume_with_other_evaluator_settings_is_refused_before_start_up(tmp_path, monkeypatch):
    workdir = str(tmp_path / "run")
    path = _search_db(os.path.join(workdir, "search.db"), _config(12))

    def no_start_up(config):
        raise AssertionError("the refusal must come before the data and the workers")

    monkeypatch.setattr(main_lib, "_data_line", no_start_up)
    changed = _config(12).replace(evaluator__quality_steps=20, evaluator__batch_size=64)
    with pytest.raises(ValueError, match="cannot resume") as info:
        main_lib.run_search(changed, workdir, backend="inline", seed=1)
    message = str(info.value)
    assert "quality_steps: stored 10, requested 20" in message
    assert "batch_size: stored 32, requested 64" in message
    proxies = _config(12).replace(evaluator__archs=(("resnet", 0.5, None),))
    proxy_change = r"archs: stored \[\['resnet', 0.25, None\]\], requested \[\['resnet', 0.5, None\]\]"
    with pytest.raises(ValueError, match=proxy_change):
        main_lib.run_search(proxies, workdir, backend="inline", seed=1)
    # Budget, time limit, workers, timeout and where the data lies may change on resume.
    same = _config(30).replace(max_seconds=5.0, workers=2, timeout_s=9.0, evaluator__data_dir="/elsewhere",
                               evaluator__threads=2)
    assert main_lib.check_resume_settings(path, same) == "same"


def test_old_db_without_evaluator_settings_records_them_with_a_warning(tmp_path):
    path = _search_db(str(tmp_path / "search.db"), _config(12), rows=3)
    with SearchStore(path) as store:  # what databases written before this check hold
        store._db.execute("DELETE FROM meta WHERE name = 'evaluator'")
        store._db.commit()
    warnings = []
    assert main_lib.check_resume_settings(path, _config(12), warn_fn=warnings.append) == "legacy"
    assert len(warnings) == 1 and "predates stored evaluator settings" in warnings[0]
    assert "3 rows" in warnings[0]
    assert main_lib.check_resume_settings(path, _config(12), warn_fn=warnings.append) == "same"
    with pytest.raises(ValueError, match="quality_steps: stored 10, requested 11"):
        main_lib.check_resume_settings(path, _config(12).replace(evaluator__quality_steps=11))


def test_cli_refuses_a_changed_quality_steps_with_a_one_line_message(tmp_path):
    path = _search_db(str(tmp_path / "search.db"), main_lib.build_config("tiny"), rows=3)
    rc, output, _ = _cli("--config=tiny", f"--workdir={tmp_path}", "--quality_steps=7")
    assert rc == 2, output
    assert "Traceback" not in output
    line = next(line for line in output.splitlines() if "cannot resume" in line)
    assert path in line and "quality_steps: stored 30, requested 7" in line and "another --workdir" in line

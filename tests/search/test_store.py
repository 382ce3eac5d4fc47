"""SQLite store and resume: an interrupted search, resumed, equals an uninterrupted one."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from evonorm.search import evolution as evo
from evonorm.search.executor import EvalResult, InlineExecutor, LocalExecutor
from evonorm.search.store import DamagedStoreError, Record, ResumeSettingsError, SearchStore, check_database

HERE = os.path.dirname(os.path.abspath(__file__))


class ToyEvaluate:
    """Picklable evaluate: two objectives over a digit vector, 'quality' rejection, optional delay."""

    def __init__(self, sleep_s=0.0):
        self.sleep_s = sleep_s

    def __call__(self, candidate_json, seed):
        time.sleep(self.sleep_s)
        v = np.asarray(candidate_json["v"])
        if v.sum() < 25:
            return EvalResult(rejected="quality")
        noise = np.random.default_rng(seed).uniform() * 1e-3
        return EvalResult(scores={"x": float(v[:3].mean() + noise), "y": float(v[3:].mean())})


def _generate(rng):
    return [int(x) for x in rng.integers(0, 10, size=6)]


def _mutate(c, rng):
    c = list(c)
    c[int(rng.integers(len(c)))] = int(rng.integers(10))
    return c


def _key(c):
    return "-".join(map(str, c))


def _to_json(c):
    return {"v": list(c)}


def _from_json(d):
    return list(d["v"])


def problem(sleep_s=0.0):
    return evo.SearchProblem(_generate, _mutate, _key, _to_json, _from_json, ToyEvaluate(sleep_s), ("x", "y"))


CONFIG = evo.EvolutionConfig(population_size=8, tournament_size=3, budget=40, seed=11)


def run_sigkill_target(path):
    """Entry point of the subprocess that the SIGKILL test kills mid-search."""
    with LocalExecutor(ToyEvaluate(sleep_s=0.05), num_workers=1) as pool:
        evo.regularized_evolution(problem(), path, CONFIG, executor=pool, progress=False)


def content(store):
    """Everything but wall-clock timings, creation times and worker names."""
    return [
        (r.id, r.proposal, r.key, r.candidate, r.scores, r.rejected, r.status, r.duplicate_of, r.origin,
         r.parent_id, r.seed, r.extras)
        for r in store.records()
    ]


def uninterrupted(config=CONFIG):
    store = SearchStore(":memory:")
    evo.regularized_evolution(problem(), store, config, InlineExecutor(ToyEvaluate()), progress=False)
    return content(store)


def test_records_round_trip_and_queries(tmp_path):
    path = tmp_path / "sub" / "search.db"
    with SearchStore(path) as store:
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        store.set_meta(kind="evolution", seed=3, config={"p": 1})
        a = Record(0, "k0", {"v": [1]}, {"x": 0.5, "y": 0.1}, None, "accepted", "random", seed=7, worker="w",
                   timings={"t": 1.5}, extras={"note": "hi"})
        b = Record(1, "k1", {"v": [2]}, {}, "quality", "rejected", "mutation", parent_id=1)
        c = Record(2, "k0", {"v": [1]}, {"x": 0.5, "y": 0.1}, None, "duplicate", "mutation", duplicate_of=1)
        d = Record(3, "k3", {"v": [3]}, {"x": 0.9, "y": 0.0}, None, "accepted", "random")
        assert [store.add(r) for r in (a, b, c, d)] == [1, 2, 3, 4]
        with pytest.raises(ValueError, match="status"):
            store.add(Record(4, "k", {}, {}, None, "weird", "random"))
        with pytest.raises(sqlite3.IntegrityError):
            store.add(Record(0, "again", {}, {}, None, "accepted", "random"))  # proposals are unique
    with SearchStore(path) as store:  # persisted
        assert store.get_meta()["config"] == {"p": 1} and store.get_meta()["seed"] == 3
        got = store.get(1)
        assert (got.candidate, got.scores, got.timings, got.extras, got.seed, got.worker) == (
            {"v": [1]}, {"x": 0.5, "y": 0.1}, {"t": 1.5}, {"note": "hi"}, 7, "w")
        assert got.created > 0 and got.accepted and not store.get(2).accepted
        assert [r.id for r in store.records()] == [1, 2, 3, 4]
        assert [r.id for r in store.records("duplicate")] == [3]
        assert (store.count(), store.count("accepted")) == (4, 2)
        assert store.rejection_counts() == {"quality": 1}
        assert [r.id for r in store.top(5)] == [4, 1]  # mean 0.45 > 0.3; duplicates excluded
        assert [r.id for r in store.top(1, objective="y")] == [1]
        with pytest.raises(KeyError, match="no candidate with id 99"):
            store.get(99)


class Abort(Exception):
    pass


class AbortingExecutor:
    """Wraps an executor and raises out of the search loop on the n-th poll, with work in flight."""

    def __init__(self, inner, abort_on_poll):
        self.inner, self.abort_on_poll, self.polls = inner, abort_on_poll, 0

    @property
    def capacity(self):
        return self.inner.capacity

    @property
    def num_in_flight(self):
        return self.inner.num_in_flight

    def submit(self, *args):
        self.inner.submit(*args)

    def poll(self, timeout=None):
        self.polls += 1
        if self.polls == self.abort_on_poll:
            assert self.inner.num_in_flight > 0
            raise Abort()
        return self.inner.poll(timeout)

    def close(self):
        self.inner.close()


def test_abrupt_stop_then_resume_equals_uninterrupted(tmp_path):
    path = str(tmp_path / "s.db")
    for abort_on_poll in (5, 17):  # stop twice, at different points, before finishing
        with pytest.raises(Abort):
            evo.regularized_evolution(
                problem(), path, CONFIG, AbortingExecutor(InlineExecutor(ToyEvaluate()), abort_on_poll), progress=False
            )
    with SearchStore(path) as store:
        assert 0 < store.count() - store.count("duplicate") < CONFIG.budget
    summary = evo.regularized_evolution(problem(), path, CONFIG, InlineExecutor(ToyEvaluate()), progress=False)
    assert summary.evaluated == CONFIG.budget
    with SearchStore(path) as store:
        assert content(store) == uninterrupted()


def test_abrupt_stop_with_two_workers_in_flight_then_resume(tmp_path):
    path = str(tmp_path / "s.db")
    with LocalExecutor(ToyEvaluate(), num_workers=2) as pool:
        with pytest.raises(Abort):
            evo.regularized_evolution(problem(), path, CONFIG, AbortingExecutor(pool, 10), progress=False)
        summary = evo.regularized_evolution(problem(), path, CONFIG, pool, progress=False)
    assert summary.evaluated == CONFIG.budget
    with SearchStore(path) as store:
        evaluated = [r for r in store.records() if r.status != "duplicate"]
        assert len(evaluated) == CONFIG.budget and len({r.key for r in evaluated}) == CONFIG.budget


def _is_running(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_sigkill_mid_search_then_resume_equals_uninterrupted(tmp_path):
    path = str(tmp_path / "killed.db")
    code = f"import sys; sys.path.insert(0, {HERE!r}); import test_store; test_store.run_sigkill_target({path!r})"
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        deadline = time.monotonic() + 60
        done = 0
        while done < 15 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            if os.path.exists(path):
                with sqlite3.connect(path) as db:
                    try:
                        done = db.execute("SELECT COUNT(*) FROM candidates WHERE status != 'duplicate'").fetchone()[0]
                    except sqlite3.OperationalError:
                        pass  # schema not created yet
        assert proc.poll() is None, "the search finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with SearchStore(path) as store:
        killed_at = store.count() - store.count("duplicate")
        worker_pid = int(next(store.records("accepted")).worker.split(":")[2])
    assert 15 <= killed_at < CONFIG.budget
    # The orphaned worker notices its driver is gone and exits on its own.
    deadline = time.monotonic() + 10
    while _is_running(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _is_running(worker_pid)
    summary = evo.regularized_evolution(problem(), path, CONFIG, InlineExecutor(ToyEvaluate()), progress=False)
    assert summary.evaluated == CONFIG.budget
    with SearchStore(path) as store:
        assert content(store) == uninterrupted()


# -- damaged databases and resume settings -----------------------------------------------------------


def _sha256(path):
    import hashlib

    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def make_real_db(path, rows=300):
    """A search database of several hundred pages, written through the store like a real search."""
    with SearchStore(path) as store:
        store.set_meta(kind="evolution", seed=0, config={"population_size": 8}, objectives=["x", "y"])
        for i in range(rows):
            store.add(Record(i, f"k{i}", {"v": [i] * 20}, {"x": i / rows, "y": 0.5}, None, "accepted", "random",
                             extras={"reason": "padding " * 40}))
    return path


def test_random_bytes_fail_clearly_and_leave_the_file_untouched(tmp_path):
    path = tmp_path / "search.db"
    path.write_bytes(np.random.default_rng(0).bytes(50_000))
    before = _sha256(path)
    with pytest.raises(DamagedStoreError, match="not a SQLite database") as info:
        SearchStore(path)
    message = str(info.value)
    assert str(path) in message and "--workdir" in message and "\n" not in message
    assert isinstance(info.value, sqlite3.DatabaseError)  # callers catching sqlite3 errors still do
    assert _sha256(path) == before
    assert sorted(os.listdir(tmp_path)) == ["search.db"]  # no -wal/-shm left beside it either


@pytest.mark.parametrize("damage", ["truncate", "overwrite"])
def test_truncated_or_damaged_db_fails_clearly_and_is_untouched(tmp_path, damage):
    path = make_real_db(str(tmp_path / "search.db"))
    size = os.path.getsize(path)
    assert size > 100_000 and sorted(os.listdir(tmp_path)) == ["search.db"]  # checkpointed on close
    with open(path, "r+b") as f:
        if damage == "truncate":
            f.truncate(size // 2)
        else:  # a few pages in the middle overwritten
            f.seek(size // 2)
            f.write(np.random.default_rng(1).bytes(3 * 4096))
    before = _sha256(path)
    with pytest.raises(DamagedStoreError, match="truncated or damaged: integrity check failed") as info:
        SearchStore(path)
    assert path in str(info.value) and "backup" in str(info.value) and "\n" not in str(info.value)
    assert _sha256(path) == before
    assert sorted(os.listdir(tmp_path)) == ["search.db"]


def test_empty_or_missing_file_is_a_new_search_and_live_db_checks_through_its_wal(tmp_path):
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    for path in (empty, tmp_path / "missing.db"):
        with SearchStore(path) as store:
            assert store.count() == 0 and store.get_meta() == {}
    path = make_real_db(str(tmp_path / "live.db"), rows=5)
    with SearchStore(path) as writer:  # open: -wal and -shm exist, so the check reads through them
        writer.add(Record(99, "k99", {}, {}, "quality", "rejected", "random"))
        assert os.path.exists(path + "-wal")
        check_database(path)
        with SearchStore(path) as reader:
            assert reader.count() == 6


def test_resume_settings_new_same_legacy_and_refused(tmp_path):
    path = str(tmp_path / "search.db")
    settings = {"quality_steps": 10, "batch_size": 32, "archs": (("resnet", 0.25, None),)}
    with SearchStore(path) as store:
        assert store.resume_settings("evaluator", settings) == "new"
        # No rows yet: nothing would be mixed, so other settings simply replace the recorded ones.
        assert store.resume_settings("evaluator", {**settings, "batch_size": 64}) == "new"
        assert store.resume_settings("evaluator", settings) == "new"
        store.add(Record(0, "k0", {}, {"x": 0.5}, None, "accepted", "random"))
        assert store.resume_settings("evaluator", settings) == "same"  # tuples compare as stored lists
        with pytest.raises(ResumeSettingsError, match="cannot resume") as info:
            store.resume_settings("evaluator", {**settings, "quality_steps": 20, "batch_size": 64})
        message = str(info.value)
        assert "quality_steps: stored 10, requested 20" in message
        assert "batch_size: stored 32, requested 64" in message and "--workdir" in message
        assert store.get_meta()["evaluator"]["quality_steps"] == 10  # a refusal writes nothing
        # A field added after the database was written counts as its default there.
        assert store.resume_settings("evaluator", {**settings, "new_field": 1},
                                     defaults={"new_field": 1}) == "same"
        with pytest.raises(ResumeSettingsError, match=r"new_field: stored \(not stored\), requested 2"):
            store.resume_settings("evaluator", {**settings, "new_field": 2})
    legacy = make_real_db(str(tmp_path / "old.db"), rows=3)  # rows, but no stored evaluator settings
    with SearchStore(legacy) as store:
        assert store.resume_settings("evaluator", settings) == "legacy"
        assert store.resume_settings("evaluator", settings) == "same"
        with pytest.raises(ResumeSettingsError, match="quality_steps: stored 10, requested 11"):
            store.resume_settings("evaluator", {**settings, "quality_steps": 11})

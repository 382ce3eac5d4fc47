"""The Ray backend on a local Ray instance: a tiny search end to end, a killed worker, quiet worker logs.

Every test lets :class:`~evonorm.search.ray_executor.RayExecutor` start Ray itself, as
``evonorm-search --backend=ray`` without ``--ray_address`` does, and shuts it down afterwards. Ray's
local workers inherit the driver's environment, so ``PYTHONPATH`` set here makes this module (and its
evaluate functions) importable to them, as installing the package would on a cluster.
"""

import os
import re
import signal
import sys
import time

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'evonorm[ray]')")

from evonorm.search import evolution as evo  # noqa: E402
from evonorm.search.executor import EvalResult, make_executor  # noqa: E402
from evonorm.search.store import SearchStore  # noqa: E402

# What TensorFlow's C++ start-up prints in every process that imports it (the last one, ERROR level, on
# machines without a GPU): none of it may reach the driver's console from the workers.
TF_START_UP = ("oneDNN custom operations", "cudart_stub", "cuInit", "cpu_feature_guard")


@pytest.fixture
def local_ray(monkeypatch):
    """No Ray running before; workers see this module and the user's default TensorFlow log level."""
    assert not ray.is_initialized()
    here = os.path.dirname(os.path.abspath(__file__))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([here] + sys.path))
    # tests/conftest.py sets it for the test process; a user's shell usually does not.
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    yield
    ray.shutdown()


def _tf_lines(output):
    """Worker lines (Ray prefixes them '(task_name pid=N)') with TensorFlow start-up text.

    The driver's own TensorFlow start-up is left out: it obeys the driver's environment, not Ray's.
    """
    worker = re.compile(r"\((?:\S+ )?pid=\d+")
    return [line for line in output.splitlines()
            if worker.search(line) and any(marker in line for marker in TF_START_UP)]


# -- a tiny search through the user's entry point ------------------------------------------------------

def test_tiny_search_on_local_ray_writes_rows_and_keeps_workers_quiet(tmp_path, local_ray, capfd):
    pytest.importorskip("tensorflow")
    from evonorm.search import main as main_lib

    # As test_main's tiny config: 10 training steps, 128 validation images; 2 workers whatever the cores.
    config = main_lib.build_config("tiny", budget=8, population_size=3, top_k=3, workers=2,
                                   evaluator__quality_steps=10, evaluator__val_examples=128)
    workdir = str(tmp_path / "run")
    lines = []
    summary = main_lib.run_search(config, workdir, backend="ray", seed=1, log_fn=lines.append)
    assert summary.evaluated == 8
    assert any(line.startswith("search stopped (budget)") for line in lines)
    for name in ("search.db", "summary.md", "fig6_progress.png"):
        assert os.path.isfile(os.path.join(workdir, name)), name
    with SearchStore(os.path.join(workdir, "search.db")) as store:
        records = list(store.records())
        assert store.get_meta()["evaluator"]["quality_steps"] == 10
    evaluated = [r for r in records if r.status != "duplicate"]
    assert len(evaluated) == 8
    for r in evaluated:
        assert r.status in ("accepted", "rejected"), r
        assert r.rejected not in ("crash", "timeout"), (r.rejected, r.extras.get("error"))
        assert re.fullmatch(r"ray:[^:]+:\d+", r.worker), r.worker  # ran in a Ray worker, not the driver
        assert r.worker.rsplit(":", 1)[1] != str(os.getpid())
    output = "".join(capfd.readouterr())
    assert not _tf_lines(output), _tf_lines(output)[:5]


# -- a worker killed in the middle of an evaluation --------------------------------------------------

N = 6


def _generate(rng):
    return [int(x) for x in rng.integers(0, 10, size=N)]


def _mutate(candidate, rng):
    child = list(candidate)
    child[int(rng.integers(N))] = int(rng.integers(10))
    return child


class KillsOneWorker:
    """Scores digit vectors; the ``victim``-th evaluation to start (0-based) SIGKILLs its own worker.

    Evaluations number themselves by creating ``DIR/started-<i>`` exclusively, so exactly one dies
    whichever worker runs it; the victim writes its pid into its file first.
    """

    def __init__(self, directory, victim):
        self.directory, self.victim = str(directory), victim

    def __call__(self, candidate_json, seed):
        i = 0
        while True:
            path = os.path.join(self.directory, f"started-{i}")
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                break
            except FileExistsError:
                i += 1
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()} {','.join(map(str, candidate_json['v']))}")
        if i == self.victim:
            time.sleep(0.2)  # inside the evaluation, as a segfault or the OOM killer would strike
            os.kill(os.getpid(), signal.SIGKILL)
        v = candidate_json["v"]
        return EvalResult(scores={"a": sum(v[:N // 2]) / 27, "b": sum(v[N // 2:]) / 27},
                          extras={"pid": os.getpid()})


def test_a_killed_worker_is_a_crash_row_and_the_search_finishes_its_budget(tmp_path, local_ray):
    problem = evo.SearchProblem(
        generate=_generate, mutate=_mutate, key=lambda c: ",".join(map(str, c)),
        to_json=lambda c: {"v": list(c)}, from_json=lambda d: list(d["v"]),
        evaluate=KillsOneWorker(tmp_path, victim=2), objectives=("a", "b"))
    config = evo.EvolutionConfig(population_size=4, tournament_size=2, budget=10, seed=0)
    pool = make_executor(problem.evaluate, backend="ray", num_workers=2, timeout_s=60.0,
                         init_kwargs={"num_cpus": 2, "include_dashboard": False})
    with pool, SearchStore(str(tmp_path / "search.db")) as store:
        summary = evo.regularized_evolution(problem, store, config, executor=pool, progress=False)
        records = [r for r in store.records() if r.status != "duplicate"]
    assert summary.evaluated == 10 and len(records) == 10
    victim_pid, victim_key = open(tmp_path / "started-2").read().split()
    crashed = [r for r in records if r.rejected is not None]
    assert len(crashed) == 1, [(r.key, r.rejected, r.extras) for r in crashed]
    (row,) = crashed
    assert (row.status, row.rejected, row.key, row.worker) == ("rejected", "crash", victim_key, "ray")
    # Worded as LocalExecutor's 'worker process died with exit code N' (Ray does not report the code).
    error = row.extras["error"]
    assert error.startswith("worker process died") and "WorkerCrashedError" in error, error
    # The search went on: 7 evaluations started after the kill, none in the dead worker.
    started_pids = [open(tmp_path / f"started-{i}").read().split()[0] for i in range(10)]
    assert victim_pid not in started_pids[3:]
    assert {str(r.extras["pid"]) for r in records if r is not row} <= set(started_pids)
    assert summary.rejected == {"crash": 1}


# -- worker output: TensorFlow's start-up silenced, what the evaluation prints still shown ----------------

def noisy_evaluate(candidate_json, seed):
    """Imports TensorFlow in the worker (its start-up lines), then warns on stderr or fails."""
    import tensorflow as tf

    tf.config.list_physical_devices("GPU")  # initializes CUDA: 'failed call to cuInit' without a GPU
    if candidate_json["mode"] == "raise":
        raise RuntimeError("evaluate failed on purpose")
    print(f"evaluate warning: candidate {candidate_json['mode']} looks odd", file=sys.stderr, flush=True)
    return EvalResult(scores={"a": 1.0}, extras={"pid": os.getpid()})


def test_worker_start_up_is_quiet_and_errors_reach_the_user(local_ray, capfd):
    pytest.importorskip("tensorflow")
    with make_executor(noisy_evaluate, backend="ray", num_workers=1, timeout_s=120.0,
                       init_kwargs={"num_cpus": 1, "include_dashboard": False}) as pool:
        pool.submit("warn", {"mode": "warn"}, 0)
        pool.submit("raise", {"mode": "raise"}, 0)
        done = {}
        deadline = time.monotonic() + 120
        while len(done) < 2 and time.monotonic() < deadline:
            done.update((c.task_id, c) for c in pool.poll(1.0))
    assert done["warn"].result.rejected is None
    # An evaluation's exception is its record's error text (the search log counts it as 'crash').
    assert done["raise"].result.rejected == "crash"
    assert "evaluate failed on purpose" in done["raise"].result.extras["error"]
    # What a worker prints reaches the driver's console, streamed by Ray within a second or so; the
    # TensorFlow lines, printed before it by the same process, would have arrived first.
    output, deadline = "", time.monotonic() + 20
    while "evaluate warning: candidate warn looks odd" not in output and time.monotonic() < deadline:
        time.sleep(0.5)
        output += "".join(capfd.readouterr())
    assert "evaluate warning: candidate warn looks odd" in output, output[-3000:]
    assert not _tf_lines(output), _tf_lines(output)[:5]

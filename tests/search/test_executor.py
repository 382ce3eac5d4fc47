"""Executors: every failure mode of an evaluation becomes a rejected result, never a dead driver."""

import os
import signal
import sys
import time

import pytest

from evonorm.search import executor as ex
from evonorm.search.executor import EvalResult


def chaos_evaluate(candidate_json, seed):
    """A toy evaluate whose behaviour the candidate chooses (top-level, so it pickles)."""
    mode = candidate_json["mode"]
    if mode == "ok":
        return EvalResult(scores={"a": candidate_json.get("x", 0.5), "b": seed % 7}, timings={"t": 0.0})
    if mode == "raise":
        raise ValueError("boom in evaluate")
    if mode == "exit":
        os._exit(3)
    if mode == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    if mode == "hang":
        time.sleep(120)
    if mode == "nan":
        return EvalResult(scores={"a": float("nan"), "b": 1.0})
    if mode == "wrong_type":
        return [1, 2, 3]
    if mode == "not_json":
        return EvalResult(scores={"a": 1.0}, extras={"obj": object()})
    if mode == "pid":
        return EvalResult(scores={"a": 1.0}, extras={"pid": os.getpid()})
    raise AssertionError(mode)


def _refuse_in_child():
    # Spawned children inherit the environment, so this tells the driver from its workers.
    if os.environ.get("EVONORM_TEST_DRIVER_PID", str(os.getpid())) != str(os.getpid()):
        raise RuntimeError("cannot be unpickled in a worker")
    return chaos_evaluate


class UnpicklableInWorkers:
    """Pickles fine in the driver but fails to load in a fresh worker (a broken worker environment)."""

    def __reduce__(self):
        return (_refuse_in_child, ())


def _drain(executor, n, timeout=60):
    out, deadline = [], time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out += executor.poll(1.0)
    assert len(out) == n, f"only {len(out)} of {n} completions"
    return {c.task_id: c for c in out}


def test_validate_result():
    assert ex.validate_result(EvalResult(scores={"a": 1})).scores == {"a": 1.0}
    nan = ex.validate_result(EvalResult(scores={"a": float("inf"), "b": 1.0}))
    assert nan.rejected == "nonfinite" and nan.scores == {"b": 1.0} and "a" in nan.extras["nonfinite_scores"]
    kept = ex.validate_result(EvalResult(scores={"a": float("nan")}, rejected="quality"))
    assert kept.rejected == "quality"  # the evaluator's own reason wins
    assert ex.validate_result("nope").rejected == "crash"
    assert ex.validate_result(EvalResult(scores={"a": "x"})).rejected == "crash"


def test_local_executor_survives_every_failure_mode():
    modes = ["raise", "exit", "segfault", "hang", "nan", "wrong_type", "not_json", "ok"]
    with ex.LocalExecutor(chaos_evaluate, num_workers=2, timeout_s=2.0) as pool:
        assert pool.capacity == 2
        for i, mode in enumerate(modes):
            pool.submit(i, {"mode": mode, "x": 0.25}, seed=10 + i)
        assert pool.num_in_flight == len(modes)
        done = _drain(pool, len(modes))
        assert pool.num_in_flight == 0
        got = {mode: done[i].result for i, mode in enumerate(modes)}
        assert got["raise"].rejected == "crash" and "boom in evaluate" in got["raise"].extras["error"]
        assert got["exit"].rejected == "crash" and "exit code 3" in got["exit"].extras["error"]
        assert got["segfault"].rejected == "crash" and f"exit code {-signal.SIGSEGV}" in got["segfault"].extras["error"]
        assert got["hang"].rejected == "timeout"
        assert got["nan"].rejected == "nonfinite"
        assert got["wrong_type"].rejected == "crash" and "expected EvalResult" in got["wrong_type"].extras["error"]
        assert got["not_json"].rejected == "crash" and "JSON" in got["not_json"].extras["error"]
        assert got["ok"].rejected is None and got["ok"].scores == {"a": 0.25, "b": float(17 % 7)}
        assert done[modes.index("hang")].wall_s >= 2.0
        # The pool is still whole: both slots take new work after their workers were replaced.
        for i in range(4):
            pool.submit(100 + i, {"mode": "ok"}, seed=i)
        assert all(c.result.rejected is None for c in _drain(pool, 4).values())


def test_local_executor_recycles_workers():
    with ex.LocalExecutor(chaos_evaluate, num_workers=1, max_tasks_per_worker=2) as pool:
        for i in range(5):
            pool.submit(i, {"mode": "pid"}, seed=0)
        done = _drain(pool, 5)
        pids = [done[i].result.extras["pid"] for i in range(5)]
        assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]
        assert done[0].worker.startswith("local:0:")


def test_poll_timeout_returns_empty_and_idle_pool():
    with ex.LocalExecutor(chaos_evaluate, num_workers=1) as pool:
        assert pool.poll(0.01) == []  # nothing in flight: returns at once
        pool.submit(0, {"mode": "hang"}, seed=0)
        t0 = time.monotonic()
        assert pool.poll(0.3) == []
        assert time.monotonic() - t0 < 5


def test_workers_that_cannot_start_raise_clearly(monkeypatch):
    monkeypatch.setenv("EVONORM_TEST_DRIVER_PID", str(os.getpid()))
    with pytest.raises(RuntimeError, match="died during startup"):
        with ex.LocalExecutor(UnpicklableInWorkers(), num_workers=1, max_startup_failures=2) as pool:
            pool.submit(0, {"mode": "ok"}, seed=0)
            pool.poll(30)


def test_bad_arguments():
    with pytest.raises(TypeError, match="picklable"):
        ex.LocalExecutor(lambda c, s: EvalResult(), num_workers=1)
    with pytest.raises(ValueError, match="num_workers"):
        ex.LocalExecutor(chaos_evaluate, num_workers=0)
    with pytest.raises(ValueError, match="timeout_s"):
        ex.LocalExecutor(chaos_evaluate, num_workers=1, timeout_s=0)
    with pytest.raises(ValueError, match="unknown executor backend"):
        ex.make_executor(chaos_evaluate, backend="dask")


def test_inline_executor():
    pool = ex.make_executor(chaos_evaluate, backend="inline")
    pool.submit(7, {"mode": "ok", "x": 1.0}, seed=3)
    pool.submit(8, {"mode": "raise"}, seed=3)
    (first,) = pool.poll()
    (second,) = pool.poll()
    assert (first.task_id, first.result.scores["a"]) == (7, 1.0)
    assert second.result.rejected == "crash"
    assert pool.poll() == []


def test_ray_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"evonorm\[ray\]"):
        ex.make_executor(chaos_evaluate, backend="ray")


@pytest.mark.slow
def test_ray_executor_failure_modes():
    ray = pytest.importorskip("ray")
    # Ray workers do not inherit sys.path: make this test module importable to them.
    here = os.path.dirname(os.path.abspath(__file__))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([here] + sys.path)}})
    try:
        modes = ["ok", "raise", "exit", "hang", "nan"]
        with ex.make_executor(chaos_evaluate, backend="ray", timeout_s=10.0) as pool:
            assert pool.capacity == 2
            for i, mode in enumerate(modes):
                pool.submit(i, {"mode": mode, "x": 0.5}, seed=i)
            done = _drain(pool, len(modes), timeout=120)
            got = {mode: done[i].result for i, mode in enumerate(modes)}
            assert got["ok"].scores == {"a": 0.5, "b": 0.0} and done[0].worker.startswith("ray:")
            assert got["raise"].rejected == "crash"
            assert got["exit"].rejected == "crash"
            assert got["hang"].rejected == "timeout"
            assert got["nan"].rejected == "nonfinite"
    finally:
        ray.shutdown()


DRIVER = '''
import os, sys, time
sys.path.insert(0, {repo!r})
from evonorm.search import executor as ex


def evaluate(candidate_json, seed):
    if candidate_json["mode"] == "pid":
        return ex.EvalResult(scores={{"a": 1.0}}, extras={{"pid": os.getpid()}})
    time.sleep(120)  # an evaluation still running when the driver is killed


if __name__ == "__main__":
    pool = ex.LocalExecutor(evaluate, num_workers=1)
    pool.submit("pid", {{"mode": "pid"}}, 0)
    done = []
    while not done:
        done = pool.poll(1.0)
    pool.submit("hang", {{"mode": "hang"}}, 0)
    print(done[0].result.extras["pid"], flush=True)
    time.sleep(120)
'''


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the death signal is Linux-only")
def test_a_killed_driver_takes_its_busy_workers_with_it(tmp_path, process_alive):
    import subprocess

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(repo=repo))
    driver = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        worker = int(driver.stdout.readline())
        time.sleep(1.0)  # the worker is now inside the 120 s evaluation
        assert process_alive(worker)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
        deadline = time.time() + 20
        while time.time() < deadline and process_alive(worker):
            time.sleep(0.2)
        assert not process_alive(worker), "the worker outlived its killed driver"
    finally:
        if driver.poll() is None:
            driver.kill()

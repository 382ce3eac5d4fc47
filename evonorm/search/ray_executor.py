"""Ray backend of the search executor: the :class:`~evonorm.search.executor.Executor` contract on a cluster.

Each evaluation is a ``ray.remote`` task (``max_retries=0``: a candidate that kills its worker is a
'crash', not something to retry). ``ray.wait`` with the nearest deadline as timeout collects
results; a task past ``timeout_s`` is cancelled with ``ray.cancel(force=True)``, which kills its
worker process, and recorded as 'timeout'. A worker process that dies during an evaluation (signal,
``os._exit``, Ray's out-of-memory killer) surfaces as an exception from ``ray.get`` and becomes a
'crash' record worded as :class:`~evonorm.search.executor.LocalExecutor`'s ("worker process died
..."); Ray starts a new worker for the next task. Ray is imported only when a :class:`RayExecutor`
is built; without it the error names ``pip install 'evonorm[ray]'``.

Worker output: Ray streams what workers print to the driver's console (``log_to_driver``, left on),
so an evaluation's own warnings and a dying worker's last words reach the user. TensorFlow's C++
start-up lines, which every worker would print (oneDNN, CUDA, ``cpu_feature_guard``; the ERROR-level
'failed call to cuInit' on machines without a GPU), are silenced at the source: tasks run with
``TF_CPP_MIN_LOG_LEVEL`` from the driver's environment, else 3 (FATAL only), unless the job's
``runtime_env`` sets it. An evaluation's errors do not depend on those logs: exceptions are in its
record's ``extras['error']``.

Ray workers get only the driver's working directory and script directory on ``sys.path``, not the
rest of it: the module defining ``evaluate`` must be importable on every node (installed, on
``PYTHONPATH``, or shipped with ``runtime_env``). The constructor checks this with one probe task so a
broken setup fails at once instead of turning every candidate into a crash.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Hashable

from evonorm.search.executor import (
    CRASH,
    TIMEOUT,
    Completion,
    EvalResult,
    failure_result,
    check_picklable,
    run_evaluation,
    validate_result,
)

__all__ = ["RayExecutor"]

# TensorFlow's C++ log threshold in Ray workers when neither the driver's environment nor the job's
# runtime_env chooses one: 3 keeps FATAL only. 2 would still let through the ERROR-level 'failed call
# to cuInit' every worker prints on a machine without a GPU; real failures reach the records anyway.
WORKER_TF_CPP_MIN_LOG_LEVEL = "3"


def _ray_evaluate(evaluate, candidate_json: dict, seed: int) -> tuple[dict, str]:
    import socket

    return run_evaluation(evaluate, candidate_json, seed), f"ray:{socket.gethostname()}:{os.getpid()}"


def _ray_probe(evaluate) -> bool:
    return callable(evaluate)


def _worker_env_vars(job_env_vars: dict) -> dict:
    """The environment variables the evaluation tasks set on top of the job's ``runtime_env``."""
    if "TF_CPP_MIN_LOG_LEVEL" in job_env_vars:
        return {}  # the user's job-level choice; a task-level value would override it
    # The driver's own setting travels with the tasks: a user debugging with TF_CPP_MIN_LOG_LEVEL=0
    # sees the same in the workers (local ones inherit it anyway, remote ones would not).
    return {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", WORKER_TF_CPP_MIN_LOG_LEVEL)}


def _crash_result(ray, error: Exception) -> EvalResult:
    """The 'crash' record of a task whose result ``ray.get`` could not deliver."""
    if isinstance(error, ray.exceptions.OutOfMemoryError):
        what = "worker process died: killed by Ray's memory monitor (node out of memory)"
    elif isinstance(error, ray.exceptions.WorkerCrashedError):
        # SIGKILL, segfault, os._exit: Ray does not pass on the exit code; the raylet's log line on the
        # driver's console names the worker's pid, and that node's Ray logs hold its output.
        what = "worker process died"
    elif isinstance(error, ray.exceptions.RayTaskError):
        # run_evaluation catches everything evaluate raises, so this failed around it (e.g. unpickling).
        what = "Ray task failed outside evaluate"
    else:
        what = "Ray lost the task"  # node died, object lost, ...
    return failure_result(CRASH, f"{what} ({type(error).__name__}: {error})")


def _import_ray():
    try:
        import ray
    except ImportError as e:
        raise ImportError(
            "backend='ray' needs Ray, which is not installed: pip install 'evonorm[ray]'"
        ) from e
    return ray


class RayExecutor:
    """Evaluates candidates as Ray tasks (``ray.remote``), for multi-machine searches.

    Args:
      evaluate: picklable ``evaluate(candidate_json, seed) -> EvalResult``.
      num_workers: tasks in flight (default: the cluster's CPUs divided by ``num_cpus_per_task``).
      timeout_s: per-evaluation wall-time limit measured from submission; on expiry the task is
        cancelled with ``ray.cancel(force=True)`` and recorded as 'timeout'.
      address: passed to ``ray.init`` when Ray is not initialized yet (None: start a local Ray).
      num_cpus_per_task: CPUs Ray reserves per evaluation.
      init_kwargs: extra ``ray.init`` keyword arguments (e.g. ``runtime_env``, ``num_cpus``).
    """

    def __init__(
        self,
        evaluate: Callable[[dict, int], EvalResult],
        num_workers: int | None = None,
        timeout_s: float | None = None,
        address: str | None = None,
        num_cpus_per_task: float = 1,
        init_kwargs: dict | None = None,
    ):
        ray = _import_ray()
        check_picklable(evaluate)
        self._ray = ray
        if not ray.is_initialized():
            ray.init(address=address, **(init_kwargs or {}))
        if num_workers is None:
            cpus = ray.cluster_resources().get("CPU", 1)
            num_workers = max(1, int(cpus // num_cpus_per_task))
        if num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        self._capacity = num_workers
        self._timeout_s = timeout_s
        # Set per task, not in ray.init, so it also holds on a Ray the caller started; env_vars merge
        # with the job's runtime_env. The probe shares it, so its worker (which imported evaluate's
        # module) is quiet too and can be reused for evaluations.
        job_env = ray.get_runtime_context().runtime_env.get("env_vars") or {}
        env_vars = _worker_env_vars(job_env)
        options = {"runtime_env": {"env_vars": env_vars}} if env_vars else {}
        self._remote = ray.remote(max_retries=0, num_cpus=num_cpus_per_task, **options)(_ray_evaluate)
        self._evaluate_ref = ray.put(evaluate)  # shipped to the object store once, not per task
        # Fail now, not once per candidate, if workers cannot load evaluate (module not importable).
        try:
            ray.get(ray.remote(max_retries=0, num_cpus=0, **options)(_ray_probe).remote(self._evaluate_ref))
        except Exception as e:
            raise RuntimeError(
                f"Ray workers cannot load evaluate={evaluate!r}; make its module importable on the cluster "
                f"(install the package or pass runtime_env): {e}"
            ) from e
        self._tasks: dict[Any, tuple[Hashable, float]] = {}  # ObjectRef -> (task_id, submit time)

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def num_in_flight(self) -> int:
        return len(self._tasks)

    def submit(self, task_id: Hashable, candidate_json: dict, seed: int) -> None:
        ref = self._remote.remote(self._evaluate_ref, candidate_json, seed)
        self._tasks[ref] = (task_id, time.monotonic())

    def poll(self, timeout: float | None = None) -> list[Completion]:
        ray = self._ray
        deadline = None if timeout is None else time.monotonic() + timeout
        out: list[Completion] = []
        while self._tasks:
            now = time.monotonic()
            if self._timeout_s is not None:
                for ref, (task_id, started) in list(self._tasks.items()):
                    if now - started > self._timeout_s:
                        ray.cancel(ref, force=True)
                        del self._tasks[ref]
                        msg = f"evaluation exceeded timeout_s={self._timeout_s}; task cancelled"
                        out.append(Completion(task_id, failure_result(TIMEOUT, msg), "ray", now - started))
            if out or not self._tasks:
                return out
            waits = [] if deadline is None else [deadline - now]
            if self._timeout_s is not None:
                waits += [s + self._timeout_s - now for _, s in self._tasks.values()]
            wait_s = max(0.0, min(waits)) if waits else None
            ready, _ = ray.wait(list(self._tasks), num_returns=1, timeout=wait_s)
            if ready:
                ready, _ = ray.wait(list(self._tasks), num_returns=len(self._tasks), timeout=0)
            for ref in ready:
                task_id, started = self._tasks.pop(ref)
                try:
                    payload, worker = ray.get(ref)
                    result = validate_result(payload)
                except Exception as e:  # WorkerCrashedError, OutOfMemoryError, RayTaskError, ...
                    result, worker = _crash_result(ray, e), "ray"
                out.append(Completion(task_id, result, worker, time.monotonic() - started))
            if out or (deadline is not None and time.monotonic() >= deadline):
                return out
        return out

    def close(self) -> None:
        for ref in list(self._tasks):
            self._ray.cancel(ref, force=True)
        self._tasks.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

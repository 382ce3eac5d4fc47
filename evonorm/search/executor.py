"""Parallel evaluation of search candidates that survives crashing, hanging and NaN-producing workers.

The search driver hands an executor ``(task_id, candidate_json, seed)`` triples and collects
:class:`Completion` objects. Every submitted task yields exactly one completion, whatever happens
to the evaluation:

* the evaluate function returns an :class:`EvalResult` -> passed through (after validation);
* it raises -> ``rejected='crash'`` with the traceback in ``extras['error']``;
* its process dies (segfault, ``os._exit``, OOM kill) -> ``rejected='crash'`` with the exit code,
  and the worker is replaced;
* it exceeds ``timeout_s`` -> the worker is killed and replaced, ``rejected='timeout'``;
* it returns a non-finite score -> ``rejected='nonfinite'``.

So the driver never goes down because of one candidate. Backends (one interface, see
:class:`Executor`):

* ``'local'`` (:class:`LocalExecutor`): worker processes of the ``spawn`` start method (no forked
  TensorFlow state), one pipe each; defaults to one worker per local core.
* ``'ray'`` (:class:`~evonorm.search.ray_executor.RayExecutor`): ``ray.remote`` tasks with
  ``ray.wait`` timeouts and ``ray.cancel``, for clusters. Ray is imported lazily
  (``pip install 'evonorm[ray]'``).
* ``'inline'`` (:class:`InlineExecutor`): evaluates in the driver process; no timeouts and no crash
  isolation, meant for debugging and quick tests.

``evaluate(candidate_json, seed) -> EvalResult`` runs in other processes, so it must be picklable:
a top-level function, or an instance of a top-level class with ``__call__``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle
import time
import traceback
from typing import Any, Callable, Hashable, Protocol

from evonorm._process import die_with_parent

__all__ = [
    "EvalResult",
    "Completion",
    "Executor",
    "validate_result",
    "make_executor",
    "InlineExecutor",
    "LocalExecutor",
    "RayExecutor",
]

# Rejection reasons produced by the executors themselves; evaluate functions add their own
# ('quality', 'stability', 'constant', ...).
CRASH = "crash"
TIMEOUT = "timeout"
NONFINITE = "nonfinite"


@dataclasses.dataclass
class EvalResult:
    """What an evaluate function returns for one candidate.

    Attributes:
      scores: objective name -> score (higher is better), e.g. one accuracy per proxy architecture.
      rejected: None if the candidate passed, else the reason ('quality', 'stability', 'nonfinite',
        'constant', 'timeout', 'crash', ...). Rejected candidates are stored but never selected.
      timings: phase name -> seconds (JSON numbers).
      extras: any other JSON-serializable information (losses, error text, ...).
    """

    scores: dict[str, float] = dataclasses.field(default_factory=dict)
    rejected: str | None = None
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "scores": dict(self.scores),
            "rejected": self.rejected,
            "timings": dict(self.timings),
            "extras": dict(self.extras),
        }

    @classmethod
    def from_json(cls, data: dict) -> "EvalResult":
        return cls(
            scores=dict(data.get("scores") or {}),
            rejected=data.get("rejected"),
            timings=dict(data.get("timings") or {}),
            extras=dict(data.get("extras") or {}),
        )


@dataclasses.dataclass
class Completion:
    """One finished task: its id, the validated result, which worker ran it, and driver-side wall time."""

    task_id: Hashable
    result: EvalResult
    worker: str
    wall_s: float


class Executor(Protocol):
    """The interface the search driver uses; every backend implements it."""

    @property
    def capacity(self) -> int:
        """How many tasks can run at once; the driver keeps this many in flight."""

    @property
    def num_in_flight(self) -> int:
        """Tasks submitted and not yet returned by :meth:`poll`."""

    def submit(self, task_id: Hashable, candidate_json: dict, seed: int) -> None:
        """Queues one evaluation under a caller-chosen hashable ``task_id``; never blocks."""

    def poll(self, timeout: float | None = None) -> list[Completion]:
        """Waits up to ``timeout`` seconds (None: until one completes) and returns what finished."""

    def close(self) -> None:
        """Stops all workers; in-flight tasks are abandoned."""


def failure_result(reason: str, error: str) -> EvalResult:
    """A rejection with the error text in ``extras['error']``."""
    return EvalResult(rejected=reason, extras={"error": error})


def validate_result(obj: Any) -> EvalResult:
    """Turns whatever an evaluate function returned into a JSON-clean :class:`EvalResult`.

    Non-EvalResult returns and non-JSON-serializable fields become ``'crash'`` rejections, and
    non-finite scores of an otherwise accepted result become a ``'nonfinite'`` rejection (the
    offending values are kept as strings in ``extras['nonfinite_scores']``).
    """
    if isinstance(obj, dict):
        obj = EvalResult.from_json(obj)
    if not isinstance(obj, EvalResult):
        return failure_result(CRASH, f"evaluate returned {type(obj).__name__}, expected EvalResult")
    try:
        scores = {str(k): float(v) for k, v in obj.scores.items()}
    except (TypeError, ValueError) as e:
        return failure_result(CRASH, f"non-numeric score in {obj.scores!r}: {e}")
    if obj.rejected is not None and not isinstance(obj.rejected, str):
        return failure_result(CRASH, f"rejected must be a str or None, got {obj.rejected!r}")
    bad = {k: repr(v) for k, v in scores.items() if not math.isfinite(v)}
    result = EvalResult(
        scores={k: v for k, v in scores.items() if k not in bad},
        rejected=obj.rejected,
        timings=dict(obj.timings),
        extras=dict(obj.extras),
    )
    if bad:
        result.extras["nonfinite_scores"] = bad
        if result.rejected is None:
            result.rejected = NONFINITE
    try:
        json.dumps(result.to_json(), allow_nan=False)
    except (TypeError, ValueError) as e:
        return failure_result(CRASH, f"evaluate returned a result that is not JSON-serializable: {e}")
    return result


def run_evaluation(evaluate: Callable, candidate_json: dict, seed: int) -> dict:
    """Calls ``evaluate`` and turns any exception into a crash record (runs inside workers)."""
    try:
        result = validate_result(evaluate(candidate_json, seed))
    except BaseException:  # SystemExit/KeyboardInterrupt from user code are crashes too.
        result = failure_result(CRASH, traceback.format_exc(limit=30))
    return result.to_json()


def check_picklable(evaluate: Callable) -> None:
    """Raises a clear error if ``evaluate`` cannot be shipped to worker processes."""
    try:
        pickle.dumps(evaluate)
    except Exception as e:
        raise TypeError(
            f"evaluate must be picklable to run in worker processes (a top-level function or an "
            f"instance of a top-level class with __call__); pickling {evaluate!r} failed: {e}"
        ) from e


def default_num_workers() -> int:
    """All cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


class InlineExecutor:
    """Evaluates in the driver process at :meth:`poll` time (debugging; no isolation, no timeouts)."""

    def __init__(self, evaluate: Callable[[dict, int], EvalResult]):
        self._evaluate = evaluate
        self._queue: list[tuple[Hashable, dict, int]] = []

    @property
    def capacity(self) -> int:
        return 1

    @property
    def num_in_flight(self) -> int:
        return len(self._queue)

    def submit(self, task_id: Hashable, candidate_json: dict, seed: int) -> None:
        self._queue.append((task_id, candidate_json, seed))

    def poll(self, timeout: float | None = None) -> list[Completion]:
        if not self._queue:
            return []
        task_id, cand, seed = self._queue.pop(0)
        t0 = time.perf_counter()
        result = EvalResult.from_json(run_evaluation(self._evaluate, cand, seed))
        return [Completion(task_id, result, f"inline:{os.getpid()}", time.perf_counter() - t0)]

    def close(self) -> None:
        self._queue.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def make_executor(
    evaluate: Callable[[dict, int], EvalResult],
    backend: str = "local",
    num_workers: int | None = None,
    timeout_s: float | None = None,
    **kwargs,
) -> Executor:
    """Builds an executor by backend name.

    Args:
      evaluate: picklable ``evaluate(candidate_json, seed) -> EvalResult``.
      backend: 'local' (worker processes), 'ray' (cluster tasks) or 'inline' (driver process).
      num_workers: evaluations in flight; default all local cores ('local') or all cluster CPUs ('ray').
      timeout_s: per-evaluation wall-time limit in seconds (None: unlimited). Ignored by 'inline'.
      **kwargs: backend-specific options (see :class:`LocalExecutor`, :class:`RayExecutor`).
    """
    if backend == "local":
        return LocalExecutor(evaluate, num_workers=num_workers, timeout_s=timeout_s, **kwargs)
    if backend == "ray":
        from evonorm.search.ray_executor import RayExecutor  # noqa: PLC0415

        return RayExecutor(evaluate, num_workers=num_workers, timeout_s=timeout_s, **kwargs)
    if backend == "inline":
        return InlineExecutor(evaluate)
    raise ValueError(f"unknown executor backend {backend!r}; expected 'local', 'ray' or 'inline'")



# ----------------------------------------------------------------------------------------------
# Local backend: one spawned process per worker slot, each with its own pipe, so a dead or hung
# worker is detected (process sentinel / deadline) and replaced without touching the others.
# concurrent.futures.ProcessPoolExecutor is not used because one dying worker breaks its whole pool.


def _worker_main(conn, evaluate, parent_pid: int) -> None:
    import signal

    # Without this a worker outlives a killed driver until its evaluation ends (up to timeout_s).
    die_with_parent(parent_pid)
    # Ctrl-C goes to the whole process group; the driver decides what to do with its workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        task_id, candidate_json, seed = msg
        conn.send(("done", task_id, run_evaluation(evaluate, candidate_json, seed)))


@dataclasses.dataclass
class _Slot:
    index: int
    process: Any
    conn: Any
    pid: int | None = None  # set when the worker reports ready
    task: tuple[Hashable, dict, int] | None = None
    started: float = 0.0
    tasks_done: int = 0

    @property
    def name(self) -> str:
        return f"local:{self.index}:{self.pid}"


class LocalExecutor:
    """Evaluates candidates in a pool of local worker processes (``spawn`` start method).

    Args:
      evaluate: picklable ``evaluate(candidate_json, seed) -> EvalResult``.
      num_workers: number of worker processes (default: all cores available to this process).
      timeout_s: per-evaluation wall-time limit; an evaluation that exceeds it has its worker killed
        (SIGKILL, since a hung native op may ignore SIGTERM) and replaced. None: no limit.
      max_tasks_per_worker: recycle a worker after this many evaluations (bounds memory growth of
        long TensorFlow runs). None: never.
      start_method: multiprocessing start method; 'spawn' avoids inheriting TensorFlow state.
      max_startup_failures: consecutive workers dying before they are ready after which the pool
        raises (e.g. ``evaluate`` cannot be unpickled in a fresh interpreter).
    """

    def __init__(
        self,
        evaluate: Callable[[dict, int], EvalResult],
        num_workers: int | None = None,
        timeout_s: float | None = None,
        max_tasks_per_worker: int | None = None,
        start_method: str = "spawn",
        max_startup_failures: int = 3,
    ):
        import multiprocessing

        check_picklable(evaluate)
        if num_workers is not None and num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        if timeout_s is not None and timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive or None, got {timeout_s}")
        self._evaluate = evaluate
        self._ctx = multiprocessing.get_context(start_method)
        self._timeout_s = timeout_s
        self._max_tasks = max_tasks_per_worker
        self._max_startup_failures = max_startup_failures
        self._startup_failures = 0
        self._backlog: list[tuple[Hashable, dict, int, float]] = []
        self._slots = [self._spawn(i) for i in range(num_workers or default_num_workers())]

    @property
    def capacity(self) -> int:
        return len(self._slots)

    @property
    def num_in_flight(self) -> int:
        return len(self._backlog) + sum(s.task is not None for s in self._slots)

    def _spawn(self, index: int) -> _Slot:
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=_worker_main, args=(child, self._evaluate, os.getpid()), daemon=True,
            name=f"evonorm-worker-{index}"
        )
        proc.start()
        child.close()  # so the parent sees EOF when the worker dies
        return _Slot(index=index, process=proc, conn=parent)

    def _kill(self, slot: _Slot) -> None:
        if slot.process.is_alive():
            slot.process.kill()
        slot.process.join(timeout=10)
        slot.conn.close()

    def _replace(self, slot: _Slot) -> None:
        self._kill(slot)
        self._slots[slot.index] = self._spawn(slot.index)

    def submit(self, task_id: Hashable, candidate_json: dict, seed: int) -> None:
        self._backlog.append((task_id, candidate_json, seed, time.monotonic()))
        self._assign()

    def _assign(self) -> None:
        for slot in self._slots:
            if not self._backlog:
                return
            if slot.pid is not None and slot.task is None:
                task_id, cand, seed, _ = self._backlog.pop(0)
                slot.task, slot.started = (task_id, cand, seed), time.monotonic()
                try:
                    slot.conn.send((task_id, cand, seed))
                except (BrokenPipeError, OSError):
                    pass  # the sentinel reports the dead worker and the task becomes a crash

    def _finish(self, slot: _Slot, result: EvalResult, out: list[Completion]) -> None:
        task_id = slot.task[0]
        out.append(Completion(task_id, result, slot.name, time.monotonic() - slot.started))
        slot.task = None
        slot.tasks_done += 1

    def _handle_messages(self, slot: _Slot, out: list[Completion]) -> None:
        while True:
            try:
                if slot.conn.closed or not slot.conn.poll():
                    return
                msg = slot.conn.recv()
            except (EOFError, OSError):
                return
            if msg[0] == "ready":
                slot.pid = msg[1]
                self._startup_failures = 0
            elif msg[0] == "done" and slot.task is not None and msg[1] == slot.task[0]:
                self._finish(slot, validate_result(msg[2]), out)
                if self._max_tasks is not None and slot.tasks_done >= self._max_tasks:
                    self._replace(slot)
                    return

    def _handle_death(self, slot: _Slot, out: list[Completion]) -> None:
        self._handle_messages(slot, out)  # a result may have been sent just before exiting
        slot = self._slots[slot.index]
        if slot.process.is_alive():
            return
        code = slot.process.exitcode
        if slot.pid is None:
            self._startup_failures += 1
            if self._startup_failures >= self._max_startup_failures:
                self.close()
                raise RuntimeError(
                    f"{self._startup_failures} worker processes in a row died during startup (last exit "
                    f"code {code}); check that evaluate's module is importable in a fresh interpreter"
                )
        if slot.task is not None:
            self._finish(slot, failure_result(CRASH, f"worker process died with exit code {code}"), out)
        self._replace(slot)

    def poll(self, timeout: float | None = None) -> list[Completion]:
        from multiprocessing.connection import wait

        deadline = None if timeout is None else time.monotonic() + timeout
        out: list[Completion] = []
        while True:
            self._assign()
            now = time.monotonic()
            if self._timeout_s is not None:
                for slot in list(self._slots):
                    if slot.task is not None and now - slot.started > self._timeout_s:
                        self._handle_messages(slot, out)  # it may have just finished
                        if slot.task is not None:
                            msg = f"evaluation exceeded timeout_s={self._timeout_s}; worker killed"
                            self._finish(slot, failure_result(TIMEOUT, msg), out)
                            self._replace(slot)
            if out or self.num_in_flight == 0:
                return out
            waits = [] if deadline is None else [deadline - now]
            if self._timeout_s is not None:
                waits += [s.started + self._timeout_s - now for s in self._slots if s.task is not None]
            wait_s = max(0.0, min(waits)) if waits else None
            objects = {}
            for slot in self._slots:
                objects[slot.conn] = slot
                objects[slot.process.sentinel] = slot
            for obj in wait(list(objects), wait_s):
                slot = objects[obj]
                if self._slots[slot.index] is not slot:
                    continue  # already replaced in this round
                if obj is slot.conn:
                    self._handle_messages(slot, out)
                else:
                    self._handle_death(slot, out)
            if out or (deadline is not None and time.monotonic() >= deadline):
                self._assign()
                return out

    def close(self) -> None:
        for slot in self._slots:
            try:
                if slot.task is None and slot.process.is_alive():
                    slot.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        for slot in self._slots:
            slot.process.join(timeout=1 if slot.task is None else 0)
            self._kill(slot)
        self._backlog.clear()
        for slot in self._slots:
            slot.task = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def __getattr__(name):
    # RayExecutor lives in its own module; importing it does not import Ray either.
    if name == "RayExecutor":
        from evonorm.search.ray_executor import RayExecutor  # noqa: PLC0415

        return RayExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Regularized evolution and random search over opaque candidates (paper Sec. 4.1; Real et al. 2019).

The loop knows nothing of TensorFlow or of computation graphs. A :class:`SearchProblem` injects
everything candidate-specific, in the AutoML-Zero / regularized-evolution reference style:

* ``generate(rng) -> candidate`` and ``mutate(candidate, rng) -> candidate`` with ``rng`` a
  ``numpy.random.Generator``;
* ``key(candidate) -> str``: functional-equivalence fingerprint. A key seen before is never
  evaluated again: the cached result is reused and the proposal is stored as a 'duplicate';
* ``to_json(candidate) -> dict`` / ``from_json(dict) -> candidate``;
* ``evaluate(candidate_json, seed) -> EvalResult`` (see :mod:`evonorm.search.executor`); it runs in
  worker processes, so it must be picklable;
* ``objectives``: the score names selection compares, in order (e.g. one per proxy architecture).

Regularized evolution: the population is a sliding window of the ``population_size`` most recently
finished *accepted* candidates (rejected ones are stored but never enter it; duplicates of accepted
candidates do, with the cached scores, as in AutoML-Zero). While fewer than ``min_population``
candidates (default: ``population_size``, the classic algorithm) have been accepted, proposals are
random (``generate``); afterwards each proposal runs a tournament on ``tournament_size`` members
(capped at the current population) drawn without replacement, the winner -- by the Pareto or
Average criterion of :mod:`evonorm.search.selection` -- is mutated, and the child is evaluated. A
``min_population`` below ``population_size`` matters in sparse spaces: when under 1% of random
graphs pass rejection (this search space), filling a window of 50 at random takes thousands of
evaluations, so a small search would never leave its random phase; evolution then starts early and
the window keeps growing to ``population_size`` with accepted children.
:func:`random_search` ('RS + rej' in the paper) shares the budget, rejection, dedup and storage.

Execution is asynchronous steady state: up to ``executor.capacity`` evaluations are in flight, and
each result updates the population the moment it arrives, so workers never idle. The budget counts
evaluated candidates (rejected ones included, duplicates not); ``max_seconds`` optionally bounds
the wall time of one run, and ``max_proposals`` bounds proposals in total (a guard against a search
space so small that nearly every proposal is a duplicate).

Reproducibility and resume: proposal ``i`` draws everything (tournament sample, tie breaks,
mutation) from a generator seeded by ``(seed, i)``, and is evaluated with a seed derived from the
same pair. With one worker, a search is therefore a deterministic function of ``seed``. All state
(population, dedup cache, counters, next proposal index) is rebuilt from the
:class:`~evonorm.search.store.SearchStore` rows, so a search restarted on the same database after a
crash or SIGKILL continues where it stopped, losing only in-flight evaluations, which are
re-proposed; with one worker the resumed database equals an uninterrupted run's.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import time
import uuid
from typing import Any, Callable, Sequence

import numpy as np

from evonorm.search import selection
from evonorm.search.executor import CRASH, EvalResult, Executor, LocalExecutor
from evonorm.search.progress import ProgressReporter
from evonorm.search.store import ACCEPTED, DUPLICATE, REJECTED, Record, SearchStore

__all__ = [
    "SearchProblem",
    "EvolutionConfig",
    "RandomSearchConfig",
    "SearchSummary",
    "regularized_evolution",
    "random_search",
    "proposal_rng",
    "check_min_population",
    "evaluation_seed",
]

# Settings that only decide how long a run goes on; a resumed search may change them.
_RUN_LENGTH_FIELDS = ("budget", "max_seconds", "max_proposals")


@dataclasses.dataclass(frozen=True)
class SearchProblem:
    """The candidate-specific callables a search is built from (see the module docstring)."""

    generate: Callable[[np.random.Generator], Any]
    mutate: Callable[[Any, np.random.Generator], Any]
    key: Callable[[Any], str]
    to_json: Callable[[Any], dict]
    from_json: Callable[[dict], Any]
    evaluate: Callable[[dict, int], EvalResult]
    objectives: Sequence[str]

    def __post_init__(self):
        if isinstance(self.objectives, str) or not self.objectives:
            raise ValueError(f"objectives must be a non-empty sequence of names, got {self.objectives!r}")
        object.__setattr__(self, "objectives", tuple(self.objectives))


@dataclasses.dataclass
class EvolutionConfig:
    """Regularized-evolution settings.

    Attributes:
      population_size: sliding-window size P (most recent accepted candidates).
      min_population: accepted candidates needed before tournaments start (None: population_size).
      tournament_size: contestants S drawn per tournament (capped at the population size).
      criterion: 'pareto' (paper default) or 'average'.
      budget: evaluated candidates in total, across resumes.
      seed: non-negative integer all randomness derives from.
      max_seconds: optional wall-time limit of one run (stops proposing, drains in-flight work).
      max_proposals: optional limit on proposals in total (default 20 * budget).
    """

    population_size: int = 100
    tournament_size: int = 25
    criterion: str = "pareto"
    budget: int = 1000
    seed: int = 0
    max_seconds: float | None = None
    max_proposals: int | None = None
    min_population: int | None = None

    def validate(self) -> None:
        if self.population_size < 1 or self.tournament_size < 1:
            raise ValueError(f"population_size and tournament_size must be >= 1, got {self}")
        check_min_population(self.min_population, self.population_size)
        selection.get_criterion(self.criterion)
        _validate_common(self)


@dataclasses.dataclass
class RandomSearchConfig:
    """Random-search settings; fields mean the same as in :class:`EvolutionConfig`."""

    budget: int = 1000
    seed: int = 0
    max_seconds: float | None = None
    max_proposals: int | None = None

    def validate(self) -> None:
        _validate_common(self)


def check_min_population(min_population, population_size) -> None:
    """ValueError unless ``min_population`` is None or within ``[1, population_size]``."""
    if min_population is not None and not 1 <= min_population <= population_size:
        raise ValueError(f"min_population must be in [1, population_size={population_size}], got {min_population}")


def _validate_common(config) -> None:
    if config.budget < 0:
        raise ValueError(f"budget must be >= 0, got {config.budget}")
    if not isinstance(config.seed, (int, np.integer)) or config.seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {config.seed!r}")


@dataclasses.dataclass
class SearchSummary:
    """What a finished (or stopped) run reports.

    Attributes:
      kind: 'evolution' or 'random'.
      evaluated: candidates evaluated in total (across resumes).
      accepted: evaluated candidates that passed every test.
      rejected: evaluated candidates rejected, per reason.
      duplicates: proposals answered from the dedup cache.
      stop_reason: 'budget', 'max_seconds' or 'max_proposals'.
      elapsed_s: wall time of this run.
      population: record ids of the final population (oldest first).
      best: objective name (and 'mean') -> (score, record id) of the best accepted candidate.
    """

    kind: str
    evaluated: int
    accepted: int
    rejected: dict[str, int]
    duplicates: int
    stop_reason: str
    elapsed_s: float
    population: list[int]
    best: dict[str, tuple[float, int]]


def proposal_rng(seed: int, index: int) -> np.random.Generator:
    """The generator proposal ``index`` of a search seeded with ``seed`` draws from."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def evaluation_seed(seed: int, index: int) -> int:
    """The seed proposal ``index`` is evaluated with (a 31-bit integer, safe for any framework)."""
    return int(np.random.SeedSequence([int(seed), int(index), 1]).generate_state(1)[0] >> 1)


@dataclasses.dataclass
class _Member:
    id: int
    candidate: dict
    vector: tuple[float, ...]


@dataclasses.dataclass
class _Proposal:
    index: int
    key: str
    candidate: dict
    origin: str
    parent_id: int | None


class _Search:
    """One run of the steady-state loop; all state is rebuilt from the store first."""

    def __init__(self, kind, problem, store, executor, config, progress, on_record):
        self.kind, self.problem, self.store, self.executor = kind, problem, store, executor
        self.config, self.progress, self.on_record = config, progress, on_record
        self.population_size = getattr(config, "population_size", 0)
        self.min_population = getattr(config, "min_population", None) or self.population_size
        self.criterion = selection.get_criterion(config.criterion) if kind == "evolution" else None
        self.population: collections.deque[_Member] = collections.deque(maxlen=max(1, self.population_size))
        self.cache: dict[str, Record] = {}  # key -> evaluated record
        self.evaluated = self.accepted = self.duplicates = 0
        self.rejected: collections.Counter[str] = collections.Counter()
        self.best: dict[str, tuple[float, int]] = {}
        self.next_index = 0
        self.pending: dict[tuple, _Proposal] = {}  # (run token, proposal index) -> proposal in flight
        # Task ids carry a per-run token: a reused executor may still return work of an aborted
        # earlier run, whose proposal indices this run re-uses; such completions are dropped.
        self.token = uuid.uuid4().hex
        self.inflight_keys: dict[str, int] = {}
        self.waiting_dups: dict[str, list[_Proposal]] = collections.defaultdict(list)

    # -- state ----------------------------------------------------------------------------------
    def restore(self) -> None:
        cfg = {k: v for k, v in dataclasses.asdict(self.config).items() if k not in _RUN_LENGTH_FIELDS}
        meta = self.store.get_meta()
        expected = {"kind": self.kind, "seed": self.config.seed, "config": cfg, "objectives": list(self.problem.objectives)}
        if "kind" not in meta:
            if self.store.count():
                raise ValueError(f"{self.store.path} has candidates but no search metadata")
            self.store.set_meta(created=time.time(), **expected)
        else:
            # Settings added after a database was written count as their defaults there.
            defaults = {f.name: f.default for f in dataclasses.fields(self.config)}
            stored_cfg = meta.get("config")
            if isinstance(stored_cfg, dict):
                meta = {**meta, "config": {**{k: defaults[k] for k in cfg if k not in stored_cfg}, **stored_cfg}}
            diff = {k: (meta.get(k), v) for k, v in expected.items() if meta.get(k) != v}
            if diff:
                details = "; ".join(f"{k}: stored {a!r}, requested {b!r}" for k, (a, b) in diff.items())
                raise ValueError(f"cannot resume {self.store.path} with different settings ({details})")
        for record in self.store.records():
            self.apply(record)
            self.next_index = max(self.next_index, record.proposal + 1)

    def apply(self, record: Record) -> None:
        if record.status == DUPLICATE:
            self.duplicates += 1
        else:
            self.evaluated += 1
            self.cache[record.key] = record
            if record.status == REJECTED:
                self.rejected[record.rejected] += 1
        if record.accepted:
            vector = selection.score_vector(record.scores, self.problem.objectives)
            self.population.append(_Member(record.id, record.candidate, vector))
            if record.status == ACCEPTED:
                self.accepted += 1
                for name, value in zip(self.problem.objectives + ("mean",), vector + (float(np.mean(vector)),)):
                    if name not in self.best or value > self.best[name][0]:
                        self.best[name] = (value, record.id)

    def add(self, record: Record) -> None:
        self.store.add(record)
        self.apply(record)
        if self.progress is not None:
            self.progress.update(record)
        if self.on_record is not None:
            self.on_record(record)

    # -- proposals ------------------------------------------------------------------------------
    def propose(self) -> _Proposal:
        index, problem = self.next_index, self.problem
        self.next_index += 1
        rng = proposal_rng(self.config.seed, index)
        if self.kind == "random" or self.accepted < self.min_population:
            candidate, origin, parent_id = problem.generate(rng), "random", None
        else:
            members = list(self.population)
            picks = rng.choice(len(members), size=min(self.config.tournament_size, len(members)), replace=False)
            winner = members[picks[self.criterion.select([members[i].vector for i in picks], rng)]]
            candidate = problem.mutate(problem.from_json(winner.candidate), rng)
            origin, parent_id = "mutation", winner.id
        try:
            # Round-trip through JSON so the in-memory state equals what a resumed run reads back.
            candidate_json = json.loads(json.dumps(problem.to_json(candidate), sort_keys=True, allow_nan=False))
        except (TypeError, ValueError) as e:
            raise TypeError(f"to_json must return a JSON-serializable dict; got {e}") from e
        return _Proposal(index, str(problem.key(candidate)), candidate_json, origin, parent_id)

    def duplicate_record(self, prop: _Proposal, original: Record) -> Record:
        return Record(
            proposal=prop.index, key=prop.key, candidate=prop.candidate, scores=dict(original.scores),
            rejected=original.rejected, status=DUPLICATE, origin=prop.origin, parent_id=prop.parent_id,
            duplicate_of=original.id, seed=original.seed,
        )

    def finish(self, prop: _Proposal, result: EvalResult, worker: str, wall_s: float) -> None:
        missing = [o for o in self.problem.objectives if o not in result.scores]
        if result.rejected is None and missing:
            result.rejected = CRASH
            result.extras["error"] = f"accepted result lacks objectives {missing}"
        record = Record(
            proposal=prop.index, key=prop.key, candidate=prop.candidate, scores=result.scores,
            rejected=result.rejected, status=REJECTED if result.rejected else ACCEPTED, origin=prop.origin,
            parent_id=prop.parent_id, seed=evaluation_seed(self.config.seed, prop.index), worker=worker,
            timings={**result.timings, "wall_s": wall_s}, extras=result.extras,
        )
        self.add(record)
        self.inflight_keys.pop(prop.key, None)
        for dup in self.waiting_dups.pop(prop.key, []):
            self.add(self.duplicate_record(dup, record))

    # -- loop -----------------------------------------------------------------------------------
    def run(self) -> SearchSummary:
        start = time.monotonic()
        cfg = self.config
        max_proposals = cfg.max_proposals if cfg.max_proposals is not None else 20 * cfg.budget
        stop_reason = None
        while True:
            while stop_reason is None and self.executor.num_in_flight < self.executor.capacity:
                if self.evaluated + len(self.pending) >= cfg.budget:
                    stop_reason = "budget"
                elif cfg.max_seconds is not None and time.monotonic() - start >= cfg.max_seconds:
                    stop_reason = "max_seconds"
                elif self.next_index >= max_proposals:
                    stop_reason = "max_proposals"
                else:
                    self.submit(self.propose())
            if not self.pending and (stop_reason is not None or self.executor.num_in_flight == 0):
                break
            wait_s = None if self.progress is None else self.progress.interval_s
            if cfg.max_seconds is not None and stop_reason is None:
                wait_s = max(0.0, min(wait_s or cfg.max_seconds, cfg.max_seconds - (time.monotonic() - start)))
            for done in self.executor.poll(wait_s):
                prop = self.pending.pop(done.task_id, None)
                if prop is not None:
                    self.finish(prop, done.result, done.worker, done.wall_s)
            if self.progress is not None:
                self.progress.maybe_report()
        if stop_reason is None:
            stop_reason = "budget"
        summary = SearchSummary(
            kind=self.kind, evaluated=self.evaluated, accepted=self.accepted, rejected=dict(self.rejected),
            duplicates=self.duplicates, stop_reason=stop_reason, elapsed_s=time.monotonic() - start,
            population=[m.id for m in self.population] if self.kind == "evolution" else [], best=dict(self.best),
        )
        if self.progress is not None:
            self.progress.report(final=True)
        return summary

    def submit(self, prop: _Proposal) -> None:
        if prop.key in self.cache:
            self.add(self.duplicate_record(prop, self.cache[prop.key]))
        elif prop.key in self.inflight_keys:
            self.waiting_dups[prop.key].append(prop)
        else:
            self.pending[(self.token, prop.index)] = prop
            self.inflight_keys[prop.key] = prop.index
            seed = evaluation_seed(self.config.seed, prop.index)
            self.executor.submit((self.token, prop.index), prop.candidate, seed)


def _run(kind, problem, store, config, executor, progress, on_record) -> SearchSummary:
    config.validate()
    own_store = not isinstance(store, SearchStore)
    store = SearchStore(store) if own_store else store
    own_executor = executor is None
    try:
        search = _Search(kind, problem, store, None, config, None, on_record)
        search.restore()
        if progress is True:
            progress = ProgressReporter(budget=config.budget, objectives=problem.objectives, label=kind)
        if progress:
            progress.start(
                evaluated=search.evaluated,
                duplicates=search.duplicates,
                rejected=dict(search.rejected),
                best={name: value for name, (value, _) in search.best.items()},
            )
        search.progress = progress or None
        if search.evaluated >= config.budget:
            executor = executor or _NoExecutor()
        search.executor = executor if executor is not None else LocalExecutor(problem.evaluate)
        try:
            return search.run()
        finally:
            if own_executor:
                search.executor.close()
    finally:
        if own_store:
            store.close()


class _NoExecutor:
    """Stands in when the budget is already spent, so no worker processes are started."""

    capacity, num_in_flight = 1, 0

    def poll(self, timeout=None):
        return []

    def close(self):
        pass


def regularized_evolution(
    problem: SearchProblem,
    store: SearchStore | str,
    config: EvolutionConfig | None = None,
    executor: Executor | None = None,
    progress: ProgressReporter | bool = True,
    on_record: Callable[[Record], None] | None = None,
) -> SearchSummary:
    """Runs (or resumes) regularized evolution until the budget is spent.

    Args:
      problem: the injected candidate callables.
      store: a :class:`SearchStore` or a database path; an existing database is resumed (its stored
        kind, seed, objectives and config other than budget/max_seconds/max_proposals must match).
      config: evolution settings (default :class:`EvolutionConfig()`).
      executor: where evaluations run (default: a :class:`LocalExecutor` on all cores, closed at the
        end). A caller-supplied executor is left open.
      progress: a :class:`ProgressReporter`, True for the default one on stderr, False for none.
      on_record: called with each :class:`Record` right after it is committed.

    Returns:
      A :class:`SearchSummary`.
    """
    return _run("evolution", problem, store, config or EvolutionConfig(), executor, progress, on_record)


def random_search(
    problem: SearchProblem,
    store: SearchStore | str,
    config: RandomSearchConfig | None = None,
    executor: Executor | None = None,
    progress: ProgressReporter | bool = True,
    on_record: Callable[[Record], None] | None = None,
) -> SearchSummary:
    """Random search with rejection ('RS + rej'): every proposal is ``generate(rng)``.

    Arguments are those of :func:`regularized_evolution`.
    """
    return _run("random", problem, store, config or RandomSearchConfig(), executor, progress, on_record)

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
finished *accepted* candidates, oldest out (rejected ones are stored but never enter it). While fewer
than ``min_population`` candidates (default: ``population_size``, the classic algorithm) have been
accepted, proposals are random (``generate``); afterwards each proposal runs a tournament on
``tournament_size`` members (capped at the current population) drawn without replacement, the winner
-- by the Pareto or Average criterion of :mod:`evonorm.search.selection` -- is mutated, and the child
is evaluated. A ``min_population`` below ``population_size`` matters in sparse spaces: when under 1%
of random graphs pass rejection (this search space), filling a window of 50 at random takes thousands
of evaluations, so a small search would never leave its random phase; evolution then starts early and
the window keeps growing to ``population_size`` with accepted children.
:func:`random_search` ('RS + rej' in the paper) shares the budget, rejection, dedup and storage.

Population of distinct functions, and redrawn neutral mutations (changed from the stored runs):

* The stored ``default`` runs appended every duplicate of an accepted candidate to the window, with
  the cached scores, "as in AutoML-Zero". In this search space 80% of mutation proposals gave a child
  functionally equal to its parent (the mutated node was dead), so those copies filled the window:
  over 6,003 mutation proposals the 30-member window held a median of ONE distinct function (mean
  1.3) and 72% of all mutations were of one layer -- evolution had become a single-lineage hill
  climb. (AutoML-Zero can afford copies: its population is 1,000 and it forgets a hash after 100
  hits.) Now, with ``distinct_population`` (default), a candidate whose key equals a *living* window
  member's never takes a place in the window; it is still stored and counted as a duplicate. The
  window stays a sliding window of the most recent accepted arrivals, so a copy does not refresh its
  member's age either (refreshing would make a lineage that keeps re-finding itself immortal, the
  same collapse by another road). A function that has aged out may enter again when it is re-found:
  it is then not living, and the window stays distinct. The tournament and the criteria are unchanged;
  they now compare up to ``population_size`` different layers.
* With ``max_redraws > 0`` (default 50) a mutation whose child has the parent's key is redrawn: the
  loop mutates the (neutral) child again, up to ``max_redraws`` times, from the same proposal
  generator. The operator itself stays the paper's (uniform node, uniform op, uniform inputs; see
  :mod:`evonorm.search.mutation`), so dead nodes still change -- neutral drift, which a later rewiring
  of a live node can expose -- and any graph stays reachable, while the function-changing step is
  conditioned on changing the function, which for a graph means it hits a live node (a dead node's
  change never changes the output). This is the "prefer live nodes" effect without ``live_only``,
  which would freeze dead nodes at their random initial content. Cost: one fingerprint (about
  0.1-0.15 ms) per redraw. Measured on 150 random graphs that pass the NumPy filters, a mutation is
  neutral with probability 0.91 / 0.80 / 0.71 for 1 / 2 / 3 live nodes, so the bound of 50 falls
  back for about 1% of 1-live-node parents (20 would for 15%); a proposal that still equals its parent
  after the bound is submitted as it is (a free duplicate). Per proposal, ``extras["redraws"]`` of
  its row holds the redraws and ``extras["redraws_exhausted"]`` is True where the bound was hit; the
  summary totals them (``redraws``, ``redraw_fallbacks``).
* Diversity is recorded: :attr:`SearchSummary.diversity` lists ``(finished proposals, distinct keys
  in the window, window size)`` after every finished proposal (restored rows included), and
  :func:`window_history` replays the same series from stored rows (e.g. for
  :func:`evonorm.search.plots.plot_diversity`), so it is persisted by the database itself.
* ``distinct_population=False, max_redraws=0`` is the stored runs' algorithm, proposal for proposal.
  A database written before these settings existed counts as having exactly those values, so it
  resumes only with them (resuming it under the new rules would mix two algorithms in one run).

Execution is asynchronous steady state: up to ``executor.capacity`` evaluations are in flight, and
each result updates the population the moment it arrives, so workers never idle. The budget counts
evaluated candidates (rejected ones included, duplicates not); ``max_seconds`` optionally bounds
the wall time of one run, and ``max_proposals`` bounds proposals in total (a guard against a search
space so small that nearly every proposal is a duplicate).

Reproducibility and resume: proposal ``i`` draws everything (tournament sample, tie breaks,
mutation and its redraws) from a generator seeded by ``(seed, i)``, and is evaluated with a seed
derived from the same pair. With one worker, a search is therefore a deterministic function of
``seed``. All state (population, with the same distinct rule, dedup cache, counters, diversity
series, next proposal index) is rebuilt from the :class:`~evonorm.search.store.SearchStore` rows, so
a search restarted on the same database after a crash or SIGKILL continues where it stopped, losing
only in-flight evaluations, which are re-proposed; with one worker the resumed database equals an
uninterrupted run's.
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
    "window_history",
]

# Settings that only decide how long a run goes on; a resumed search may change them.
_RUN_LENGTH_FIELDS = ("budget", "max_seconds", "max_proposals")
# Settings added after databases were written, with the value those databases ran with (which is not
# the new default): a stored config without them resumes only with these values.
_LEGACY_VALUES = {"distinct_population": False, "max_redraws": 0}


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
      distinct_population: a candidate functionally equal to (same key as) a living window member
        does not enter the window (False: every accepted arrival does, as in the stored runs).
      max_redraws: mutate a child with its parent's key again, up to this many times (0: never, as in
        the stored runs).
    """

    population_size: int = 100
    tournament_size: int = 25
    criterion: str = "pareto"
    budget: int = 1000
    seed: int = 0
    max_seconds: float | None = None
    max_proposals: int | None = None
    min_population: int | None = None
    distinct_population: bool = True
    max_redraws: int = 50

    def validate(self) -> None:
        if self.population_size < 1 or self.tournament_size < 1:
            raise ValueError(f"population_size and tournament_size must be >= 1, got {self}")
        check_min_population(self.min_population, self.population_size)
        if not isinstance(self.distinct_population, (bool, np.bool_)):
            raise ValueError(f"distinct_population must be a bool, got {self.distinct_population!r}")
        if (not isinstance(self.max_redraws, (int, np.integer)) or isinstance(self.max_redraws, bool)
                or self.max_redraws < 0):
            raise ValueError(f"max_redraws must be a non-negative integer, got {self.max_redraws!r}")
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
      diversity: ``(finished proposals, distinct keys in the window, window size)`` after each
        finished proposal, restored rows included (evolution only; see :func:`window_history`).
      redraws: neutral mutations redrawn, in total.
      redraw_fallbacks: mutation proposals still equal to their parent after ``max_redraws``.
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
    diversity: list[tuple[int, int, int]] = dataclasses.field(default_factory=list)
    redraws: int = 0
    redraw_fallbacks: int = 0


def proposal_rng(seed: int, index: int) -> np.random.Generator:
    """The generator proposal ``index`` of a search seeded with ``seed`` draws from."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def evaluation_seed(seed: int, index: int) -> int:
    """The seed proposal ``index`` is evaluated with (a 31-bit integer, safe for any framework)."""
    return int(np.random.SeedSequence([int(seed), int(index), 1]).generate_state(1)[0] >> 1)


@dataclasses.dataclass
class _Member:
    id: int
    key: str
    candidate: dict
    vector: tuple[float, ...]


@dataclasses.dataclass
class _Proposal:
    index: int
    key: str
    candidate: dict
    origin: str
    parent_id: int | None
    extras: dict = dataclasses.field(default_factory=dict)  # goes into the row's extras


class _Window:
    """The sliding-window population: the ``size`` most recent accepted arrivals, oldest first.

    With ``distinct``, an arrival whose key a living member has is turned away, so every member is
    a different function.
    """

    def __init__(self, size: int, distinct: bool):
        self.size, self.distinct = max(1, size), distinct
        self.members: collections.deque[_Member] = collections.deque()
        self.keys: collections.Counter[str] = collections.Counter()  # living keys (counts: legacy copies)

    def offer(self, member: _Member) -> bool:
        """Adds ``member`` (evicting the oldest when full) unless the distinct rule turns it away."""
        if self.distinct and member.key in self.keys:
            return False
        if len(self.members) == self.size:
            old = self.members.popleft()
            self.keys[old.key] -= 1
            if not self.keys[old.key]:
                del self.keys[old.key]
        self.members.append(member)
        self.keys[member.key] += 1
        return True

    @property
    def num_distinct(self) -> int:
        return len(self.keys)

    def __len__(self) -> int:
        return len(self.members)

    def __iter__(self):
        return iter(self.members)


def window_history(records, population_size: int,
                   distinct_population: bool = True) -> list[tuple[int, int, int]]:
    """Replays the window over stored rows: ``(finished proposals, distinct keys, window size)`` per row.

    This is the series :attr:`SearchSummary.diversity` reports, recomputed from a database.

    Args:
      records: an evolution run's :class:`~evonorm.search.store.Record` rows in completion (id) order.
      population_size: the run's window size.
      distinct_population: the run's rule (False for databases written before the rule existed).

    Returns:
      One tuple per row.
    """
    window, out = _Window(population_size, distinct_population), []
    for step, record in enumerate(records, 1):
        if record.accepted:
            window.offer(_Member(record.id, record.key, {}, ()))
        out.append((step, window.num_distinct, len(window)))
    return out


class _Search:
    """One run of the steady-state loop; all state is rebuilt from the store first."""

    def __init__(self, kind, problem, store, executor, config, progress, on_record):
        self.kind, self.problem, self.store, self.executor = kind, problem, store, executor
        self.config, self.progress, self.on_record = config, progress, on_record
        self.population_size = getattr(config, "population_size", 0)
        self.min_population = getattr(config, "min_population", None) or self.population_size
        self.criterion = selection.get_criterion(config.criterion) if kind == "evolution" else None
        self.max_redraws = getattr(config, "max_redraws", 0)
        self.population = _Window(self.population_size, getattr(config, "distinct_population", False))
        self.diversity: list[tuple[int, int, int]] = []
        self.finished = 0  # rows applied (restored ones included): the diversity series' x
        self.cache: dict[str, Record] = {}  # key -> evaluated record
        self.evaluated = self.accepted = self.duplicates = 0
        self.redraws = self.redraw_fallbacks = 0
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
            # Settings added after a database was written count as their defaults there, except those
            # whose default changed the algorithm: they count as the value that database ran with.
            defaults = {**{f.name: f.default for f in dataclasses.fields(self.config)}, **_LEGACY_VALUES}
            stored_cfg = meta.get("config")
            if isinstance(stored_cfg, dict):
                meta = {**meta, "config": {**{k: defaults[k] for k in cfg if k not in stored_cfg}, **stored_cfg}}
            diff = {k: (meta.get(k), v) for k, v in expected.items() if meta.get(k) != v}
            if diff:
                details = "; ".join(_describe_difference(k, a, b) for k, (a, b) in diff.items())
                raise ValueError(f"cannot resume {self.store.path} with different settings ({details})")
        for record in self.store.records():
            self.apply(record)
            self.next_index = max(self.next_index, record.proposal + 1)

    def apply(self, record: Record) -> None:
        """Updates every piece of state from one finished row (live or restored: the same rules)."""
        self.finished += 1
        if record.status == DUPLICATE:
            self.duplicates += 1
        else:
            self.evaluated += 1
            self.cache[record.key] = record
            if record.status == REJECTED:
                self.rejected[record.rejected] += 1
        extras = record.extras or {}
        self.redraws += int(extras.get("redraws", 0))
        self.redraw_fallbacks += bool(extras.get("redraws_exhausted", False))
        if record.accepted:
            vector = selection.score_vector(record.scores, self.problem.objectives)
            if self.kind == "evolution":
                self.population.offer(_Member(record.id, record.key, record.candidate, vector))
            if record.status == ACCEPTED:
                self.accepted += 1
                for name, value in zip(self.problem.objectives + ("mean",), vector + (float(np.mean(vector)),)):
                    if name not in self.best or value > self.best[name][0]:
                        self.best[name] = (value, record.id)
        if self.kind == "evolution":
            self.diversity.append((self.finished, self.population.num_distinct, len(self.population)))

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
        extras = {}
        if self.kind == "random" or self.accepted < self.min_population:
            candidate, origin, parent_id = problem.generate(rng), "random", None
            key = str(problem.key(candidate))
        else:
            members = list(self.population)
            picks = rng.choice(len(members), size=min(self.config.tournament_size, len(members)), replace=False)
            winner = members[picks[self.criterion.select([members[i].vector for i in picks], rng)]]
            candidate = problem.mutate(problem.from_json(winner.candidate), rng)
            origin, parent_id = "mutation", winner.id
            key = str(problem.key(candidate))
            if self.max_redraws:
                # Mutate the neutral child rather than the parent again: its (dead-node) changes are
                # kept as neutral drift, as the paper's population of copies would have kept them.
                redraws = 0
                while key == winner.key and redraws < self.max_redraws:
                    candidate = problem.mutate(candidate, rng)
                    key = str(problem.key(candidate))
                    redraws += 1
                extras["redraws"] = redraws
                if key == winner.key:
                    extras["redraws_exhausted"] = True
        try:
            # Round-trip through JSON so the in-memory state equals what a resumed run reads back.
            candidate_json = json.loads(json.dumps(problem.to_json(candidate), sort_keys=True, allow_nan=False))
        except (TypeError, ValueError) as e:
            raise TypeError(f"to_json must return a JSON-serializable dict; got {e}") from e
        return _Proposal(index, key, candidate_json, origin, parent_id, extras)

    def duplicate_record(self, prop: _Proposal, original: Record) -> Record:
        return Record(
            proposal=prop.index, key=prop.key, candidate=prop.candidate, scores=dict(original.scores),
            rejected=original.rejected, status=DUPLICATE, origin=prop.origin, parent_id=prop.parent_id,
            duplicate_of=original.id, seed=original.seed, extras=dict(prop.extras),
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
            timings={**result.timings, "wall_s": wall_s}, extras={**result.extras, **prop.extras},
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
            diversity=list(self.diversity), redraws=self.redraws, redraw_fallbacks=self.redraw_fallbacks,
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


def _describe_difference(name, stored, requested) -> str:
    if name == "config" and isinstance(stored, dict) and isinstance(requested, dict):
        fields = sorted(k for k in set(stored) | set(requested) if stored.get(k) != requested.get(k))
        return "; ".join(f"config.{k}: stored {stored.get(k)!r}, requested {requested.get(k)!r}"
                         for k in fields)
    return f"{name}: stored {stored!r}, requested {requested!r}"


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

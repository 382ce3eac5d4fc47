"""SQLite record of a search: every evaluated candidate, written the moment it finishes.

One file per search (stdlib ``sqlite3``, WAL journal so analysis tools can read while the search
writes). Tables:

* ``meta(name, value)``: JSON values -- ``kind`` ('evolution' | 'random'), ``seed``, ``config``
  (the evolution settings), ``objectives``, ``created`` and ``evaluator`` (the settings a candidate's
  outcome depends on, see :meth:`SearchStore.resume_settings`; written by ``evonorm-search``).
* ``candidates``: one row per finished proposal, ``id`` in completion order (the order the driver
  saw results, which is what the sliding-window population depends on). Columns: ``proposal``
  (proposal index; the proposal's RNG is derived from (seed, proposal)), ``key`` (functional
  fingerprint), ``candidate`` / ``scores`` / ``timings`` / ``extras`` (JSON), ``rejected`` (reason
  or NULL), ``status`` ('accepted' | 'rejected' | 'duplicate'), ``duplicate_of`` (id of the
  evaluated row a duplicate reuses), ``origin`` ('random' | 'mutation'), ``parent_id``, ``seed``
  (evaluation seed), ``worker``, ``created`` (unix time).

Everything the driver needs to resume -- population, dedup cache, next proposal index, counters --
is a function of these rows, so a search killed at any moment (even SIGKILL) loses only its
in-flight evaluations. Each row is committed on its own; with WAL and ``synchronous=NORMAL`` a
committed row survives the death of the process.

Opening a file that is not a SQLite database, or one that is truncated or otherwise damaged, raises
:class:`DamagedStoreError` (one line naming the file and what to do) before anything is written to
it; an empty or missing file is a new search.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import sqlite3
import time
from typing import Any, Iterator

__all__ = ["Record", "SearchStore", "ACCEPTED", "REJECTED", "DUPLICATE", "DamagedStoreError",
           "ResumeSettingsError", "check_database"]

ACCEPTED, REJECTED, DUPLICATE = "accepted", "rejected", "duplicate"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS candidates (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  proposal INTEGER NOT NULL UNIQUE,
  key TEXT NOT NULL,
  candidate TEXT NOT NULL,
  scores TEXT NOT NULL,
  rejected TEXT,
  status TEXT NOT NULL,
  duplicate_of INTEGER,
  origin TEXT NOT NULL,
  parent_id INTEGER,
  seed INTEGER,
  worker TEXT,
  timings TEXT NOT NULL,
  extras TEXT NOT NULL,
  created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS candidates_key ON candidates(key);
"""

_COLUMNS = (
    "id proposal key candidate scores rejected status duplicate_of origin parent_id seed worker "
    "timings extras created"
).split()
_JSON_COLUMNS = ("candidate", "scores", "timings", "extras")


def _dumps(value: Any) -> str:
    # sort_keys: the stored text of equal candidates is equal, so DBs compare byte for byte.
    return json.dumps(value, sort_keys=True, allow_nan=False)


_SQLITE_HEADER = b"SQLite format 3\x00"
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26  # primary result codes (extended codes keep them in the low byte)
_NOT_A_DB = "not a SQLite database"
_DAMAGED = "truncated or damaged: integrity check failed"


class DamagedStoreError(sqlite3.DatabaseError):
    """A search database that is not SQLite or fails SQLite's integrity check; it was left untouched."""


class ResumeSettingsError(ValueError):
    """Resuming a search with settings other than the ones its stored results came from."""


def _damaged(path: str, what: str, detail: str) -> DamagedStoreError:
    return DamagedStoreError(
        f"{path} is {what} ({detail}); the file was left untouched. Restore it from a backup, or move it "
        f"aside and start a new search in another --workdir.")


def _error_code(err: sqlite3.Error) -> int:
    return (getattr(err, "sqlite_errorcode", None) or 0) & 0xFF


def check_database(path: str | os.PathLike) -> None:
    """Raises :class:`DamagedStoreError` unless ``path`` is missing, empty or a sound SQLite database.

    Nothing is written to the file. When no ``-wal``/``-shm``/``-journal`` file lies beside it, no
    connection can have it open, so it is read ``immutable`` (which creates no side files either);
    otherwise read-only through those files, which stays consistent while a search writes to it.
    Errors other than "not a database" and "corrupt" (a lock, a permission) are left to the
    read-write open that follows.

    Args:
      path: the database file.
    """
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        return
    if size == 0:
        return  # what SQLite makes of an empty file: a new database
    with open(path, "rb") as f:
        header = f.read(len(_SQLITE_HEADER))
    # SQLite itself takes some files shorter than one page for empty databases and would overwrite
    # them; no SQLite file lacks this header.
    if header != _SQLITE_HEADER:
        raise _damaged(path, _NOT_A_DB, f"{size} bytes without the SQLite header")
    live = any(os.path.exists(path + suffix) for suffix in ("-wal", "-shm", "-journal"))
    uri = pathlib.Path(path).absolute().as_uri() + ("?mode=ro" if live else "?immutable=1")
    try:
        db = sqlite3.connect(uri, uri=True, timeout=30)
    except sqlite3.Error:
        return
    try:
        problems = [row[0] for row in db.execute("PRAGMA quick_check")]
    except sqlite3.DatabaseError as err:
        if _error_code(err) == _SQLITE_NOTADB:
            raise _damaged(path, _NOT_A_DB, f"{size} bytes; SQLite: {err}") from err
        if _error_code(err) == _SQLITE_CORRUPT:
            raise _damaged(path, _DAMAGED, f"{size} bytes; SQLite: {err}") from err
        return
    finally:
        db.close()
    if problems != ["ok"]:
        # A row may hold several newline-separated problems under a '*** in database main ***' title;
        # the message stays on one line.
        lines = [line.strip() for row in problems for line in str(row).splitlines()
                 if line.strip() and not line.startswith("***")] or ["(no details)"]
        more = f" and {len(lines) - 1} more problems" if len(lines) > 1 else ""
        raise _damaged(path, _DAMAGED, f"{size} bytes; quick_check: {lines[0]}{more}")


def settings_differences(stored: dict[str, Any], requested: dict[str, Any],
                         defaults: dict[str, Any] | None = None) -> list[str]:
    """``'field: stored X, requested Y'`` for every field of ``requested`` whose value differs from
    ``stored`` (JSON-normalized; a field ``stored`` lacks takes its value from ``defaults``, else
    counts as '(not stored)')."""
    stored = json.loads(_dumps(stored))
    requested = json.loads(_dumps(requested))
    defaults = json.loads(_dumps(defaults or {}))
    missing = object()
    diff = []
    for field, value in requested.items():
        old = stored.get(field, defaults.get(field, missing))
        if old != value:
            old = "(not stored)" if old is missing else repr(old)
            diff.append(f"{field}: stored {old}, requested {value!r}")
    return diff


@dataclasses.dataclass
class Record:
    """One finished proposal (see the module docstring for the meaning of each field)."""

    proposal: int
    key: str
    candidate: dict
    scores: dict[str, float]
    rejected: str | None
    status: str
    origin: str
    parent_id: int | None = None
    duplicate_of: int | None = None
    seed: int | None = None
    worker: str | None = None
    timings: dict = dataclasses.field(default_factory=dict)
    extras: dict = dataclasses.field(default_factory=dict)
    created: float = 0.0
    id: int | None = None

    @property
    def reached_tensorflow(self) -> bool:
        """Whether the evaluation got past the NumPy filters (the evaluator records ``data_s`` there)."""
        return (self.timings or {}).get("data_s") is not None

    @property
    def accepted(self) -> bool:
        """Whether the candidate passed every test (duplicates of accepted candidates included)."""
        return self.rejected is None


class SearchStore:
    """A search's SQLite database.

    Args:
      path: database file (created with its parent directory if missing) or ':memory:'.

    Raises:
      DamagedStoreError: ``path`` is not a SQLite database, or is truncated or damaged (checked
        read-only by :func:`check_database` before the file is opened for writing).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        if self.path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            check_database(self.path)
        self._db = sqlite3.connect(self.path, timeout=30)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._db.commit()
        except sqlite3.DatabaseError as err:
            # Damage the read-only check could not see (e.g. in the -wal file) still gets a clear message.
            self._db.close()
            if _error_code(err) in (_SQLITE_NOTADB, _SQLITE_CORRUPT):
                what = _NOT_A_DB if _error_code(err) == _SQLITE_NOTADB else _DAMAGED
                raise _damaged(self.path, what, f"SQLite: {err}") from err
            raise

    # -- meta ------------------------------------------------------------------------------------
    def get_meta(self) -> dict[str, Any]:
        """All meta entries, JSON-decoded."""
        return {name: json.loads(value) for name, value in self._db.execute("SELECT name, value FROM meta")}

    def set_meta(self, **entries: Any) -> None:
        """Writes (or overwrites) meta entries; values must be JSON-serializable."""
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO meta(name, value) VALUES (?, ?)",
                [(name, _dumps(value)) for name, value in entries.items()],
            )

    def resume_settings(self, name: str, requested: dict[str, Any],
                        defaults: dict[str, Any] | None = None) -> str:
        """Records the settings ``requested`` as meta ``name``, or refuses to resume with others.

        Args:
          name: the meta entry (e.g. 'evaluator').
          requested: the settings of this run (JSON-serializable; compared as stored, tuples as lists).
          defaults: values for fields an older database did not store yet (fields added later).

        Returns:
          'new' when the database holds no candidates yet (the settings are recorded, replacing any
          earlier ones: no results would be mixed), 'same' when they match the stored ones, and
          'legacy' when the database has candidates but no entry ``name`` (written before it
          existed): the settings are recorded now, and the caller should warn that the existing
          rows are assumed to come from them.

        Raises:
          ResumeSettingsError: the stored settings differ; names every differing field with its
            stored and requested value.
        """
        requested = json.loads(_dumps(requested))
        stored = self.get_meta().get(name)
        if self.count() == 0 or not isinstance(stored, dict):
            state = "new" if self.count() == 0 else "legacy"
            self.set_meta(**{name: requested})
            return state
        diff = settings_differences(stored, requested, defaults)
        if diff:
            raise ResumeSettingsError(
                f"cannot resume {self.path} with different {name} settings ({'; '.join(diff)}): its stored "
                f"scores would not be comparable with new ones. Resume with the stored settings (the first "
                f"run's --config and overrides), or start a new search in another --workdir.")
        return "same"

    # -- candidates ------------------------------------------------------------------------------
    def add(self, record: Record) -> int:
        """Commits one finished proposal and returns its id (also set on ``record.id``)."""
        if record.status not in (ACCEPTED, REJECTED, DUPLICATE):
            raise ValueError(f"unknown status {record.status!r}")
        if not record.created:
            record.created = time.time()
        row = dataclasses.asdict(record)
        row.pop("id")
        for name in _JSON_COLUMNS:
            row[name] = _dumps(row[name])
        names = list(row)
        with self._db:
            cur = self._db.execute(
                f"INSERT INTO candidates({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                [row[n] for n in names],
            )
        record.id = cur.lastrowid
        return record.id

    def _decode(self, row: tuple) -> Record:
        data = dict(zip(_COLUMNS, row))
        for name in _JSON_COLUMNS:
            data[name] = json.loads(data[name])
        return Record(**data)

    def records(self, status: str | None = None) -> Iterator[Record]:
        """Finished proposals in completion order, optionally only those with ``status``."""
        sql = f"SELECT {', '.join(_COLUMNS)} FROM candidates"
        args: tuple = ()
        if status is not None:
            sql, args = sql + " WHERE status = ?", (status,)
        for row in self._db.execute(sql + " ORDER BY id", args).fetchall():
            yield self._decode(row)

    def get(self, record_id: int) -> Record:
        """The record with this id (KeyError if absent)."""
        row = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM candidates WHERE id = ?", (record_id,)).fetchone()
        if row is None:
            raise KeyError(f"no candidate with id {record_id} in {self.path}")
        return self._decode(row)

    def count(self, status: str | None = None) -> int:
        """Number of finished proposals (with ``status`` if given)."""
        if status is None:
            return self._db.execute("SELECT COUNT(*) FROM candidates").fetchone()[0]
        return self._db.execute("SELECT COUNT(*) FROM candidates WHERE status = ?", (status,)).fetchone()[0]

    def rejection_counts(self) -> dict[str, int]:
        """Evaluated (non-duplicate) rejected candidates per reason."""
        rows = self._db.execute(
            "SELECT rejected, COUNT(*) FROM candidates WHERE status = ? GROUP BY rejected", (REJECTED,)
        )
        return dict(rows.fetchall())

    def top(self, k: int = 10, objective: str | None = None) -> list[Record]:
        """The ``k`` best distinct accepted candidates by one objective or, if None, the mean score.

        This is what re-ranking starts from (the paper re-ranks the top-10 layers of a search).
        """
        best = list(self.records(ACCEPTED))

        def score(r: Record) -> float:
            if objective is not None:
                return r.scores[objective]
            return sum(r.scores.values()) / max(1, len(r.scores))

        best.sort(key=lambda r: (-score(r), r.id))
        return best[:k]

    def close(self) -> None:
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

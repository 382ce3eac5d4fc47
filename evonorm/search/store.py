"""SQLite record of a search: every evaluated candidate, written the moment it finishes.

One file per search (stdlib ``sqlite3``, WAL journal so analysis tools can read while the search
writes). Tables:

* ``meta(name, value)``: JSON values -- ``kind`` ('evolution' | 'random'), ``seed``, ``config``,
  ``objectives``, ``created``.
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
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import time
from typing import Any, Iterator

__all__ = ["Record", "SearchStore", "ACCEPTED", "REJECTED", "DUPLICATE"]

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
    def accepted(self) -> bool:
        """Whether the candidate passed every test (duplicates of accepted candidates included)."""
        return self.rejected is None


class SearchStore:
    """A search's SQLite database.

    Args:
      path: database file (created with its parent directory if missing) or ':memory:'.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        if self.path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.commit()

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

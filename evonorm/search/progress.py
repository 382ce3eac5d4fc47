"""A throttled progress line for long searches.

Every ``interval_s`` seconds (and once at the end) the reporter emits one line such as::

    [evolution] 240/1000 evaluated (24.0%) | 1.85 cand/s | rejected 61% (quality 52%, timeout 6%,
    crash 3%) | 17 duplicates | best resnet=0.412 mobilenet=0.388 mean=0.391 | ETA 6m51s

Rates and the ETA count only this run's work (a resumed search does not look faster than it is);
rejection shares are over all evaluated candidates so far. Lines go to ``log_fn``: stderr by
default, or e.g. ``absl.logging.info`` from a command-line tool.
"""

from __future__ import annotations

import collections
import sys
import time
from typing import Callable, Sequence

__all__ = ["ProgressReporter", "format_duration"]


def format_duration(seconds: float) -> str:
    """Compact human duration: '42s', '6m51s', '3h05m'."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class ProgressReporter:
    """Collects search records and periodically logs rate, rejections, duplicates, best and ETA.

    Args:
      budget: evaluated candidates the search aims for.
      objectives: objective names, in the order to print the best scores.
      label: prefix of every line (e.g. 'evolution', 'random').
      interval_s: minimum seconds between two lines.
      log_fn: receives each line (default: print to stderr).
      clock: time source, injectable for tests.
    """

    def __init__(
        self,
        budget: int,
        objectives: Sequence[str] = (),
        label: str = "search",
        interval_s: float = 3.0,
        log_fn: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self.budget, self.objectives, self.label = budget, tuple(objectives), label
        self.interval_s = interval_s
        self.log_fn = log_fn or _stderr
        self._clock = clock
        self.evaluated = self.duplicates = 0
        self.rejected: collections.Counter[str] = collections.Counter()
        self.best: dict[str, float] = {}
        self._start_evaluated = 0
        self._start = self._last = clock()
        self.lines: list[str] = []  # every line emitted, for callers that want a record

    def start(
        self, evaluated: int = 0, duplicates: int = 0, rejected: dict | None = None, best: dict | None = None
    ) -> None:
        """Resets the clock; the arguments are what a resumed search already has."""
        self.evaluated, self.duplicates = evaluated, duplicates
        self.rejected = collections.Counter(rejected or {})
        self.best = dict(best or {})
        self._start_evaluated = evaluated
        self._start = self._last = self._clock()

    def update(self, record) -> None:
        """Accounts one stored record (anything with status, rejected and scores attributes)."""
        if record.status == "duplicate":
            self.duplicates += 1
            return
        self.evaluated += 1
        if record.rejected is not None:
            self.rejected[record.rejected] += 1
            return
        names = self.objectives or tuple(sorted(record.scores))
        values = [record.scores[n] for n in names if n in record.scores]
        for name, value in zip(names, values):
            self.best[name] = max(value, self.best.get(name, float("-inf")))
        if values and len(names) > 1:
            mean = sum(values) / len(values)
            self.best["mean"] = max(mean, self.best.get("mean", float("-inf")))

    def line(self) -> str:
        """The current progress line."""
        elapsed = self._clock() - self._start
        done_now = self.evaluated - self._start_evaluated
        rate = done_now / elapsed if elapsed > 0 else 0.0
        pct = 100.0 * self.evaluated / self.budget if self.budget else 100.0
        parts = [f"[{self.label}] {self.evaluated}/{self.budget} evaluated ({pct:.1f}%)", f"{rate:.2f} cand/s"]
        n_rej = sum(self.rejected.values())
        if self.evaluated:
            reasons = ", ".join(
                f"{reason} {100.0 * n / self.evaluated:.0f}%" for reason, n in self.rejected.most_common()
            )
            parts.append(f"rejected {100.0 * n_rej / self.evaluated:.0f}%" + (f" ({reasons})" if reasons else ""))
        parts.append(f"{self.duplicates} duplicates")
        if self.best:
            order = [n for n in self.objectives + ("mean",) if n in self.best] or sorted(self.best)
            parts.append("best " + " ".join(f"{n}={self.best[n]:.3f}" for n in order))
        remaining = max(0, self.budget - self.evaluated)
        if remaining == 0:
            parts.append(f"done in {format_duration(elapsed)}")
        elif rate > 0:
            parts.append(f"ETA {format_duration(remaining / rate)}")
        else:
            parts.append("ETA ?")
        return " | ".join(parts)

    def report(self, final: bool = False) -> str:
        """Emits the line now (``final`` only marks intent; the line says 'done' when the budget is met)."""
        text = self.line()
        self._last = self._clock()
        self.lines.append(text)
        self.log_fn(text)
        return text

    def maybe_report(self) -> str | None:
        """Emits the line if ``interval_s`` passed since the last one."""
        if self._clock() - self._last >= self.interval_s:
            return self.report()
        return None

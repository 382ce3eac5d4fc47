"""Figure 6's progress curves: one point per accepted candidate, on either budget axis."""

import numpy as np
import pytest

from evonorm.search.plots import plot_progress, progress_curves
from evonorm.search.store import ACCEPTED, DUPLICATE, REJECTED, Record


def record(i, status, a=None, b=None, wall_s=0.0):
    scores = {} if a is None else {"a": a, "b": b}
    return Record(proposal=i, key=str(i), candidate={}, scores=scores,
                  rejected="quality" if status == REJECTED else None, status=status, origin="random",
                  timings={"wall_s": wall_s}, id=i + 1)


RECORDS = [
    record(0, REJECTED, wall_s=1800.0),
    record(1, ACCEPTED, 0.4, 0.6, wall_s=1800.0),  # mean 0.5
    record(2, DUPLICATE, 0.4, 0.6),  # neither evaluated nor timed
    record(3, REJECTED, wall_s=3600.0),
    record(4, ACCEPTED, 0.8, 0.6, wall_s=3600.0),  # mean 0.7
    record(5, ACCEPTED, 0.2, 0.2, wall_s=0.0),  # mean 0.2
]


def test_progress_against_evaluated_candidates_and_worker_hours():
    xs, best, top2 = progress_curves(RECORDS, ["a", "b"], top=2)
    np.testing.assert_array_equal(xs, [2, 4, 5])
    np.testing.assert_allclose(best, [0.5, 0.7, 0.7])
    np.testing.assert_allclose(top2, [0.5, 0.6, 0.6])
    hours, best_h, _ = progress_curves(RECORDS, ["a", "b"], top=2, axis="worker_hours")
    np.testing.assert_allclose(hours, [1.0, 3.0, 3.0])
    np.testing.assert_allclose(best_h, best)
    with pytest.raises(ValueError, match="axis"):
        progress_curves(RECORDS, ["a", "b"], axis="seconds")


def test_plot_progress_draws_two_runs(tmp_path):
    path = plot_progress({"evolution": RECORDS, "random": RECORDS[:2]}, ["a", "b"], str(tmp_path / "f6.png"), top=2)
    assert (tmp_path / "f6.png").stat().st_size > 1000 and path.endswith("f6.png")

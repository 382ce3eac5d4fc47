"""Figure 6's progress curves and the equal-budget comparison of two searches."""

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


def mutation(i, status, a=None, b=None, wall_s=0.0):
    r = record(i, status, a, b, wall_s)
    r.origin = "mutation"
    return r


def test_compare_runs_cuts_both_runs_at_the_common_budget():
    from evonorm.search.compare import compare_runs, comparison_markdown

    evo = [record(0, ACCEPTED, 0.5, 0.5, wall_s=3600.0), mutation(1, ACCEPTED, 0.9, 0.9, wall_s=3600.0),
           mutation(2, REJECTED, wall_s=0.0)]
    rs = [record(0, ACCEPTED, 0.5, 0.5, wall_s=3600.0)] + [record(i, REJECTED, wall_s=0.0) for i in range(1, 6)]
    out = compare_runs({"evolution": evo, "random": rs}, ["a", "b"], top=2)
    assert out["whole"]["evolution"]["proposed"] == {"random": 1, "mutation": 2}
    assert out["whole"]["evolution"]["accepted"] == {"random": 1, "mutation": 1}
    assert out["whole"]["evolution"]["best"] == pytest.approx(0.9)
    assert out["whole"]["evolution"]["top_mean"] == pytest.approx(0.7)
    assert out["common_evaluated"] == 3 and out["common_hours"] == pytest.approx(1.0)
    # At 3 evaluated candidates both runs are cut to 3; at 1 worker-hour evolution loses its child.
    assert out["at_evaluated"]["random"]["evaluated"] == 3
    assert out["at_evaluated"]["evolution"]["best"] == pytest.approx(0.9)
    assert out["at_hours"]["evolution"]["evaluated"] == 1
    assert out["at_hours"]["evolution"]["best"] == pytest.approx(0.5)
    assert out["at_hours"]["random"]["evaluated"] == 6  # free rejections fit in the same hour
    text = comparison_markdown(out)
    assert "| evolution | 3 | 2.00 | 1 / 1 | 2 / 1 | 0.900 | 0.700 |" in text
    assert "the first 3 evaluated candidates" in text and "the first 1.00 worker-hours" in text


def test_compare_names_a_missing_database(tmp_path):
    from evonorm.search.compare import compare_workdirs

    with pytest.raises(FileNotFoundError, match="search.db"):
        compare_workdirs([str(tmp_path / "a"), str(tmp_path / "b")])


def test_budget_spent_counts_every_evaluated_candidate():
    from evonorm.search.plots import budget_spent

    assert budget_spent(RECORDS) == 5
    assert budget_spent(RECORDS, "worker_hours") == pytest.approx(3.0)

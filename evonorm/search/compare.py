"""Searches side by side at equal budget: evolution against random search (paper Table 3, Figure 6).

Two budgets are compared, because evolution and random search spend them differently: *evaluated
candidates* (the paper's sample count; duplicates excluded) and *worker-hours* (evaluation wall
time summed over every evaluated candidate, rejected ones included -- the compute actually used;
children of accepted layers pass the cheap filters more often, so evolution spends more per
candidate). For each run the table gives the budget spent, how many candidates each origin
(random generation, mutation) produced and how many of them passed every rejection test, and, cut
at the budget every run reached, the best and the top-``k`` mean of the per-candidate mean
validation accuracy over the proxies.

Command line: ``python -m evonorm.search.compare RUN_A RUN_B [--top=10] [--out=compare.md]``.
"""

from __future__ import annotations

import argparse
import collections
import os

import numpy as np

from evonorm.search.plots import accepted_mean, evaluation_seconds
from evonorm.search.store import DUPLICATE, SearchStore

__all__ = ["run_statistics", "compare_runs", "comparison_markdown", "compare_workdirs"]


def run_statistics(records, objectives, top: int = 10, max_evaluated=None, max_hours=None) -> dict:
    """Budget spent and quality reached by one run, optionally cut at a budget.

    Records are taken in arrival order until ``max_evaluated`` candidates or ``max_hours``
    worker-hours are spent (None: no cut). Returns ``evaluated``, ``worker_hours``, per-origin
    ``proposed`` and ``accepted`` counts, ``best`` and ``top_mean`` (None without an accepted layer).
    """
    evaluated, seconds = 0, 0.0
    proposed, accepted = collections.Counter(), collections.Counter()
    means = []
    for r in sorted(records, key=lambda r: r.id):
        if r.status == DUPLICATE:
            continue
        cost = evaluation_seconds(r)
        if max_evaluated is not None and evaluated + 1 > max_evaluated:
            break
        if max_hours is not None and (seconds + cost) / 3600.0 > max_hours + 1e-12:
            break
        evaluated += 1
        seconds += cost
        proposed[r.origin] += 1
        score = accepted_mean(r, objectives)
        if score is not None:
            accepted[r.origin] += 1
            means.append(score)
    ranked = sorted(means, reverse=True)
    return {"evaluated": evaluated, "worker_hours": seconds / 3600.0, "proposed": dict(proposed),
            "accepted": dict(accepted), "best": ranked[0] if ranked else None,
            "top_mean": float(np.mean(ranked[:top])) if ranked else None, "top": top}


def compare_runs(runs, objectives, top: int = 10) -> dict:
    """``runs`` is ``{label: records}``. Returns the whole-run statistics and both equal-budget cuts."""
    whole = {label: run_statistics(records, objectives, top) for label, records in runs.items()}
    common_evaluated = min(s["evaluated"] for s in whole.values())
    common_hours = min(s["worker_hours"] for s in whole.values())
    return {
        "objectives": list(objectives),
        "whole": whole,
        "common_evaluated": common_evaluated,
        "at_evaluated": {label: run_statistics(records, objectives, top, max_evaluated=common_evaluated)
                         for label, records in runs.items()},
        "common_hours": common_hours,
        "at_hours": {label: run_statistics(records, objectives, top, max_hours=common_hours)
                     for label, records in runs.items()},
    }


def _fmt(value, digits=3):
    return "-" if value is None else f"{value:.{digits}f}"


def comparison_markdown(result, title="Evolution vs random search at equal budget", command=None) -> str:
    """The :func:`compare_runs` result as a markdown section."""
    top = next(iter(result["whole"].values()))["top"]
    lines = [f"## {title}", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += [f"Scores: mean validation accuracy over {', '.join(result['objectives'])}, accepted candidates only.",
              "", "| run | evaluated | worker-hours | random: proposed / accepted | mutation: proposed / accepted "
              f"| best | top-{top} mean |", "|---|---|---|---|---|---|---|"]
    for label, s in result["whole"].items():
        lines.append(f"| {label} | {s['evaluated']} | {s['worker_hours']:.2f} | "
                     f"{s['proposed'].get('random', 0)} / {s['accepted'].get('random', 0)} | "
                     f"{s['proposed'].get('mutation', 0)} / {s['accepted'].get('mutation', 0)} | "
                     f"{_fmt(s['best'])} | {_fmt(s['top_mean'])} |")
    for key, budget in (("at_evaluated", f"the first {result['common_evaluated']} evaluated candidates"),
                        ("at_hours", f"the first {result['common_hours']:.2f} worker-hours")):
        lines += ["", f"At equal budget, {budget} of each run:", "",
                  f"| run | evaluated | worker-hours | accepted | best | top-{top} mean |", "|---|---|---|---|---|---|"]
        for label, s in result[key].items():
            lines.append(f"| {label} | {s['evaluated']} | {s['worker_hours']:.2f} | {sum(s['accepted'].values())} "
                         f"| {_fmt(s['best'])} | {_fmt(s['top_mean'])} |")
    return "\n".join(lines) + "\n"


def compare_workdirs(workdirs, top: int = 10) -> dict:
    """:func:`compare_runs` on search workdirs, labelled by their kind (and directory name)."""
    runs, objectives = {}, None
    for workdir in workdirs:
        path = os.path.join(workdir, "search.db")
        if not os.path.exists(path):
            raise FileNotFoundError(f"no search database at {path}")
        with SearchStore(path) as store:
            meta = store.get_meta()
            records = list(store.records())
        if objectives is None:
            objectives = list(meta["objectives"])
        elif list(meta["objectives"]) != objectives:
            raise ValueError(f"{workdir} searched {meta['objectives']}, not {objectives}")
        runs[f"{meta.get('kind', 'search')} ({os.path.basename(os.path.normpath(workdir))})"] = records
    return compare_runs(runs, objectives, top)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdirs", nargs="+", help="search workdirs holding search.db")
    parser.add_argument("--top", type=int, default=10, help="k of the top-k mean")
    parser.add_argument("--out", default=None, help="markdown file to write (default: print)")
    args = parser.parse_args(argv)
    if len(args.workdirs) < 2:
        parser.error("give at least two search workdirs to compare")
    text = comparison_markdown(compare_workdirs(args.workdirs, args.top),
                               command=" ".join(["python -m evonorm.search.compare", *args.workdirs,
                                                 f"--top={args.top}"]))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    print(text, end="")


if __name__ == "__main__":
    main()

"""The paper's search figures, drawn from search databases (matplotlib, Agg backend, no display).

* Figure 2 -- :func:`plot_accuracy_histograms`: validation accuracy of every trained candidate, one
  histogram per proxy architecture, log-scale counts (candidates removed by the NumPy filters never
  train and are left out; the count is in the title).
* Figure 3 -- :func:`plot_calibration`: the same accuracies, one scatter per pair of architectures.
* Figure 6 -- :func:`plot_progress`: best-so-far and top-10 mean of the per-candidate mean accuracy
  over the architectures, against evaluated candidates, for one or more searches (e.g. evolution vs
  random search with the same budget). Only accepted candidates count, as in the paper.
* Not in the paper -- :func:`plot_diversity`: distinct functions (fingerprints) in the evolution window
  against finished proposals, one line per run, or a median with a min-max band per group of runs
  (seeds, arms). The stored ``default`` run's window held a median of one distinct function; see
  :mod:`evonorm.search.evolution`. The series is replayed from the rows (:func:`diversity_series`).

Command line: ``python -m evonorm.search.plots --workdir=RUN [--compare_workdir=RUN2] [--out=DIR] [--top=10]``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os

import numpy as np

from evonorm.search.store import DUPLICATE, SearchStore

__all__ = ["accepted_mean", "evaluation_seconds", "trained_accuracies", "progress_curves", "plot_accuracy_histograms", "plot_calibration",
           "plot_progress", "budget_spent", "write_plots", "write_top", "diversity_series", "plot_diversity"]


def _figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def trained_accuracies(records, objectives) -> dict:
    """``{arch: [accuracy per trained candidate]}`` plus ``'_rows'``: candidates trained on every arch."""
    out = {arch: [] for arch in objectives}
    rows = []
    for r in records:
        if r.status == DUPLICATE:
            continue
        acc = (r.extras or {}).get("accuracy") or {}
        for arch in objectives:
            if acc.get(arch) is not None:
                out[arch].append(float(acc[arch]))
        if all(acc.get(arch) is not None for arch in objectives):
            rows.append([float(acc[arch]) for arch in objectives])
    out["_rows"] = rows
    return out


def accepted_mean(record, objectives):
    """Mean score over ``objectives`` of an accepted record with every score; None otherwise."""
    if record.rejected is None and all(o in record.scores for o in objectives):
        return float(np.mean([record.scores[o] for o in objectives]))
    return None


def evaluation_seconds(record) -> float:
    """Worker wall time the record's evaluation took (0 where none was recorded)."""
    return float((record.timings or {}).get("wall_s") or 0.0)


def progress_curves(records, objectives, top: int = 10, axis: str = "evaluated"):
    """``(x, best-so-far, top-``top`` mean)`` of the mean accuracy over ``objectives``, one point per
    accepted candidate, in the order results arrived.

    ``axis`` is the budget on x: ``'evaluated'`` (candidates evaluated so far, duplicates excluded)
    or ``'worker_hours'`` (evaluation wall time summed over every evaluated candidate so far, i.e.
    the compute spent, rejected candidates included).
    """
    if axis not in ("evaluated", "worker_hours"):
        raise ValueError(f"axis must be 'evaluated' or 'worker_hours', got {axis!r}")
    xs, best, topmean, accepted = [], [], [], []
    evaluated, seconds = 0, 0.0
    for r in sorted(records, key=lambda r: r.id):
        if r.status == DUPLICATE:
            continue
        evaluated += 1
        seconds += evaluation_seconds(r)
        score = accepted_mean(r, objectives)
        if score is not None:
            accepted.append(score)
            ranked = sorted(accepted, reverse=True)
            xs.append(evaluated if axis == "evaluated" else seconds / 3600.0)
            best.append(ranked[0])
            topmean.append(float(np.mean(ranked[:top])))
    return np.array(xs), np.array(best), np.array(topmean)


_REFERENCE_STYLES = (("#2ca02c", "-"), ("#ff7f0e", "-."), ("#9467bd", ":"), ("#8c564b", "-"))


def plot_accuracy_histograms(records, objectives, path, threshold=None, title_prefix="", references=None):
    """Figure 2: per-architecture accuracy histograms (log y). Each title counts the candidates trained
    on that architecture out of all sampled ones (the rest were rejected before training, or, in a
    short-circuited search, by an earlier architecture). ``references`` (``{name: {arch: accuracy or
    None}}``, e.g. BN-ReLU scored by the same evaluator) are drawn as vertical lines."""
    acc = trained_accuracies(records, objectives)
    sampled = sum(1 for r in records if r.status != DUPLICATE)
    fig = _figure(4.0 * len(objectives), 3.4)
    for i, arch in enumerate(objectives):
        ax = fig.add_subplot(1, len(objectives), i + 1)
        values = acc[arch]
        if values:
            ax.hist(values, bins=np.linspace(0.0, 1.0, 41), color="#4c72b0", edgecolor="white")
            ax.set_yscale("log")
        if threshold is not None:
            ax.axvline(threshold, color="#c0392b", linestyle="--", linewidth=1, label="quality threshold")
        for (name, accs), (color, style) in zip((references or {}).items(), itertools.cycle(_REFERENCE_STYLES)):
            if accs.get(arch) is not None:
                ax.axvline(accs[arch], color=color, linestyle=style, linewidth=1.2, label=f"{name} {accs[arch]:.3f}")
        if threshold is not None or references:
            ax.legend(fontsize=7, loc="upper left" if references else "upper right")
        ax.set_xlim(0, 1)
        ax.set_xlabel("validation accuracy")
        ax.set_ylabel("candidates (log)")
        ax.set_title(f"{title_prefix}{arch} ({len(values)} trained of {sampled} sampled)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def plot_calibration(records, objectives, path, title_prefix=""):
    """Figure 3: accuracy of each candidate on one architecture against another."""
    rows = np.array(trained_accuracies(records, objectives)["_rows"]).reshape(-1, len(objectives))
    pairs = list(itertools.combinations(range(len(objectives)), 2))
    if not pairs:
        raise ValueError("the calibration plot needs at least two architectures")
    fig = _figure(3.8 * len(pairs), 3.6)
    for k, (i, j) in enumerate(pairs):
        ax = fig.add_subplot(1, len(pairs), k + 1)
        ax.scatter(rows[:, i], rows[:, j], s=10, alpha=0.6, color="#4c72b0")
        ax.plot([0, 1], [0, 1], color="#999999", linewidth=0.8, linestyle=":")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel(f"{objectives[i]} accuracy")
        ax.set_ylabel(f"{objectives[j]} accuracy")
        ax.set_title(f"{title_prefix}{len(rows)} candidates", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def budget_spent(records, axis: str = "evaluated") -> float:
    """The whole budget a run spent on ``axis`` (see :func:`progress_curves`)."""
    evaluated = [r for r in records if r.status != DUPLICATE]
    if axis == "evaluated":
        return float(len(evaluated))
    return sum(evaluation_seconds(r) for r in evaluated) / 3600.0


_AXIS_LABELS = {"evaluated": "evaluated candidates", "worker_hours": "worker-hours spent (all evaluations)"}


def plot_progress(runs, objectives, path, top: int = 10):
    """Figure 6: ``runs`` is ``{label: records}``; solid best-so-far, dashed top-``top`` mean (drawn from
    the ``top``-th accepted candidate on), against evaluated candidates (left) and against the
    compute spent (right), so searches can be compared at equal budget either way."""
    fig = _figure(11.0, 4.0)
    colors = ["#c0392b", "#4c72b0", "#55a868", "#8172b2"]
    for panel, axis in enumerate(("evaluated", "worker_hours")):
        ax = fig.add_subplot(1, 2, panel + 1)
        for (label, records), color in zip(runs.items(), itertools.cycle(colors)):
            xs, best, topmean = progress_curves(records, objectives, top, axis=axis)
            n_accepted = len(xs)
            if n_accepted:
                # Carry the last values to the budget the run spent in all, so each run ends where it stopped.
                spent = budget_spent(records, axis)
                if spent > xs[-1]:
                    xs, best, topmean = np.append(xs, spent), np.append(best, best[-1]), np.append(topmean, topmean[-1])
                ax.step(xs, best, where="post", color=color, label=f"{label}: best")
                full = np.minimum(np.arange(len(xs)), n_accepted - 1) >= top - 1  # top-k mean: once k accepted
                if full.any():
                    ax.step(xs[full], topmean[full], where="post", color=color, linestyle="--",
                            label=f"{label}: top-{top} mean")
                ax.annotate(f"{n_accepted} accepted", (xs[-1], best[-1]), fontsize=7, color=color,
                            textcoords="offset points", xytext=(-40, 6))
        ax.set_xlabel(_AXIS_LABELS[axis])
        ax.set_ylabel(f"mean validation accuracy over {len(objectives)} proxies")
        ax.set_title("search progress (accepted candidates only)", fontsize=10)
        _legend_or_note(ax, "no accepted candidate yet", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def _legend_or_note(ax, empty_note: str, fontsize: int) -> None:
    """Grid, and a legend when something was drawn, else ``empty_note`` in the middle of the axes."""
    ax.grid(alpha=0.3)
    if ax.get_lines():
        ax.legend(fontsize=fontsize)
    else:
        ax.text(0.5, 0.5, empty_note, ha="center", va="center", transform=ax.transAxes)


def diversity_series(records, meta) -> list:
    """``(finished proposals, distinct keys, window size)`` per row of an evolution run (``meta``: its
    stored meta), with the window rule that run used; [] for a random search."""
    from evonorm.search.evolution import window_history  # noqa: PLC0415

    if meta.get("kind") != "evolution":
        return []
    config = meta.get("config") or {}
    # A database written before the distinct rule existed appended every accepted arrival.
    distinct = bool(config.get("distinct_population", False))
    return window_history(records, int(config["population_size"]), distinct)


def _on_grid(series, grid):
    """Column ``1`` (distinct) and ``2`` (window size) of ``series`` as step functions on ``grid``;
    nan past the run's last step."""
    arr = np.asarray(series, dtype=np.float64).reshape(-1, 3)
    at = np.searchsorted(arr[:, 0], grid, side="right") - 1  # last row at or before each grid step
    out = np.where(at[:, None] >= 0, arr[np.maximum(at, 0), 1:], 0.0)
    out[grid > arr[-1, 0]] = np.nan
    return out


def plot_diversity(runs, path, population_size=None, title="population diversity"):
    """Distinct functions in the window against finished proposals.

    Args:
      runs: ``{label: series}`` or ``{label: [series, ...]}``; a series is a sequence of ``(finished
        proposals, distinct keys, window size)`` (:attr:`SearchSummary.diversity
        <evonorm.search.evolution.SearchSummary>` or :func:`diversity_series`). A label with several
        series (seeds of one arm) is drawn as the median with a min-max band, over the runs that
        reached each step.
      path: PNG to write.
      population_size: draws the window's capacity as a reference line.
      title: axes title.

    Returns:
      ``path``.
    """
    fig = _figure(7.0, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    colors = ["#c0392b", "#4c72b0", "#55a868", "#8172b2", "#ccb974", "#64b5cd"]
    for (label, group), color in zip(runs.items(), itertools.cycle(colors)):
        single = len(group) > 0 and len(group[0]) > 0 and np.isscalar(group[0][0])  # one series, not a list
        group = [list(s) for s in ([group] if single else group) if len(s)]
        if not group:
            continue
        last = int(max(s[-1][0] for s in group))
        grid = np.arange(1, last + 1)
        values = np.stack([_on_grid(s, grid) for s in group])  # [run, step, (distinct, size)]
        # The grid ends at the longest run's last step, so every step has at least one value.
        median = np.nanmedian(values, axis=0)
        low, high = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
        name = label if len(group) == 1 else f"{label} (median of {len(group)}, min-max band)"
        ax.step(grid, median[:, 0], where="post", color=color, label=f"{name}: distinct")
        ax.step(grid, median[:, 1], where="post", color=color, linestyle=":", linewidth=1,
                label=f"{label}: window size")
        if len(group) > 1:
            ax.fill_between(grid, low[:, 0], high[:, 0], step="post", color=color, alpha=0.2, linewidth=0)
    if population_size:
        ax.axhline(population_size, color="#999999", linewidth=0.8, linestyle="--", label="population_size")
    ax.set_xlabel("finished proposals (duplicates included)")
    ax.set_ylabel("distinct functions in the window")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=10)
    _legend_or_note(ax, "no evolution run", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def write_top(db_path, out_dir, k: int = 10) -> list:
    """Exports the top-``k`` accepted graphs: ``rank<i>_id<id>.{json,txt,tex,png}``."""
    from evonorm.search.graph import Graph  # noqa: PLC0415
    from evonorm.search.render import draw, to_latex, to_text  # noqa: PLC0415

    os.makedirs(out_dir, exist_ok=True)
    with SearchStore(db_path) as store:
        top = store.top(k)
    paths = []
    for rank, r in enumerate(top, 1):
        graph = Graph.from_dict(r.candidate)
        stem = os.path.join(out_dir, f"rank{rank:02d}_id{r.id}")
        with open(stem + ".json", "w", encoding="utf-8") as f:
            json.dump({"id": r.id, "scores": r.scores, "key": r.key, "graph": r.candidate}, f, indent=1)
        with open(stem + ".txt", "w", encoding="utf-8") as f:
            f.write(to_text(graph.prune()) + "\n")
        with open(stem + ".tex", "w", encoding="utf-8") as f:
            f.write(to_latex(graph.prune()) + "\n")
        scores = ", ".join(f"{a}={v:.3f}" for a, v in r.scores.items())
        draw(graph, stem + ".png", title=f"#{rank} (id {r.id}): {scores}\n{to_text(graph.prune())}")
        paths.append(stem + ".json")
    return paths


def _load(workdir):
    with SearchStore(os.path.join(workdir, "search.db")) as store:
        meta = store.get_meta()
        return meta, list(store.records())


def write_plots(workdir, compare_workdir=None, out_dir=None, threshold=0.2, top: int = 10) -> list:
    """Draws Figures 2, 3 (when >= 2 architectures) and 6 for ``workdir`` into ``out_dir``, and
    ``fig_diversity.png`` when either run is an evolution."""
    out_dir = out_dir or workdir
    os.makedirs(out_dir, exist_ok=True)
    meta, records = _load(workdir)
    objectives = list(meta["objectives"])
    label = meta.get("kind", "search")
    paths = [plot_accuracy_histograms(records, objectives, os.path.join(out_dir, "fig2_histograms.png"),
                                      threshold, f"{label}: ")]
    if len(objectives) > 1:
        paths.append(plot_calibration(records, objectives, os.path.join(out_dir, "fig3_calibration.png"),
                                      f"{label}: "))
    runs, metas = {label: records}, {label: meta}
    if compare_workdir:
        other_meta, other = _load(compare_workdir)
        if list(other_meta["objectives"]) != objectives:
            raise ValueError(f"{compare_workdir} searched {other_meta['objectives']}, not {objectives}")
        other_label = other_meta.get("kind", "other")
        other_label = other_label if other_label != label else f"{other_label} (2)"
        runs[other_label], metas[other_label] = other, other_meta
    paths.append(plot_progress(runs, objectives, os.path.join(out_dir, "fig6_progress.png"), top=top))
    diversity = {name: diversity_series(runs[name], metas[name]) for name in runs}
    diversity = {name: series for name, series in diversity.items() if series}
    if diversity:
        sizes = {int(metas[name]["config"]["population_size"]) for name in diversity}
        paths.append(plot_diversity(diversity, os.path.join(out_dir, "fig_diversity.png"),
                                    population_size=sizes.pop() if len(sizes) == 1 else None))
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="search workdir holding search.db")
    parser.add_argument("--compare_workdir", default=None, help="a second search for Figure 6")
    parser.add_argument("--out", default=None, help="output directory (default: the workdir)")
    parser.add_argument("--top", type=int, default=10, help="k of Figure 6's top-k mean (paper: 10)")
    args = parser.parse_args(argv)
    for path in write_plots(args.workdir, args.compare_workdir, args.out, top=args.top):
        print(path)


if __name__ == "__main__":
    main()

"""Evolution against random search over several seeds: the runs, the seeds table and Figure 6 with bands.

``run_campaign`` runs, for each series (``B``: batch aggregations allowed; ``S``: batch-independent)
and each seed, an evolution and a random search one after the other, each on every local core
(``--workers`` of the config), so both arms get the same machine. Runs are ``evonorm-search``
subprocesses writing ``WORKDIR/<series>_<kind>_s<seed>/``; a finished run is skipped and an
interrupted one resumes from its database, so the campaign itself resumes.

``summarize`` reads those workdirs and writes ``seeds.md`` (per run and per arm: evaluated candidates,
worker-hours, accepted layers, best and top-k mean validation accuracy cut at the budget every run
of the series reached, mean ± sample std over seeds) and ``fig6_seeds_<series>.png`` (best and top-k
mean against evaluated candidates: the mean over seeds with a band of +- one std, and every seed as a
thin line).

Command line::

    python scripts/search_seeds.py --workdir=runs/seeds               # run (resumable), then summarize
    python scripts/search_seeds.py --workdir=runs/seeds --summarize   # summarize only
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

__all__ = ["SERIES", "run_dir", "run_campaign", "series_statistics", "seeds_markdown", "plot_seed_bands",
           "summarize", "top_layers", "rerank_arms", "main"]

SERIES = {"B": True, "S": False}  # series -> allow_batch_ops
KINDS = ("evolution", "random")


def run_dir(workdir: str, series: str, kind: str, seed: int) -> str:
    return os.path.join(workdir, f"{series}_{kind}_s{seed}")


def _finished(path: str) -> bool:
    return os.path.exists(os.path.join(path, "summary.md"))


def run_campaign(workdir: str, seeds=(0, 1, 2), series=("B", "S"), config: str = "seeds",
                 extra_flags=(), log=print, run=subprocess.run) -> list:
    """Runs every (series, seed, kind) not yet finished, arms interleaved; returns the run dirs.

    ``run(cmd, check=True)`` starts one search (``subprocess.run``; tests pass a recorder).
    """
    dirs = []
    for seed in seeds:  # seed-major: a campaign cut short still has every series and arm at each seed
        for name in series:
            for kind in KINDS:
                path = run_dir(workdir, name, kind, seed)
                dirs.append(path)
                if _finished(path):
                    log(f"seeds: {path} finished; skipped")
                    continue
                cmd = [sys.executable, "-m", "evonorm.search.main", f"--config={config}", f"--kind={kind}",
                       f"--seed={seed}", f"--allow_batch_ops={str(SERIES[name]).lower()}",
                       f"--workdir={path}", *extra_flags]
                log("seeds: " + " ".join(cmd[1:]))
                t0 = time.time()
                run(cmd, check=True)
                log(f"seeds: {path} done in {time.time() - t0:.0f} s")
    return dirs



def _load_run(path):
    from evonorm.search.store import SearchStore  # noqa: PLC0415

    db = os.path.join(path, "search.db")
    if not os.path.exists(db):
        return None
    with SearchStore(db) as store:
        return store.get_meta(), list(store.records())


def _curves_on_grid(records, objectives, top, grid):
    """Best-so-far and top-``top`` mean at every budget of ``grid`` (NaN before they exist)."""
    from evonorm.search.plots import progress_curves  # noqa: PLC0415

    xs, best, topmean = progress_curves(records, objectives, top)
    out_best, out_top = np.full(len(grid), np.nan), np.full(len(grid), np.nan)
    for j, x in enumerate(grid):
        k = np.searchsorted(xs, x, side="right") - 1
        if k >= 0:
            out_best[j] = best[k]
            if k >= top - 1:
                out_top[j] = topmean[k]
    return out_best, out_top


def series_statistics(workdir: str, series: str, seeds, top: int = 5) -> dict:
    """Per run and per arm statistics of one series, cut at the budget every finished run reached."""
    from evonorm.search.compare import run_statistics  # noqa: PLC0415
    from evonorm.search.main import summary_machine  # noqa: PLC0415
    from evonorm.search.plots import diversity_series  # noqa: PLC0415

    loaded = {}
    for kind in KINDS:
        for seed in seeds:
            run = _load_run(run_dir(workdir, series, kind, seed))
            if run is not None:
                loaded[(kind, seed)] = run
    if not loaded:
        return {"series": series, "runs": {}, "arms": {}, "common": 0}
    objectives = list(next(iter(loaded.values()))[0]["objectives"])
    whole = {key: run_statistics(records, objectives, top) for key, (_, records) in loaded.items()}
    common = min(s["evaluated"] for s in whole.values())
    runs = {}
    for key, (meta, records) in loaded.items():
        stats = run_statistics(records, objectives, top, max_evaluated=common)
        diversity = diversity_series(records, meta) if key[0] == "evolution" else []
        stats["distinct_end"] = diversity[-1][1] if diversity else None
        stats["whole_evaluated"] = whole[key]["evaluated"]
        stats["machine"] = summary_machine(run_dir(workdir, series, *key))
        runs[key] = stats
    arms = {}
    for kind in KINDS:
        rows = [runs[(kind, seed)] for seed in seeds if (kind, seed) in runs]
        if not rows:
            continue

        def spread(values):
            values = [v for v in values if v is not None]
            if not values:
                return None, None, 0
            return (float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else None,
                    len(values))

        arms[kind] = {"seeds": len(rows), "best": spread([r["best"] for r in rows]),
                      "top_mean": spread([r["top_mean"] for r in rows]),
                      "accepted": spread([sum(r["accepted"].values()) for r in rows]),
                      "worker_hours": spread([r["worker_hours"] for r in rows])}
    return {"series": series, "objectives": objectives, "runs": runs, "arms": arms, "common": common,
            "top": top, "loaded": loaded}


def _f(value, digits=3):
    return "-" if value is None else f"{value:.{digits}f}"


def _pm(stat, digits=3):
    mean, sd, n = stat
    if mean is None:
        return "-"
    return f"{mean:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None else "") + f" (n={n})"


def seeds_markdown(stats_by_series, command: str | None = None, machine: str | None = None) -> str:
    """``seeds.md``: per-run and per-arm tables of every series."""
    lines = ["# Evolution vs random search over seeds", ""]
    # The machine each run ran on (its own summary says), so that runs from different machines are
    # never silently pooled under the summarizing machine's name.
    ran_on = {}
    for stats in stats_by_series:
        for (kind, seed), r in sorted(stats["runs"].items()):
            ran_on.setdefault(r.get("machine") or machine or "unknown", []).append(
                f"{stats['series']} {kind} s{seed}")
    if len(ran_on) > 1:
        lines += ["- machines (worker-hours compare only between runs of one machine):"]
        lines += [f"  - {name}: {', '.join(runs)}" for name, runs in ran_on.items()]
    elif ran_on or machine:
        lines += [f"- machine: {next(iter(ran_on), machine)}"]
    if command:
        lines += [f"- command: `{command}`"]
    lines += ["- scores: validation accuracy (mean over the config's proxies) of accepted candidates; best and "
              "top-k mean at the budget every run of the series reached (evaluated candidates, duplicates "
              "excluded); mean ± sample std over seeds", ""]
    for stats in stats_by_series:
        name = {"B": "B series (batch aggregations allowed)", "S": "S series (batch-independent)"}[stats["series"]]
        lines += [f"## {name}", ""]
        if not stats["runs"]:
            lines += ["No finished run.", ""]
            continue
        top = stats["top"]
        lines += [f"Cut at **{stats['common']}** evaluated candidates per run.", "",
                  f"| arm | seed | evaluated (whole run) | worker-hours | accepted: random / mutation | best | "
                  f"top-{top} mean | distinct layers in window at the end |", "|---|---|---|---|---|---|---|---|"]
        for (kind, seed), r in sorted(stats["runs"].items()):
            lines.append(f"| {kind} | {seed} | {r['evaluated']} ({r['whole_evaluated']}) | {r['worker_hours']:.2f} | "
                         f"{r['accepted'].get('random', 0)} / {r['accepted'].get('mutation', 0)} | "
                         f"{_f(r['best'])} | {_f(r['top_mean'])} | "
                         f"{'-' if r['distinct_end'] is None else r['distinct_end']} |")
        lines += ["", f"| arm | seeds | best | top-{top} mean | accepted | worker-hours |", "|---|---|---|---|---|---|"]
        for kind, a in stats["arms"].items():
            lines.append(f"| {kind} | {a['seeds']} | {_pm(a['best'])} | {_pm(a['top_mean'])} | "
                         f"{_pm(a['accepted'], 1)} | {_pm(a['worker_hours'], 2)} |")
        lines += ["", f"![Figure 6 with bands](fig6_seeds_{stats['series']}.png)", ""]
    return "\n".join(lines) + "\n"


def plot_seed_bands(stats, path) -> str:
    """Figure 6 over seeds: per arm, mean best-so-far (solid) and top-k mean (dashed) with a band of
    +- one std over the seeds that have a value there, and each seed's best as a thin line."""
    from evonorm.search.plots import _figure  # noqa: PLC0415

    fig = _figure(7.0, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    grid = np.arange(1, max(stats["common"], 1) + 1)
    colors = {"evolution": "#c0392b", "random": "#4c72b0"}
    for kind in KINDS:
        curves = [_curves_on_grid(records, stats["objectives"], stats["top"], grid)
                  for (k, _), (_, records) in sorted(stats["loaded"].items()) if k == kind]
        if not curves:
            continue
        for idx, label, style in ((0, "best", "-"), (1, f"top-{stats['top']} mean", "--")):
            values = np.array([c[idx] for c in curves])
            # Over the seeds that have a value at that budget (a run has no best before its first
            # accepted layer, no top-k mean before its k-th).
            present = ~np.isnan(values)
            counts = present.sum(axis=0)
            total = np.where(present, values, 0.0).sum(axis=0)
            mean = np.where(counts > 0, total / np.maximum(counts, 1), np.nan)
            dev = np.where(present, values - mean, 0.0)
            sd = np.sqrt((dev ** 2).sum(axis=0) / np.maximum(counts - 1, 1))
            ax.plot(grid, mean, style, color=colors[kind], drawstyle="steps-post",
                    linewidth=2.2 if kind == "random" else 1.2, label=f"{kind}: {label} (mean of {len(curves)} seeds)")
            ax.fill_between(grid, mean - sd, mean + sd, color=colors[kind], alpha=0.15 if idx == 0 else 0.08)
            if idx == 0:
                for c in values:
                    ax.plot(grid, c, "-", color=colors[kind], drawstyle="steps-post", linewidth=0.5, alpha=0.5)
    ax.set_xlabel("evaluated candidates")
    ax.set_ylabel("validation accuracy (accepted candidates)")
    ax.set_title(f"{stats['series']} series: evolution vs random search, +- 1 std over seeds", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def summarize(workdir: str, seeds=(0, 1, 2), series=("B", "S"), command: str | None = None) -> str:
    """Writes ``WORKDIR/seeds.md`` and the band figures; returns the markdown path."""
    from evonorm.search.main import machine_description  # noqa: PLC0415

    all_stats = [series_statistics(workdir, name, seeds) for name in series]
    for stats in all_stats:
        if stats["runs"]:
            plot_seed_bands(stats, os.path.join(workdir, f"fig6_seeds_{stats['series']}.png"))
    path = os.path.join(workdir, "seeds.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write(seeds_markdown(all_stats, command, machine_description()))
    return path


def top_layers(workdir: str, series: str, kind: str, seeds, k: int) -> list:
    """The ``k`` best distinct accepted layers of an arm, pooled over its seeds' runs:
    ``[(label, Graph, search scores)]`` (distinct by functional key; the best-scored copy kept)."""
    from evonorm.search.graph import Graph  # noqa: PLC0415
    from evonorm.search.plots import accepted_mean  # noqa: PLC0415

    pooled = {}
    for seed in seeds:
        run = _load_run(run_dir(workdir, series, kind, seed))
        if run is None:
            continue
        meta, records = run
        for r in records:
            score = accepted_mean(r, meta["objectives"])
            if score is not None and (r.key not in pooled or score > pooled[r.key][0]):
                pooled[r.key] = (score, seed, r)
    best = sorted(pooled.values(), key=lambda item: -item[0])[:k]
    return [(f"{series} {kind} s{seed} id {r.id}", Graph.from_dict(r.candidate), r.scores) for _, seed, r in best]


def rerank_arms(workdir: str, seeds=(0, 1, 2), series=("B", "S"), top_k: int = 1, steps: int = 300,
                config: str = "default", jobs: int = 2, log=print) -> str:
    """Re-trains each arm's pooled top-``top_k`` layers and the baselines identically on every proxy
    of ``config`` (:func:`evonorm.search.rerank.train_and_score`, held-out validation images), in
    ``jobs`` processes; writes ``WORKDIR/rerank.md`` and returns its path."""
    from evonorm.search import rerank  # noqa: PLC0415
    from evonorm.search.configs import get_config  # noqa: PLC0415
    from evonorm.search.render import to_text  # noqa: PLC0415

    entries = [(name, name, None) for name in rerank.BASELINES]
    for name in series:
        for kind in KINDS:
            entries += top_layers(workdir, name, kind, seeds, top_k)
    ev = get_config(config).evaluator
    results = [per_seed[0] for per_seed in
               rerank.score_candidates([candidate for _, candidate, _ in entries], ev, steps, (0,), jobs)]
    archs = [a for a, _, _ in ev.archs]
    rows = []
    for (label, candidate, search_scores), (scores, seconds) in zip(entries, results):
        valid = [v for v in scores.values() if v is not None]
        mean = float(np.mean(valid)) if len(valid) == len(scores) else None
        formula = candidate if isinstance(candidate, str) else to_text(candidate.prune())
        rows.append((label, formula, scores, mean, search_scores))
        log(f"rerank {label}: {scores} ({seconds:.0f} s)")
    rows.sort(key=lambda row: -(row[3] if row[3] is not None else -1.0))
    lines = [f"# Re-ranking of each arm's best layers against the baselines ({config} proxies)", "",
             f"Each layer trained identically for {steps} steps per proxy (cosine schedule, batch "
             f"{ev.batch_size}, seed 0), scored on the held-out part of the validation split the search "
             f"never scored on; test set unused. Search score: the layer's validation accuracy in the search "
             f"(its proxies only).", "",
             "| rank | layer | " + " | ".join(archs) + " | mean | search score | formula |",
             "|" + "---|" * (5 + len(archs))]
    for rank, (label, formula, scores, mean, search_scores) in enumerate(rows, 1):
        cells = " | ".join("diverged" if scores[a] is None else f"{scores[a]:.3f}" for a in archs)
        searched = "-" if not search_scores else ", ".join(f"{a} {v:.3f}" for a, v in search_scores.items())
        lines.append(f"| {rank} | {label} | {cells} | {_f(mean)} | {searched} | "
                     f"`{formula.replace('|', chr(92) + '|')}` |")
    path = os.path.join(workdir, "rerank.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="runs/seeds")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--series", default="B,S")
    parser.add_argument("--config", default="seeds")
    parser.add_argument("--budget", type=int, default=None, help="evaluated candidates per run (overrides "
                        "the config; the summary cuts every run at the budget all of them reached)")
    parser.add_argument("--summarize", action="store_true", help="only summarize the existing runs")
    parser.add_argument("--rerank_top_k", type=int, default=0,
                        help="re-train each arm's pooled top-k layers and the baselines on the default proxies")
    parser.add_argument("--rerank_steps", type=int, default=300)
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    series = [s.strip().upper() for s in args.series.split(",")]
    unknown = set(series) - set(SERIES)
    if unknown:
        parser.error(f"unknown series {sorted(unknown)}; expected some of {sorted(SERIES)}")
    if not args.summarize:
        extra = [f"--budget={args.budget}"] if args.budget else []
        run_campaign(args.workdir, seeds, series, args.config, extra_flags=extra)
    command = "python scripts/search_seeds.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(open(summarize(args.workdir, seeds, series, command.strip()), encoding="utf-8").read())
    if args.rerank_top_k:
        print(open(rerank_arms(args.workdir, seeds, series, args.rerank_top_k, args.rerank_steps),
                   encoding="utf-8").read())


if __name__ == "__main__":
    main()

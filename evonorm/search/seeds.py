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
           "summarize", "main"]

SERIES = {"B": True, "S": False}  # series -> allow_batch_ops
KINDS = ("evolution", "random")


def run_dir(workdir: str, series: str, kind: str, seed: int) -> str:
    return os.path.join(workdir, f"{series}_{kind}_s{seed}")


def _finished(path: str) -> bool:
    return os.path.exists(os.path.join(path, "summary.md"))


def run_campaign(workdir: str, seeds=(0, 1, 2), series=("B", "S"), config: str = "seeds",
                 extra_flags=(), log=print) -> list:
    """Runs every (series, seed, kind) not yet finished, arms interleaved; returns the run dirs."""
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
                subprocess.run(cmd, check=True)
                log(f"seeds: {path} done in {time.time() - t0:.0f} s")
    return dirs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="runs/seeds")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--series", default="B,S")
    parser.add_argument("--config", default="seeds")
    parser.add_argument("--budget", type=int, default=None, help="evaluated candidates per run (overrides "
                        "the config; the summary cuts every run at the budget all of them reached)")
    parser.add_argument("--summarize", action="store_true", help="only summarize the existing runs")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    series = [s.strip().upper() for s in args.series.split(",")]
    unknown = set(series) - set(SERIES)
    if unknown:
        parser.error(f"unknown series {sorted(unknown)}; expected some of {sorted(SERIES)}")
    if not args.summarize:
        extra = [f"--budget={args.budget}"] if args.budget else []
        run_campaign(args.workdir, seeds, series, args.config, extra_flags=extra)
    if "summarize" in globals():
        print(open(summarize(args.workdir, seeds, series), encoding="utf-8").read())


if __name__ == "__main__":
    main()

"""Figure 2 of the paper from a random-search database: how sparse the search space is.

The paper samples 5,000 random layers, trains each on three CIFAR-10 architectures and finds that none
beats BN-ReLU and that the vast majority are no better than chance. This module reads a search run
with ``short_circuit=False`` (config ``figure2``: every layer that reaches TensorFlow is trained on
every proxy, whatever its stability result) and reports:

* the funnel: sampled layers, those the NumPy filters removed before TensorFlow (by category), those
  trained, those whose training diverged;
* per proxy: the trained layers' accuracies (quantiles, best and its formula), the share at chance
  (accuracy <= 0.11 on 10 balanced classes), and how many reach the reference layers;
* the reference layers (BN-ReLU, EvoNorm-B0, EvoNorm-S0 as search graphs) scored by the run's own
  evaluator, i.e. with the identical quality test (same proxies, steps, data, validation images), for
  several evaluation seeds -- the line the paper's claim is about;
* ``fig2_histograms.png`` redrawn with the references as vertical lines.

Command line: ``python -m evonorm.search.figure2 --workdir=RUN --config=figure2 --seeds=0,1,2 --jobs=2``
(writes ``RUN/figure2.md``, ``RUN/figure2.json`` and ``RUN/fig2_histograms.png``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

import numpy as np

from evonorm.search.store import DUPLICATE, settings_differences

__all__ = ["CHANCE_ACCURACY", "REFERENCES", "ProtocolMismatchError", "reference_scores", "figure2_stats", "figure2_report"]

# 10 balanced classes: chance is 0.10; on 2,000 validation images one standard deviation of a
# chance-level accuracy is ~0.007, so 0.11 separates "no better than random guess" from learning.
CHANCE_ACCURACY = 0.11
REFERENCES = ("bn_relu", "evonorm_b0", "evonorm_s0")


def _reference_job(job, worker: bool = True):
    """One ``(name, evaluator_config, seed)`` job: the evaluator's per-proxy accuracies, seconds."""
    del worker  # the evaluator sets its own TensorFlow threads
    from evonorm.search.evaluator import Evaluator  # noqa: PLC0415
    from evonorm.search.known_graphs import KNOWN_GRAPHS  # noqa: PLC0415

    name, evaluator_config, seed = job
    t0 = time.time()
    result = Evaluator(evaluator_config)(KNOWN_GRAPHS[name].to_dict(), int(seed))
    return dict(result.extras.get("accuracy") or {}), time.time() - t0


def reference_scores(evaluator_config, names=REFERENCES, seeds=(0, 1, 2), jobs: int = 1) -> dict:
    """``{name: [{arch: accuracy or None} per seed]}``: the known layers' graphs through the search's
    own :class:`~evonorm.search.evaluator.Evaluator` (short circuit off, so every proxy is scored), one
    evaluation per seed, in ``jobs`` processes."""
    from evonorm.search.known_graphs import KNOWN_GRAPHS  # noqa: PLC0415
    from evonorm.search.rerank import map_jobs  # noqa: PLC0415

    unknown = [n for n in names if n not in KNOWN_GRAPHS]
    if unknown:
        raise ValueError(f"no search graph for {unknown}; known: {sorted(KNOWN_GRAPHS)}")
    config = dataclasses.replace(evaluator_config, short_circuit=False)
    seeds = [int(s) for s in seeds]
    done = map_jobs(_reference_job, [(name, config, seed) for name in names for seed in seeds], jobs)
    return {name: [scores for scores, _ in done[i * len(seeds):(i + 1) * len(seeds)]]
            for i, name in enumerate(names)}


def figure2_stats(records, objectives, references: dict | None = None) -> dict:
    """The funnel and per-proxy accuracy statistics of a run's records (see the module docstring).

    Args:
      records: :class:`~evonorm.search.store.Record` rows of one run (duplicates are skipped).
      objectives: the proxies, in the run's order.
      references: optional ``{name: [{arch: accuracy or None} per seed]}`` (:func:`reference_scores`).

    Returns:
      ``{'sampled', 'filtered': {category: n}, 'reached', 'archs': {arch: {...}}, 'references':
      {name: {'mean': {arch}, 'min': {arch}, 'max': {arch}}}}``; per arch ``trained``, ``diverged``,
      ``at_chance``, ``quantiles`` (10/50/90/99%), ``best`` (accuracy, record id) and, per reference,
      ``at_least`` (trained layers with accuracy >= the reference's mean).
    """
    from evonorm.search.evaluator import _rejection_category  # noqa: PLC0415

    rows = [r for r in records if r.status != DUPLICATE]
    filtered, reached = {}, []
    for r in rows:
        if r.reached_tensorflow:
            reached.append(r)
        else:
            reason = (r.extras or {}).get("reason") or r.rejected or "unknown"
            category = _rejection_category(reason)
            filtered[category] = filtered.get(category, 0) + 1
    refs = {}
    for name, per_seed in (references or {}).items():
        refs[name] = {}
        for stat, fn in (("mean", np.mean), ("min", np.min), ("max", np.max)):
            refs[name][stat] = {arch: (None if any(s.get(arch) is None for s in per_seed) else
                                       float(fn([s[arch] for s in per_seed]))) for arch in objectives}
    archs = {}
    for arch in objectives:
        scored = [(float(r.extras["accuracy"][arch]), r.id) for r in reached
                  if (r.extras.get("accuracy") or {}).get(arch) is not None]
        acc = np.array([a for a, _ in scored])
        diverged = sum(1 for r in reached if ((r.extras.get("quality") or {}).get(arch) or {}).get("diverged_at")
                       is not None)
        best = max(scored) if scored else None
        archs[arch] = {
            "trained": len(scored), "diverged": diverged,
            "at_chance": int(np.sum(acc <= CHANCE_ACCURACY)),
            "quantiles": ({f"p{q}": float(np.percentile(acc, q)) for q in (10, 50, 90, 99)} if scored else {}),
            "best": None if best is None else {"accuracy": best[0], "id": best[1]},
            "at_least": {name: (None if ref["mean"][arch] is None else int(np.sum(acc >= ref["mean"][arch])))
                         for name, ref in refs.items()},
        }
    return {"sampled": len(rows), "filtered": filtered, "reached": len(reached), "archs": archs,
            "references": refs}


def _formula(store_records, record_id):
    from evonorm.search.graph import Graph  # noqa: PLC0415
    from evonorm.search.render import to_text  # noqa: PLC0415

    record = next(r for r in store_records if r.id == record_id)
    return to_text(Graph.from_dict(record.candidate).prune()).replace("|", "\\|")


class ProtocolMismatchError(ValueError):
    """The requested config scores layers differently from the run's stored evaluator settings."""


def _check_protocol(meta, config, workdir):
    """The reference layers must be scored with the settings the run's rows were scored with."""
    from evonorm.search.configs import scoring_defaults  # noqa: PLC0415

    stored = meta.get("evaluator")
    if not isinstance(stored, dict):
        return
    # The references are always scored without the short circuit, so the run's setting does not matter.
    requested = {k: v for k, v in config.scoring_settings().items() if k != "short_circuit"}
    diff = settings_differences(stored, requested, scoring_defaults())
    if diff:
        raise ProtocolMismatchError(f"{workdir} was scored with other evaluator settings than config {config.name!r} "
                         f"({'; '.join(diff)}); pass the run's own --config")


def figure2_report(workdir: str, config, seeds=(0, 1, 2), jobs: int = 1, references=REFERENCES,
                   command: str | None = None, log_fn=print) -> str:
    """Scores ``references`` with the run's evaluator, writes ``figure2.md``/``.json`` and redraws
    ``fig2_histograms.png`` with the references; returns the path of ``figure2.md``."""
    from evonorm.search.main import machine_description  # noqa: PLC0415
    from evonorm.search.plots import _load, plot_accuracy_histograms  # noqa: PLC0415

    meta, records = _load(workdir)
    objectives = list(meta["objectives"])
    _check_protocol(meta, config, workdir)
    ev = config.evaluator
    t0 = time.time()
    scores = reference_scores(ev, references, seeds, jobs) if references and seeds else {}
    log_fn(f"figure2: references scored in {time.time() - t0:.0f}s: {scores}")
    stats = figure2_stats(records, objectives, scores)
    refs = stats["references"]
    plot_accuracy_histograms(records, objectives, os.path.join(workdir, "fig2_histograms.png"),
                             threshold=ev.quality_threshold, title_prefix=f"{meta.get('kind', 'search')}: ",
                             references={name: r["mean"] for name, r in refs.items()})
    seeds = [int(s) for s in seeds]
    sampled, reached = stats["sampled"], stats["reached"]
    filtered = ", ".join(f"{k} {v}" for k, v in sorted(stats["filtered"].items(), key=lambda kv: -kv[1]))
    lines = [f"# Figure 2: {sampled} random layers on {len(objectives)} proxies", "",
             f"- run: `{workdir}` (kind {meta.get('kind')}, seed {meta.get('seed')}, config {config.name}: "
             f"{ev.quality_steps} training steps at batch {ev.batch_size}, {ev.val_examples} validation "
             f"images of {ev.data}, short circuit {'on' if ev.short_circuit else 'off'})",
             f"- command: `{command or 'figure2_report(...)'}`",
             f"- machine (reference scoring): {machine_description()}, {jobs} process(es)", "",
             f"**Funnel.** {sampled} sampled; {sampled - reached} removed by the NumPy filters before "
             f"TensorFlow ({filtered}); {reached} trained on every proxy. Per proxy, *scored* layers "
             f"finished training with an accuracy, *diverged* ones hit a non-finite loss.", "",
             "| " + " | ".join(["proxy", "scored", "diverged", f"at chance (acc <= {CHANCE_ACCURACY})", "p10",
                                "median", "p90", "p99", "best"] + [f">= {n} (mean)" for n in refs]) + " |",
             "|" + "---|" * (9 + len(refs))]
    for arch in objectives:
        a = stats["archs"][arch]
        q = a["quantiles"]
        cell = (lambda k: f"{q[k]:.3f}" if k in q else "-")
        best = "-" if a["best"] is None else f"{a['best']['accuracy']:.3f} (id {a['best']['id']})"
        share = f"{a['at_chance']} ({a['at_chance'] / a['trained']:.0%})" if a["trained"] else "0"
        lines.append(f"| {arch} | {a['trained']} | {a['diverged']} | {share} | {cell('p10')} | {cell('p50')} | "
                     f"{cell('p90')} | {cell('p99')} | {best} |"
                     + "".join(f" {'-' if a['at_least'][n] is None else a['at_least'][n]} |" for n in refs))
    if refs:
        lines += ["", f"**References**, the known layers' search graphs through this run's evaluator "
                      f"(evaluation seeds {', '.join(map(str, seeds))}; mean [min, max]):", "",
                  "| layer | " + " | ".join(objectives) + " |", "|" + "---|" * (1 + len(objectives))]
        for name, r in refs.items():
            lines.append(f"| {name} | " + " | ".join(
                "diverged" if r["mean"][arch] is None else
                f"{r['mean'][arch]:.3f} [{r['min'][arch]:.3f}, {r['max'][arch]:.3f}]" for arch in objectives) + " |")
    lines += ["", "Best trained layer per proxy:", ""]
    for arch in objectives:
        best = stats["archs"][arch]["best"]
        if best is not None:
            lines.append(f"- {arch}: {best['accuracy']:.3f}, `{_formula(records, best['id'])}`")
    path = os.path.join(workdir, "figure2.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(workdir, "figure2.json"), "w", encoding="utf-8") as f:
        json.dump({"stats": stats, "reference_scores": scores, "seeds": seeds}, f, indent=1)
    return path


def main(argv=None):
    import sys  # noqa: PLC0415

    from evonorm.search.configs import get_config  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--config", default="figure2", help="the run's own search config")
    parser.add_argument("--seeds", default="0,1,2", help="evaluation seeds of the reference layers ('' skips them)")
    parser.add_argument("--jobs", type=int, default=1, help="parallel evaluation processes")
    args = parser.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    if not os.path.exists(os.path.join(args.workdir, "search.db")):
        parser.error(f"no search.db in {args.workdir}; run `evonorm-search --config=figure2 --kind=random "
                     f"--workdir={args.workdir}` first")
    command = "python -m evonorm.search.figure2 " + " ".join(sys.argv[1:] if argv is None else argv)
    try:
        path = figure2_report(args.workdir, get_config(args.config), seeds, args.jobs, command=command.strip())
    except ProtocolMismatchError as err:
        parser.error(str(err))
    print(open(path, encoding="utf-8").read())


if __name__ == "__main__":
    main()

"""Re-ranking: the search's top-k layers and the baselines re-trained longer on every proxy.

The paper re-ranks its top-10 layers with longer training on held-out data. Here each of the top-k
accepted graphs of a search database and the baselines ``bn_relu``, ``evonorm_b0``, ``evonorm_s0``
(through their registry names, i.e. the hand-written layers) are trained identically for ``steps``
SGD steps (cosine schedule, batch of the search config) on each proxy, then scored on the part of the
validation split the search never scored candidates on (its ``val_examples`` head is skipped when
something remains), never on the test set. The table goes to ``WORKDIR/rerank.md`` (and ``.json``).

Several ``seeds`` give each layer's mean and standard deviation per proxy: one seed cannot tell a
layer 0.004 above another from noise.

Command line: ``python -m evonorm.search.rerank --workdir=RUN --config=default --top_k=5 --steps=1000
--seeds=0,1,2 --jobs=2``.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from evonorm.search.store import SearchStore

__all__ = ["BASELINES", "held_out_split", "train_and_score", "map_jobs", "score_candidates", "seed_statistics", "rerank_workdir"]

BASELINES = ("bn_relu", "evonorm_b0", "evonorm_s0")


def held_out_split(evaluator_config):
    """``(x, y)`` of the validation split without the head the search scored candidates on."""
    from evonorm.search.evaluator import load_data  # noqa: PLC0415

    ev = evaluator_config
    _, _, x_val, y_val, _, _ = load_data(ev.data, ev.data_dir, ev.validation_size)
    skip = ev.val_examples if 0 < ev.val_examples < len(x_val) else 0
    return x_val[skip:], y_val[skip:]


def train_and_score(candidate, evaluator_config, steps: int, seed: int, held_out) -> dict:
    """``{arch: accuracy or None (diverged)}`` of ``candidate`` trained ``steps`` steps per proxy."""
    import tf_keras  # noqa: PLC0415

    from evonorm.experiments import training  # noqa: PLC0415
    from evonorm.search.evaluator import _batches, _eval_batches, load_data  # noqa: PLC0415
    from evonorm.search.proxy import ProxySpec, build_proxy, norm_act_factory  # noqa: PLC0415

    cfg = evaluator_config
    x_train, y_train, _, _, mean, std = load_data(cfg.data, cfg.data_dir, cfg.validation_size)
    x_val, y_val = held_out
    factory = norm_act_factory(candidate, group_size=cfg.group_size)
    out = {}
    for k, (arch, width, depth) in enumerate(cfg.archs):
        tf_keras.backend.clear_session()
        tf_keras.utils.set_random_seed(seed + 1009 * k)
        model = build_proxy(ProxySpec(arch, width, depth), factory=factory, input_shape=x_train.shape[1:],
                            num_classes=int(y_train.max()) + 1)
        config = training.TrainConfig(steps=steps, base_lr=cfg.base_lr, momentum=cfg.momentum,
                                      weight_decay=cfg.weight_decay, schedule="cosine",
                                      warmup_steps=min(100, steps // 10), log_every=steps)
        history = training.train(model, _batches(x_train, y_train, cfg.batch_size, mean, std, seed + k), config)
        out[arch] = None if history.diverged else float(
            training.evaluate(model, _eval_batches(x_val, y_val, 256, mean, std))[0])
    return out


def _score_job(job, worker: bool = True):
    """One ``(candidate, evaluator_config, steps, seed)`` job: (scores, seconds). In a worker process
    TensorFlow gets ``evaluator_config.threads`` threads; here (``worker=False``) its pools stay as they are."""
    candidate, evaluator_config, steps, seed = job
    from evonorm.search.evaluator import _configure_threads  # noqa: PLC0415
    from evonorm.search.graph import Graph  # noqa: PLC0415

    if worker:
        _configure_threads(evaluator_config.threads)
    t0 = time.time()
    layer = candidate if isinstance(candidate, str) else Graph.from_dict(candidate)
    return train_and_score(layer, evaluator_config, steps, seed, held_out_split(evaluator_config)), time.time() - t0


def map_jobs(fn, work, jobs: int = 1) -> list:
    """``[fn(job) for job in work]``, in ``jobs`` spawned processes when ``jobs`` > 1 (``fn`` a
    module-level function); with 1, here, one after the other, as ``fn(job, worker=False)``."""
    if jobs > 1:
        import concurrent.futures  # noqa: PLC0415
        import multiprocessing  # noqa: PLC0415

        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            return list(pool.map(fn, work))
    return [fn(job, worker=False) for job in work]


def score_candidates(candidates, evaluator_config, steps: int, seeds=(0,), jobs: int = 1) -> list:
    """Trains every candidate (a registry name or a :class:`Graph`) with every seed.

    ``jobs`` > 1 runs the ``len(candidates) * len(seeds)`` trainings in that many spawned processes
    (``evaluator_config.threads`` TensorFlow threads each); 1 runs them here, one after the other.

    Returns:
      One ``[(scores, seconds) per seed]`` list per candidate, ``scores`` as :func:`train_and_score`'s.
    """
    seeds = list(seeds)
    work = [(c if isinstance(c, str) else c.to_dict(), evaluator_config, steps, int(seed))
            for c in candidates for seed in seeds]
    done = map_jobs(_score_job, work, jobs)
    return [done[i * len(seeds):(i + 1) * len(seeds)] for i in range(len(candidates))]


def seed_statistics(per_seed: list, archs) -> dict:
    """Per proxy mean and standard deviation over seeds of ``[{arch: accuracy or None}]``.

    Returns ``{'mean': {arch: float or None}, 'std': {...}, 'diverged': {arch: int}, 'overall': float
    or None}``; a proxy on which some seed diverged has mean None, and so has ``overall`` (the mean over
    the proxies of the per-proxy means).
    """
    mean, std, diverged = {}, {}, {}
    for arch in archs:
        values = [scores[arch] for scores in per_seed]
        diverged[arch] = sum(v is None for v in values)
        finite = [v for v in values if v is not None]
        ok = not diverged[arch] and finite
        mean[arch] = float(np.mean(finite)) if ok else None
        std[arch] = float(np.std(finite, ddof=1)) if ok and len(finite) > 1 else (0.0 if ok else None)
    overall = None if any(v is None for v in mean.values()) else float(np.mean(list(mean.values())))
    return {"mean": mean, "std": std, "diverged": diverged, "overall": overall}


def rerank_workdir(workdir: str, config, top_k: int = 5, steps: int = 1000, seeds=(0,), jobs: int = 1,
                   baselines=BASELINES, log_fn=print, command: str | None = None) -> str:
    """Re-trains the top-``top_k`` of ``WORKDIR/search.db`` and ``baselines`` with every seed of ``seeds``
    (in ``jobs`` processes); writes ``rerank.md`` (mean and, over several seeds, standard deviation per
    proxy) and ``rerank.json`` (every seed's scores)."""
    from evonorm.search.graph import Graph  # noqa: PLC0415
    from evonorm.search.main import machine_description  # noqa: PLC0415
    from evonorm.search.render import to_text  # noqa: PLC0415

    ev = config.evaluator
    seeds = [int(seed) for seed in seeds]
    archs = [a for a, _, _ in ev.archs]
    with SearchStore(os.path.join(workdir, "search.db")) as store:
        top = store.top(top_k)
    entries = [(f"search #{rank} (id {r.id})", Graph.from_dict(r.candidate), r.scores)
               for rank, r in enumerate(top, 1)]
    entries += [(name, name, None) for name in baselines]
    results = score_candidates([candidate for _, candidate, _ in entries], ev, steps, seeds, jobs)
    rows = []
    for (label, candidate, search_scores), per_seed in zip(entries, results):
        scores = [s for s, _ in per_seed]
        stats = seed_statistics(scores, archs)
        formula = candidate if isinstance(candidate, str) else to_text(candidate.prune())
        seconds = sum(t for _, t in per_seed)
        rows.append({"label": label, "layer": formula, "seeds": seeds, "per_seed": scores,
                     "scores": stats["mean"], "std": stats["std"], "mean": stats["overall"],
                     "search_scores": search_scores, "seconds": seconds})
        log_fn(f"rerank {label}: {scores} ({seconds:.0f}s)")
    order = sorted(rows, key=lambda r: -(r["mean"] if r["mean"] is not None else -1.0))
    several = len(seeds) > 1

    def cell(r, arch):
        if r["scores"][arch] is None:
            bad = sum(s[arch] is None for s in r["per_seed"])
            return "diverged" if not several else f"diverged ({bad} of {len(seeds)} seeds)"
        return f"{r['scores'][arch]:.3f}" + (f" ± {r['std'][arch]:.3f}" if several else "")

    seeds_text = (f"seed {seeds[0]}" if not several else
                  f"mean ± standard deviation over seeds {', '.join(map(str, seeds))}")
    lines = [f"# Re-ranking: {steps} training steps per proxy, scored on {len(held_out_split(ev)[0])} held-out "
             f"validation images of {ev.data} (not the ones the search scored on; test set unused)", "",
             f"Every layer is trained identically ({seeds_text}; the seed sets the initial weights and the "
             f"batch order).", "", f"- command: `{command or 'rerank_workdir(...)'}`",
             f"- machine: {machine_description()}, {jobs} training process(es)", "",
             "| rank | layer | " + " | ".join(archs) + " | mean | formula |", "|" + "---|" * (4 + len(archs))]
    for rank, r in enumerate(order, 1):
        cells = " | ".join(cell(r, a) for a in archs)
        mean = "-" if r["mean"] is None else f"{r['mean']:.3f}"
        lines.append(f"| {rank} | {r['label']} | {cells} | {mean} | `{r['layer'].replace('|', chr(92) + '|')}` |")
    if several:
        lines += ["", "Per seed (" + ", ".join(archs) + "):", ""]
        for r in order:
            per = "; ".join(f"seed {seed}: " + ", ".join("diverged" if s[a] is None else f"{s[a]:.3f}" for a in archs)
                            for seed, s in zip(seeds, r["per_seed"]))
            lines.append(f"- {r['label']}: {per}")
    path = os.path.join(workdir, "rerank.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(workdir, "rerank.json"), "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=1)
    return path


def main(argv=None):
    from evonorm.search.configs import get_config  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--config", default="default")
    parser.add_argument("--top_k", type=int, default=5)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds (mean and spread over them)")
    parser.add_argument("--jobs", type=int, default=1, help="parallel training processes")
    args = parser.parse_args(argv)
    try:
        seeds = [int(seed) for seed in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    import sys  # noqa: PLC0415

    command = "python -m evonorm.search.rerank " + " ".join(sys.argv[1:] if argv is None else argv)
    path = rerank_workdir(args.workdir, get_config(args.config), args.top_k, args.steps, seeds, args.jobs,
                          command=command.strip())
    print(open(path, encoding="utf-8").read())


if __name__ == "__main__":
    main()

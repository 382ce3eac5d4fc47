"""Throughput of every stage of the layer search on this machine, written as a Markdown table.

Stages: graph generation + functional fingerprint + dedup (driver side, NumPy), the NumPy output
filters, and per proxy architecture one stability test (ascent steps of the config) and one quality
test (training steps + validation scoring), run with TensorFlow limited to one thread, as a search
worker is. The graph layer measured is EvoNorm-B0's graph (a candidate that passes every test, so
both tests run to the end). Rejected candidates are cheaper: most stop in the filters or within a few
ascent steps.

Command: ``python scripts/benchmark_search.py --config=default --out=official/results/search/throughput.md``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

__all__ = ["bench_generation", "bench_proxies", "bench_step_split", "step_split_report", "sample_stored_candidates", "bench_funnel", "funnel_report",
           "write_report", "main"]


def bench_generation(count: int = 2000, seed: int = 0, allow_batch_ops: bool = True) -> dict:
    """Random graphs generated, fingerprinted and deduplicated per second, and filter throughput."""
    from evonorm.search.fingerprint import check_outputs, fingerprint  # noqa: PLC0415
    from evonorm.search.generator import SpaceConfig, random_graph  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    space = SpaceConfig(allow_batch_ops=allow_batch_ops)
    seen, t0 = set(), time.perf_counter()
    graphs = []
    for _ in range(count):
        g = random_graph(rng, space)
        seen.add(fingerprint(g))
        graphs.append(g)
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    passed = sum(check_outputs(g) is None for g in graphs)
    filter_s = time.perf_counter() - t0
    return {"count": count, "unique": len(seen), "generate_dedup_per_s": count / gen_s,
            "filter_per_s": count / filter_s, "filter_pass_rate": passed / count}


def bench_proxies(evaluator_config, graph_name: str = "evonorm_b0", seed: int = 0) -> list:
    """Per architecture: seconds of one stability test and of one quality test (train + score)."""
    import tf_keras  # noqa: PLC0415

    from evonorm.search.evaluator import (_batches, _configure_threads, _eval_batches, load_data,  # noqa: PLC0415
                                          quality_test, stability_test)
    from evonorm.search.known_graphs import KNOWN_GRAPHS  # noqa: PLC0415
    from evonorm.search.proxy import ProxySpec, build_proxy, norm_act_factory  # noqa: PLC0415

    cfg = evaluator_config
    _configure_threads(cfg.threads)
    x_train, y_train, x_val, y_val, mean, std = load_data(cfg.data, cfg.data_dir, cfg.validation_size)
    x_val, y_val = (x_val[:cfg.val_examples], y_val[:cfg.val_examples]) if cfg.val_examples else (x_val, y_val)
    factory = norm_act_factory(KNOWN_GRAPHS[graph_name], group_size=cfg.group_size)
    rows = []
    for arch, width, depth in cfg.archs:
        spec = ProxySpec(arch, width, depth)
        tf_keras.backend.clear_session()
        model = build_proxy(spec, factory=factory, input_shape=x_train.shape[1:])
        x = (x_train[:cfg.stability_batch].astype(np.float32) / 255.0 - mean) / std
        t0 = time.perf_counter()
        stab = stability_test(model, x, y_train[:cfg.stability_batch], cfg.stability_steps,
                              cfg.stability_step_size, cfg.stability_threshold)
        stability_s = time.perf_counter() - t0
        tf_keras.backend.clear_session()
        model = build_proxy(spec, factory=factory, input_shape=x_train.shape[1:])
        t0 = time.perf_counter()
        quality = quality_test(model, _batches(x_train, y_train, cfg.batch_size, mean, std, seed),
                               _eval_batches(x_val, y_val, 256, mean, std), cfg)
        rows.append({"arch": arch, "width": width, "params": model.count_params(), "stability_s": stability_s,
                     "stability_passed": stab["passed"], "quality_s": time.perf_counter() - t0,
                     "train_s": quality["train_s"], "eval_s": quality["eval_s"], "accuracy": quality["accuracy"]})
    return rows


def bench_step_split(evaluator_config, graph_names=("evonorm_b0", "bn_relu"), seed: int = 0) -> list:
    """Where a quality test's training time goes: per proxy and graph, the first step (tracing, graph
    optimization and the first run) against the median of the later steps.

    Returns ``[{'arch', 'graph', 'first_s', 'step_ms', 'train_s', 'first_share'}]``.
    """
    import tf_keras  # noqa: PLC0415

    from evonorm.experiments import training  # noqa: PLC0415
    from evonorm.search.evaluator import _batches, _configure_threads, load_data, quality_train_config  # noqa: PLC0415
    from evonorm.search.known_graphs import KNOWN_GRAPHS  # noqa: PLC0415
    from evonorm.search.proxy import ProxySpec, build_proxy, norm_act_factory  # noqa: PLC0415

    cfg = evaluator_config
    _configure_threads(cfg.threads)
    x_train, y_train, _, _, mean, std = load_data(cfg.data, cfg.data_dir, cfg.validation_size)
    rows = []
    for arch, width, depth in cfg.archs:
        for name in graph_names:
            tf_keras.backend.clear_session()
            tf_keras.utils.set_random_seed(seed)
            model = build_proxy(ProxySpec(arch, width, depth), factory=norm_act_factory(KNOWN_GRAPHS[name],
                                                                                         group_size=cfg.group_size),
                                input_shape=x_train.shape[1:])
            stamps = []
            t0 = time.perf_counter()
            training.train(model, _batches(x_train, y_train, cfg.batch_size, mean, std, seed),
                           quality_train_config(cfg), on_step=lambda step, loss: stamps.append(time.perf_counter()))
            train_s = time.perf_counter() - t0
            first_s = stamps[0] - t0
            step_ms = 1000.0 * float(np.median(np.diff(stamps[1:]))) if len(stamps) > 2 else float("nan")
            rows.append({"arch": arch, "graph": name, "first_s": first_s, "step_ms": step_ms, "train_s": train_s,
                         "first_share": first_s / train_s})
    return rows


def step_split_report(rows) -> list:
    """Markdown lines of :func:`bench_step_split`'s rows."""
    lines = ["## Where the quality test's training time goes", "",
             "Per proxy and layer graph (search graphs, built from primitives): the first training step "
             "(trace, graph optimization, first run) against the median later step, one thread.", "",
             "| proxy | graph | first step | later steps (median) | training total | first step's share |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['arch']} | {r['graph']} | {r['first_s']:.2f} s | {r['step_ms']:.0f} ms | "
                     f"{r['train_s']:.1f} s | {100 * r['first_share']:.0f}% |")
    return lines


def sample_stored_candidates(db_path: str, count: int, seed: int = 0) -> list:
    """``count`` evaluated (not duplicate) candidates of a stored search, drawn uniformly without
    replacement: ``[(graph JSON dict, evaluation seed, stored outcome)]``."""
    from evonorm.search.store import DUPLICATE, SearchStore  # noqa: PLC0415

    with SearchStore(db_path) as store:
        rows = [r for r in store.records() if r.status != DUPLICATE]
    if not rows:
        raise ValueError(f"{db_path} holds no evaluated candidate")
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(rows), min(count, len(rows)), replace=False)
    return [(rows[i].candidate, int(rows[i].seed or 0), rows[i].rejected or "accepted") for i in sorted(picked)]


ARM_LABELS = {"stored": "stored runs' evaluator (no information filter, 2 builds, Keras SGD)",
              "today": "today's evaluator (the default: same decisions)",
              "hurdle": "today's evaluator + the optional hurdle"}


def bench_funnel(evaluator_config, candidates, allow_batch_ops: bool = True, hurdle_step: int | None = None) -> dict:
    """Evaluates every candidate with the stored runs' evaluator costs and with today's, interleaved
    in this process (rotating which goes first), and returns the arms' total times and outcomes.

    The baseline is ``Evaluator(stored_costs=True)``: no information filter, a second proxy build for
    the quality test, Keras's SGD. ``hurdle_step`` adds a third arm, today's evaluator with the
    quality-test hurdle at that step (on ``evaluator_config.hurdle_archs``): faster, but it changes
    decisions (``official/results/search/hurdle.md``). Throughput is candidates per core-hour (one
    TensorFlow thread); ``ratio`` is the stored arm's time over each arm's.
    """
    import dataclasses  # noqa: PLC0415

    from evonorm.search.evaluator import Evaluator, _configure_threads  # noqa: PLC0415

    _configure_threads(evaluator_config.threads)
    arms = {"stored": Evaluator(evaluator_config, allow_batch_ops, stored_costs=True),
            "today": Evaluator(evaluator_config, allow_batch_ops)}
    if hurdle_step:
        arms["hurdle"] = Evaluator(dataclasses.replace(evaluator_config, hurdle_step=hurdle_step), allow_batch_ops)
    arms["today"](candidates[0][0], candidates[0][1])  # warm-up (TensorFlow import, data) for every arm
    seconds = {name: 0.0 for name in arms}
    outcomes = []
    names = list(arms)
    for k, (candidate, seed, stored) in enumerate(candidates):
        row = {"stored_outcome": stored}
        for name in names[k % len(names):] + names[:k % len(names)]:
            t0 = time.perf_counter()
            result = arms[name](candidate, seed)
            seconds[name] += time.perf_counter() - t0
            row[name] = result.rejected or "accepted"
        outcomes.append(row)
    n = len(candidates)
    return {"count": n, "seconds": seconds, "hurdle_step": hurdle_step,
            "hurdle_archs": tuple(evaluator_config.hurdle_archs) if hurdle_step else (),
            "per_core_hour": {name: 3600.0 * n / max(s, 1e-9) for name, s in seconds.items()},
            "ratio": {name: seconds["stored"] / max(s, 1e-9) for name, s in seconds.items() if name != "stored"},
            "outcomes": outcomes}


def funnel_report(result, db_path, machine, command, load) -> list:
    """Markdown lines of :func:`bench_funnel`'s result."""
    import collections  # noqa: PLC0415

    arms = [name for name in ARM_LABELS if name in result["seconds"]]
    label = dict(ARM_LABELS)
    if "hurdle" in arms:
        label["hurdle"] += (f" at step {result['hurdle_step']} on {', '.join(result['hurdle_archs'])} "
                            f"(changes decisions, see `hurdle.md`)")
    lines = ["## Funnel: stored candidates through the stored and today's evaluator", "",
             f"- candidates: {result['count']} drawn uniformly from the evaluated (not duplicate) rows of "
             f"`{db_path}`, each evaluated by every arm in this process, rotating which goes first",
             f"- machine: {machine} (1-min load average {load[0]:.1f} at start, {load[1]:.1f} at the end)",
             f"- command: `{command}`", "",
             "| arm | seconds | candidates per core-hour | ratio to the stored arm |", "|---|---|---|---|"]
    for name in arms:
        ratio = "x1" if name == "stored" else f"**x{result['ratio'][name]:.2f}**"
        lines.append(f"| {label[name]} | {result['seconds'][name]:.0f} | {result['per_core_hour'][name]:.0f} | {ratio} |")
    lines += ["", f"**Ratio, same decisions: x{result['ratio']['today']:.2f}** candidates per core-hour "
              f"(stored time / today's time)."]
    for other in arms[1:]:
        decisions = collections.Counter((o["stored"], o[other]) for o in result["outcomes"])
        lines += ["", f"Outcomes (stored evaluator -> {label[other].split(' (')[0]}):", ""]
        lines += [f"- {a} -> {b}: {c}" for (a, b), c in sorted(decisions.items())]
    return lines


def write_report(path, config_name, evaluator_config, gen, rows, machine, command, load, funnel=None,
                 split=None) -> str:
    cfg = evaluator_config
    lines = ["# Layer-search throughput", "", f"- machine: {machine} (1-min load "
             f"average {load[0]:.1f} at start, {load[1]:.1f} at the end)", f"- command: `{command}`",
             f"- config `{config_name}`: {cfg.quality_steps} training steps at batch {cfg.batch_size}, "
             f"{cfg.stability_steps} ascent steps on {cfg.stability_batch} images, {cfg.val_examples or 'all'} "
             f"validation images, TensorFlow limited to {cfg.threads} thread(s) as in a worker", "",
             "## Driver side (NumPy, one process)", "",
             "| stage | throughput |", "|---|---|",
             f"| random graph + fingerprint + dedup | {gen['generate_dedup_per_s']:.0f} graphs/s "
             f"({gen['unique']} unique of {gen['count']}) |",
             f"| output filters (check_outputs) | {gen['filter_per_s']:.0f} graphs/s; "
             f"{100 * gen['filter_pass_rate']:.0f}% of random graphs pass |", "",
             "## Per worker (one core), EvoNorm-B0's graph as the candidate layer", "",
             "| proxy | params | stability test | stability tests/s | quality test (train + score) | "
             "quality tests/min | accuracy |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['arch']} (width {r['width']}) | {r['params']:,} | {r['stability_s']:.1f} s | "
                     f"{1 / r['stability_s']:.2f} | {r['quality_s']:.1f} s ({r['train_s']:.1f} + {r['eval_s']:.1f}) | "
                     f"{60 / r['quality_s']:.1f} | {r['accuracy']:.3f} |")
    total = sum(r["stability_s"] + r["quality_s"] for r in rows)
    lines += ["", f"A candidate passing every test costs about {total:.0f} s of one worker "
              f"({60 / total:.2f} candidates/min per core), model building and tracing included."]
    if split is not None:
        lines += [""] + split
    if funnel is not None:
        lines += [""] + funnel
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


def main(argv=None):
    import sys  # noqa: PLC0415

    from evonorm.search.configs import get_config  # noqa: PLC0415
    from evonorm.search.main import machine_description  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="default")
    parser.add_argument("--count", type=int, default=2000, help="random graphs for the driver-side stages")
    parser.add_argument("--out", default="official/results/search/throughput.md")
    parser.add_argument("--funnel_db", default="official/results/search/random_default/search.db",
                        help="stored search whose candidates the funnel benchmark replays ('' to skip)")
    parser.add_argument("--funnel_count", type=int, default=40, help="candidates drawn for the funnel benchmark")
    parser.add_argument("--funnel_hurdle_step", type=int, default=0,
                        help="add a funnel arm with the quality-test hurdle at this step (0: no such arm)")
    args = parser.parse_args(argv)
    config = get_config(args.config)
    command = "python scripts/benchmark_search.py " + " ".join(sys.argv[1:] if argv is None else argv)
    load_start = os.getloadavg()[0]
    gen = bench_generation(args.count, allow_batch_ops=config.allow_batch_ops)
    rows = bench_proxies(config.evaluator)
    split = step_split_report(bench_step_split(config.evaluator))
    funnel = None
    if args.funnel_db:
        if not os.path.exists(args.funnel_db):
            parser.error(f"--funnel_db {args.funnel_db} does not exist (pass '' to skip the funnel benchmark)")
        load_funnel = os.getloadavg()[0]
        if args.funnel_hurdle_step and not 0 < args.funnel_hurdle_step < config.evaluator.quality_steps:
            parser.error(f"--funnel_hurdle_step must lie in 1..{config.evaluator.quality_steps - 1}, "
                         f"got {args.funnel_hurdle_step}")
        result = bench_funnel(config.evaluator, sample_stored_candidates(args.funnel_db, args.funnel_count),
                              config.allow_batch_ops, hurdle_step=args.funnel_hurdle_step or None)
        funnel = funnel_report(result, args.funnel_db, machine_description(), command.strip(),
                               (load_funnel, os.getloadavg()[0]))
    path = write_report(args.out, args.config, config.evaluator, gen, rows, machine_description(),
                        command.strip(), (load_start, os.getloadavg()[0]), funnel, split)
    print(open(path, encoding="utf-8").read())


if __name__ == "__main__":
    main()

"""``evonorm-search``: run (or resume) the layer search end to end and write its results.

Examples::

    evonorm-search --config=tiny --workdir=/tmp/search_tiny
    evonorm-search --config=default --workdir=runs/evo --max_seconds=1200
    evonorm-search --config=default --workdir=runs/rs --kind=random --budget=300 --compare_workdir=runs/evo
    evonorm-search --config=paper --backend=ray --ray_address=auto --workdir=/shared/search

The database ``WORKDIR/search.db`` is committed row by row, so a killed search (even SIGKILL)
resumes with the same command. After the search the workdir holds ``top/`` (the top-k graphs as JSON,
text/LaTeX formulas and PNG drawings), ``summary.md``, the paper's Figures 2, 3 and 6
(``fig2_histograms.png``, ``fig3_calibration.png``, ``fig6_progress.png``), for evolution the
population's diversity over the run (``fig_diversity.png``: distinct functions in the window) and, with
``--rerank_top_k``, ``rerank.md``.

Before any expensive start-up the database is checked: a file that is not SQLite, or is truncated or
damaged, ends the command at once (exit status 2, one line naming the file and what to do; the file
is left untouched), and so does resuming with evaluator settings other than the stored ones
(:meth:`~evonorm.search.configs.SearchConfig.scoring_settings`: the stored scores would not be
comparable with new ones). A database written before those settings were stored gets the requested
ones recorded, with a warning; its existing rows are assumed to come from them (its ``summary.md``
names the proxies, steps and batch size it was run with).
"""

from __future__ import annotations

import os
import platform
import sys
import time

from absl import app, flags, logging

from evonorm.search import configs as configs_lib


def define_flags(flag_values=None):
    """Defines the search's command-line flags (once) on ``flag_values`` (default: absl's global FLAGS).

    Flags are defined here rather than at import, so importing this module next to another absl
    program never collides on flag names (both have e.g. ``--seed``).
    """
    fv = flags.FLAGS if flag_values is None else flag_values  # an empty FlagValues is falsy
    if "min_population" in fv and "compare_workdir" in fv:
        return fv
    flags.DEFINE_enum("config", "default", sorted(configs_lib.CONFIGS), "Search configuration (configs.py).",
                      flag_values=fv)
    flags.DEFINE_string("workdir", None, "Output directory; WORKDIR/search.db is resumed if present.",
                        flag_values=fv)
    flags.DEFINE_enum("kind", "evolution", ["evolution", "random"], "Regularized evolution or random search.",
                      flag_values=fv)
    flags.DEFINE_integer("budget", None, "Evaluated candidates in total (overrides the config).",
                         flag_values=fv)
    flags.DEFINE_float("max_seconds", None, "Wall-time limit of this run (overrides the config).",
                       flag_values=fv)
    flags.DEFINE_integer("workers", None, "Parallel evaluations (default: the config's, else one per core).",
                         flag_values=fv)
    flags.DEFINE_enum("backend", "local", ["local", "ray", "inline"], "Where evaluations run.", flag_values=fv)
    flags.DEFINE_string("ray_address", None, "Ray cluster address for --backend=ray (e.g. 'auto').",
                        flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Seed all randomness derives from.", flag_values=fv)
    flags.DEFINE_bool("allow_batch_ops", None, "Allow batch aggregations (False: S-series search).",
                      flag_values=fv)
    flags.DEFINE_enum("data", "fashion_mnist", ["fashion_mnist", "cifar10"],
                      "Proxy data: offline Fashion-MNIST, or CIFAR-10 from an already prepared TFDS copy.",
                      flag_values=fv)
    flags.DEFINE_string("data_dir", None, "Fashion-MNIST IDX directory or TFDS data_dir.", flag_values=fv)
    flags.DEFINE_integer("rerank_top_k", None, "Re-train the top-k longer with the baselines (0: skip).",
                         flag_values=fv)
    flags.DEFINE_integer("rerank_steps", None, "Training steps of the re-ranking runs.", flag_values=fv)
    flags.DEFINE_integer("population_size", None, "Override the evolution population size.", flag_values=fv)
    flags.DEFINE_integer("tournament_size", None, "Override the tournament size.", flag_values=fv)
    flags.DEFINE_integer("min_population", None, "Accepted candidates before evolution starts mutating.",
                         flag_values=fv)
    flags.DEFINE_bool("distinct_population", None, "A copy of a living member never takes a window place "
                      "(default true; false: the rule of databases written before it).", flag_values=fv)
    flags.DEFINE_integer("max_redraws", None, "Redraws of a mutation that leaves the function unchanged "
                         "(default 50; 0: the rule of databases written before it).", flag_values=fv)
    flags.DEFINE_integer("quality_steps", None, "Override the quality test's training steps.", flag_values=fv)
    flags.DEFINE_integer("stability_steps", None, "Override the stability test's ascent steps.", flag_values=fv)
    flags.DEFINE_integer("quality_hurdle_step", None, "Stop a quality test at this step when its training loss "
                         "is still at chance (rejected as 'hurdle'; 0: off; see official/results/search/"
                         "hurdle.md).", flag_values=fv)
    flags.DEFINE_string("compare_workdir", None, "Another search's workdir drawn in Figure 6.", flag_values=fv)
    return fv


def build_config(config_name, **overrides) -> configs_lib.SearchConfig:
    """The named config with the non-None overrides (``evaluator__*`` for evaluator fields)."""
    return configs_lib.get_config(config_name).replace(**{k: v for k, v in overrides.items() if v is not None})


def check_resume_settings(db_path: str, config: configs_lib.SearchConfig, warn_fn=logging.warning) -> str:
    """Records the evaluator settings of a new search in ``db_path``, or checks a resumed one's.

    Cheap (no data, no workers; building ``config`` already imported TensorFlow): run before the
    search's start-up, so a refused resume ends at once.

    Args:
      db_path: the search database.
      config: this run's config; its :meth:`~evonorm.search.configs.SearchConfig.scoring_settings`
        must equal the stored ones.
      warn_fn: receives the warning for a database that predates stored evaluator settings.

    Returns:
      'new', 'same' or 'legacy', as :meth:`~evonorm.search.store.SearchStore.resume_settings`.

    Raises:
      DamagedStoreError: the database is not SQLite, or is truncated or damaged.
      ResumeSettingsError: the stored settings differ (a ``ValueError`` saying 'cannot resume').
    """
    from evonorm.search.store import SearchStore  # noqa: PLC0415

    settings = config.scoring_settings()
    with SearchStore(db_path) as store:
        state = store.resume_settings("evaluator", settings, defaults=configs_lib.scoring_defaults())
        rows = store.count()
    if state == "legacy":
        # Nothing to compare with: refusing would strand every older search, so the requested
        # settings are taken as the ones the rows came from, and said so.
        shown = ", ".join(f"{k} {settings[k]}" for k in ("quality_steps", "batch_size", "stability_steps",
                                                         "archs", "data"))
        warn_fn(f"{db_path} predates stored evaluator settings: recorded this run's now ({shown}); its "
                f"{rows} rows are assumed to come from the same settings (see its summary.md). If they do "
                f"not, start a new search in another --workdir.")
    return state


def machine_description() -> str:
    """One line naming the host CPU and Python/TensorFlow versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def _data_line(config) -> str:
    from evonorm.search.evaluator import load_data  # noqa: PLC0415

    ev = config.evaluator
    x_train, _, x_val, _, _, _ = load_data(ev.data, ev.data_dir, ev.validation_size)
    used = ev.val_examples or len(x_val)
    return (f"{ev.data}: {len(x_train)} training images {tuple(x_train.shape[1:])}, scored on the first "
            f"{used} of {len(x_val)} held-out validation images (tail of the training split; test set unused)")


# The machine line of ``summary.md``: written by :func:`write_summary`, read by :func:`summary_machine`.
_MACHINE_PREFIX = "- machine: "


def summary_machine(workdir) -> str | None:
    """The machine a run's ``WORKDIR/summary.md`` names (the run wrote it itself), or None."""
    try:
        with open(os.path.join(workdir, "summary.md"), encoding="utf-8") as f:
            for line in f:
                if line.startswith(_MACHINE_PREFIX):
                    return line[len(_MACHINE_PREFIX):].strip()
    except OSError:
        pass
    return None


def write_summary(workdir, config, summary, kind, seed, data_line, machine, command, elapsed_s) -> str:
    """Writes ``WORKDIR/summary.md``: settings, counts, rejections, timings and the top-k table."""
    from evonorm.search.render import to_text  # noqa: PLC0415
    from evonorm.search.graph import Graph  # noqa: PLC0415
    from evonorm.search.store import SearchStore  # noqa: PLC0415

    with SearchStore(os.path.join(workdir, "search.db")) as store:
        top = store.top(config.top_k)
        records = [r for r in store.records() if r.status != "duplicate"]
        objectives = list(store.get_meta()["objectives"])
    trained = [r for r in records if r.reached_tensorflow]
    cost = [sum(v for k, v in r.timings.items() if k != "wall_s" and k.endswith("_s")) for r in trained]
    lines = [f"# Layer search: {kind}, config `{config.name}`", "",
             f"- command: `{command or 'run_search(...)'}`", f"- data: {data_line}", _MACHINE_PREFIX + machine,
             f"- proxies: {', '.join(f'{a} (width {w})' for a, w, _ in config.evaluator.archs)}; "
             f"{config.evaluator.quality_steps} training steps at batch {config.evaluator.batch_size}, "
             f"{config.evaluator.stability_steps} ascent steps, quality threshold "
             f"{config.evaluator.quality_threshold}",
             f"- seed {seed}, budget {config.budget}, batch ops {'allowed' if config.allow_batch_ops else 'excluded'}"
             + (f", population {config.population_size} (mutations from {config.min_population or config.population_size} "
                f"accepted on), tournament {config.tournament_size}, {config.criterion} criterion"
                if kind == "evolution" else ""),
             f"- this run: {elapsed_s:.0f} s wall, stopped by {summary.stop_reason}"]
    if kind == "evolution" and summary.diversity:
        distinct = sorted(d for _, d, _ in summary.diversity)
        last = summary.diversity[-1]
        lines.append(f"- population: {last[1]} distinct functions in a window of {last[2]} at the end (median "
                     f"{distinct[len(distinct) // 2]} over the run; rule: distinct "
                     f"{config.distinct_population}, up to {config.max_redraws} redraws); {summary.redraws} "
                     f"redraws of unchanged mutations, {summary.redraw_fallbacks} hit the bound")
    lines += ["",
              "| evaluated | accepted | duplicates | " + " | ".join(f"rejected: {k}" for k in sorted(summary.rejected))
              + " |", "|" + "---|" * (3 + len(summary.rejected)),
              f"| {summary.evaluated} | {summary.accepted} | {summary.duplicates} | "
              + " | ".join(str(summary.rejected[k]) for k in sorted(summary.rejected)) + " |", ""]
    if cost:
        lines += [f"Candidates that reached TensorFlow: {len(trained)}, mean {sum(cost) / len(cost):.1f} s of "
                  f"one worker each (max {max(cost):.1f} s).", ""]
    lines += [f"## Top {len(top)} (mean validation accuracy over the proxies)", "",
              "| rank | id | " + " | ".join(objectives) + " | mean | origin | layer |",
              "|" + "---|" * (5 + len(objectives))]
    for rank, r in enumerate(top, 1):
        mean = sum(r.scores[o] for o in objectives) / len(objectives)
        formula = to_text(Graph.from_dict(r.candidate).prune()).replace("|", "\\|")
        lines.append(f"| {rank} | {r.id} | " + " | ".join(f"{r.scores[o]:.3f}" for o in objectives)
                     + f" | {mean:.3f} | {r.origin} | `{formula}` |")
    path = os.path.join(workdir, "summary.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


def run_search(config: configs_lib.SearchConfig, workdir: str, kind: str = "evolution", seed: int = 0,
               backend: str = "local", ray_address: str | None = None, compare_workdir: str | None = None,
               command: str | None = None, log_fn=logging.info):
    """Runs or resumes the search in ``workdir`` and writes every output; returns the summary.

    Raises:
      DamagedStoreError: ``WORKDIR/search.db`` is not SQLite, or is truncated or damaged.
      ValueError: 'cannot resume ...' when the stored settings differ from ``config``/``kind``/``seed``.
    """
    db_path = os.path.join(workdir, "search.db")
    check_resume_settings(db_path, config)  # before the data, the workers and TensorFlow's start-up
    from evonorm.search import evolution, plots  # noqa: PLC0415
    from evonorm.search.evaluator import make_problem  # noqa: PLC0415
    from evonorm.search.executor import make_executor  # noqa: PLC0415
    from evonorm.search.progress import ProgressReporter  # noqa: PLC0415

    os.makedirs(workdir, exist_ok=True)
    data_line = _data_line(config)  # fails fast when the data is missing
    log_fn(f"data: {data_line}")
    problem = make_problem(config.evaluator, config.allow_batch_ops, config.max_nodes)
    if kind == "evolution":
        search_config = evolution.EvolutionConfig(
            population_size=config.population_size, tournament_size=config.tournament_size,
            criterion=config.criterion, budget=config.budget, seed=seed, max_seconds=config.max_seconds,
            min_population=config.min_population, distinct_population=config.distinct_population,
            max_redraws=config.max_redraws)
        run = evolution.regularized_evolution
    else:
        search_config = evolution.RandomSearchConfig(budget=config.budget, seed=seed,
                                                     max_seconds=config.max_seconds)
        run = evolution.random_search
    extra = {"address": ray_address} if backend == "ray" and ray_address else {}
    progress = ProgressReporter(budget=config.budget, objectives=problem.objectives, label=kind,
                                interval_s=10.0, log_fn=log_fn)
    start = time.time()
    executor = make_executor(problem.evaluate, backend, config.workers, config.timeout_s, **extra)
    try:
        summary = run(problem, db_path, search_config, executor=executor, progress=progress)
    finally:
        executor.close()
    elapsed = time.time() - start
    log_fn(f"search stopped ({summary.stop_reason}) after {elapsed:.0f}s: {summary.evaluated} evaluated, "
           f"{summary.accepted} accepted, {summary.duplicates} duplicates")
    plots.write_top(db_path, os.path.join(workdir, "top"), config.top_k)
    plots.write_plots(workdir, compare_workdir, threshold=config.evaluator.quality_threshold)
    write_summary(workdir, config, summary, kind=kind, seed=seed, data_line=data_line,
                         machine=machine_description(), command=command, elapsed_s=elapsed)
    if config.rerank_top_k:
        from evonorm.search import rerank  # noqa: PLC0415

        rerank.rerank_workdir(workdir, config, top_k=config.rerank_top_k, steps=config.rerank_steps,
                              seeds=(seed,), log_fn=log_fn,
                              command=f"{command or 'run_search(...)'} (the search's own re-ranking)")
    return summary


def main(argv, flag_values=None):
    """Runs the search the parsed flags describe (``flag_values``: from :func:`define_flags`)."""
    FLAGS = flags.FLAGS if flag_values is None else flag_values  # noqa: N806
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.workdir:
        raise app.UsageError("--workdir is required")
    from evonorm.search.store import DamagedStoreError, check_database  # noqa: PLC0415

    try:
        # First, before the config (whose evaluator imports TensorFlow): a broken file fails in a second.
        check_database(os.path.join(FLAGS.workdir, "search.db"))
    except DamagedStoreError as err:
        logging.error("%s", err)
        sys.exit(2)
    try:
        config = build_config(
            FLAGS.config, budget=FLAGS.budget, max_seconds=FLAGS.max_seconds, workers=FLAGS.workers,
            allow_batch_ops=FLAGS.allow_batch_ops, rerank_top_k=FLAGS.rerank_top_k,
            rerank_steps=FLAGS.rerank_steps, population_size=FLAGS.population_size,
            tournament_size=FLAGS.tournament_size, min_population=FLAGS.min_population,
            distinct_population=FLAGS.distinct_population, max_redraws=FLAGS.max_redraws,
            evaluator__data=FLAGS.data,
            evaluator__data_dir=FLAGS.data_dir, evaluator__quality_steps=FLAGS.quality_steps,
            evaluator__stability_steps=FLAGS.stability_steps,
            evaluator__hurdle_step=FLAGS.quality_hurdle_step)
    except ValueError as err:
        raise app.UsageError(str(err)) from err
    if FLAGS.backend == "ray" and FLAGS.ray_address is None:
        logging.info("--backend=ray without --ray_address: starting a local Ray instance")
    from evonorm.search.evaluator import DataNotAvailableError  # noqa: PLC0415
    from evonorm.data.fashion_mnist import FashionMNISTNotFoundError  # noqa: PLC0415

    command = " ".join(["evonorm-search"] + sys.argv[1:])
    try:
        run_search(config, FLAGS.workdir, FLAGS.kind, FLAGS.seed, FLAGS.backend, FLAGS.ray_address,
                   FLAGS.compare_workdir, command=command)
    except (DataNotAvailableError, FashionMNISTNotFoundError, DamagedStoreError) as err:
        logging.error("%s", err)
        sys.exit(2)
    except ValueError as err:
        if "cannot resume" in str(err):
            logging.error("%s", err)
            sys.exit(2)
        raise


def run():
    """Console-script entry point (``evonorm-search``)."""
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()


__all__ = ["define_flags", "run_search", "build_config", "check_resume_settings", "write_summary",
           "machine_description", "main", "run", "summary_machine"]

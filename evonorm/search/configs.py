"""Layer-search configurations as code: ``tiny`` (CI), ``default`` (2-core laptop), ``paper`` (cluster).

Each config is a :class:`SearchConfig`; ``evonorm-search --config=NAME`` picks one and command-line
flags override single fields (``--budget``, ``--workers``, ...). Times below were measured on this
project's shared 2-core CPU (see ``official/results/search/``).

:meth:`SearchConfig.scoring_settings` names the settings a candidate's outcome depends on; a search
is only resumed with the same ones (``evonorm-search`` stores them in the database).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from evonorm.search.evolution import check_min_population

if TYPE_CHECKING:
    from evonorm.search.evaluator import EvaluatorConfig

# The evaluator module imports TensorFlow (through the proxies); it is imported where a config is
# built, so that importing this module -- and ``evonorm-search`` before it builds its config -- stays
# cheap, and a broken database is reported before TensorFlow's start-up.

__all__ = ["SearchConfig", "CONFIGS", "get_config", "tiny", "default", "seeds", "figure2", "paper", "UNSCORED_EVALUATOR_FIELDS",
           "scoring_defaults"]

# EvaluatorConfig fields that do not change any result: where the data files lie (the data set is
# ``data``, and moved files must still resume) and TensorFlow's threads per worker (speed only, like
# ``workers``).
UNSCORED_EVALUATOR_FIELDS = ("data_dir", "threads")
# SearchConfig fields beside the evaluator's that decide outcomes: ``allow_batch_ops`` rejects
# candidates ('batch_ops') and both it and ``max_nodes`` change the graphs proposed.
_SCORED_SEARCH_FIELDS = ("allow_batch_ops", "max_nodes")


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """One search: the evaluation protocol, the evolution settings and the outputs.

    Attributes:
      name: config name (recorded in the summary).
      evaluator: proxies, data and the two rejection tests (:class:`EvaluatorConfig`).
      budget: evaluated candidates in total (cheaply filtered ones count, duplicates do not).
      max_seconds: optional wall-time limit of one run (None: until the budget is spent).
      population_size, tournament_size, criterion: regularized evolution (Sec. 4.1, 4.3).
      min_population: accepted candidates before tournaments start (None: population_size); see
        :mod:`evonorm.search.evolution`.
      distinct_population, max_redraws: the population rule of :mod:`evonorm.search.evolution` (a copy of
        a living member never takes a window place; a mutation that leaves the function unchanged is
        redrawn up to ``max_redraws`` times). ``False`` / ``0``: the rule of the runs stored before it.
      workers: parallel evaluations (None: one per core for 'local').
      timeout_s: per-candidate wall-time limit; a hung evaluation is rejected as 'timeout'.
      allow_batch_ops: False runs the S-series search (no batch aggregations).
      max_nodes: intermediate nodes per graph (paper: 10).
      top_k: candidates exported to ``top/`` and plotted.
      rerank_top_k: candidates re-trained by :mod:`evonorm.search.rerank` (0: no re-ranking).
      rerank_steps: training steps of the re-ranking runs.
    """

    name: str
    evaluator: EvaluatorConfig
    budget: int
    max_seconds: float | None = None
    population_size: int = 100
    tournament_size: int = 25
    criterion: str = "pareto"
    min_population: int | None = None
    distinct_population: bool = True
    max_redraws: int = 50
    workers: int | None = None
    timeout_s: float | None = 600.0
    allow_batch_ops: bool = True
    max_nodes: int = 10
    top_k: int = 10
    rerank_top_k: int = 0
    rerank_steps: int = 1000

    def __post_init__(self):
        check_min_population(self.min_population, self.population_size)

    def scoring_settings(self) -> dict[str, Any]:
        """The settings the stored results of a search depend on, checked when it is resumed.

        Every :class:`~evonorm.search.evaluator.EvaluatorConfig` field except
        :data:`UNSCORED_EVALUATOR_FIELDS`: the proxies (``archs``), the data and its split
        (``data``, ``validation_size``, ``val_examples``), the quality test's training and threshold,
        the stability test, ``short_circuit`` (whether failed candidates still train the later proxies,
        whose accuracies Figures 2-3 draw) and ``group_size``; plus ``allow_batch_ops`` and ``max_nodes``.
        The evolution settings (seed, population, ...) are checked by
        :mod:`evonorm.search.evolution`; budget, time limit, workers, timeout and outputs may change.
        """
        settings = {f.name: getattr(self.evaluator, f.name) for f in dataclasses.fields(self.evaluator)
                    if f.name not in UNSCORED_EVALUATOR_FIELDS}
        settings.update({name: getattr(self, name) for name in _SCORED_SEARCH_FIELDS})
        return settings

    def replace(self, **changes) -> "SearchConfig":
        """A copy with some fields (or ``evaluator`` fields, given as ``evaluator__<field>``) changed."""
        ev = {k.split("__", 1)[1]: v for k, v in changes.items() if k.startswith("evaluator__")}
        top = {k: v for k, v in changes.items() if not k.startswith("evaluator__")}
        unknown = set(top) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown SearchConfig fields {sorted(unknown)}")
        config = dataclasses.replace(self, **top)
        if ev:
            config = dataclasses.replace(config, evaluator=dataclasses.replace(config.evaluator, **ev))
        return config


def tiny() -> SearchConfig:
    """CI-sized end-to-end run: one tiny ResNet-8 proxy (width 0.25: 4/8/16 channels), 10 training
    steps at batch 32, 5 ascent steps, 256 validation images, 40 candidates, population 4.

    Command: ``evonorm-search --config=tiny --workdir=/tmp/search_tiny`` (about 1 minute on 2 cores,
    mostly TensorFlow start-up in the 2 workers).
    """
    from evonorm.search.evaluator import EvaluatorConfig  # noqa: PLC0415

    return SearchConfig(
        name="tiny",
        evaluator=EvaluatorConfig(archs=(("resnet", 0.25, None),), batch_size=32, quality_steps=30,
                                  stability_steps=5, stability_batch=8, val_examples=256),
        budget=40, population_size=4, tournament_size=2, top_k=5, timeout_s=300.0, rerank_steps=50)


def default() -> SearchConfig:
    """A 2-core laptop search: the three proxies at half width (ResNet-8 8/16/32 channels; mobile
    nets 8-40 channels), the paper's 100 training steps at batch 128 and 100 ascent steps, 2000
    validation images; Pareto criterion, tournament 6 on a window of up to 30 accepted layers;
    mutations start once 2 are accepted (about 0.6% of random graphs pass rejection here, so a
    window filled at random first would take the whole 2 h; 2 random layers take ~20 min of one
    core); at most 2 hours.

    Command: ``evonorm-search --config=default --workdir=runs/search`` (<= 2 h: ``max_seconds=7200``;
    a candidate passing all tests costs ~60-80 s of one core, a filtered one ~1 ms).
    """
    from evonorm.search.evaluator import EvaluatorConfig  # noqa: PLC0415

    return SearchConfig(
        name="default",
        evaluator=EvaluatorConfig(archs=(("resnet", 0.5, None), ("mobilenetv2", 0.5, None),
                                         ("efficientnet", 0.5, None)), val_examples=2000),
        budget=5000, max_seconds=7200.0, population_size=30, min_population=2, tournament_size=6,
        rerank_top_k=5,
        rerank_steps=1000)


def seeds() -> SearchConfig:
    """The multi-seed study's search, sized so that 3 seeds x 2 arms x 2 series fit one session of
    the 2-core machine: ``default``'s protocol (100 training steps at batch 128, 100 ascent steps,
    2000 validation images, population 30, tournament 6, mutations from 2 accepted layers) on the
    ResNet proxy alone, the gate that rejects about 95% of the candidates that reach TensorFlow in
    the stored ``default`` runs, and 250 evaluated candidates. Found layers are then re-ranked on all
    three proxies (:mod:`evonorm.search.rerank`).

    Command: ``python scripts/search_seeds.py --workdir=runs/seeds`` (every run with both cores, arms
    in turn; measured 2-25 min per run of 150-250 candidates, most on S-series runs, whose more
    frequent passes cost quality tests, and on a machine shared with other jobs).
    """
    from evonorm.search.evaluator import EvaluatorConfig  # noqa: PLC0415

    return SearchConfig(
        name="seeds",
        evaluator=EvaluatorConfig(archs=(("resnet", 0.5, None),), val_examples=2000),
        budget=250, max_seconds=1500.0, population_size=30, min_population=2, tournament_size=6,
        workers=2, top_k=5)


def figure2() -> SearchConfig:
    """Figure 2 of the paper: random layers plugged into the three ``default`` proxies. The
    ``default`` protocol without its short circuit, so every layer that reaches TensorFlow is trained
    and scored on all three proxies whatever its stability result; the paper's 5,000 samples; no
    re-ranking. Layers the NumPy filters reject (constant output, no per-image information,
    non-finite values) are counted but not trained: their accuracy is at chance by construction.

    Command: ``evonorm-search --config=figure2 --kind=random --workdir=runs/figure2`` (resumable: the
    same command continues a stopped run). Measured cost (2026-12-03, AMD EPYC 2 cores): 25% of the
    sampled layers reach TensorFlow, and such a layer costs about 40 s of one core on all three
    proxies (many diverge or blow up early), so 5,000 samples take about 13-14 core-hours (about 7 h
    on 2 cores); ``max_seconds`` stops a run earlier and a rerun resumes it. Then
    ``python -m evonorm.search.figure2 --workdir=runs/figure2 --jobs=2`` reports it.
    """
    base = default()
    return dataclasses.replace(base, name="figure2", evaluator=dataclasses.replace(base.evaluator, short_circuit=False),
                               budget=5000, max_seconds=None, rerank_top_k=0)


def paper() -> SearchConfig:
    """Paper-sized search for clusters: three full-width proxies (module :mod:`evonorm.search.proxy`),
    100 steps at batch 128, 100 ascent steps, the whole 10k validation split; the shared paper text
    does not include Appendix C, so the population (2500), tournament (25) and budget (20000
    evaluated candidates) are this project's choice at the paper's scale (5000 workers, 2 days).

    Command: ``evonorm-search --config=paper --backend=ray --ray_address=auto --workdir=gs://...``
    (days of CPU time; not meant for a laptop). Use ``--data=cifar10`` with a prepared TFDS copy to
    search on the paper's data.
    """
    from evonorm.search.evaluator import EvaluatorConfig  # noqa: PLC0415

    return SearchConfig(
        name="paper",
        evaluator=EvaluatorConfig(val_examples=0),
        budget=20000, population_size=2500, tournament_size=25, timeout_s=1800.0, rerank_top_k=10,
        rerank_steps=5000)


CONFIGS = {"tiny": tiny, "default": default, "seeds": seeds, "figure2": figure2, "paper": paper}


def scoring_defaults() -> dict[str, Any]:
    """The class defaults of the :meth:`SearchConfig.scoring_settings` fields.

    They stand for fields a database written before the field existed did not store (that code
    behaved as the default does).
    """
    from evonorm.search.evaluator import EvaluatorConfig  # noqa: PLC0415

    fields = [f for f in dataclasses.fields(EvaluatorConfig) if f.name not in UNSCORED_EVALUATOR_FIELDS]
    fields += [f for f in dataclasses.fields(SearchConfig) if f.name in _SCORED_SEARCH_FIELDS]
    return {f.name: f.default for f in fields if f.default is not dataclasses.MISSING}


def get_config(name: str) -> SearchConfig:
    """The named config; ValueError listing the names otherwise."""
    if name not in CONFIGS:
        raise ValueError(f"unknown search config {name!r}; expected one of {sorted(CONFIGS)}")
    return CONFIGS[name]()

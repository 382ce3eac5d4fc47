"""Small-scale reproduction of the paper's classification studies on real Fashion-MNIST, on a CPU.

Three suites, each a grid of independent training runs ("cells"), every cell one
``(architecture, layer, batch size, seed)``:

* ``layers`` -- paper Tables 3/4 (left) in miniature: the batch-dependent and batch-independent layers
  on the three anchor families of the search (:mod:`evonorm.search.proxy`: pre-activation ResNet-8,
  MobileNetV2-style and EfficientNet-style MBConv+SE networks), every norm-act position replaced.
* ``batch`` -- paper Table 4 (right): BN-ReLU, GN-ReLU and EvoNorm-S0 on the ResNet proxy as the batch
  shrinks, with the learning rate scaled linearly with the batch (Goyal et al.) and the same number of
  training images seen at every batch size, as the paper keeps the epochs fixed.
* ``ablation`` -- paper Table 7: EvoNorm-B0 and its four structural modifications on the ResNet proxy.

Every finished cell is written to ``WORKDIR/cells/`` at once (atomically), keyed by all settings that
change its result; a rerun skips finished cells, so a killed run resumes and loses only the cells in
flight. ``--jobs`` runs cells in parallel processes, each with ``cores // jobs`` TensorFlow threads;
results do not depend on it beyond float summation order.

Command (``python scripts/reproduce.py``; what ran and how long is in ``official/results/``)::

    python scripts/reproduce.py --suites=layers,batch,ablation --seeds=0,1,2 --jobs=2 \
        --workdir=runs/reproduce

This is what it says: a few thousand SGD steps of networks with 10^4-10^5 parameters on 28x28
grayscale images. It checks the paper's qualitative claims at a scale a laptop can run; it does not
reproduce the ImageNet numbers (``official/README.md`` has the commands that would).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

from evonorm._process import die_with_parent
from evonorm.data import fashion_mnist

ARCHS = ("resnet", "mobilenetv2", "efficientnet")
REFERENCE_BATCH = 128


@dataclasses.dataclass(frozen=True)
class Suite:
    """One study: its cells are the product archs x layers x batch_sizes x seeds."""

    name: str
    title: str
    paper: str
    archs: tuple
    layers: tuple
    batch_sizes: tuple = (REFERENCE_BATCH,)


SUITES = {
    "layers": Suite(
        "layers", "Layers across three architectures", "Tables 3 and 4 (left)", ARCHS,
        ("bn_relu", "bn_silu", "gn_relu", "frn", "evonorm_b0", "evonorm_s0")),
    "batch": Suite(
        "batch", "Batch-size sweep, learning rate scaled linearly", "Table 4 (right)", ("resnet",),
        ("bn_relu", "gn_relu", "evonorm_s0"), (128, 16, 4)),
    "ablation": Suite(
        "ablation", "Structural modifications of EvoNorm-B0", "Table 7", ("resnet",),
        ("evonorm_b0", "evonorm_b0_no_v1x", "evonorm_b0_no_local", "evonorm_b0_no_global",
         "evonorm_b0_max_to_add")),
}


@dataclasses.dataclass
class ReproConfig:
    """Settings shared by every cell of a run.

    Attributes:
      suites: names from ``SUITES``.
      seeds: one run per seed and cell (initialization, data order and augmentation).
      examples: training images seen per run, at every batch size (steps = examples // batch).
      base_lr: peak learning rate at batch ``REFERENCE_BATCH``; ``lr = base_lr * batch / 128``.
      weight_decay: L2 on convolution and dense kernels (never on norm-act variables).
      warmup_fraction: linear warmup, as a fraction of the steps; then cosine decay to zero.
      width: channel multiplier of the proxies (1.0: the sizes of ``evonorm.search.proxy``).
      group_size: channels per group of grouped layers (GN, the S series); 4 gives 4..32 groups on
        the proxies' 16..128 channels.
      eval_examples: evaluate on the first N test images (0: all 10,000).
      jobs: cells trained in parallel processes (0: one per CPU core).
      workdir: where ``cells/`` and the results files go.
      data_dir: Fashion-MNIST IDX directory (default: ``$EVONORM_FASHION_MNIST_DIR`` or Debian's).
    """

    suites: tuple = ("layers", "batch", "ablation")
    seeds: tuple = (0, 1, 2)
    examples: int = 25_600
    base_lr: float = 0.1
    weight_decay: float = 5e-4
    warmup_fraction: float = 0.05
    width: float = 1.0
    group_size: int = 4
    eval_examples: int = 0
    jobs: int = 1
    workdir: str = "runs/reproduce"
    data_dir: str | None = None

    def validate(self) -> None:
        """Raises ``ValueError`` naming the first bad setting, before any training."""
        unknown = [s for s in self.suites if s not in SUITES]
        if not self.suites or unknown:
            raise ValueError(f"unknown suite(s) {unknown or list(self.suites)}; known: {sorted(SUITES)}.")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be a non-empty list without duplicates, got {list(self.seeds)}.")
        smallest = min(b for s in self.suites for b in SUITES[s].batch_sizes)
        if self.examples < smallest * 10:
            raise ValueError(f"examples={self.examples} gives fewer than 10 steps at batch {smallest}.")
        for name in ("base_lr", "width", "group_size"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}.")
        for name in ("weight_decay", "eval_examples", "jobs"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}.")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction!r}.")


# Revision of each proxy's meaning, for ``Cell.key``. 2 (mobile proxies): registry EvoNorms are the
# affine transform at the MBConv projections (official/results/reproduce/b0_efficientnet.md).
PROXY_REVISION = {"resnet": 1, "mobilenetv2": 2, "efficientnet": 2}


@dataclasses.dataclass(frozen=True)
class Cell:
    """One training run, with every setting that changes its result."""

    arch: str
    layer: str
    batch_size: int
    seed: int
    steps: int
    lr: float
    weight_decay: float
    warmup_steps: int
    width: float
    group_size: int
    eval_examples: int

    def key(self) -> str:
        """File name of this cell's result; two cells share it only if every setting is equal.

        Cells whose proxy changed meaning carry a revision suffix (``PROXY_REVISION``), so a resumed
        workdir retrains them instead of reusing results of the old proxy.
        """
        key = (f"{self.arch}_{self.layer}_b{self.batch_size}_s{self.seed}_n{self.steps}_lr{self.lr:g}"
               f"_wd{self.weight_decay:g}_wu{self.warmup_steps}_w{self.width:g}_g{self.group_size}"
               f"_e{self.eval_examples}")
        revision = PROXY_REVISION.get(self.arch, 1)
        return key if revision == 1 else f"{key}_p{revision}"


def cells(config: ReproConfig) -> list:
    """Every distinct cell of the configured suites (a cell shared by two suites is run once)."""
    out, seen = [], set()
    for suite_name in config.suites:
        suite = SUITES[suite_name]
        for arch in suite.archs:
            for layer in suite.layers:
                for batch in suite.batch_sizes:
                    steps = config.examples // batch
                    for seed in config.seeds:
                        cell = Cell(arch=arch, layer=layer, batch_size=batch, seed=seed, steps=steps,
                                    lr=config.base_lr * batch / REFERENCE_BATCH,
                                    weight_decay=config.weight_decay,
                                    warmup_steps=int(config.warmup_fraction * steps), width=config.width,
                                    group_size=config.group_size, eval_examples=config.eval_examples)
                        if cell not in seen:
                            seen.add(cell)
                            out.append(cell)
    return out


def cell_path(workdir: str, cell: Cell) -> str:
    return os.path.join(workdir, "cells", cell.key() + ".json")


def load_cell(workdir: str, cell: Cell):
    """The saved result of ``cell``, or None (never run, or a file a killed run left half-written)."""
    try:
        with open(cell_path(workdir, cell), encoding="utf-8") as f:
            saved = json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
    return saved if saved.get("cell") == dataclasses.asdict(cell) else None


def save_cell(workdir: str, result: dict) -> None:
    path = cell_path(workdir, Cell(**result["cell"]))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, path)


_DATA = {}  # per process: the arrays, loaded once


def _data(data_dir):
    if data_dir not in _DATA:
        _DATA[data_dir] = fashion_mnist.load(data_dir)
    return _DATA[data_dir]


def train_cell(cell: Cell, data_dir: str | None = None) -> dict:
    """Trains one cell from scratch and evaluates it on the test set; returns its result record."""
    import tf_keras  # noqa: PLC0415 - TensorFlow only once the data is known to be there

    from evonorm.experiments import training  # noqa: PLC0415
    from evonorm.search.proxy import ProxySpec, build_proxy, norm_act_factory  # noqa: PLC0415

    (x_train, y_train), (x_test, y_test) = _data(data_dir)
    if cell.eval_examples:
        x_test, y_test = x_test[:cell.eval_examples], y_test[:cell.eval_examples]
    tf_keras.backend.clear_session()
    tf_keras.utils.set_random_seed(cell.seed)
    model = build_proxy(ProxySpec(cell.arch, cell.width), factory=norm_act_factory(cell.layer, cell.group_size),
                        input_shape=x_train.shape[1:], num_classes=fashion_mnist.NUM_CLASSES)
    train_ds = fashion_mnist.make_dataset(x_train, y_train, cell.batch_size, training=True, seed=cell.seed)
    test_ds = fashion_mnist.make_dataset(x_test, y_test, 1000)
    history = training.train(model, train_ds, training.TrainConfig(
        steps=cell.steps, base_lr=cell.lr, weight_decay=cell.weight_decay, warmup_steps=cell.warmup_steps,
        schedule="cosine", log_every=max(1, cell.steps // 10)), eval_data=test_ds)
    return {"cell": dataclasses.asdict(cell), "test_acc": history.final_eval_acc,
            "test_loss": history.final_eval_loss, "train_loss": history.final_train_loss,
            "diverged": history.diverged, "diverged_at": history.diverged_at,
            "steps_per_sec": history.steps_per_sec, "wall_time_s": history.wall_time_s,
            "params": int(model.count_params())}


def _init_worker(threads: int, parent_pid: int) -> None:
    die_with_parent(parent_pid)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf  # noqa: PLC0415

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def run(config: ReproConfig, command: str = "", log=None) -> dict:
    """Runs (or resumes) every cell of ``config`` and writes the results files.

    Returns:
      The summary written to ``results.json``.

    Raises:
      ValueError: for a bad setting (before any training).
      fashion_mnist.FashionMNISTNotFoundError: the data is not installed (the message says how).
    """
    from evonorm.experiments import reproduction_report  # noqa: PLC0415

    log = log or (lambda msg: print(msg, flush=True))
    start = time.perf_counter()
    config.validate()
    (x_train, _), (x_test, _) = _data(config.data_dir)  # fail fast on missing data, before TensorFlow
    todo_all = cells(config)
    todo = [c for c in todo_all if load_cell(config.workdir, c) is None]
    log(f"Fashion-MNIST from {fashion_mnist.data_dir(config.data_dir)}: {len(x_train)} train, "
        f"{len(x_test)} test images; suites {', '.join(config.suites)}: {len(todo_all)} cells, "
        f"{len(todo_all) - len(todo)} already finished in {config.workdir}")
    jobs = config.jobs or os.cpu_count() or 1
    for finished, result in enumerate(_map(todo, config, jobs), start=1):
        save_cell(config.workdir, result)
        eta = (time.perf_counter() - start) / finished * (len(todo) - finished)
        c = result["cell"]
        acc = "diverged" if result["diverged"] else f"{result['test_acc']:.4f}"
        log(f"[{finished}/{len(todo)}] {c['arch']:<12} {c['layer']:<22} batch {c['batch_size']:>3} seed "
            f"{c['seed']}: test acc {acc}  ({result['wall_time_s']:.0f} s; ETA {eta / 60:.1f} min)")
    results = [load_cell(config.workdir, c) for c in todo_all]
    summary = reproduction_report.summarize(config, results, command=command,
                                            wall_time_s=time.perf_counter() - start)
    reproduction_report.write_all(config.workdir, summary)
    log(f"wrote {', '.join(reproduction_report.outputs(config.suites))} to {config.workdir}")
    return summary


def _map(todo, config: ReproConfig, jobs: int):
    """Yields cell results as they finish: in this process for one job, else in a spawn pool."""
    if jobs <= 1 or len(todo) <= 1:
        for cell in todo:
            yield train_cell(cell, config.data_dir)
        return
    import multiprocessing  # noqa: PLC0415
    from concurrent import futures  # noqa: PLC0415

    threads = max(1, (os.cpu_count() or 1) // jobs)
    # spawn: a forked TensorFlow runtime is not safe to use in the child. Workers start on the first
    # submits, from this (main) thread, and live for the whole run (see evonorm._process.die_with_parent).
    pool = futures.ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_init_worker, initargs=(threads, os.getpid()))
    try:
        pending = [pool.submit(train_cell, cell, config.data_dir) for cell in todo]
        for future in futures.as_completed(pending):
            yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)

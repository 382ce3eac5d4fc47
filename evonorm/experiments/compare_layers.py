"""The main job: BN-ReLU, GN-ReLU, EvoNorm-B0 and EvoNorm-S0 side by side on real Fashion-MNIST, offline.

Each layer trains the same pre-activation ResNet-8 (same seed, same initialization stream, same data
order) for the same number of SGD steps and is evaluated on the full 10,000-image test set. Results go
to ``--workdir``: ``results.json``, ``results.md`` (table plus data, machine, command, seed, steps) and
``accuracy.png`` (test accuracy against step). Each finished layer is saved at once under
``layers/``; a rerun with the same flags skips it, so an interrupted run resumes where it stopped.

Command (``make demo`` runs the default, 8-15 minutes on 2 CPU cores: 7.8 and 14.7 min measured on two machines)::

    python scripts/compare_layers.py --workdir runs/compare_layers

This is a small-scale sanity comparison, not the paper's ImageNet result (Table 3): a few epochs of a
tiny network on 28x28 grayscale images, one seed. Differences of a few tenths of a percent are noise.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time

from evonorm.data import fashion_mnist
from evonorm.experiments import report

DEFAULT_LAYERS = ("bn_relu", "gn_relu", "evonorm_b0", "evonorm_s0")
# 1000 steps of batch 128 (2.1 epochs) for the 4 layers: 8-15 min on 2 cores (official/results/).
DEFAULT_STEPS = 1000


class ConfigError(ValueError):
    """A setting of ``CompareConfig`` is invalid (reported as a usage error on the command line)."""


@dataclasses.dataclass
class CompareConfig:
    """Settings of one comparison; every field but ``workdir``/``data_dir`` keys the resume cache."""

    layers: tuple = DEFAULT_LAYERS
    steps: int = DEFAULT_STEPS
    batch_size: int = 128
    depth: int = 8
    width: int = 16
    # Channel groups of grouped layers (GN, S series): 16/32/64 channels -> 2/4/8 per group. The layers'
    # own default (up to 32 groups) would make the 16-channel stage an instance norm (1 per group).
    groups: int | None = 8
    seed: int = 0
    eval_every: int = 200
    eval_examples: int = 0  # 0: the full 10,000-image test set
    base_lr: float = 0.1
    weight_decay: float = 5e-4
    warmup_fraction: float = 0.05
    augment: bool = True
    log_every: int = 50
    workdir: str = "runs/compare_layers"
    data_dir: str | None = None

    def validate(self) -> list:
        """Checks the settings before any training; returns the canonical layer names.

        Raises:
          ConfigError: naming the first bad setting.
        """
        try:
            return self._validate()
        except ConfigError:
            raise
        except ValueError as err:  # from the registry or the ResNet depth rule
            raise ConfigError(str(err)) from err

    def _validate(self) -> list:
        from evonorm.layers.registry import canonical_name  # noqa: PLC0415 - imports TensorFlow
        from evonorm.vision.cifar_resnet import blocks_per_stage  # noqa: PLC0415

        layers = [canonical_name(name) for name in self.layers]
        if not layers or len(set(layers)) != len(layers):
            raise ConfigError(f"layers must be a non-empty list without duplicates, got {list(self.layers)}.")
        blocks_per_stage(self.depth)
        for name in ("steps", "batch_size", "width", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)!r}.")
        for name in ("eval_every", "eval_examples"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)!r}.")
        if self.groups is not None and self.width % self.groups:
            raise ConfigError(f"groups={self.groups} must divide the width {self.width} "
                              f"(and so every stage).")
        return layers

    def resume_key(self) -> dict:
        """The settings a finished layer must share with this run to be reused."""
        key = dataclasses.asdict(self)
        for field in ("layers", "workdir", "data_dir", "log_every"):
            key.pop(field)
        return key


def _fmt_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}m{seconds % 60:02d}s"


def _load_average():
    """The 1-minute system load average (None where the OS does not report one)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _layer_path(config: CompareConfig, layer: str) -> str:
    return os.path.join(config.workdir, "layers", f"{layer}.json")


def _load_finished(config: CompareConfig, layer: str):
    path = _layer_path(config, layer)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
    except (OSError, json.JSONDecodeError):
        return None  # a half-written file from a killed run: train again
    return saved["result"] if saved.get("key") == config.resume_key() else None


def _save_finished(config: CompareConfig, layer: str, result: dict) -> None:
    path = _layer_path(config, layer)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"key": config.resume_key(), "result": result}, f, indent=1)
    os.replace(tmp, path)  # atomic: a crash never leaves a truncated result behind


def train_layer(layer: str, config: CompareConfig, data, log, eta_after=lambda rate: 0.0) -> dict:
    """Trains and evaluates the ResNet with one norm-act layer; returns its result record."""
    import tf_keras  # noqa: PLC0415 - TensorFlow only once the data is known to be there

    from evonorm.experiments import training  # noqa: PLC0415
    from evonorm.vision.cifar_resnet import build_preact_resnet  # noqa: PLC0415

    (x_train, y_train), (x_test, y_test) = data
    tf_keras.backend.clear_session()
    tf_keras.utils.set_random_seed(config.seed)  # same initialization stream for every layer
    model = build_preact_resnet(depth=config.depth, norm_act=layer, input_shape=x_train.shape[1:],
                                num_classes=fashion_mnist.NUM_CLASSES, width=config.width,
                                **({"groups": config.groups} if config.groups else {}))
    train_ds = fashion_mnist.make_dataset(x_train, y_train, config.batch_size, training=True,
                                          seed=config.seed, augment=config.augment)
    test_ds = fashion_mnist.make_dataset(x_test, y_test, 1000)
    train_config = training.TrainConfig(
        steps=config.steps, base_lr=config.base_lr, weight_decay=config.weight_decay,
        warmup_steps=int(config.warmup_fraction * config.steps), schedule="cosine",
        eval_every=config.eval_every, log_every=config.log_every)

    loads = []  # the machine may be shared: record how busy it was, next to each layer's speed

    def on_log(rec):
        loads.append(_load_average())
        rate = rec["steps_per_sec"]
        left = (config.steps - rec["step"]) / rate if rate else 0.0
        rate_text = f"{rate:5.1f} steps/s" if rate else "  tracing"
        log(f"  {layer:<12} step {rec['step']:>5}/{config.steps}  loss {rec['loss']:.4f}  "
            f"train acc {rec['train_acc']:.3f}  {rate_text}  ETA layer {_fmt_duration(left)}, "
            f"all ~{_fmt_duration(left + eta_after(rate))}")

    def on_eval(rec):
        log(f"  {layer:<12} step {rec['step']:>5}  test acc {rec['eval_acc']:.4f} "
            f"({len(x_test)} images)")

    history = training.train(model, train_ds, train_config, eval_data=test_ds, on_log=on_log,
                             on_eval=on_eval)
    if history.diverged:
        log(f"  {layer}: DIVERGED (non-finite loss) at step {history.diverged_at}")
    return {"layer": layer, "test_acc": history.final_eval_acc, "test_loss": history.final_eval_loss,
            "train_loss": history.final_train_loss, "train_acc": history.final_train_acc,
            "steps_per_sec": history.steps_per_sec, "wall_time_s": history.wall_time_s,
            "diverged": history.diverged, "diverged_at": history.diverged_at,
            "completed_steps": history.completed_steps, "params": int(model.count_params()),
            "load_avg": sum(loads) / len(loads) if loads and None not in loads else None,
            "evals": history.evals, "log": history.log}


def run(config: CompareConfig, command: str = "", log=None) -> dict:
    """Runs (or resumes) the comparison and writes the results files.

    Args:
      config: the ``CompareConfig``.
      command: the command line, recorded in the results.
      log: a ``print``-like callable for progress lines (default: print, flushed).

    Returns:
      The dict written to ``results.json``.

    Raises:
      fashion_mnist.FashionMNISTNotFoundError: the data is not installed (the message says how).
    """
    log = log or (lambda msg: print(msg, flush=True))
    start = time.perf_counter()
    # The data first: when it is missing, say so before the slow TensorFlow import.
    train, test = fashion_mnist.load(config.data_dir)
    layers = config.validate()
    if config.eval_examples:
        test = (test[0][:config.eval_examples], test[1][:config.eval_examples])
    data_path = fashion_mnist.data_dir(config.data_dir)
    log(f"Fashion-MNIST from {data_path}: {len(train[0])} train, {len(test[0])} test images; "
        f"pre-act ResNet-{config.depth}, batch {config.batch_size}, {config.steps} steps, seed {config.seed}")

    results, rates = [], []
    for index, layer in enumerate(layers):
        finished = _load_finished(config, layer)
        if finished is not None:
            log(f"[{index + 1}/{len(layers)}] {layer}: skipped, finished result with the same flags in "
                f"{_layer_path(config, layer)}")
            results.append(finished)
            continue
        log(f"[{index + 1}/{len(layers)}] {layer}: training")
        remaining = sum(_load_finished(config, other) is None for other in layers[index + 1:])

        def eta_after(rate, remaining=remaining):
            # Later layers run at a different speed; the mean rate seen so far is the best guess.
            guess = sum(rates + [rate]) / (len(rates) + 1) if rate else 0.0
            return remaining * config.steps / guess if guess else 0.0

        result = train_layer(layer, config, (train, test), log, eta_after)
        if result["steps_per_sec"]:
            rates.append(result["steps_per_sec"])
        _save_finished(config, layer, result)
        results.append(result)
        acc = "diverged" if result["diverged"] else f"{result['test_acc']:.4f}"
        log(f"[{index + 1}/{len(layers)}] {layer}: test acc {acc}, {_fmt_duration(result['wall_time_s'])}")

    summary = {
        "config": dataclasses.asdict(config),
        "data": {"name": "Fashion-MNIST (Xiao et al. 2017), real IDX files", "path": data_path,
                 "train_examples": int(len(train[0])), "test_examples": int(len(test[0]))},
        "machine": report.machine_description(),
        "command": command,
        "results": results,
        "total_wall_time_s": time.perf_counter() - start,
    }
    report.write_all(config.workdir, summary)
    log("\n" + report.table(results))
    log(f"\nwrote {', '.join(report.OUTPUTS)} to {config.workdir} "
        f"(this run: {_fmt_duration(summary['total_wall_time_s'])})")
    return summary


def define_flags(flag_values=None):
    """Defines this job's command-line flags (once) on ``flag_values`` (default: absl's global FLAGS)."""
    from absl import flags  # noqa: PLC0415

    fv = flags.FLAGS if flag_values is None else flag_values  # an empty FlagValues is falsy
    if "steps" in fv and "eval_examples" in fv:
        return fv
    d = CompareConfig()
    flags.DEFINE_list("layers", list(d.layers), "Norm-act layers to compare (registry names).",
                      flag_values=fv)
    flags.DEFINE_integer("steps", d.steps, "SGD steps per layer.", flag_values=fv)
    flags.DEFINE_integer("batch_size", d.batch_size, "Training batch size.", flag_values=fv)
    flags.DEFINE_integer("depth", d.depth, "ResNet depth, 6n+2 (8, 14, 20...).", flag_values=fv)
    flags.DEFINE_integer("seed", d.seed, "Initialization and data-order seed.", flag_values=fv)
    flags.DEFINE_string("workdir", d.workdir, "Output directory (results and resume cache).", flag_values=fv)
    flags.DEFINE_string("data_dir", None, f"Fashion-MNIST IDX directory (default ${fashion_mnist.ENV_VAR} "
                        f"or {fashion_mnist.DEFAULT_DIR}).", flag_values=fv)
    flags.DEFINE_integer("eval_every", d.eval_every, "Evaluate on the test set every this many steps "
                         "(0: only at the end).", flag_values=fv)
    flags.DEFINE_integer("eval_examples", 0, "Evaluate on the first N test images only (0: all 10,000).",
                         flag_values=fv)
    flags.DEFINE_integer("groups", d.groups, "Channel groups of GN and S-series layers (0: each layer's "
                         "own default).", flag_values=fv)
    flags.DEFINE_float("base_lr", d.base_lr, "Peak learning rate (cosine decay, 5% warmup).", flag_values=fv)
    flags.DEFINE_float("weight_decay", d.weight_decay, "L2 on conv/dense kernels.", flag_values=fv)
    return fv


def main(argv, flag_values=None):
    """absl entry point (``scripts/compare_layers.py``).

    Missing or corrupt data exits with status 1 and a one-paragraph message; a bad flag is an absl
    ``UsageError`` (status 1, no traceback).

    Args:
      argv: remaining command-line arguments (none expected).
      flag_values: parsed flags from ``define_flags`` (default: absl's global FLAGS).
    """
    from absl import app, flags  # noqa: PLC0415

    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    fv = flags.FLAGS if flag_values is None else flag_values  # an empty FlagValues is falsy
    config = CompareConfig(layers=tuple(fv.layers), steps=fv.steps, batch_size=fv.batch_size, depth=fv.depth,
                           seed=fv.seed, workdir=fv.workdir, data_dir=fv.data_dir, eval_every=fv.eval_every,
                           eval_examples=fv.eval_examples, groups=fv.groups or None, base_lr=fv.base_lr,
                           weight_decay=fv.weight_decay)
    command = " ".join(["python"] + sys.argv)
    try:
        run(config, command=command)
    except ConfigError as err:
        raise app.UsageError(str(err)) from err
    except (fashion_mnist.FashionMNISTNotFoundError, fashion_mnist.FashionMNISTFormatError) as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(1)

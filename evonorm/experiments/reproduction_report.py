"""Results files of the small-scale reproduction: ``results.json``, ``results.md`` and one plot per suite.

Cells are aggregated over seeds as mean and sample standard deviation of the test accuracy. A run that
diverged (non-finite loss) counts as chance accuracy (10%) in the mean, as the paper reports a crashed
run at its accuracy when the NaN occurred; the tables say how many runs diverged.
"""

from __future__ import annotations

import dataclasses
import os
import statistics

from evonorm.experiments import report

CHANCE = 0.1
ARCH_NAMES = {"resnet": "ResNet-8 (pre-act)", "mobilenetv2": "MobileNetV2-style",
              "efficientnet": "EfficientNet-style"}


def outputs(suites) -> list:
    """The files ``write_all`` writes for a run of ``suites``."""
    return ["results.json", "results.md"] + [f"{name}.png" for name in suites]


def aggregate(results) -> dict:
    """{(arch, layer, batch): {mean, std, n, diverged, accs, steps, sec_per_run}} over seeds."""
    groups = {}
    for r in results:
        c = r["cell"]
        groups.setdefault((c["arch"], c["layer"], c["batch_size"]), []).append(r)
    out = {}
    for key, runs in groups.items():
        accs = [CHANCE if r["diverged"] or r["test_acc"] is None else r["test_acc"] for r in runs]
        out[key] = {"mean": statistics.fmean(accs), "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                    "n": len(accs), "diverged": sum(bool(r["diverged"]) for r in runs), "accs": accs,
                    "steps": runs[0]["cell"]["steps"], "lr": runs[0]["cell"]["lr"],
                    "sec_per_run": statistics.fmean(r["wall_time_s"] for r in runs),
                    "params": runs[0]["params"]}
    return out


def summarize(config, results, command: str = "", wall_time_s: float = 0.0) -> dict:
    """The dict written to ``results.json``: config, data, machine, command, cells and aggregates."""
    from evonorm.data import fashion_mnist  # noqa: PLC0415
    from evonorm.experiments.reproduction import SUITES  # noqa: PLC0415

    agg = aggregate(results)
    return {
        "config": dataclasses.asdict(config),
        "suites": {name: dataclasses.asdict(SUITES[name]) for name in config.suites},
        "data": {"name": "Fashion-MNIST (Xiao et al. 2017), real IDX files",
                 "path": fashion_mnist.data_dir(config.data_dir),
                 "test_examples": config.eval_examples or 10000},
        "machine": report.machine_description(),
        "command": command,
        "wall_time_s": wall_time_s,
        "cells": results,
        "aggregates": [dict(arch=k[0], layer=k[1], batch_size=k[2], **v) for k, v in sorted(agg.items())],
    }


def _fmt(stats) -> str:
    if stats is None:
        return "-"
    text = f"{100 * stats['mean']:.2f} ± {100 * stats['std']:.2f}"
    if stats["diverged"]:
        text += f" ({stats['diverged']}/{stats['n']} diverged)"
    return text


def _lookup(summary):
    return {(a["arch"], a["layer"], a["batch_size"]): a for a in summary["aggregates"]}


def suite_table(summary: dict, suite: dict) -> str:
    """Markdown table of one suite: rows are layers; columns architectures or batch sizes."""
    agg = _lookup(summary)
    by_batch = len(suite["batch_sizes"]) > 1
    columns = [(suite["archs"][0], b) for b in suite["batch_sizes"]] if by_batch else \
        [(a, suite["batch_sizes"][0]) for a in suite["archs"]]
    names = [f"batch {b} ({agg.get((a, suite['layers'][0], b), {}).get('steps', '?')} steps, "
             f"lr {agg.get((a, suite['layers'][0], b), {}).get('lr', 0):g})" if by_batch
             else ARCH_NAMES.get(a, a) for a, b in columns]
    lines = ["| layer | " + " | ".join(names) + " |", "|---|" + "---:|" * len(columns)]
    for layer in suite["layers"]:
        lines.append(f"| {layer} | " + " | ".join(_fmt(agg.get((a, layer, b))) for a, b in columns) + " |")
    return "\n".join(lines)


def markdown(summary: dict) -> str:
    c = summary["config"]
    n_seeds = len(c["seeds"])
    parts = [
        "# Small-scale reproduction on Fashion-MNIST (paper Tables 3, 4, 7 in miniature)",
        "",
        f"Test accuracy (%) on {summary['data']['test_examples']} Fashion-MNIST test images, mean ± sample "
        f"standard deviation over {n_seeds} seeds ({', '.join(map(str, c['seeds']))}). Every run sees "
        f"{c['examples']:,} training images (random crop + flip), SGD with momentum 0.9, peak learning rate "
        f"{c['base_lr']:g} x batch/128 (linear scaling), {100 * c['warmup_fraction']:g}% warmup then cosine "
        f"decay, weight decay {c['weight_decay']:g} on conv/dense kernels only; grouped layers use "
        f"{c['group_size']} channels per group. Networks: the search's proxies "
        f"(`evonorm/search/proxy.py`, width {c['width']:g}), every norm-act position replaced. A diverged "
        "run counts as 10% (chance). This is a CPU-sized check of the paper's qualitative claims, not its "
        "ImageNet numbers.",
    ]
    for name, suite in summary["suites"].items():
        parts += ["", f"## {suite['title']} -- paper {suite['paper']}", "", suite_table(summary, suite), "",
                  f"![{name}]({name}.png)"]
    parts += ["", f"- Data: {summary['data']['name']}, `{summary['data']['path']}`.",
              f"- Machine: {summary['machine']}.", f"- Command: `{summary['command']}`.",
              f"- Training time: {sum(r['wall_time_s'] for r in summary['cells']) / 60:.0f} min summed over "
              f"the {len(summary['cells'])} runs (each run's time is in `results.json`); this invocation took "
              f"{summary['wall_time_s'] / 60:.1f} min (runs finished by an earlier one are reused, not "
              "retrained)."]
    return "\n".join(parts) + "\n"


def plot_suite(summary: dict, name: str, path: str) -> None:
    """Bar chart (layers x architectures) or, for a batch sweep, accuracy against batch size."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    suite, agg = summary["suites"][name], _lookup(summary)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    if len(suite["batch_sizes"]) > 1:
        arch = suite["archs"][0]
        for layer in suite["layers"]:
            pts = [(b, agg[(arch, layer, b)]) for b in suite["batch_sizes"] if (arch, layer, b) in agg]
            ax.errorbar([b for b, _ in pts], [100 * s["mean"] for _, s in pts],
                        yerr=[100 * s["std"] for _, s in pts], marker="o", capsize=3, label=layer)
        ax.set_xscale("log", base=2)
        ax.set_xticks(suite["batch_sizes"], [str(b) for b in suite["batch_sizes"]])
        ax.minorticks_off()
        ax.invert_xaxis()  # as the paper's figure: large batches on the left
        ax.set_xlabel("batch size (learning rate scaled linearly)")
    else:
        width = 0.8 / len(suite["archs"])
        for k, arch in enumerate(suite["archs"]):
            stats = [agg.get((arch, layer, suite["batch_sizes"][0])) for layer in suite["layers"]]
            xs = [i + (k - (len(suite["archs"]) - 1) / 2) * width for i in range(len(suite["layers"]))]
            ax.bar(xs, [100 * s["mean"] if s else 0 for s in stats], width,
                   yerr=[100 * s["std"] if s else 0 for s in stats], capsize=2, label=ARCH_NAMES.get(arch, arch))
        ax.set_xticks(range(len(suite["layers"])))
        ax.set_xticklabels(suite["layers"], rotation=30, ha="right", fontsize=8)
        ax.axhline(100 * CHANCE, color="gray", linestyle=":", linewidth=1)
        means = [agg[(a, layer, suite["batch_sizes"][0])]["mean"] for a in suite["archs"]
                 for layer in suite["layers"] if (a, layer, suite["batch_sizes"][0]) in agg]
        if means and min(means) > 2 * CHANCE:  # nothing at chance: zoom in on the differences
            ax.set_ylim(bottom=max(0.0, 100 * min(means) - 8))
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Fashion-MNIST, {suite['title']} (paper {suite['paper']}): mean ± std over "
                 f"{len(summary['config']['seeds'])} seeds", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_all(workdir: str, summary: dict) -> None:
    """Writes ``results.json``, ``results.md`` and one ``<suite>.png`` per suite that ran."""
    report.write_json_and_markdown(workdir, summary, markdown(summary))
    for name in summary["suites"]:
        plot_suite(summary, name, os.path.join(workdir, f"{name}.png"))

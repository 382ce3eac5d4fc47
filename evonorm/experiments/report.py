"""Results files of the layer comparison: ``results.json``, ``results.md`` and ``accuracy.png``."""

from __future__ import annotations

import json
import os
import platform

OUTPUTS = ("results.json", "results.md", "accuracy.png")


def machine_description() -> str:
    """CPU model, core count, OS, Python and TensorFlow versions, for results files."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import tensorflow as tf  # noqa: PLC0415
        tf_version = tf.__version__
    except ImportError:  # pragma: no cover - TensorFlow is a dependency
        tf_version = "not installed"
    return (f"{cpu}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, TensorFlow {tf_version}")


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _num(value, spec) -> str:
    return "-" if value is None else format(value, spec)


def table(results) -> str:
    """A Markdown table: layer, test accuracy, train loss and accuracy, speed, load, size, divergence."""
    lines = ["| layer | test acc | train loss | train acc | steps/s | wall time | load | params | diverged |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        diverged = f"yes (step {r['diverged_at']})" if r["diverged"] else "no"
        lines.append(f"| {r['layer']} | {_pct(r['test_acc'])} | {_num(r['train_loss'], '.4f')} | "
                     f"{_pct(r['train_acc'])} | {_num(r['steps_per_sec'], '.1f')} | "
                     f"{_num(r['wall_time_s'], '.0f')} s | {_num(r.get('load_avg'), '.1f')} | "
                     f"{r['params']:,} | {diverged} |")
    return "\n".join(lines)


def markdown(summary: dict) -> str:
    """The full ``results.md``: what ran, on what data and machine, and the table."""
    c, data = summary["config"], summary["data"]
    n_test = data["test_examples"]
    eval_note = (f"the first {n_test} test images" if c["eval_examples"]
                 else f"the full test set ({n_test} images)")
    return "\n".join([
        "# Norm-act layers on Fashion-MNIST: pre-activation ResNet-{depth}".format(**c),
        "",
        f"Each layer trains the same pre-activation ResNet-{c['depth']} (width {c['width']}) "
        f"from the same seed for {c['steps']} SGD steps of batch {c['batch_size']} "
        f"(momentum 0.9, peak LR {c['base_lr']}, cosine decay, {c['warmup_fraction']:.0%} warmup, "
        f"weight decay {c['weight_decay']} on conv/dense kernels only, "
        f"{'random crop + flip' if c['augment'] else 'no augmentation'}; grouped layers use "
        f"{c['groups'] or 'their default'} groups); test accuracy is measured "
        f"on {eval_note}. One seed: differences of a few tenths of "
        f"a percent are within noise. This is a small CPU sanity check, not the paper's ImageNet "
        f"result.",
        "",
        table(summary["results"]),
        "",
        "![test accuracy against step](accuracy.png)",
        "",
        f"- Data: {data['name']}, `{data['path']}`, {data['train_examples']} training and "
        f"{data['test_examples']} test images (28x28 grayscale, 10 classes).",
        f"- Machine: {summary['machine']}.",
        f"- Command: `{summary['command'] or '(library call)'}`",
        f"- Seed {c['seed']}, {c['steps']} steps per layer, test evaluation every {c['eval_every']} steps.",
        f"- Total wall time of this invocation: {summary['total_wall_time_s'] / 60:.1f} min "
        f"(layers reused from an earlier run are not retrained; see each layer's wall time). "
        f"steps/s excludes the first (tracing) step and evaluation; load is the mean 1-minute load "
        f"average while the layer trained ({os.cpu_count()} cores: a load above that means other "
        "processes competed, and steps/s and wall times are not comparable across rows).",
        "",
    ])


def plot(summary: dict, path: str) -> None:
    """Test accuracy against training step, one line per layer."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")  # no display here; also safe in tests
    import matplotlib.pyplot as plt  # noqa: PLC0415

    c = summary["config"]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for r in summary["results"]:
        if not r["evals"]:
            continue
        steps = [e["step"] for e in r["evals"]]
        accs = [100 * e["eval_acc"] for e in r["evals"]]
        final = "diverged" if r["diverged"] else f"{accs[-1]:.2f}%"
        ax.plot(steps, accs, marker="o", markersize=4, linewidth=1.6, label=f"{r['layer']} (final {final})")
    ax.set_xlabel("training step")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Fashion-MNIST test accuracy, pre-act ResNet-{c['depth']}, {c['steps']} steps of "
                 f"batch {c['batch_size']}, seed {c['seed']}", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_json_and_markdown(workdir: str, summary: dict, text: str) -> None:
    """Writes ``summary`` as ``results.json`` and ``text`` as ``results.md`` into ``workdir``."""
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "results.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
    with open(os.path.join(workdir, "results.md"), "w", encoding="utf-8") as f:
        f.write(text)


def write_all(workdir: str, summary: dict) -> None:
    """Writes the three ``OUTPUTS`` into ``workdir``."""
    write_json_and_markdown(workdir, summary, markdown(summary))
    plot(summary, os.path.join(workdir, "accuracy.png"))

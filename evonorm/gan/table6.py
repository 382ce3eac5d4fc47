"""A small-scale Table 6 on this machine: every Table 6 layer x seeds on the Fashion-MNIST 32 px twin.

Each run is ``evonorm.gan.train.train_and_evaluate`` of ``fmnist32_<layer>`` with ``seed=k`` in its own
workdir under ``OUT/runs/<layer>/seed<k>``; a run that finished is skipped and one that stopped resumes from
its checkpoint, so the whole table is resumable run by run. Like the paper ("we report results at peak
performance, consistent with BigGAN training"), each run contributes its evaluation with the best FID;
the table gives the median and best over seeds of IS, FID and KID, all under the Fashion-MNIST classifier
(never Inception: the numbers are comparable between these runs only, not with the paper's).

Outputs in ``OUT``: ``table6.md`` (the measured table beside the paper's), ``table6.json``, ``losses.png``
(D and G hinge losses per layer, one line per seed), ``fid.png`` (FID over training) and
``samples_<layer>.png`` (the last grid of each layer's best run).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import statistics
import time

import numpy as np

from evonorm import summaries
from evonorm.gan import configs

LAYER_NAMES = {"bn_relu": "BN-ReLU", "evonorm_b0": "EvoNorm-B0", "gn_relu": "GN-ReLU", "ln_relu": "LayerNorm-ReLU",
               "pn_relu": "PixelNorm-ReLU", "evonorm_s0": "EvoNorm-S0"}


def run_dir(out: str, layer: str, seed: int) -> str:
    return os.path.join(out, "runs", layer, f"seed{seed}")


def run_config(layer: str, seed: int, overrides: str = "") -> configs.GANConfig:
    extra = f"seed={seed}" + (f",{overrides}" if overrides else "")
    return configs.get_config(f"fmnist32_{layer}", extra)


def _finished(workdir: str, config: configs.GANConfig) -> bool:
    path = os.path.join(workdir, "summary.json")
    if not os.path.exists(path):
        return False
    with open(path, encoding="utf-8") as f:
        return json.load(f).get("final_step") == config.train_steps


def run_all(layers, seeds, out: str, overrides: str = "", strategy=None) -> None:
    """Trains every (layer, seed) run not finished yet, in order, printing one line per run."""
    from evonorm.gan import train  # noqa: PLC0415 - TensorFlow only when training

    todo = [(layer, seed) for layer in layers for seed in seeds]
    for i, (layer, seed) in enumerate(todo, 1):
        config, workdir = run_config(layer, seed, overrides), run_dir(out, layer, seed)
        if _finished(workdir, config):
            print(f"[{i}/{len(todo)}] {layer} seed {seed}: done earlier, skipped", flush=True)
            continue
        print(f"[{i}/{len(todo)}] {layer} seed {seed}: training in {workdir}", flush=True)
        start = time.time()
        summary = train.train_and_evaluate(config, workdir, strategy)
        best = summary.get("best") or {}
        print(f"[{i}/{len(todo)}] {layer} seed {seed}: {time.time() - start:.0f} s, best FID "
              f"{best.get('fid')} at step {best.get('step')}", flush=True)


def _records(workdir: str) -> list:
    path = os.path.join(workdir, "metrics.json")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    return data["records"] if isinstance(data, dict) else data


def collect(layers, seeds, out: str) -> dict:
    """layer -> {'runs': [peak record per finished seed], 'median'/'best' of is, fid, kid}."""
    from evonorm.gan.evaluation import best_record  # noqa: PLC0415 - the lowest FID: "peak performance"

    table = {}
    for layer in layers:
        runs = []
        for seed in seeds:
            best = best_record(_records(run_dir(out, layer, seed)))
            if best is not None:
                runs.append(dict(best, seed=seed))
        row = {"runs": runs}
        for key, better in (("is", max), ("fid", min), ("kid", min)):
            values = [r[key] for r in runs if r.get(key) is not None]
            row[f"{key}_median"] = statistics.median(values) if values else None
            row[f"{key}_best"] = better(values) if values else None
        table[layer] = row
    return table


def _fmt(value, digits=2):
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(table: dict, seeds, command: str, machine: str, feature_network: str) -> str:
    lines = [
        "# Table 6 at small scale: class-conditional Fashion-MNIST 32x32, BigGAN-deep twin",
        "",
        f"Machine: {machine}.  ",
        f"Command: `{command}` ({time.strftime('%Y-%m-%d')}).  ",
        f"Data: Fashion-MNIST (Debian `dataset-fashion-mnist`), train split, padded to 32x32x1; metrics against "
        f"the 10k test images. Metrics use **{feature_network}** features, not Inception: IS tops out at 10, "
        f"and none of these numbers is comparable with the paper's ImageNet numbers.  ",
        f"Each run reports its evaluation with the best FID (peak performance, as the paper); median / best over "
        f"seeds {list(seeds)}.",
        "",
        f"| layer in G | IS (median / best) | FID (median / best) | KID (median / best) | runs "
        f"| paper IS | paper FID |",
        "|---|---|---|---|---|---|---|",
    ]
    for layer, row in table.items():
        paper = configs.TABLE6.get(layer, {})
        paper_is = "/".join(_fmt(paper.get(k)) for k in ("is_median", "is_best") if paper.get(k) is not None)
        paper_fid = "/".join(_fmt(paper.get(k)) for k in ("fid_median", "fid_best") if paper.get(k) is not None)
        kid = [row["kid_median"], row["kid_best"]]
        lines.append(
            f"| {LAYER_NAMES.get(layer, layer)} | {_fmt(row['is_median'])} / {_fmt(row['is_best'])} "
            f"| {_fmt(row['fid_median'])} / {_fmt(row['fid_best'])} | {_fmt(kid[0])} / {_fmt(kid[1])} "
            f"| {len(row['runs'])} | {paper_is} | {paper_fid} |")
    lines += ["", "Per run (peak evaluation):", "", "| layer | seed | step | IS | FID | KID |", "|---|---|---|---|---|---|"]
    for layer, row in table.items():
        for r in row["runs"]:
            lines.append(f"| {layer} | {r['seed']} | {r.get('step')} | {_fmt(r.get('is'))} | {_fmt(r.get('fid'))} "
                         f"| {_fmt(r.get('kid'))} |")
    return "\n".join(lines) + "\n"


def scalar_series(workdir: str, tag: str):
    """(steps, values) of a scalar summary in ``workdir/tensorboard`` (see :func:`evonorm.summaries.scalar_series`)."""
    return summaries.scalar_series(os.path.join(workdir, "tensorboard"), tag)


def plot(table: dict, seeds, out: str) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    layers = list(table)
    fig, axes = plt.subplots(2, len(layers), figsize=(3.2 * len(layers), 5.5), sharex=True, squeeze=False)
    for col, layer in enumerate(layers):
        for row, tag in enumerate(("train/d_loss", "train/g_loss")):
            ax = axes[row][col]
            for seed in seeds:
                steps, values = scalar_series(run_dir(out, layer, seed), tag)
                ax.plot(steps, values, lw=1, label=f"seed {seed}")
            ax.set_title(f"{LAYER_NAMES.get(layer, layer)}: {tag.split('/')[1]}", fontsize=9)
            ax.grid(alpha=0.3)
        axes[1][col].set_xlabel("step")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "losses.png"), dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, layer in enumerate(layers):
        for seed in seeds:
            records = _records(run_dir(out, layer, seed))
            pts = [(r["step"], r["fid"]) for r in records if r.get("fid") is not None]
            if pts:
                ax.plot(*zip(*pts), marker="o", ms=3, lw=1, color=f"C{i}",
                        label=LAYER_NAMES.get(layer, layer) if seed == seeds[0] else None)
    ax.set_xlabel("step")
    ax.set_ylabel("FID (Fashion-MNIST classifier)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "fid.png"), dpi=110)
    plt.close(fig)


def copy_samples(table: dict, out: str) -> None:
    """``samples_<layer>.png``: the last grid of the layer's best run (lowest peak FID)."""
    for layer, row in table.items():
        if not row["runs"]:
            continue
        best = min(row["runs"], key=lambda r: r["fid"])
        grids = sorted(glob.glob(os.path.join(run_dir(out, layer, best["seed"]), "samples", "*.png")))
        if grids:
            shutil.copyfile(grids[-1], os.path.join(out, f"samples_{layer}.png"))


def report(layers, seeds, out: str, command: str) -> dict:
    """Writes table6.md / table6.json / plots / sample grids from whatever runs exist; returns the table."""
    from evonorm import benchmark  # noqa: PLC0415

    table = collect(layers, seeds, out)
    networks = {r.get("feature_network") for row in table.values() for r in row["runs"]} - {None}
    text = markdown(table, seeds, command, benchmark.machine_description(), ", ".join(sorted(networks)) or "-")
    with open(os.path.join(out, "table6.md"), "w", encoding="utf-8") as f:
        f.write(text)
    with open(os.path.join(out, "table6.json"), "w", encoding="utf-8") as f:
        json.dump(table, f, indent=1, default=lambda o: o.item() if isinstance(o, np.generic) else str(o))
    plot(table, seeds, out)
    copy_samples(table, out)
    return table

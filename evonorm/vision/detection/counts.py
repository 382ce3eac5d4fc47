"""Table 5's Params and MAdds columns, measured on this project's Mask R-CNN models beside the paper's.

For each Table 5 experiment (paper scale: 1024 px, 1000 proposals, 100 masks at inference) it builds
the model through the registered task and reports trainable parameters (what the paper counts: its
BN-ReLU rows equal Model Garden's trainable counts) and inference MAdds from
:func:`evonorm.vision.madds.count_experiment` (Model Garden's convention, one MAdd = two registered
FLOPs). Variants show why the post-activation ResNet-50 is the default: the pre-activation (v2)
ResNet-50's counts are not Table 5's.

    python scripts/detection_counts.py          # writes detection/results/counts.md (~20 min on 2 cores)
"""

from __future__ import annotations

import time

import numpy as np

from evonorm import benchmark
from evonorm.vision import madds
from evonorm.vision.detection import experiments
from evonorm.vision.detection.paper_results import LAYERS, paper_row

# (label, experiment arch, params_override applied on top), in table order.
VARIANTS = [("R-50-FPN (v1 ResNet-50, default)", experiments.R50_FPN, {}),
            ("R-50-FPN with pre-activation (v2) ResNet-50", experiments.R50_FPN,
             {"task": {"model": {"backbone": {"evonorm_resnet": {"version": 2}}}}}),
            ("SpineNet-96", experiments.SPINENET96, {})]
V2_LAYERS = ("bn_relu", "evonorm_b0", "evonorm_s0")


def _params(name: str, override: dict):
    from official.core import exp_factory  # noqa: PLC0415

    params = exp_factory.get_exp_config(name)
    params.override({"runtime": {"mixed_precision_dtype": "float32"}}, is_strict=True)
    if override:
        params.override(override, is_strict=True)
    return params


def measure(name: str, override: dict | None = None, with_madds: bool = True) -> dict:
    """Trainable / non-trainable parameters and (optionally) inference MAdds of experiment ``name``."""
    from official.core import task_factory  # noqa: PLC0415

    params = _params(name, override or {})
    start = time.perf_counter()
    model = task_factory.get_task(params.task).build_model()
    total = madds.count_experiment(params, model=model).total if with_madds else None
    return {"experiment": name, "trainable": sum(int(np.prod(v.shape)) for v in model.trainable_variables),
            "non_trainable": sum(int(np.prod(v.shape)) for v in model.non_trainable_variables),
            "madds": total, "seconds": time.perf_counter() - start}


def run(with_madds: bool = True, layers=LAYERS) -> list:
    """One row per (variant, layer): measured counts beside Table 5's."""
    rows = []
    for label, arch, override in VARIANTS:
        for layer in layers:
            if override and layer not in V2_LAYERS:
                continue
            name = experiments.experiment_name(arch, layer)
            row = measure(name, override, with_madds)
            row.update(variant=label, layer=layer, paper=paper_row(arch.table, layer))
            rows.append(row)
            print(f"{label} {layer}: {row['trainable']:,} trainable, "
                  f"{row['madds'] / 1e9 if row['madds'] else float('nan'):.2f} B MAdds ({row['seconds']:.0f} s)",
                  flush=True)
    return rows


def markdown(rows: list, argv: str) -> str:
    """The results file: measured Params / MAdds beside Table 5's, with machine and command."""
    lines = ["# Mask R-CNN Params and MAdds: measured vs paper Table 5", "",
             f"Machine: {benchmark.machine_description()}.  ",
             f"Command: `{argv}` ({time.strftime('%Y-%m-%d')}).  ",
             "Models: the registered Table 5 experiments at paper scale (1024x1024 input, 1000 proposals and "
             "100 masks at inference), float32, built by the task. Params = trainable variables (moving "
             "statistics excluded, as the paper's BN-ReLU rows show). MAdds = `evonorm/vision/madds.py` "
             "(Model Garden's convention: 2 registered FLOPs per MAdd; ReLU, sigmoid, sqrt and ROI-align are "
             "free, elementwise adds/muls/reductions 0.5 each).", "",
             "| model | layer | Params (trainable) | non-trainable | Table 5 Params | MAdds | Table 5 MAdds |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        paper = row["paper"] or {}
        madds_cell = f"{row['madds'] / 1e9:.1f} B" if row["madds"] else "-"
        lines.append(f"| {row['variant']} | {row['layer']} | {row['trainable']:,} ({row['trainable'] / 1e6:.2f} M) "
                     f"| {row['non_trainable']:,} | {paper.get('params_m', '-')} M | {madds_cell} | "
                     f"{paper.get('madds_b', '-')} B |")
    lines.append("")
    return "\n".join(lines)

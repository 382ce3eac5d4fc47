"""Speed of a Mask R-CNN training step with each norm-act layer, side by side with BN-ReLU.

One process, one model size (the ``evonorm_maskrcnn_r50fpn_coco_*_tiny`` twin's architecture unless told
otherwise: ResNet-18 v1 at width 0.25, FPN levels 2-6 with 64 filters, 256 px, batch 2), every layer the
one norm-act of backbone, FPN, RPN, box and mask heads. One step is Model Garden's
``MaskRCNNTask.train_step`` (forward, losses, gradients, the task's SGD-momentum update, training
metrics), traced with ``tf.function`` without XLA (``../shared/FACTS.md``: whole-model XLA is slower on
CPU). Every layer trains on the same real batch: one element of the offline COCO-format sample's input
pipeline (:mod:`evonorm.data.coco_sample`), taken once and reused for every step of every layer. Steps
are timed interleaved round by round so drifting load hits every layer alike, and reported as the median
ratio to BN-ReLU. The first call (tracing plus one step) is timed separately. ``(tf)`` rows run the
same layer with the fused CPU kernels disabled (:mod:`evonorm.kernels`).

:func:`profile` attributes one step's op time (TensorFlow's profiler) to the norm-act positions of
each part of the model, to see where a slow layer loses its time.

    python scripts/benchmark_detection.py              # writes detection/results/benchmark.md
"""

from __future__ import annotations

import collections
import glob
import os
import shutil
import tempfile
import time

import numpy as np
import tensorflow as tf
import tf_keras
from official.core import exp_factory, task_factory

from evonorm import benchmark
from evonorm.layers.base import NormActBase
from evonorm.vision.detection import experiments  # noqa: F401 - registers the experiments
from evonorm.vision.detection.heads import PerRoINormAct

DEFAULT_LAYERS = ("bn_relu", "bn_silu", "evonorm_b0", "gn_relu", "evonorm_s0", "evonorm_b0(tf)",
                  "evonorm_s0(tf)")
BASELINE = "bn_relu"
EXPERIMENT = "evonorm_maskrcnn_r50fpn_coco_bn_relu_tiny"
TARGET_RATIO = 1.15  # the reading of the paper's "negligible computation overhead"
TARGET_LAYERS = ("evonorm_b0", "evonorm_s0")
PARTS = ("backbone", "fpn", "rpn", "box_head", "mask_head")  # parts of the model in profile()


def experiment_config(layer: str, input_size: int | None = None, batch_size: int | None = None,
                      width: float | None = None):
    """The tiny twin's ExperimentConfig with norm-act ``layer`` (a registry name, no ``(tf)``).

    Args:
      layer: norm-act registry name of every position.
      input_size: square image size in pixels (a multiple of 64, the FPN's coarsest stride); None: 256.
      batch_size: images per step; None: the twin's 2.
      width: ResNet-18 width multiplier; None: the twin's 0.25 (FPN and heads keep their widths).
    """
    cfg = exp_factory.get_exp_config(EXPERIMENT)
    cfg.task.model.norm_activation.type = layer
    if input_size:
        if input_size % 64:
            raise ValueError(f"input_size must be a multiple of 64 (FPN level 6), got {input_size}.")
        cfg.task.model.input_size = [input_size, input_size, 3]
    if batch_size:
        cfg.task.train_data.global_batch_size = batch_size
    if width:
        cfg.task.model.backbone.evonorm_resnet.width_multiplier = width
    return cfg


def sample_batch(cfg):
    """One training batch (images, labels) of the offline sample's Model Garden input pipeline.

    Builds the sample on first use (a few seconds). Taken once and shared, so every layer is timed on
    the very same images, boxes and masks (the pipeline's scale jitter and flips differ per element).
    """
    from evonorm.data import coco_sample  # noqa: PLC0415 - only when a batch is needed

    coco_sample.build_sample()
    task = task_factory.get_task(cfg.task)
    return next(iter(task.build_inputs(cfg.task.train_data)))


def count_parameters(model) -> tuple:
    """(trainable parameters, norm-act layers) of a model."""
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    norms = {id(m) for m in model.submodules if isinstance(m, NormActBase)}
    return trainable, len(norms)


def step_fn(layer: str, inputs, input_size: int | None = None, batch_size: int | None = None,
            width: float | None = None, seed: int = 0):
    """A traced Mask R-CNN training step with norm-act ``layer`` on the fixed batch ``inputs``.

    Args:
      layer: registry name, optionally with the ``(tf)`` suffix (fused kernels disabled).
      inputs: (images, labels) from :func:`sample_batch` of the same size options.
      input_size, batch_size, width: see :func:`experiment_config`.
      seed: Keras seed of the weight initializers.

    Returns:
      (step, info): ``step()`` runs one training step and returns its total loss; ``info`` has
      ``first_call_s`` (trace + one step), ``build_s`` (task and model), ``params``, ``norms`` and
      ``model`` (for :func:`profile`).
    """
    base, fused = benchmark.variant(layer)
    cfg = experiment_config(base, input_size, batch_size, width)
    start = time.perf_counter()
    tf_keras.utils.set_random_seed(seed)
    task = task_factory.get_task(cfg.task)
    model = task.build_model()
    optimizer = task.create_optimizer(cfg.trainer.optimizer_config, cfg.runtime)
    metrics = task.build_metrics(training=True)
    build_s = time.perf_counter() - start

    @tf.function
    def step():
        return task.train_step(inputs, model, optimizer, metrics=metrics)[task.loss]

    start = time.perf_counter()
    np.asarray(benchmark.trace(step, fused))
    params, norms = count_parameters(model)
    return step, dict(first_call_s=time.perf_counter() - start, build_s=build_s, params=params, norms=norms,
                      model=model)


def run(layers=DEFAULT_LAYERS, input_size: int | None = None, batch_size: int | None = None,
        width: float | None = None, rounds: int = 7, reps: int = 3, profile_steps: int = 0) -> list:
    """Rows (layer, ms per step, ratio to BN-ReLU, first-call seconds, ...), baseline first.

    Each row also has ``params``/``norms`` (trainable parameters and norm-act layers of its model),
    ``loss`` (total loss after the timed steps, to show they stayed finite) and, with
    ``profile_steps > 0``, ``profile`` (:func:`profile` over that many steps, after the timing).
    """
    layers = [BASELINE] + [name for name in dict.fromkeys(layers) if name != BASELINE]
    inputs = sample_batch(experiment_config(BASELINE, input_size, batch_size, width))
    fns, infos = {}, {}
    for name in layers:
        fns[name], infos[name] = step_fn(name, inputs, input_size, batch_size, width)
    times = benchmark.time_interleaved(fns, rounds, reps)
    base = times[BASELINE]
    rows = []
    for name in layers:
        info = infos[name]
        rows.append(dict(layer=name, ms=1000 * times[name], ratio=times[name] / base,
                         first_call_s=info["first_call_s"], params=info["params"], norms=info["norms"],
                         loss=float(fns[name]())))
        if profile_steps:
            rows[-1]["profile"] = profile(fns[name], info["model"], profile_steps)
    return rows


def _parts(model) -> list:
    """(part, the Keras layer name that scopes its ops) in the order of ``PARTS``."""
    layers = dict(backbone=model.backbone, fpn=model.decoder, rpn=model.rpn_head,
                  box_head=model.detection_head[0], mask_head=model.mask_head)
    return [(part, layers[part].name) for part in PARTS if layers[part] is not None]


def _part(op_name: str, parts) -> str:
    # Forward ops are '<model>/<part>/...', their gradients 'gradient_tape/<model>/<part>/...'.
    scope = op_name.removeprefix("gradient_tape/").split("/")[:2]
    for part, name in parts:
        if name in scope:
            return part
    return "other"


def profile(step, model, steps: int = 3) -> dict:
    """Op time of ``step`` per part of the model and per norm-act layer (TensorFlow's profiler).

    Runs ``steps`` steps under the profiler and sums the durations of the ops it records: CPU time of
    the executor's ops, so with inter-op parallelism the total exceeds the wall time of a step, but
    the split shows where a slower layer spends its extra time. An op belongs to a norm-act layer when
    a name-scope component of its name (forward or gradient) is that layer's name; the box head's FC
    norm counts under its per-RoI wrapper's name.

    Returns:
      Dict of ms per step: ``parts`` ``{part: {'norm_ms', 'other_ms'}}`` (``PARTS`` plus 'other': ROI
      generation and sampling, ROI align, losses, optimizer), ``norms`` ``[(layer, part, apply_act,
      ms)]`` and ``norm_op_types`` ``[(op type, ms)]`` of the norm-act ops, both costliest first.
    """
    from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: PLC0415 - only when profiling

    # name -> whether it applies its activation (the fused kernels serve only those positions)
    norms = {m.name: m.apply_act for m in model.submodules if isinstance(m, NormActBase)}
    norms.update({m.name: m.norm.apply_act for m in model.submodules if isinstance(m, PerRoINormAct)})
    parts = _parts(model)
    np.asarray(step())  # warm
    logdir = tempfile.mkdtemp(prefix="evonorm_profile_")
    try:
        tf.profiler.experimental.start(logdir)
        try:
            for _ in range(steps):
                np.asarray(step())
        finally:
            tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        with open(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0], "rb") as f:
            space.ParseFromString(f.read())
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
    by_part = collections.defaultdict(float)
    by_norm = collections.defaultdict(float)
    by_type = collections.defaultdict(float)
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):  # the executor threads; 'python' is the caller
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" not in name or "::" in name:  # executor bookkeeping (ExecutorState::Process...)
                    continue
                op_name, op_type = name.rsplit(":", 1)
                part = _part(op_name, parts)
                norm = next((s for s in op_name.split("/") if s in norms), None)
                ms = event.duration_ps / 1e9 / steps
                by_part[(part, norm is not None)] += ms
                if norm is not None:
                    by_norm[(norm, part)] += ms
                    by_type[op_type] += ms
    return dict(
        parts={part: dict(norm_ms=by_part[(part, True)], other_ms=by_part[(part, False)])
               for part in [p for p, _ in parts] + ["other"]},
        norms=sorted(((n, p, norms[n], ms) for (n, p), ms in by_norm.items()), key=lambda r: -r[3]),
        norm_op_types=sorted(by_type.items(), key=lambda r: -r[1]))


def markdown(rows, input_size: int | None, batch_size: int | None, width: float | None, argv: str) -> str:
    """The results file: machine, command, model, one table row per layer, the target verdict.

    Args:
      rows: :func:`run`'s rows (baseline first); rows with a ``profile`` add a table of op time.
      input_size, batch_size, width: the options ``rows`` were measured with.
      argv: the command line, as run.
    """
    cfg = experiment_config(BASELINE, input_size, batch_size, width)
    model = cfg.task.model
    size = model.input_size[0]
    base = rows[0]
    lines = [
        "# Mask R-CNN training step: each norm-act layer vs BN-ReLU",
        "",
        f"Machine: {benchmark.machine_description()}.  ",
        f"Command: `{argv}` ({time.strftime('%Y-%m-%d')}).  ",
        f"Model: the `{EXPERIMENT.replace('bn_relu', '*')}` twin's architecture, ResNet-18 v1 at width "
        f"{model.backbone.evonorm_resnet.width_multiplier:g} + FPN levels {model.min_level}-"
        f"{model.max_level} ({model.decoder.evonorm_fpn.num_filters} filters), RPN, box head "
        f"({model.detection_head.num_convs} conv + FC {model.detection_head.fc_dims}, "
        f"{model.roi_sampler.num_sampled_rois} sampled RoIs per image) and mask head "
        f"({model.mask_head.num_convs} conv + deconv, "
        f"{model.mask_sampler.num_sampled_masks} masks per image); {size}x{size} px, batch "
        f"{cfg.task.train_data.global_batch_size}, {model.num_classes} classes; {base['params']:,} "
        f"trainable parameters and {base['norms']} norm-act layers ({base['layer']}). Input: one real "
        f"batch of the offline COCO-format sample, the same for every layer. One step = Model Garden's "
        f"`MaskRCNNTask.train_step` (forward, losses, gradients, SGD-momentum update). Method: "
        f"`evonorm/vision/detection/bench.py` (tf.function without XLA, interleaved rounds, median, one "
        f"process).",
        "",
        "| layer (every norm-act position) | ms per step | vs BN-ReLU | first call (trace + step) |",
        "|---|---|---|---|",
    ]
    for row in rows:
        lines.append(f"| {row['layer']} | {row['ms']:.0f} | {row['ratio']:.2f}x | "
                     f"{row['first_call_s']:.1f} s |")
    lines += ["", "`(tf)`: the same layer with the fused CPU kernels disabled (plain TensorFlow formulas).",
              ""]
    verdicts = []
    for row in rows:
        if row["layer"] in TARGET_LAYERS:
            ok = "meets" if row["ratio"] <= TARGET_RATIO else "misses"
            verdicts.append(f"{row['layer']} {row['ratio']:.2f}x {ok}")
    if verdicts:
        lines += [f"Target: EvoNorm-B0 and -S0 within {TARGET_RATIO:.2f}x of BN-ReLU (the paper's "
                  f"\"negligible computation overhead\"): {'; '.join(verdicts)}.", ""]
    bad = [row["layer"] for row in rows if not np.isfinite(row["loss"])]
    if bad:
        lines += [f"Warning: non-finite loss after the timed steps for {', '.join(bad)}.", ""]
    profiled = [row for row in rows if "profile" in row]
    if profiled:
        lines += _profile_table(profiled)
    return "\n".join(lines)


def _profile_table(rows) -> list:
    parts = list(PARTS)
    lines = [
        "Where the time goes (TensorFlow profiler, after the timing): op time per step in ms, summed "
        "over ops, so with inter-op parallelism it exceeds the wall time. Norm-act ops are the forward "
        "and gradient ops inside a norm-act layer, split by part of the model in the part columns; "
        "`no-act` are the positions built with `apply_act=False` (ResNet v1 block outputs and "
        "projections, FPN outputs).",
        "",
        "| layer | all ops | norm-act ops | of which no-act | "
        + " | ".join(p.replace("_", " ") for p in parts) + " | costliest norm-act positions |",
        "|---" * (len(parts) + 5) + "|",
    ]
    for row in rows:
        prof = row["profile"]
        total = sum(v["norm_ms"] + v["other_ms"] for v in prof["parts"].values())
        norm = sum(v["norm_ms"] for v in prof["parts"].values())
        no_act = sum(ms for _, _, act, ms in prof["norms"] if not act)
        cells = [f"{prof['parts'][p]['norm_ms']:.0f}" if p in prof["parts"] else "-" for p in parts]
        top = ", ".join(f"{name} {ms:.0f}" for name, _, _, ms in prof["norms"][:3])
        lines.append(f"| {row['layer']} | {total:.0f} | {norm:.0f} | {no_act:.0f} | " + " | ".join(cells)
                     + f" | {top} |")
    lines.append("")
    return lines

"""Multiply-adds (MAdds) of one inference forward pass, per Keras layer: the paper's Table 5 MAdds column.

``count_madds(model, inputs)`` traces ``model(*inputs, training=False)`` at batch 1 into a
``tf.function`` graph, freezes it the way Model Garden's ``official.core.train_utils.try_count_flops``
does (variables become constants, nested functions are inlined, control flow is lowered), and asks
TensorFlow's FLOP registry (the per-op statistics ``tf.compat.v1.profiler`` with
``ProfileOptionBuilder.float_operation()`` sums) for every op. Each op is charged to the innermost Keras
layer whose name scope it was created in.

Convention (Model Garden's: its train loop logs ``total_float_ops / 2`` as "FLOPs (multi-adds)", and its
model zoo's SpineNet-96 Mask R-CNN "315.0 B FLOPs" is the paper's 315.0 B MAdds), **one MAdd = two
registered FLOPs**:

- ``Conv2D``, ``DepthwiseConv2dNative``, ``MatMul``, ``BatchMatMul*``, ``Einsum`` (registered by Model
  Garden), ``Conv2DBackpropInput`` (transposed convolution) count exactly their multiply-accumulates,
  e.g. a 3x3 conv from 3 to 8 channels with a 16x16 output is ``16*16*3*3*3*8`` MAdds. The bias add is a
  separate ``BiasAdd`` op.
- Elementwise and reduction ops TF registers (``Add``/``AddV2``/``BiasAdd``/``Sub``/``Mul``/``RealDiv``/
  ``Maximum``/``Minimum``/``Rsqrt``/``Square``/``SquaredDifference``/``Mean``/``Sum``/``Pow``/``Log``/
  comparisons, pooling, ...) count 1 FLOP per element, i.e. **0.5 MAdd** per element: the bias of the
  conv above adds ``16*16*8/2``.
- Ops without a registered count are free: ``Relu``, ``Sigmoid``, ``Exp``, ``Sqrt``, ``Tanh``,
  ``FusedBatchNormV3`` (Keras' fused inference BatchNorm), casts, reshapes, gathers, ``ResizeBilinear``,
  ``CropAndResize`` (ROI-align), NMS. So Model Garden's fused BN-ReLU costs nothing, while a norm-act
  written as elementwise TF ops (this project's layers, GroupNorm, EvoNorm) costs its adds, muls and
  reductions: the differences between the rows of Table 5 have this form.
- Ops whose shapes are unknown at trace time (data-dependent NMS outputs, loop bodies after lowering)
  cannot be counted and are left out; ``MAddsReport.uncounted`` names them.
- This project's fused CPU kernels (custom ops the registry does not know) are switched off while tracing,
  so EvoNorm-B0/S0 are counted as their TensorFlow formulas (``evonorm.ops``).
- Ops inside lowered loops (NMS, per-level proposal selection) count once, not once per iteration.

Calibration (Model Garden 2.20 models, float32, batch 1): ResNet-50 classifier at 224: 4.093 B (the usual
"4.1 B"). Mask R-CNN at 1024 with 1000 proposals and 100 masks (backbone, FPN, RPN, box and mask heads;
ROI-align and proposal/detection post-processing add < 0.1 B): R-50-FPN 379.21 B with fused BN, 379.54 B
with ``use_sync_bn=True`` (unfused inference BN: 1 MAdd per element), paper 379.7 B; SpineNet-96
314.46 B / 314.93 B, tensorflow/tpu's zoo 314.6 B, Model Garden's zoo and the paper 315.0 B.
"""

from __future__ import annotations

import collections
import dataclasses
import inspect

import tensorflow as tf
from tensorflow.python.framework import ops as tf_ops
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2_as_graph
from tensorflow.python.profiler.internal import flops_registry  # noqa: F401 - registers TF's FLOP stats
from tensorflow.python.util import deprecation

from evonorm import kernels

TOP = "(top)"  # ops of the model itself, outside any of its layers
_PLUMBING = frozenset({"Placeholder", "Const", "Identity", "NoOp"})  # frozen-graph bookkeeping, no layer's


@dataclasses.dataclass
class MAddsReport:
    """MAdds of one forward pass. ``by_layer`` maps a layer path (``'resnet/conv2d_3'``, relative to the
    model, in first-op order; layers whose ops are all free appear with 0) to its MAdds; ``by_op_type``
    maps op types to MAdds; ``uncounted`` lists the ops with a registered count but unknown shapes."""

    by_layer: dict
    by_op_type: dict
    uncounted: list = dataclasses.field(default_factory=list)

    @property
    def total(self) -> float:
        """MAdds of the whole pass (= ``sum(by_layer.values())``)."""
        return sum(self.by_layer.values())

    def grouped(self, depth: int) -> dict:
        """``by_layer`` summed over the first ``depth`` path components (``depth=1``: top-level layers)."""
        out = collections.defaultdict(float)
        for name, count in self.by_layer.items():
            out["/".join(name.split("/")[:depth])] += count
        return dict(out)

    def markdown(self, top: int | None = None, depth: int | None = None) -> str:
        """A table of layers with MAdds (in billions or millions for large totals) and share of the total:
        all of them in graph order, or the ``top`` largest with the rest in one row. ``depth`` groups
        nested layers first."""
        rows = list((self.grouped(depth) if depth else self.by_layer).items())
        total = self.total or 1.0
        scale, unit = (1e9, " (B)") if total >= 1e10 else (1e6, " (M)") if total >= 1e7 else (1.0, "")
        rest = []
        if top is not None and top < len(rows):
            rows.sort(key=lambda row: -row[1])
            rows, rest = rows[:top], rows[top:]
        lines = [f"| layer | MAdds{unit} | share |", "|---|---:|---:|"]
        fmt = ",.3f" if unit else ",.1f"  # raw counts: halves only (one FLOP is half a MAdd)
        lines += [f"| {name} | {count / scale:{fmt}} | {100 * count / total:.2f}% |" for name, count in rows]
        if rest:
            other = sum(count for _, count in rest)
            lines.append(f"| ({len(rest)} other layers) | {other / scale:{fmt}} "
                         f"| {100 * other / total:.2f}% |")
        lines.append(f"| **total** | **{self.total / scale:{fmt}}** | 100.00% |")
        return "\n".join(lines)


def _spec(x) -> tf.TensorSpec:
    if isinstance(x, tf.TensorSpec):
        return x
    if isinstance(x, tf.Tensor):
        return tf.TensorSpec.from_tensor(x)
    return tf.TensorSpec((1, *x), tf.float32)  # a Keras-style shape without the batch dimension


def _is_shape(x) -> bool:
    return isinstance(x, (tuple, list, tf.TensorShape)) and all(d is None or isinstance(d, int) for d in x)


def input_specs(model, inputs=None):
    """(positional specs, keyword specs) for ``model`` from ``inputs``: ``None`` (``model.inputs`` at
    batch 1, as Model Garden does), one shape without the batch dimension (``(224, 224, 3)``), a
    ``tf.TensorSpec`` (used as given), a list of those (positional inputs) or a dict (keyword inputs)."""
    if inputs is None:
        if not getattr(model, "inputs", None):
            raise ValueError(f"{model.name} has no symbolic inputs: pass input shapes or specs.")
        specs = [tf.TensorSpec([1, *x.shape[1:]], x.dtype) for x in model.inputs]
        return ([specs] if len(specs) > 1 else specs), {}  # a multi-input model takes one list
    if isinstance(inputs, dict):
        return [], {k: _spec(v) for k, v in inputs.items()}
    if _is_shape(inputs) or isinstance(inputs, (tf.TensorSpec, tf.Tensor)):
        return [_spec(inputs)], {}
    return [_spec(x) for x in inputs], {}


def _children(layer) -> dict:
    flatten = getattr(layer, "_flatten_layers", None)  # tf_keras and Keras 3 both have it
    kids = flatten(include_self=False, recursive=False) if flatten else getattr(layer, "layers", [])
    return {kid.name: kid for kid in kids}


def _owner(op_name: str, model, cache: dict) -> str:
    """The path of the innermost layer of ``model`` whose scope holds ``op_name``. Keras opens a layer's
    name scope as ``<caller scope>/<layer.name>/`` (no ``_1`` suffix on repeated calls), so the scope
    components are layer names, mixed with the ops' own scopes (``batchnorm``, ``while``), skipped."""
    scopes = op_name.split("/")[:-1]
    key = tuple(scopes)
    if key not in cache:
        node, path = model, []
        for i, scope in enumerate(scopes):
            if i == 0 and scope == model.name:
                continue
            child = _children(node).get(scope)
            if child is not None:
                node, path = child, [*path, scope]
        cache[key] = "/".join(path) or TOP
    return cache[key]


def _register_einsum() -> None:
    try:  # Model Garden registers Einsum's FLOPs there (TF does not); import only when installed
        import official.core.train_utils  # noqa: F401, PLC0415
    except ImportError:
        pass


def trace(model, inputs=None, call_kwargs=None, freeze: bool = True):
    """The graph of ``model(*inputs, training=False, **call_kwargs)`` at the given specs (see
    :func:`input_specs`); frozen like Model Garden's ``try_count_flops`` unless ``freeze=False``."""
    args, kwargs = input_specs(model, inputs)
    extra = dict(call_kwargs or {})
    if "training" in inspect.signature(model.call).parameters:
        extra.setdefault("training", False)

    def forward(*a, **k):
        return model(*a, **k, **extra)

    with kernels.disabled():  # the fused CPU ops are custom ops without FLOP statistics
        concrete = tf.function(forward).get_concrete_function(*args, **kwargs)
    if not freeze:
        return concrete.graph
    frozen, _ = convert_variables_to_constants_v2_as_graph(concrete)
    return frozen.graph


def count_madds(model, inputs=None, call_kwargs=None, freeze: bool = True) -> MAddsReport:
    """MAdds of one inference forward pass of ``model`` at batch 1, per layer (see the module docstring).

    Args:
      model: a tf_keras model (as Model Garden's), functional or subclassed.
      inputs: ``None`` (the model's symbolic inputs), a shape without batch (``(224, 224, 3)``), a
        ``tf.TensorSpec``, a list of these (positional inputs) or a dict of them (keyword inputs).
      call_kwargs: further non-tensor keyword arguments of the call (``training=False`` is added).
      freeze: count on the frozen graph (Model Garden's way). ``False`` counts the traced graph as is,
        skipping the bodies of loops and conditionals.

    Returns:
      A :class:`MAddsReport`.
    """
    _register_einsum()
    graph = trace(model, inputs, call_kwargs, freeze)
    by_layer, by_type, uncounted, cache = {}, collections.defaultdict(float), [], {}
    for op in graph.get_operations():
        if op.type in _PLUMBING:
            continue
        try:
            with deprecation.silence():  # the registry's shape helper logs a deprecation per op type
                flops = tf_ops.get_stats_for_node_def(graph, op.node_def, "flops").value
        except ValueError:  # shapes not fully known (what the profiler skips too)
            uncounted.append(op.name)
            continue
        owner = _owner(op.name, model, cache)
        by_layer[owner] = by_layer.get(owner, 0.0) + float(flops or 0) / 2  # unregistered: free; 0 listed
        if flops is not None:
            by_type[op.type] += float(flops) / 2
    return MAddsReport(by_layer, dict(sorted(by_type.items(), key=lambda kv: -kv[1])), uncounted)


def count_experiment(params, input_size=None, model=None) -> MAddsReport:
    """MAdds of the model of a Model Garden ``ExperimentConfig`` (its task's ``build_model()``, or
    ``model`` when given), at ``input_size`` (``[h, w, c]``; default: ``task.model.input_size``). Mask
    R-CNN-style models, called as ``model(images, image_shape)``, get an ``image_shape`` input too."""
    from official.core import task_factory  # noqa: PLC0415 - heavy, only when counting experiments

    if input_size is not None:
        params.override({"task": {"model": {"input_size": list(input_size)}}}, is_strict=True)
    if model is None:
        model = task_factory.get_task(params.task).build_model()
    if getattr(model, "inputs", None):
        return count_madds(model)
    images = tf.TensorSpec([1, *params.task.model.input_size], tf.float32)
    if "image_shape" in inspect.signature(model.call).parameters:
        return count_madds(model, {"images": images, "image_shape": tf.TensorSpec([1, 2], tf.float32)})
    return count_madds(model, images)

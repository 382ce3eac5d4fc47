"""The primitive operations of the layer search space (paper Sec. 3, Table 2).

Each primitive is a small immutable :class:`Primitive` spec: name, arity, whether it aggregates over
the batch, how it renders (plain text and LaTeX templates with a precedence for parenthesization),
and two implementations of the same math:

* a TensorFlow one (``tf_fn``), used by :func:`evonorm.search.graph.evaluate` and so by the Keras layers
  built from graphs; it takes float32 tensors (NHWC by default) and an :class:`EvalContext`;
* a NumPy one (``np_fn``), used by the fast functional-equivalence fingerprint and the cheap output
  filters, which must not pay TensorFlow's per-op dispatch cost. NumPy arrays are channels-last and
  may carry extra leading axes (the fingerprint stacks its probe tensors on axis 0), so every axis is
  addressed from the end: ``b, h, w, c = -4, -3, -2, -1``.

Aggregations compute statistical moments over an index set ``I`` in ``(b,w,h)``, ``(w,h,c)``, ``(w,h)``
and ``(w,h,c/g)``: ``mu_I(x)`` (first moment), ``sqrt(mu_I(x^2) + eps)`` (second moment) and
``sqrt(s2_I(x) + eps)`` (centered second moment, biased variance). Only the ``(b,w,h)`` ones depend on
the batch; those need moving statistics at inference, which the graph evaluator handles (see
``batch_stat``/``stat_to_value``), so their ``tf_fn`` is never called directly.

Numerical guards (Table 2: "a small eps is inserted as necessary"): ``epsilon`` inside every
aggregation square root and in ``Log`` (``sign(x) ln(|x| + eps)``, as ``evonorm.ops.signed_log``);
``Div`` replaces denominators with ``|d| < DIV_GUARD`` by ``+-DIV_GUARD`` (exact for every other value,
so the graph EvoNorms match the hand-written layers bit for bit); ``Sqrt`` is ``sign(x) sqrt(max(|x|,
SQRT_TINY))``, equal to ``sign(x) sqrt(|x|)`` except below ``SQRT_TINY`` and with a finite gradient at 0.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

DIV_GUARD = 1e-12
SQRT_TINY = 1e-12

# Rendering precedences: operands binding looser than an operator's requirement get parentheses.
# Mul binds slightly tighter than Div so that "(a / b)*c" keeps its parentheses (readability).
PREC_ADD, PREC_DIV, PREC_MUL, PREC_NEG, PREC_POW, PREC_ATOM = 1.0, 2.0, 2.1, 2.5, 3.0, 4.0
# A LaTeX fraction needs no parentheses except under a power: (\frac{a}{b})^2.
PREC_FRAC = 3.5

# Index sets of Table 2: key -> (text subscript, LaTeX subscript).
INDEX_SETS = {"bwh": ("bwh", "b,w,h"), "whc": ("whc", "w,h,c"), "wh": ("wh", "w,h"),
              "whcg": ("whc/g", "w,h,c/g")}
# Moments: key -> (kind of per-channel statistic kept for batch aggregations, its moving-average init).
MOMENTS = {"mean": ("mean", 0.0), "rms": ("mean_square", 1.0), "std": ("variance", 1.0)}


@dataclasses.dataclass(frozen=True)
class EvalContext:
    """What the TensorFlow implementations need besides their operands.

    Attributes:
      shape: dynamic shape of the layer input ``x`` (aggregations broadcast their operand to it, so
        aggregating a per-channel variable or the zero constant is well defined).
      rank: static rank of ``x``.
      groups: channel groups for the ``(w,h,c/g)`` aggregations (None if the graph has none).
      epsilon: the small constant of the aggregation square roots and of ``Log``.
      data_format: ``'channels_last'`` or ``'channels_first'``.
      synchronized: all-reduce batch statistics across replicas under ``tf.distribute``.
    """

    shape: object
    rank: int
    groups: int | None
    epsilon: float
    data_format: str = "channels_last"
    synchronized: bool = False


@dataclasses.dataclass(frozen=True)
class Primitive:
    """One primitive operation of Table 2.

    Attributes:
      name: registry key used in graph JSON, e.g. ``'add'``, ``'std_bwh'``.
      arity: 1 or 2.
      batch_dependent: True for the ``(b,w,h)`` aggregations (excluded in the S-series search).
      text: plain-text template; ``{0}``, ``{1}`` are the rendered operands.
      latex: LaTeX template.
      precedence: how tightly the rendered result binds (``PREC_*``).
      operand_precedence: minimal precedence each operand must have to go without parentheses.
      tf_fn: ``(operands, EvalContext) -> tf.Tensor``.
      np_fn: ``(operands, EvalContext) -> np.ndarray`` (the context's ``shape`` is a tuple there).
      latex_precedence: precedence of the LaTeX rendering (``\\frac`` is atomic); None: ``precedence``.
      latex_operand_precedence: as ``operand_precedence`` for LaTeX; None: ``operand_precedence``.
      index_set: for aggregations, the key in ``INDEX_SETS``; None for element-wise ops.
      moment: for aggregations, the key in ``MOMENTS``; None for element-wise ops.
    """

    name: str
    arity: int
    batch_dependent: bool
    text: str
    latex: str
    precedence: float
    operand_precedence: tuple
    tf_fn: Callable = dataclasses.field(repr=False, compare=False)
    np_fn: Callable = dataclasses.field(repr=False, compare=False)
    latex_precedence: float | None = None
    latex_operand_precedence: tuple | None = None
    index_set: str | None = None
    moment: str | None = None

    def render_precedence(self, style: str) -> tuple:
        """``(precedence, operand_precedence)`` for ``style`` 'text' or 'latex'."""
        if style == "latex":
            return (self.precedence if self.latex_precedence is None else self.latex_precedence,
                    self.operand_precedence if self.latex_operand_precedence is None
                    else self.latex_operand_precedence)
        return self.precedence, self.operand_precedence

    @property
    def is_aggregation(self) -> bool:
        return self.index_set is not None

    @property
    def stat_kind(self) -> str | None:
        """'mean', 'mean_square' or 'variance': the per-channel statistic a batch aggregation keeps."""
        return MOMENTS[self.moment][0] if self.batch_dependent else None


# --- element-wise math ----------------------------------------------------------------------------


def _tf():
    import tensorflow as tf  # noqa: PLC0415 - lazy: importing evonorm.search must not import TF
    return tf


def _tf_div(a, b):
    tf = _tf()
    guard = tf.where(b >= 0, tf.constant(DIV_GUARD, b.dtype), tf.constant(-DIV_GUARD, b.dtype))
    return a / tf.where(tf.abs(b) < DIV_GUARD, guard, b)


def _np_div(a, b):
    b = np.where(np.abs(b) < DIV_GUARD, np.where(b >= 0, DIV_GUARD, -DIV_GUARD).astype(b.dtype), b)
    return a / b


def _tf_sqrt(a):
    tf = _tf()
    return tf.sign(a) * tf.sqrt(tf.maximum(tf.abs(a), SQRT_TINY))


def _np_sqrt(a):
    return np.sign(a) * np.sqrt(np.maximum(np.abs(a), a.dtype.type(SQRT_TINY)))


def _tf_log(a, eps):
    from evonorm import ops  # noqa: PLC0415
    return ops.signed_log(a, eps)


def _np_log(a, eps):
    return np.sign(a) * np.log(np.abs(a) + a.dtype.type(eps))


def _np_sigmoid(a):
    # Two-sided form: no overflow warning in exp for large |a|.
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(a.dtype, copy=False)


def _elementwise(name, arity, text, latex, prec, operand_prec, tf_math, np_math, **latex_prec):
    # Named closures rather than lambdas: AutoGraph cannot parse two lambdas on one line.
    def tf_fn(args, ctx):
        return tf_math(*args)

    def np_fn(args, ctx):
        return np_math(*args)

    return Primitive(name, arity, False, text, latex, prec, operand_prec, tf_fn=tf_fn, np_fn=np_fn,
                     **latex_prec)


ELEMENTWISE = (
    _elementwise("add", 2, "{0} + {1}", "{0} + {1}", PREC_ADD, (PREC_ADD, PREC_ADD),
                 lambda a, b: a + b, np.add),
    _elementwise("mul", 2, "{0}*{1}", "{0} {1}", PREC_MUL, (PREC_MUL, PREC_POW),
                 lambda a, b: a * b, np.multiply),
    _elementwise("div", 2, "{0} / {1}", "\\frac{{{0}}}{{{1}}}", PREC_DIV, (PREC_DIV, PREC_POW),
                 _tf_div, _np_div, latex_precedence=PREC_FRAC, latex_operand_precedence=(0, 0)),
    _elementwise("max", 2, "max({0}, {1})", "\\max({0}, {1})", PREC_ATOM, (0, 0),
                 lambda a, b: _tf().maximum(a, b), np.maximum),
    _elementwise("neg", 1, "-{0}", "-{0}", PREC_NEG, (PREC_NEG,), lambda a: -a, np.negative),
    _elementwise("sigmoid", 1, "sigmoid({0})", "\\sigma({0})", PREC_ATOM, (0,),
                 lambda a: _tf().sigmoid(a), _np_sigmoid),
    _elementwise("tanh", 1, "tanh({0})", "\\tanh({0})", PREC_ATOM, (0,), lambda a: _tf().tanh(a), np.tanh),
    _elementwise("exp", 1, "exp({0})", "\\exp({0})", PREC_ATOM, (0,), lambda a: _tf().exp(a), np.exp),
    _elementwise("abs", 1, "|{0}|", "|{0}|", PREC_ATOM, (0,), lambda a: _tf().abs(a), np.abs),
    _elementwise("square", 1, "{0}^2", "{0}^2", PREC_POW, (PREC_ATOM,), lambda a: _tf().square(a),
                 np.square),
    _elementwise("sqrt", 1, "ssqrt({0})", "\\operatorname{{ssqrt}}({0})", PREC_ATOM, (0,), _tf_sqrt,
                 _np_sqrt),
)
_LOG = Primitive("log", 1, False, "slog({0})", "\\operatorname{{slog}}({0})", PREC_ATOM, (0,),
                 tf_fn=lambda args, ctx: _tf_log(args[0], ctx.epsilon),
                 np_fn=lambda args, ctx: _np_log(args[0], ctx.epsilon))
# Table 2 order: Add, Mul, Div, Max, Neg, Sigmoid, Tanh, Exp, Log, Abs, Square, Sqrt.
ELEMENTWISE = ELEMENTWISE[:8] + (_LOG,) + ELEMENTWISE[8:]


# --- aggregations ---------------------------------------------------------------------------------


def _require_groups(ctx):
    if not ctx.groups:
        raise ValueError("the graph has a (w,h,c/g) aggregation but no `groups` was given; pass groups=...")
    return ctx.groups


def _tf_aggregate(a, index_set, moment, ctx):
    tf = _tf()
    from evonorm import ops  # noqa: PLC0415

    # Operands such as v1 ([C]) or mu_wh(x) ([B,1,1,C]) are broadcast first so that every aggregation
    # sees the full tensor the paper's shape-preserving notation implies.
    a = tf.broadcast_to(a, ctx.shape)
    eps, fmt = ctx.epsilon, ctx.data_format
    if index_set == "whcg":
        groups = _require_groups(ctx)
        if moment == "mean":
            return ops.group_reduce(a, groups, lambda t, ax: tf.reduce_mean(t, ax, keepdims=True), fmt)
        return (ops.group_rms if moment == "rms" else ops.group_std)(a, groups, eps, fmt)
    if index_set == "wh" and moment != "mean":
        return (ops.instance_rms if moment == "rms" else ops.instance_std)(a, eps, fmt)
    axes = {"bwh": ops.batch_axes, "whc": ops.instance_axes, "wh": ops.spatial_axes}[index_set](ctx.rank, fmt)
    if moment == "mean":
        return tf.reduce_mean(a, axes, keepdims=True)
    if moment == "rms":
        return tf.sqrt(tf.reduce_mean(tf.square(a), axes, keepdims=True) + eps)
    return tf.sqrt(ops.moments(a, axes)[1] + eps)


_NP_AXES = {"bwh": (-4, -3, -2), "whc": (-3, -2, -1), "wh": (-3, -2)}


def _np_moment(t, axes, moment, eps):
    mean = t.mean(axis=axes, keepdims=True)
    if moment == "mean":
        return mean
    if moment == "rms":
        return np.sqrt(np.square(t).mean(axis=axes, keepdims=True) + t.dtype.type(eps))
    return np.sqrt(np.square(t - mean).mean(axis=axes, keepdims=True) + t.dtype.type(eps))


def _np_aggregate(a, index_set, moment, ctx):
    a = np.broadcast_to(a, ctx.shape)
    if index_set != "whcg":
        return _np_moment(a, _NP_AXES[index_set], moment, ctx.epsilon)
    groups = _require_groups(ctx)
    channels = a.shape[-1]
    if channels % groups:
        raise ValueError(f"channels ({channels}) are not divisible by groups={groups}")
    grouped = a.reshape(a.shape[:-1] + (groups, channels // groups))
    stat = _np_moment(grouped, (-4, -3, -1), moment, ctx.epsilon)
    return np.broadcast_to(stat, grouped.shape).reshape(a.shape)


def batch_stat(prim: Primitive, a, ctx: EvalContext):
    """Per-channel batch statistic ``[C]`` of a ``(b,w,h)`` aggregation (mean, mean square or variance).

    This is what a layer keeps a moving average of; ``stat_to_value`` turns it (or the moving
    average, at inference) into the aggregation's output.
    """
    from evonorm import ops  # noqa: PLC0415

    if not prim.batch_dependent:
        raise ValueError(f"{prim.name!r} is not a batch aggregation")
    a = _tf().broadcast_to(a, ctx.shape)
    if prim.moment == "rms":
        return ops.batch_mean_square(a, ctx.data_format, ctx.synchronized)
    mean, var = ops.batch_moments(a, ctx.data_format, ctx.synchronized)
    return mean if prim.moment == "mean" else var


def stat_to_value(prim: Primitive, stat, ctx: EvalContext):
    """The output of a ``(b,w,h)`` aggregation from its per-channel statistic (broadcastable to x)."""
    tf = _tf()
    from evonorm import ops  # noqa: PLC0415

    stat = ops.broadcast_channels(tf.cast(stat, tf.float32), ctx.rank, ctx.data_format)
    return stat if prim.moment == "mean" else tf.sqrt(stat + ctx.epsilon)


def _aggregation(index_set, moment):
    sub, latex_sub = INDEX_SETS[index_set]
    text = {"mean": f"mu_{sub}({{0}})", "rms": f"sqrt(mu_{sub}({{0}}^2))", "std": f"sqrt(s2_{sub}({{0}}))"}
    latex = {"mean": f"\\mu_{{{{{latex_sub}}}}}({{0}})",
             "rms": f"\\sqrt{{{{\\mu_{{{{{latex_sub}}}}}({{0}}^2)}}}}",
             "std": f"\\sqrt{{{{s^2_{{{{{latex_sub}}}}}({{0}})}}}}"}
    batch = index_set == "bwh"

    def tf_fn(args, ctx):
        if batch:  # training-mode value; graph.evaluate routes batch ops through the moving statistics
            return stat_to_value(prim, batch_stat(prim, args[0], ctx), ctx)
        return _tf_aggregate(args[0], index_set, moment, ctx)

    prim = Primitive(f"{moment}_{index_set}", 1, batch, text[moment], latex[moment], PREC_ATOM,
                     (PREC_ATOM,) if moment == "rms" else (0,), tf_fn=tf_fn,
                     np_fn=lambda args, ctx: _np_aggregate(args[0], index_set, moment, ctx),
                     index_set=index_set, moment=moment)
    return prim


AGGREGATIONS = tuple(_aggregation(i, m) for i in INDEX_SETS for m in MOMENTS)
ALL_PRIMITIVES = ELEMENTWISE + AGGREGATIONS
PRIMITIVES = {p.name: p for p in ALL_PRIMITIVES}


def get(name: str) -> Primitive:
    """The primitive registered under ``name``; ValueError listing the known names otherwise."""
    try:
        return PRIMITIVES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown primitive op {name!r}; known ops: {', '.join(PRIMITIVES)}") from None


def op_names(allow_batch_ops: bool = True) -> tuple:
    """Names of the primitives to sample from, in Table 2 order; without the ``(b,w,h)`` aggregations
    when ``allow_batch_ops`` is False (the S-series search)."""
    return tuple(p.name for p in ALL_PRIMITIVES if allow_batch_ops or not p.batch_dependent)

"""Graphs as formulas (plain text, LaTeX) and as pictures like the paper's Figure 1.

Notation: ``mu_I``, ``s2_I`` are the mean and biased variance over the index set ``I`` (``bwh``,
``whc``, ``wh``, ``whc/g``); every aggregation square root carries the layer's epsilon, which the
formulas omit as the paper does. ``ssqrt(a) = sign(a) sqrt(|a|)`` and ``slog(a) = sign(a) ln|a|`` are
the signed Sqrt and Log primitives. Sub-expressions that depend on no input or variable are folded to
numbers (``exp(0)`` prints as ``1``). Long sub-expressions used more than once are bound to names,
as in the paper's ``max(z, 0), z = ...``: ``max(z1, 0), z1 = ...``.

Example:
  >>> from evonorm.search.known_graphs import KNOWN_GRAPHS
  >>> to_text(KNOWN_GRAPHS["evonorm_b0"])
  'x / max(sqrt(s2_bwh(x)), v1*x + sqrt(s2_wh(x)))'
  >>> draw(KNOWN_GRAPHS["evonorm_b0"], "b0.png")  # doctest: +SKIP
"""

from __future__ import annotations

import textwrap

import numpy as np

from evonorm.search import primitives
from evonorm.search.graph import INPUT, NUM_INITIAL, V0, V1, Graph
from evonorm.search.primitives import PREC_ADD, PREC_ATOM, PREC_DIV, PREC_NEG

LEAVES = {"text": ("x", "0", "v0", "v1"), "latex": ("x", "0", "v_0", "v_1")}
BIND_LENGTH = 24  # shared sub-expressions whose plain text is longer than this get a name


def constant_values(graph: Graph, epsilon: float = 1e-5) -> dict:
    """``{index: value}`` of the intermediate nodes that depend on no input or variable."""
    ctx = primitives.EvalContext((1, 1, 1, 1), 4, 1, epsilon)
    values = {1: np.zeros((1, 1, 1, 1))}
    with np.errstate(all="ignore"):
        for k, node in enumerate(graph.nodes):
            if all(i in values for i in node.inputs):
                args = [values[i] for i in node.inputs]
                values[NUM_INITIAL + k] = primitives.get(node.op).np_fn(args, ctx)
    return {i: float(np.ravel(v)[0]) for i, v in values.items() if i >= NUM_INITIAL}


def _number(value: float):
    text = f"{value:.4g}"
    return text, (PREC_ATOM if value >= 0 or not np.isfinite(value) else PREC_NEG)


def _render(graph: Graph, style: str, bound=None):
    """Returns (formula, indices bound to names); ``bound`` forces the binding decisions (so LaTeX
    names the same sub-expressions as the plain text)."""
    g = graph.prune()
    constants = constant_values(g)
    uses = {}
    for node in g.nodes:
        for i in node.inputs:
            uses[i] = uses.get(i, 0) + 1
    out = {i: (name, PREC_ATOM) for i, name in enumerate(LEAVES[style])}
    bindings, bound_now = [], []

    def operand(i, min_prec):
        text, prec = out[i]
        return f"({text})" if prec < min_prec else text

    for k, node in enumerate(g.nodes):
        index = NUM_INITIAL + k
        prim = primitives.get(node.op)
        if index in constants:
            out[index] = _number(constants[index])
            continue
        rhs = node.inputs[-1]
        rhs_node = g.nodes[rhs - NUM_INITIAL] if rhs >= NUM_INITIAL else None
        if (node.op == "add" and rhs_node is not None and rhs_node.op == "neg" and rhs not in constants
                and out[rhs][0].startswith("-")):
            # a + (-b) reads as a - b.
            text = f"{operand(node.inputs[0], PREC_ADD)} - {operand(rhs_node.inputs[0], PREC_DIV)}"
            out[index] = (text, PREC_ADD)
        else:
            template = prim.text if style == "text" else prim.latex
            prec, operand_prec = prim.render_precedence(style)
            args = [operand(i, p) for i, p in zip(node.inputs, operand_prec)]
            out[index] = (template.format(*args), prec)
        bind = (index in bound) if bound is not None else (
            uses.get(index, 0) > 1 and len(out[index][0]) > BIND_LENGTH)
        if bind:
            bound_now.append(index)
            name = f"z{len(bindings) + 1}" if style == "text" else f"z_{{{len(bindings) + 1}}}"
            bindings.append((name, out[index][0]))
            out[index] = (name, PREC_ATOM)
    main = out[g.output_index][0]
    if bindings:
        sep = ", " if style == "text" else ", \\quad "
        main += sep + sep.join(f"{name} = {text}" for name, text in bindings)
    return main, frozenset(bound_now)


def to_text(graph: Graph) -> str:
    """Plain-text formula of the graph (before the affine ``* gamma + beta``)."""
    return _render(graph, "text")[0]


def to_latex(graph: Graph) -> str:
    """LaTeX formula of the graph (before the affine), e.g. ``\\frac{x}{\\max(...)}``."""
    return _render(graph, "latex", bound=_render(graph, "text")[1])[0]


# --- pictures -------------------------------------------------------------------------------------

_SHORT_LABELS = {"add": "Add", "mul": "Mul", "div": "Div", "max": "Max", "neg": "Neg",
                 "sigmoid": r"$\sigma$", "tanh": "Tanh", "exp": "Exp", "log": "Log", "abs": "Abs",
                 "square": "Square", "sqrt": "Sqrt"}
_LEAF_LABELS = ("input x", "0", "$v_0$", "$v_1$")
_COLORS = {"leaf": "#d9d9d9", "elementwise": "#fde4b5", "aggregation": "#c6e2c3", "batch": "#b7cff2"}


def node_label(op: str) -> str:
    """Short matplotlib-mathtext label of an op, e.g. ``$\\sqrt{s^2_{b,w,h}}$``."""
    prim = primitives.get(op)
    if not prim.is_aggregation:
        return _SHORT_LABELS[op]
    sub = primitives.INDEX_SETS[prim.index_set][1]
    return {"mean": f"$\\mu_{{{sub}}}$", "rms": f"$\\sqrt{{\\mu_{{{sub}}}(\\cdot^2)}}$",
            "std": f"$\\sqrt{{s^2_{{{sub}}}}}$"}[prim.moment]


def layout(graph: Graph) -> dict:
    """``{index: (column, row)}`` of the live nodes: rows by longest path from the initial nodes,
    columns ordered by the mean column of each node's operands (fewer crossings)."""
    g = graph.prune()
    used_leaves = [i for i in range(NUM_INITIAL) if i in g.live_indices()]
    depth = {i: 0 for i in used_leaves}
    for k, node in enumerate(g.nodes):
        depth[NUM_INITIAL + k] = 1 + max(depth[i] for i in node.inputs)
    rows = {}
    for index, d in sorted(depth.items()):
        rows.setdefault(d, []).append(index)
    pos = {}
    for d in sorted(rows):
        members = rows[d]
        if d:
            members.sort(key=lambda i: np.mean([pos[j][0] for j in g.node(i).inputs]))
        width = len(members)
        for c, index in enumerate(members):
            pos[index] = (c - (width - 1) / 2.0, -float(d))
    return pos


def draw(graph: Graph, path: str | None = None, title: str | None = None, dpi: int = 150):
    """Draws the pruned graph as a layered DAG (input on top, output at the bottom) like Figure 1.

    Leaves are grey, element-wise ops orange, per-sample aggregations green, batch aggregations blue
    (the terms that need moving averages, highlighted as in the paper's Table 3). The two operands of
    ``Div`` are labelled ``num`` and ``den``.

    Args:
      graph: graph to draw.
      path: where to save a PNG (any matplotlib format by extension); None returns the figure only.
      title: figure title; defaults to the plain-text formula.
      dpi: resolution of the saved file.

    Returns:
      The matplotlib ``Figure``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415 - lazy, optional
    from matplotlib.figure import Figure  # noqa: PLC0415
    from matplotlib.patches import FancyArrowPatch  # noqa: PLC0415

    g = graph.prune()
    pos = layout(g)
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    width = max(4.0, 1.9 * (max(xs) - min(xs) + 1))
    height = max(3.0, 1.1 * (max(ys) - min(ys) + 1) + 0.8)
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    box = dict(boxstyle="round,pad=0.35", linewidth=1.0)
    ax.set_xlim(min(xs) - 0.8, max(xs) + 0.8)
    ax.set_ylim(min(ys) - 0.8, max(ys) + 0.5)
    for k, node in enumerate(g.nodes):
        index = NUM_INITIAL + k
        for slot, i in enumerate(node.inputs):
            (x0, y0), (x1, y1) = pos[i], pos[index]
            # Edges that skip layers bend so they do not run through the nodes in between.
            span = round(y0 - y1)
            rad = 0.0 if span <= 1 else (0.25 if x1 >= x0 else -0.25)
            arrow = FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=12, shrinkA=14,
                                    shrinkB=14, color="#555555", linewidth=1.0, zorder=1,
                                    connectionstyle=f"arc3,rad={rad}")
            ax.add_patch(arrow)
            if node.op == "div":
                # Label at the curve's midpoint: arc3's control point sits rad * length off the chord,
                # in display coordinates, and a quadratic Bezier passes halfway to it.
                (d0x, d0y), (d1x, d1y) = ax.transData.transform([(x0, y0), (x1, y1)])
                mid = ((d0x + d1x) / 2 + 0.5 * rad * (d1y - d0y), (d0y + d1y) / 2 - 0.5 * rad * (d1x - d0x))
                mx, my = ax.transData.inverted().transform(mid)
                ax.text(mx, my, ("num", "den")[slot], fontsize=7, color="#444444", ha="center",
                        va="center", zorder=3, bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none"))
    for index, (x, y) in pos.items():
        if index < NUM_INITIAL:
            label, color = _LEAF_LABELS[index], _COLORS["leaf"]
        else:
            prim = primitives.get(g.node(index).op)
            label = node_label(prim.name)
            kind = ("batch" if prim.batch_dependent
                    else "aggregation" if prim.is_aggregation else "elementwise")
            color = _COLORS[kind]
        edge = "#c0392b" if index == g.output_index else "#333333"
        ax.text(x, y, label, ha="center", va="center", fontsize=10, zorder=2,
                bbox=dict(box, facecolor=color, edgecolor=edge,
                          linewidth=2.0 if index == g.output_index else 1.0))
    if g.output_index in pos:
        x, y = pos[g.output_index]
        ax.text(x, y - 0.45, "output", ha="center", va="top", fontsize=8, color="#c0392b")
    ax.axis("off")
    # Wrap long formulas to the figure width (about 11 characters per inch at this font size).
    ax.set_title(textwrap.fill(title if title is not None else to_text(g), width=max(30, int(width * 11))),
                 fontsize=9)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=dpi)
    return fig


__all__ = ["to_text", "to_latex", "draw", "layout", "node_label", "constant_values", "INPUT", "V0", "V1"]

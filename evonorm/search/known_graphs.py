"""Known layers as search-space graphs: the EvoNorms, the searched baselines of Table 3, Table 7's
ablations of EvoNorm-B0, and the hand-designed baselines as far as the search space expresses them.

Names match ``evonorm.layers.list_norm_acts()``, so ``graph_to_layer(KNOWN_GRAPHS[name])`` can be
compared with ``create_norm_act(name)``. Every searched layer is followed by the affine
``* gamma + beta``, which is not part of the graph.

Exact (``EXACT``): graph + affine computes the registry layer's formula (same epsilon placement, same
moving statistics), verified numerically in ``tests/search/test_keras_layer.py``. EvoNorm-B1's "+ 1"
is ``exp(0)``: the search space has no constant one, and ``exp`` of the zero node is exactly 1.

Approximations (``APPROXIMATIONS``): in "normalize, affine, then activate" layers (BN-ReLU, GN-ReLU,
LN-ReLU, BN/GN-SiLU, FRN) the nonlinearity comes *after* the affine, which no graph can express because
the affine always comes last. Their graphs apply the activation *before* the affine. They agree with
the registry layer at initialization (gamma = 1, beta = 0); ReLU variants agree whenever beta = 0 and
gamma > 0 (``max(z, 0) g = max(z g, 0)``), and FRN's ``max(z g + b, tau)`` is reparametrized exactly
by ``max(z, v0) g + b`` with ``tau = v0 g + b`` for gamma > 0. PixelNorm (mean over channels only) is
not expressible: no aggregation reduces over ``c`` alone.
"""

from __future__ import annotations

from evonorm.search.graph import INPUT as X
from evonorm.search.graph import NUM_INITIAL, V0, V1, ZERO, Graph


class _Builder:
    """Tiny DSL: ``b = _Builder(); s = b("std_wh", X); b("div", X, s); b.graph()``."""

    def __init__(self):
        self.nodes = []

    def __call__(self, op, *inputs):
        self.nodes.append((op, inputs))
        return NUM_INITIAL + len(self.nodes) - 1

    def graph(self) -> Graph:
        return Graph(self.nodes)


def _b_series(denominator_rhs) -> Graph:
    """x / max(sqrt(s2_bwh(x)), rhs) with ``rhs`` built by ``denominator_rhs(builder)``."""
    b = _Builder()
    batch = b("std_bwh", X)
    rhs = denominator_rhs(b)
    b("div", X, b("max", batch, rhs))
    return b.graph()


def _s_series(activation, normalizer) -> Graph:
    """activation(x) / normalizer_{w,h,c/g}(x)."""
    b = _Builder()
    numerator = activation(b)
    b("div", numerator, b(normalizer, X))
    return b.graph()


def _normalized(b, mean_op, std_op):
    """(x - mu_I(x)) / sqrt(s2_I(x)): the normalization part of BN / GN / LN."""
    centered = b("add", X, b("neg", b(mean_op, X)))
    return b("div", centered, b(std_op, X))


def _norm_relu(mean_op, std_op) -> Graph:
    b = _Builder()
    b("max", _normalized(b, mean_op, std_op), ZERO)
    return b.graph()


def _norm_silu(mean_op, std_op) -> Graph:
    b = _Builder()
    z = _normalized(b, mean_op, std_op)
    b("mul", z, b("sigmoid", b("mul", V1, z)))
    return b.graph()


def _single(*chain) -> Graph:
    b = _Builder()
    for op, inputs in chain:
        b(op, *inputs)
    return b.graph()


def _build():
    g = {}
    g["evonorm_b0"] = _b_series(lambda b: b("add", b("mul", V1, X), b("std_wh", X)))
    g["evonorm_b1"] = _b_series(lambda b: b("mul", b("add", X, b("exp", ZERO)), b("rms_wh", X)))
    g["evonorm_b2"] = _b_series(lambda b: b("add", b("rms_wh", X), b("neg", X)))
    g["evonorm_s0"] = _s_series(lambda b: b("mul", X, b("sigmoid", b("mul", V1, X))), "std_whcg")
    g["evonorm_s1"] = _s_series(lambda b: b("mul", X, b("sigmoid", X)), "std_whcg")
    g["evonorm_s2"] = _s_series(lambda b: b("mul", X, b("sigmoid", X)), "rms_whcg")
    # Table 3's searched baselines.
    g["random"] = _single(("sigmoid", (X,)), ("std_wh", (4,)), ("sqrt", (5,)))
    g["random_rej"] = _single(("tanh", (X,)), ("max", (X, 4)), ("tanh", (5,)))
    g["rs_rej"] = _single(("max", (X, ZERO)), ("rms_bwh", (X,)), ("div", (4, 5)))
    # Table 7: structural changes to EvoNorm-B0.
    g["evonorm_b0_no_v1x"] = _b_series(lambda b: b("std_wh", X))
    g["evonorm_b0_no_local"] = _single(("std_bwh", (X,)), ("div", (X, 4)))
    g["evonorm_b0_no_global"] = _single(("mul", (V1, X)), ("std_wh", (X,)), ("add", (4, 5)), ("div", (X, 6)))
    g["evonorm_b0_max_to_add"] = _single(("std_bwh", (X,)), ("mul", (V1, X)), ("add", (4, 5)),
                                         ("std_wh", (X,)), ("add", (6, 7)), ("div", (X, 8)))
    # Hand-designed baselines, activation before the affine (see the module docstring).
    g["bn_relu"] = _norm_relu("mean_bwh", "std_bwh")
    g["bn_silu"] = _norm_silu("mean_bwh", "std_bwh")
    g["gn_relu"] = _norm_relu("mean_whcg", "std_whcg")
    g["gn_silu"] = _norm_silu("mean_whcg", "std_whcg")
    g["ln_relu"] = _norm_relu("mean_whc", "std_whc")
    g["frn"] = _single(("rms_wh", (X,)), ("div", (X, 4)), ("max", (5, V0)))
    return g


KNOWN_GRAPHS: dict = _build()

EXACT = ("evonorm_b0", "evonorm_b1", "evonorm_b2", "evonorm_s0", "evonorm_s1", "evonorm_s2", "random",
         "random_rej", "rs_rej", "evonorm_b0_no_v1x", "evonorm_b0_no_local", "evonorm_b0_no_global",
         "evonorm_b0_max_to_add")

APPROXIMATIONS = {
    "bn_relu": "ReLU before the affine; equal for beta = 0, gamma > 0 (so at initialization)",
    "gn_relu": "ReLU before the affine; equal for beta = 0, gamma > 0 (so at initialization)",
    "ln_relu": "ReLU before the affine; equal for beta = 0, gamma > 0 (so at initialization)",
    "bn_silu": "SiLU before the affine; equal at gamma = 1, beta = 0 (initialization)",
    "gn_silu": "SiLU before the affine; equal at gamma = 1, beta = 0 (initialization)",
    "frn": "TLU threshold before the affine; exact reparametrization tau = v0*gamma + beta for gamma > 0",
}


def get_known_graph(name: str) -> Graph:
    """The graph registered under ``name``; ValueError listing the known names otherwise."""
    key = name.strip().lower().replace("-", "_") if isinstance(name, str) else name
    if key not in KNOWN_GRAPHS:
        raise ValueError(f"no known graph {name!r}; known: {', '.join(sorted(KNOWN_GRAPHS))}")
    return KNOWN_GRAPHS[key]


__all__ = ["KNOWN_GRAPHS", "EXACT", "APPROXIMATIONS", "get_known_graph", "V0"]

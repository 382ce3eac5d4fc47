"""Known layers as graphs: formulas (paper Tables 1, 3, 4, 7), drawings (Figure 1), registry."""

import subprocess
import sys

import pytest

from evonorm.search import render
from evonorm.search.graph import Graph
from evonorm.search.known_graphs import APPROXIMATIONS, EXACT, KNOWN_GRAPHS, get_known_graph

TEXT = {
    "evonorm_b0": "x / max(sqrt(s2_bwh(x)), v1*x + sqrt(s2_wh(x)))",
    "evonorm_b1": "x / max(sqrt(s2_bwh(x)), (x + 1)*sqrt(mu_wh(x^2)))",
    "evonorm_b2": "x / max(sqrt(s2_bwh(x)), sqrt(mu_wh(x^2)) - x)",
    "evonorm_s0": "x*sigmoid(v1*x) / sqrt(s2_whc/g(x))",
    "evonorm_s1": "x*sigmoid(x) / sqrt(s2_whc/g(x))",
    "evonorm_s2": "x*sigmoid(x) / sqrt(mu_whc/g(x^2))",
    "random": "ssqrt(sqrt(s2_wh(sigmoid(x))))",
    "random_rej": "tanh(max(x, tanh(x)))",
    "rs_rej": "max(x, 0) / sqrt(mu_bwh(x^2))",
    "evonorm_b0_max_to_add": "x / (sqrt(s2_bwh(x)) + v1*x + sqrt(s2_wh(x)))",
    "bn_relu": "max((x - mu_bwh(x)) / sqrt(s2_bwh(x)), 0)",
    "bn_silu": "z1*sigmoid(v1*z1), z1 = (x - mu_bwh(x)) / sqrt(s2_bwh(x))",
    "frn": "max(x / sqrt(mu_wh(x^2)), v0)",
}

LATEX = {
    "evonorm_b0": r"\frac{x}{\max(\sqrt{s^2_{b,w,h}(x)}, v_1 x + \sqrt{s^2_{w,h}(x)})}",
    "evonorm_s0": r"\frac{x \sigma(v_1 x)}{\sqrt{s^2_{w,h,c/g}(x)}}",
    "evonorm_b2": r"\frac{x}{\max(\sqrt{s^2_{b,w,h}(x)}, \sqrt{\mu_{w,h}(x^2)} - x)}",
    "rs_rej": r"\frac{\max(x, 0)}{\sqrt{\mu_{b,w,h}(x^2)}}",
}


@pytest.mark.parametrize("name", sorted(TEXT))
def test_text_formulas(name):
    assert KNOWN_GRAPHS[name].to_text() == TEXT[name]


@pytest.mark.parametrize("name", sorted(LATEX))
def test_latex_formulas(name):
    assert KNOWN_GRAPHS[name].to_latex() == LATEX[name]


def test_registry_and_properties():
    assert set(EXACT) | set(APPROXIMATIONS) == set(KNOWN_GRAPHS)
    assert not set(EXACT) & set(APPROXIMATIONS)
    for name, g in KNOWN_GRAPHS.items():
        assert g.num_nodes <= 10 and g.prune().num_nodes == g.num_nodes, name
        assert g.uses_batch_stats == (name.startswith(("evonorm_b", "bn_", "rs_")) and
                                      name != "evonorm_b0_no_global"), name
    assert KNOWN_GRAPHS["evonorm_s0"].uses_groups and not KNOWN_GRAPHS["evonorm_b0"].uses_groups
    assert get_known_graph("EvoNorm-B0") == KNOWN_GRAPHS["evonorm_b0"]
    with pytest.raises(ValueError, match="no known graph 'pn_relu'"):
        get_known_graph("pn_relu")


def test_render_folds_constants_and_parenthesizes():
    g = Graph([("exp", (1,)), ("neg", (4,)), ("add", (0, 3)), ("mul", (6, 5)), ("square", (7,)),
               ("div", (0, 8))])
    assert g.to_text() == "x / ((x + v1)*(-1))^2"
    assert g.to_latex() == r"\frac{x}{((x + v_1) (-1))^2}"
    nested = Graph([("add", (0, 2)), ("neg", (4,)), ("add", (3, 5))])
    assert nested.to_text() == "v1 - (x + v0)"
    div_in_mul = Graph([("div", (0, 3)), ("mul", (4, 2))])
    assert div_in_mul.to_text() == "(x / v1)*v0"


def test_draw_writes_png(tmp_path):
    path = tmp_path / "b0.png"
    fig = render.draw(KNOWN_GRAPHS["evonorm_b0"], str(path))
    assert path.stat().st_size > 10_000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    labels = {t.get_text() for t in fig.axes[0].texts}
    assert {"input x", "$v_1$", "Div", "Max", "num", "den", r"$\sqrt{s^2_{b,w,h}}$"} <= labels
    pos = render.layout(KNOWN_GRAPHS["evonorm_b0"])
    assert pos[0][1] == 0 and pos[9][1] == -4  # input on top, output four layers down


def test_importing_search_does_not_import_tensorflow():
    code = ("import sys, evonorm.search, evonorm.search.known_graphs, evonorm.search.fingerprint, "
            "evonorm.search.mutation, evonorm.search.render; "
            "print('tensorflow' in sys.modules, 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]

"""Functional-equivalence fingerprints and cheap output filters."""

import subprocess
import sys
import time

from evonorm.search.fingerprint import check_outputs, fingerprint
from evonorm.search.generator import random_graph
from evonorm.search.graph import Graph
from evonorm.search.known_graphs import KNOWN_GRAPHS


def test_algebraically_identical_graphs_share_a_fingerprint():
    a = Graph([("sigmoid", (0,)), ("add", (0, 4))])
    b = Graph([("sigmoid", (0,)), ("add", (4, 0))])
    assert a != b and fingerprint(a) == fingerprint(b)
    # (x + v1) + v0 vs x + (v1 + v0): different float rounding, same function.
    c = Graph([("add", (0, 3)), ("add", (4, 2))])
    d = Graph([("add", (3, 2)), ("add", (0, 4))])
    assert fingerprint(c) == fingerprint(d)
    # Dead nodes do not matter; neither does x / y vs x * (1 / y) up to rounding.
    e = Graph([("tanh", (1,)), ("std_wh", (0,)), ("div", (0, 5))])
    f = Graph([("std_wh", (0,)), ("exp", (1,)), ("div", (5, 4)), ("mul", (0, 6))])
    assert fingerprint(e) == fingerprint(f)


def test_different_functions_differ():
    keys = {fingerprint(g) for g in KNOWN_GRAPHS.values()}
    assert len(keys) == len(KNOWN_GRAPHS)
    # v0 * x and 0 would collide with v0 at its initial value 0; the probes use random v0, v1.
    assert fingerprint(Graph([("mul", (2, 0))])) != fingerprint(Graph([("mul", (1, 0))]))
    assert fingerprint(Graph([("std_wh", (0,))])) != fingerprint(Graph([("std_whc", (0,))]))
    assert fingerprint(Graph([("std_bwh", (0,))])) != fingerprint(Graph([("rms_bwh", (0,))]))


def test_fingerprint_is_stable_across_processes():
    code = ("from evonorm.search.fingerprint import fingerprint; "
            "from evonorm.search.known_graphs import KNOWN_GRAPHS; "
            "print(fingerprint(KNOWN_GRAPHS['evonorm_s0']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == fingerprint(KNOWN_GRAPHS["evonorm_s0"])


def test_check_outputs_reasons():
    for g in KNOWN_GRAPHS.values():
        assert check_outputs(g) is None
    assert check_outputs(Graph([("sigmoid", (3,))])).startswith("constant: the output does not depend")
    x_minus_x = Graph([("neg", (0,)), ("add", (0, 4))])
    assert check_outputs(x_minus_x).startswith("constant: the output is the same")
    assert check_outputs(Graph([("mean_wh", (0,)), ("std_wh", (4,))])).startswith("constant")
    assert check_outputs(Graph([("exp", (0,))])).startswith("non-finite: inf")  # x ~ 100 on one probe
    assert check_outputs(Graph([("exp", (0,)), ("exp", (4,)), ("neg", (5,)), ("add", (5, 6))])
                         ).startswith("non-finite: nan")
    # No per-sample information (tests/search/test_information_filter.py has the details).
    assert check_outputs(Graph([("std_bwh", (0,))])).startswith("uninformative: the output is identical")
    assert check_outputs(Graph([("mean_whc", (0,))])).startswith("uninformative: one value per sample")
    assert check_outputs(Graph([("mean_whc", (0,)), ("mul", (4, 3))])) is None  # varies over c


def test_fast_enough_for_the_search_loop():
    graphs = [random_graph(seed) for seed in range(300)]
    start = time.perf_counter()
    for g in graphs:
        fingerprint(g)
        check_outputs(g)
    rate = len(graphs) / (time.perf_counter() - start)
    assert rate > 200, f"{rate:.0f} graphs/s"

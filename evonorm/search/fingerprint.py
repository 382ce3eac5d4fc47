"""Functional-equivalence keys and cheap output filters for layer graphs.

Two graphs with the same :func:`fingerprint` compute the same function up to rounding on a fixed set
of probe inputs, so evolution can reuse a fitness instead of training the same layer twice
(AutoML-Zero's functional-equivalence cache). :func:`check_outputs` rejects graphs whose output is
non-finite or does not depend on the input before any training is spent on them.

Everything runs in NumPy (``graph.evaluate_numpy``, training-mode batch statistics), no TensorFlow:
the probes are 4 batches of ``[4, 4, 4, 8]`` NHWC tensors (normal, large scale ``x 100`` with an
offset, small scale ``x 1e-3``, positive-shifted) with fixed random per-channel ``v0``, ``v1`` (not
their initial 0 and 1, which would make e.g. ``v0 * x`` and ``0`` collide) and 2 channel groups.
Fingerprints use float64 and keep 20 significant bits of each output value; the filters use float32,
the precision layers train in (``exp`` overflows there at 88).

Speed of fingerprint + check_outputs on this project's 2-core CPU (shared with other jobs), one process:
about 4600 graphs/s on the paper's random 10-node graphs (``python -m evonorm.search.fingerprint
--count 2000``; most have 1-3 live nodes) and about 1400 graphs/s on those with >= 6 live nodes
(``python -m evonorm.search.fingerprint --count 1000 --min-live 6``).
"""

from __future__ import annotations

import argparse
import hashlib
import time

import numpy as np

from evonorm.search.graph import Graph, evaluate_numpy

PROBE_SHAPE = (4, 4, 4, 8)  # (batch, height, width, channels) of each probe batch
PROBE_GROUPS = 2
PROBE_EPSILON = 1e-5
MANTISSA_BITS = 20
CONSTANT_RTOL = 1e-4  # float32 noise: s2_wh(mu_wh(x)) varies by ~1e-5 relative across probes
CONSTANT_ATOL = 1e-6


def _make_probes():
    rng = np.random.default_rng(20200406)  # fixed: fingerprints must be stable across processes
    normal = rng.standard_normal((4,) + PROBE_SHAPE)
    probes = np.stack([normal[0], 100.0 * normal[1] + 30.0, 1e-3 * normal[2], normal[3] + 2.0])
    channels = PROBE_SHAPE[-1]
    v0 = rng.normal(0.0, 0.5, channels)
    v1 = 1.0 + rng.normal(0.0, 0.5, channels)
    return probes, v0, v1


PROBES, PROBE_V0, PROBE_V1 = _make_probes()
_PROBES32, _V0_32, _V1_32 = (a.astype(np.float32) for a in (PROBES, PROBE_V0, PROBE_V1))


def probe_outputs(graph: Graph, dtype=np.float64) -> np.ndarray:
    """The graph's outputs on the probes, ``[4, *PROBE_SHAPE]`` in ``dtype`` (float64 or float32)."""
    if dtype == np.float32:
        x, v0, v1 = _PROBES32, _V0_32, _V1_32
    else:
        x, v0, v1 = PROBES, PROBE_V0, PROBE_V1
    return evaluate_numpy(graph, x, v0, v1, groups=PROBE_GROUPS, epsilon=PROBE_EPSILON)


def quantize(values: np.ndarray) -> bytes:
    """Rounds to ``MANTISSA_BITS`` significant bits (so float noise from reordered arithmetic
    vanishes) and packs the result; nan, +inf and -inf get their own codes."""
    y = np.asarray(values, np.float64)
    finite = np.isfinite(y)
    mantissa, exponent = np.frexp(np.where(finite, y, 0.0))
    q = np.round(mantissa * (1 << MANTISSA_BITS)).astype(np.int64)
    # Tiny values are noise around an exact zero (e.g. x - x computed two ways).
    tiny = np.abs(y) < 1e-12
    q[tiny], exponent[tiny] = 0, 0
    codes = np.where(finite, 0, np.where(np.isnan(y), 1, np.where(y > 0, 2, 3))).astype(np.int8)
    return q.tobytes() + exponent.astype(np.int16).tobytes() + codes.tobytes()


def fingerprint(graph: Graph) -> str:
    """Hex key equal for graphs that compute the same function on the probes (e.g. ``Add(a, b)`` and
    ``Add(b, a)``, or two graphs that differ only in dead nodes)."""
    digest = hashlib.blake2b(quantize(probe_outputs(graph)), digest_size=16)
    return digest.hexdigest()


def check_outputs(graph: Graph) -> str | None:
    """A rejection reason, or None when the graph passes the cheap filters.

    Rejects: an output with no path from ``x`` ("constant: ..."), non-finite outputs on the float32
    probes ("non-finite: ..."), and outputs that are the same for every probe input ("constant: ...",
    e.g. ``x - x`` or ``s2_wh(mu_wh(x))``).
    """
    if not graph.depends_on_input:
        return "constant: the output does not depend on the input x"
    y = probe_outputs(graph, np.float32)
    bad = ~np.isfinite(y)
    if bad.any():
        probes = sorted({int(p) for p in np.nonzero(bad.reshape(len(y), -1).any(axis=1))[0]})
        kinds = "nan" if np.isnan(y).any() else "inf"
        return f"non-finite: {kinds} outputs on probe batch(es) {probes} (float32)"
    reference = y[0]
    if all(np.allclose(y[p], reference, rtol=CONSTANT_RTOL, atol=CONSTANT_ATOL) for p in range(1, len(y))):
        return "constant: the output is the same for every probe input"
    return None


def _benchmark(count: int, seed: int, min_live: int = 0) -> float:
    from evonorm.search.generator import random_graph  # noqa: PLC0415

    graphs, i = [], seed
    while len(graphs) < count:
        g = random_graph(i)
        i += 1
        if len(g.prune()) >= min_live:
            graphs.append(g)
    start = time.perf_counter()
    for g in graphs:
        fingerprint(g)
        check_outputs(g)
    return count / (time.perf_counter() - start)


def main(argv=None):
    """``python -m evonorm.search.fingerprint --count 2000``: graphs/s of fingerprint + check_outputs."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-live", type=int, default=0, help="only graphs with this many live nodes")
    args = parser.parse_args(argv)
    rate = _benchmark(args.count, args.seed, args.min_live)
    print(f"{args.count} random graphs (>= {args.min_live} live nodes): {rate:.0f} graphs/s "
          f"(fingerprint + check_outputs)")


if __name__ == "__main__":
    main()

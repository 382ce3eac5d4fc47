"""Functional-equivalence keys and cheap output filters for layer graphs.

Two graphs with the same :func:`fingerprint` compute the same function up to rounding on a fixed set
of probe inputs, so evolution can reuse a fitness instead of training the same layer twice
(AutoML-Zero's functional-equivalence cache). :func:`check_outputs` rejects graphs whose output is
non-finite, does not depend on the input, or carries no information about the individual sample,
before any training is spent on them.

Rejection categories (the text before the first ``:`` of the reason; the evaluator stores it as the
candidate's ``rejected`` value):

* ``constant``: no path from ``x``, or the same output for every probe batch (e.g. ``x - x``).
* ``non-finite`` (stored as ``nonfinite``): nan or inf on a float32 probe.
* ``uninformative``: the output carries no per-sample information, by one of two rules, each of which
  must hold on *all four* probe batches (:func:`information_check`):

  - **batch-invariant** -- the output is identical for every sample of the batch (e.g.
    ``sqrt(s2_bwh(x))``). Provably useless: every proxy ends in a candidate layer (and its per-channel
    affine) right before global pooling and the dense classifier (ResNet's ``final_na``, the mobile
    nets' ``head_na``), so all logits are equal for all images -- in training mode, and in inference
    mode too, where the ``(b,w,h)`` statistics become moving averages -- and the accuracy is one
    class's frequency (about 10%), below the 20% quality threshold. On the stored rows the numeric rule
    flagged exactly the graphs whose every path from ``x`` passes through a ``(b,w,h)`` aggregation.
  - **one value per sample** -- constant over ``h``, ``w`` and ``c`` within each sample (e.g.
    ``mu_whc(x)``, ``slog(sqrt(s2_whc(x)))``). Not provably useless (one scalar per image can carry a
    little class information); rejected because none of the 105 such layers in the stored searches
    passed even the first proxy (best ResNet accuracy 0.1785 < 0.2; see the replay below). A per-sample
    scalar times a channel vector (``mu_whc(x) * v1``) varies over ``c`` and is *not* rejected.

  Tolerance: a value counts as equal to its reference (the first sample / the first element of the
  sample) when ``|y - ref| <= INFORMATION_RTOL * scale`` with ``INFORMATION_RTOL = 1e-4`` (about 800
  float32 ulps) and ``scale`` the largest ``|y|`` of the same probe batch and channel (batch rule) or of
  the same sample (per-sample rule). The rule is relative, so it does not depend on the output's scale
  (the probes span 1e-3 to 1e2), and it tolerates cancellation noise: ``(x + mu_whc(x)) - x`` deviates
  by about 1e-6 relative in float32 and is still flagged. It is deterministic (fixed probes, NumPy).

Replay over the committed ``official/results/search/{evolution,random}_default/search.db`` (every
evaluated, i.e. non-duplicate, row; ``tests/search/test_information_filter.py`` repeats it):

=====================================  ====================  ====================
                                       evolution_default     random_default
=====================================  ====================  ====================
past the older filters                 284                   435
rejected as ``uninformative``          109 (61 batch-inv.)   170 (113 batch-inv.)
  where TF rejected them               stability 60,         stability 95,
                                       quality 49            quality 75
  wall time they used                  1,666 of 5,033 s      2,513 of 6,822 s
                                       = 33.1%               = 36.8%
  best ResNet accuracy, batch-inv.     0.108                 0.108
  best ResNet accuracy, per-sample     0.1785                0.1565
rejected among accepted (9 / 4)        0                     0
rejected among 2nd-proxy entrants      0 of 23               0 of 26
=====================================  ====================  ====================

The largest relative deviation among the flagged rows is 1e-7 (float32 rounding), the smallest among
the others 0.027, so every tolerance from 1e-6 to 1e-3 gives the same verdicts, and float64 probes give
the same verdicts as the float32 ones used here.

Everything runs in NumPy (``graph.evaluate_numpy``, training-mode batch statistics), no TensorFlow:
the probes are 4 batches of ``[4, 4, 4, 8]`` NHWC tensors (normal, large scale ``x 100`` with an
offset, small scale ``x 1e-3``, positive-shifted) with fixed random per-channel ``v0``, ``v1`` (not
their initial 0 and 1, which would make e.g. ``v0 * x`` and ``0`` collide) and 2 channel groups.
Fingerprints use float64 and keep 20 significant bits of each output value; the filters use float32,
the precision layers train in (``exp`` overflows there at 88).

Speed of fingerprint + check_outputs on this project's 2-core CPU (shared with other jobs), one process:
about 4600 graphs/s on the paper's random 10-node graphs (``python -m evonorm.search.fingerprint
--count 2000``; most have 1-3 live nodes) and about 1400 graphs/s on those with >= 6 live nodes
(``python -m evonorm.search.fingerprint --count 1000 --min-live 6``). The information check adds about
30 us per graph that reaches it.
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
INFORMATION_RTOL = 1e-4  # relative to the largest |output| per probe and channel / sample; ~800 float32 ulps
BATCH_INVARIANT = "uninformative: the output is identical for every sample of the batch (batch-invariant)"
PER_SAMPLE_SCALAR = "uninformative: one value per sample (constant over h, w and c)"


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


def _equal_along(y: np.ndarray, axes: tuple, scale_axes: tuple) -> bool:
    """Whether every probe batch of ``y`` (``[P, B, H, W, C]``) is constant along ``axes``, up to
    ``INFORMATION_RTOL`` times the largest ``|y|`` over ``scale_axes`` (same probe, other axes kept)."""
    reference = y[tuple(slice(0, 1) if a in axes else slice(None) for a in range(y.ndim))]
    deviation = np.abs(y - reference).max(axis=scale_axes, keepdims=True)
    scale = np.abs(y).max(axis=scale_axes, keepdims=True)
    return bool(np.all(deviation <= INFORMATION_RTOL * scale))


def information_check(y: np.ndarray) -> str | None:
    """The ``uninformative`` rejection reason for finite probe outputs ``y``, or None.

    Args:
      y: the graph's outputs on the probes, ``[P, B, H, W, C]`` (:func:`probe_outputs`), all finite.

    Returns:
      :data:`BATCH_INVARIANT` when every probe batch's output is the same for all its samples,
      :data:`PER_SAMPLE_SCALAR` when it is constant over ``(h, w, c)`` within every sample (both up to
      ``INFORMATION_RTOL``; see the module docstring for why each is rejected), else None.
    """
    y = np.asarray(y)
    # Batch rule: scale per (probe, channel), so a large constant channel cannot hide a small varying one.
    if _equal_along(y, axes=(1,), scale_axes=(1, 2, 3)):
        return BATCH_INVARIANT
    if _equal_along(y, axes=(2, 3, 4), scale_axes=(2, 3, 4)):
        return PER_SAMPLE_SCALAR
    return None


def check_outputs(graph: Graph) -> str | None:
    """A rejection reason, or None when the graph passes the cheap filters.

    Rejects, in this order: an output with no path from ``x`` ("constant: ..."), non-finite outputs on
    the float32 probes ("non-finite: ..."), outputs that are the same for every probe input
    ("constant: ...", e.g. ``x - x`` or ``s2_wh(mu_wh(x))``), and outputs without per-sample
    information ("uninformative: ...", :func:`information_check`: e.g. ``sqrt(s2_bwh(x))`` or
    ``mu_whc(x)``). The text before the first ``:`` is the rejection category.
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
    return information_check(y)


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

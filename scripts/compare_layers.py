"""Main job: compare BN-ReLU, GN-ReLU, EvoNorm-B0 and EvoNorm-S0 on real Fashion-MNIST, offline.

    python scripts/compare_layers.py                       # default, 8-15 min on 2 cores
    python scripts/compare_layers.py --layers=bn_relu,evonorm_s0 --steps=200 --workdir=/tmp/cmp

Writes results.json, results.md and accuracy.png to --workdir; rerunning with the same flags skips
the layers already finished. Logic: evonorm/experiments/compare_layers.py.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import app  # noqa: E402

from evonorm.experiments import compare_layers  # noqa: E402

if __name__ == "__main__":
    compare_layers.define_flags()
    app.run(compare_layers.main)

"""Benchmark a Mask R-CNN training step with each norm-act layer against BN-ReLU.

    python scripts/benchmark_detection.py                       # ~4 min on 2 cores
    python scripts/benchmark_detection.py --layers=evonorm_s0 --rounds=3 --output=/tmp/d.md

Run it on an otherwise idle machine: ratios are robust to steady load, not to bursts.
"""

import sys

from absl import app, flags

from evonorm.vision.detection import bench

FLAGS = flags.FLAGS
flags.DEFINE_list("layers", list(bench.DEFAULT_LAYERS), "Norm-act layers ('(tf)' suffix: fused kernels "
                  "disabled); BN-ReLU, the baseline, is always measured.")
flags.DEFINE_integer("input_size", None, "Square image size, a multiple of 64 (default: the twin's 256).")
flags.DEFINE_integer("batch_size", None, "Images per step (default: the twin's 2).")
flags.DEFINE_float("width", None, "ResNet-18 width multiplier (default: the twin's 0.25).")
flags.DEFINE_integer("rounds", 7, "Interleaved timing rounds.")
flags.DEFINE_integer("reps", 3, "Steps per layer and round.")
flags.DEFINE_integer("profile_steps", 3, "Profiled steps per layer after the timing (0: no profile table).")
flags.DEFINE_string("output", "detection/results/benchmark.md", "Markdown file to write.")


def main(argv):
    del argv
    rows = bench.run(FLAGS.layers, FLAGS.input_size, FLAGS.batch_size, FLAGS.width, FLAGS.rounds, FLAGS.reps,
                     FLAGS.profile_steps)
    text = bench.markdown(rows, FLAGS.input_size, FLAGS.batch_size, FLAGS.width,
                          " ".join(["python"] + sys.argv))
    with open(FLAGS.output, "w", encoding="utf-8") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    app.run(main)

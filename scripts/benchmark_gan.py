"""Benchmark a BigGAN-deep training step with each conditional layer against conditional BN-ReLU.

    python scripts/benchmark_gan.py                                  # ~5 min on 2 cores
    python scripts/benchmark_gan.py --layers=evonorm_s0 --rounds=3 --output=/tmp/g.md

Run it on an otherwise idle machine: ratios are robust to steady load, not to bursts.
"""

import sys

from absl import app, flags

from evonorm.gan import bench

FLAGS = flags.FLAGS
flags.DEFINE_list("layers", list(bench.DEFAULT_LAYERS), "Layers in G ('(tf)' suffix: fused kernels disabled).")
flags.DEFINE_integer("batch_size", 32, "Batch size of every step.")
flags.DEFINE_integer("ch", None, "Width multiplier (default: the fmnist32 twin's).")
flags.DEFINE_integer("rounds", 7, "Interleaved timing rounds.")
flags.DEFINE_string("output", "gan/results/benchmark.md", "Markdown file to write.")


def main(argv):
    del argv
    rows = bench.run(FLAGS.layers, FLAGS.batch_size, FLAGS.ch, FLAGS.rounds)
    text = bench.markdown(rows, FLAGS.batch_size, FLAGS.ch, " ".join(["python"] + sys.argv))
    with open(FLAGS.output, "w", encoding="utf-8") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    app.run(main)

"""Benchmark every norm-act layer against fused BN-ReLU and write BENCHMARKS.md.

    python scripts/benchmark_layers.py                 # full run, ~10 min on 2 idle cores
    python scripts/benchmark_layers.py --depths=8 --nomemory --output=/tmp/b.md   # quicker

Run it on an otherwise idle machine: ratios are robust to steady load, not to bursts.
"""

from absl import app, flags

from evonorm import benchmark_report

FLAGS = flags.FLAGS
flags.DEFINE_list("layers", None, "Layers for the per-layer table (default: every registered layer, plus the "
                  "'(tf)' variants of evonorm_b0/s0 that bypass the fused kernels).")
flags.DEFINE_list("step_layers", benchmark_report.DEFAULT_STEP_LAYERS, "Layers for the training-step table.")
flags.DEFINE_list("depths", ["8", "20"], "Pre-activation ResNet depths for the training-step table.")
flags.DEFINE_integer("batch_size", 128, "Batch size of every measurement.")
flags.DEFINE_bool("memory", True, "Also measure peak training memory (one subprocess per network and layer, "
                  "on TensorFlow's BFC allocator).")
flags.DEFINE_string("output", "BENCHMARKS.md", "Markdown file to write.")


def main(argv):
    del argv
    benchmark_report.run(layers=FLAGS.layers, step_layers=FLAGS.step_layers,
                         depths=[int(d) for d in FLAGS.depths], batch=FLAGS.batch_size,
                         memory=FLAGS.memory, output=FLAGS.output, argv=" ".join(__import__("sys").argv))


if __name__ == "__main__":
    app.run(main)

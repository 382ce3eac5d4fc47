"""Small-scale reproduction of the paper's Tables 3/4/7 on real Fashion-MNIST (offline), on a CPU.

    python scripts/reproduce.py                                   # every suite, 3 seeds (see official/results/)
    python scripts/reproduce.py --suites=batch --seeds=0 --examples=8000 --workdir=/tmp/rep   # quicker

Writes results.json, results.md and one plot per suite to --workdir; finished cells are kept in
--workdir/cells/ and skipped by a rerun with the same settings. Logic: evonorm/experiments/reproduction.py.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import app, flags  # noqa: E402

from evonorm.data import fashion_mnist  # noqa: E402
from evonorm.experiments import reproduction as R  # noqa: E402

D = R.ReproConfig()
flags.DEFINE_list("suites", list(D.suites), f"Studies to run: {sorted(R.SUITES)}.")
flags.DEFINE_list("seeds", [str(s) for s in D.seeds], "One run per seed and cell.")
flags.DEFINE_integer("examples", D.examples, "Training images seen per run, at every batch size.")
flags.DEFINE_float("base_lr", D.base_lr, "Peak learning rate at batch 128 (scaled linearly with the batch).")
flags.DEFINE_float("width", D.width, "Channel multiplier of the proxy networks.")
flags.DEFINE_integer("group_size", D.group_size, "Channels per group of GN and the S series.")
flags.DEFINE_integer("eval_examples", D.eval_examples, "Evaluate on the first N test images (0: all 10,000).")
flags.DEFINE_integer("jobs", D.jobs, "Cells trained in parallel processes (0: one per CPU core).")
flags.DEFINE_string("workdir", D.workdir, "Output directory (results and resume cache).")
flags.DEFINE_string("data_dir", None, "Fashion-MNIST IDX directory.")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        config = R.ReproConfig(suites=tuple(FLAGS.suites), seeds=tuple(int(s) for s in FLAGS.seeds),
                               examples=FLAGS.examples, base_lr=FLAGS.base_lr, width=FLAGS.width,
                               group_size=FLAGS.group_size, eval_examples=FLAGS.eval_examples,
                               jobs=FLAGS.jobs, workdir=FLAGS.workdir, data_dir=FLAGS.data_dir)
        config.validate()
    except ValueError as err:
        raise app.UsageError(str(err)) from err
    try:
        R.run(config, command=" ".join(["python"] + sys.argv))
    except (fashion_mnist.FashionMNISTNotFoundError, fashion_mnist.FashionMNISTFormatError) as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    app.run(main)

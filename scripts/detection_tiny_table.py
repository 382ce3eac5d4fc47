"""Small honest Mask R-CNN run: each Table 5 layer x seeds on the R-50-FPN tiny twin (resumable per run).

    python scripts/detection_tiny_table.py                          # 5 layers x 3 seeds x 300 steps
    python scripts/detection_tiny_table.py --layers=evonorm_s0 --seeds=0 --steps=20 --eval_every=10 --out=/tmp/d
    python scripts/detection_tiny_table.py --report_only            # rewrite table and plots from the runs

Not COCO: the offline 4-image sample, evaluated on the same images (see detection/README.md).
"""

import os

from absl import app, flags

from evonorm import cli
from evonorm.vision.detection import tiny_table

FLAGS = flags.FLAGS
flags.DEFINE_list("layers", list(tiny_table.LAYERS), "Layers (Table 5 rows), used everywhere in the model.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds per layer.")
flags.DEFINE_integer("steps", 300, "Training steps per run.")
flags.DEFINE_integer("eval_every", 100, "COCO evaluation interval in steps.")
flags.DEFINE_string("out", "detection/results/tiny", "Output directory (runs, table, plots).")
flags.DEFINE_bool("report_only", False, "Only rewrite the table and plots from existing runs.")


def main(argv):
    del argv
    seeds = [int(s) for s in FLAGS.seeds]
    command = cli.table_command(FLAGS.out, FLAGS.report_only)
    if not FLAGS.report_only:
        tiny_table.run_all(FLAGS.layers, seeds, FLAGS.out, FLAGS.steps, FLAGS.eval_every)
    tiny_table.report(FLAGS.layers, seeds, FLAGS.out, command, FLAGS.steps, FLAGS.eval_every)
    print(open(os.path.join(FLAGS.out, "table.md"), encoding="utf-8").read())


if __name__ == "__main__":
    app.run(main)

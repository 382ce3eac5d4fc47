"""Small-scale Table 6: each Table 6 layer x 3 seeds on the Fashion-MNIST 32 px twin (resumable per run).

    python scripts/gan_table6.py                                   # 18 runs, ~1.5 h on 2 cores
    python scripts/gan_table6.py --layers=bn_relu --seeds=0 --out=/tmp/t6 --config_override=train_steps=100
    python scripts/gan_table6.py --report_only                     # rewrite table and plots from the runs

Interrupt it at any time: a rerun skips finished runs and resumes the unfinished one from its checkpoint.
"""

import os

from absl import app, flags

from evonorm import cli
from evonorm.gan import configs, table6

FLAGS = flags.FLAGS
flags.DEFINE_list("layers", list(configs.LAYERS), "Layers in G (Table 6 rows).")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds per layer.")
flags.DEFINE_string("out", "gan/results/fmnist32", "Output directory (runs, table, plots).")
flags.DEFINE_string("config_override", "", "key=value overrides for every run, e.g. train_steps=300.")
flags.DEFINE_bool("report_only", False, "Only rewrite the table and plots from existing runs.")


def main(argv):
    del argv
    seeds = [int(s) for s in FLAGS.seeds]
    command = cli.table_command(FLAGS.out, FLAGS.report_only)
    if not FLAGS.report_only:
        table6.run_all(FLAGS.layers, seeds, FLAGS.out, FLAGS.config_override)
    table6.report(FLAGS.layers, seeds, FLAGS.out, command)
    print(open(os.path.join(FLAGS.out, "table6.md"), encoding="utf-8").read())


if __name__ == "__main__":
    app.run(main)

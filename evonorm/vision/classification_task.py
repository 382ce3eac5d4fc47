"""Model Garden's image-classification task with evonorm backbones, norm-act configs and data checks.

The config classes subclass Model Garden's so every field, YAML file and ``--params_override`` of its
classification task keeps working, with two changes: ``model.backbone`` also offers the evonorm
backbones (``evonorm_resnet``, ``evonorm_mobilenet``, ``evonorm_mnasnet``, ``evonorm_efficientnet``)
and ``model.norm_activation`` is an :class:`~evonorm.vision.model_garden.EvoNormActivation`, whose
``type`` picks the norm-act layer::

    --params_override=task.model.norm_activation.type=evonorm_s0

The registered task class is Model Garden's ``ImageClassificationTask`` plus one thing: before reading
data it checks that the data exists and says how to get it, instead of letting TFDS start a download
(Model Garden's TFDS reader calls ``tfds.load(download=True)``) or failing deep inside ``tf.data``.

Weight decay: Model Garden turns ``losses.l2_weight_decay`` into an L2 kernel regularizer given to the
backbone builder and the classifier's dense kernel. The evonorm backbones put it on convolution
kernels only, so norm-act variables (gamma, beta, v1, moving statistics) are never decayed, as in the
reference training code (tested in ``tests/vision/test_experiments.py``).
"""

from __future__ import annotations

import dataclasses
import glob
import os

import tensorflow as tf
from official.core import task_factory
from official.vision.configs import image_classification as mg_cls
from official.vision.tasks import image_classification as mg_task

from evonorm.data import records
from evonorm.vision import model_garden as mg


class DataNotFoundError(FileNotFoundError):
    """An experiment's input data is not on disk; the message says how to provide it."""


@dataclasses.dataclass
class EvoNormClassificationModel(mg_cls.ImageClassificationModel):
    """Model Garden's classification model config with evonorm backbones and norm-act selection."""

    backbone: mg.Backbone = dataclasses.field(
        default_factory=lambda: mg.Backbone(type="evonorm_resnet", evonorm_resnet=mg.EvoNormResNet()))
    norm_activation: mg.EvoNormActivation = dataclasses.field(
        default_factory=lambda: mg.EvoNormActivation(type="bn_relu", use_sync_bn=False))


@dataclasses.dataclass
class EvoNormClassificationTaskConfig(mg_cls.ImageClassificationTask):
    """Model Garden's classification task config whose model is :class:`EvoNormClassificationModel`."""

    model: EvoNormClassificationModel = dataclasses.field(default_factory=EvoNormClassificationModel)
    init_checkpoint: str = ""  # Model Garden's experiments point at cloud paths; never by default


CLASSIFICATION_RECORDS = "Model Garden classification TFRecords ('image/encoded', 'image/class/label')"


def _tfds_message(name: str, data_dir: str, records_kind: str = CLASSIFICATION_RECORDS) -> str:
    where = data_dir or "~/tensorflow_datasets (the TFDS default)"
    extra = ""
    if name.startswith("imagenet2012"):
        extra = (" ImageNet cannot be downloaded automatically: put ILSVRC2012_img_train.tar and "
                 "ILSVRC2012_img_val.tar in <data_dir>/downloads/manual/ and run "
                 f"`tfds build {name} --data_dir=<data_dir>` once;")
    return (f"TFDS dataset {name!r} is not prepared in {where}.{extra} then set "
            f"task.train_data.tfds_data_dir and task.validation_data.tfds_data_dir to that directory. "
            f"Alternatively point task.*_data.input_path at {records_kind} and set tfds_name=''. "
            f"Nothing is downloaded automatically.")


def _check_tfds(name: str, data_dir: str, split: str, records_kind: str) -> None:
    import tensorflow_datasets as tfds  # noqa: PLC0415 - heavy import, only when TFDS is used

    try:
        builder = tfds.builder(name, data_dir=data_dir or None, try_gcs=False)
    except tfds.core.registered.DatasetNotFoundError as err:
        raise DataNotFoundError(f"unknown TFDS dataset {name!r}: {str(err).splitlines()[0]}") from err
    if not builder.is_prepared():
        raise DataNotFoundError(_tfds_message(name, data_dir, records_kind))
    if split and split.split("[")[0] not in builder.info.splits:
        raise DataNotFoundError(f"TFDS dataset {name!r} has no split {split!r}; it has "
                                f"{sorted(builder.info.splits)}.")


def _check_files(input_path, records_kind: str, records_hint: str | None) -> None:
    if isinstance(input_path, str):
        patterns = [p for p in input_path.split(",") if p]
    elif hasattr(input_path, "as_dict"):
        patterns = [p for value in input_path.as_dict().values() for p in str(value).split(",") if p]
    else:
        patterns = [p for p in input_path if p]
    if not patterns:
        raise DataNotFoundError("no input data configured: set task.train_data.input_path / "
                                "task.validation_data.input_path (TFRecords) or tfds_name.")
    for pattern in patterns:
        if "://" in pattern:  # remote filesystems (gs://...) are checked by tf.io.gfile
            found = tf.io.gfile.glob(pattern)
        else:
            found = glob.glob(os.path.expanduser(pattern))
        if found:
            continue
        message = f"no input files match {pattern!r}."
        fm_root = os.path.join(records.records_root(), "fashion_mnist")
        if os.path.abspath(pattern).startswith(fm_root):
            message += (f" These are the Fashion-MNIST records: write them once with "
                        f"`{records.prepare_command(os.path.dirname(pattern))}` (reads the local "
                        f"IDX files of the `dataset-fashion-mnist` package; no download), or run "
                        f"evonorm-train with --prepare_data.")
        else:
            message += (f" {records_hint}" if records_hint else
                        f" Prepare {records_kind} there, or use TFDS by setting tfds_name and "
                        f"tfds_data_dir.")
        raise DataNotFoundError(message)


def check_data(data_config, records_kind: str = CLASSIFICATION_RECORDS,
               records_hint: str | None = None) -> None:
    """Raises :class:`DataNotFoundError` unless ``data_config``'s TFRecords or TFDS data exist.

    Never downloads: a TFDS dataset must already be prepared in ``tfds_data_dir``.

    Args:
      data_config: a Model Garden DataConfig (``input_path`` or ``tfds_name``).
      records_kind: what the task's TFRecords are, for the messages.
      records_hint: the sentence that says how to make missing TFRecords (default: a generic one).
    """
    if data_config.tfds_name:
        names = (data_config.tfds_name.as_dict().values()
                 if hasattr(data_config.tfds_name, "as_dict") else [data_config.tfds_name])
        for name in names:
            _check_tfds(name, data_config.tfds_data_dir, data_config.tfds_split, records_kind)
    else:
        _check_files(data_config.input_path, records_kind, records_hint)


@task_factory.register_task_cls(EvoNormClassificationTaskConfig)
class EvoNormClassificationTask(mg_task.ImageClassificationTask):
    """Model Garden's ImageClassificationTask that checks its data before reading it."""

    def build_inputs(self, params, input_context=None):
        check_data(params)
        return super().build_inputs(params, input_context=input_context)

"""Model Garden's Mask R-CNN task with evonorm backbones, the seam FPN and seam heads.

The config classes subclass Model Garden's, so every field, YAML file and ``--params_override`` of
its Mask R-CNN task keeps working, with three changes: ``model.backbone`` also offers the evonorm
backbones (``evonorm_resnet``, ``evonorm_spinenet``...), ``model.decoder`` offers ``evonorm_fpn``
(Model Garden's FPN config, built by :mod:`evonorm.vision.detection.fpn`), and
``model.norm_activation`` is an :class:`~evonorm.vision.model_garden.EvoNormActivation` whose
``type`` picks the one norm-act layer of backbone, decoder and heads::

    --params_override=task.model.norm_activation.type=evonorm_s0

The registered task is Model Garden's ``MaskRCNNTask`` (its parser, losses, COCO evaluator and
train/validation steps) with two changes: ``build_model`` assembles the model with
:func:`evonorm.vision.detection.maskrcnn.build_maskrcnn`, and ``build_inputs`` checks that the data
exists, saying how to prepare it, before ``tf.data`` fails deep inside.
"""

from __future__ import annotations

import dataclasses
import os

import tf_keras
from official.core import task_factory
from official.vision.configs import decoders as mg_decoders
from official.vision.configs import maskrcnn as mg_maskrcnn
from official.vision.tasks import maskrcnn as mg_task

from evonorm.data import coco
from evonorm.vision import model_garden as mg
from evonorm.vision.classification_task import DataNotFoundError, check_data
from evonorm.vision.detection.maskrcnn import build_maskrcnn

DETECTION_RECORDS = "Model Garden detection TFRecords with instance masks"
PREPARE_HINT = ("Write them with `python scripts/prepare_coco.py --annotation_file=instances.json "
                "--image_dir=IMAGES --output_prefix=OUT/train` (COCO-format JSON with masks), or the "
                "offline sample with `python scripts/prepare_coco.py --sample`.")


@dataclasses.dataclass
class Decoder(mg_decoders.Decoder):
    """Model Garden's decoder OneOfConfig plus ``evonorm_fpn`` (the FPN with seam norms)."""

    evonorm_fpn: mg_decoders.FPN = dataclasses.field(default_factory=mg_decoders.FPN)


def _resnet50_v1() -> mg.Backbone:
    # Post-activation ResNet-50: only its counts reproduce Table 5's EvoNorm Params (detection/README.md).
    return mg.Backbone(type="evonorm_resnet", evonorm_resnet=mg.EvoNormResNet(
        model_id=50, version=1, allow_post_activation_evonorm=True))


@dataclasses.dataclass
class EvoNormMaskRCNN(mg_maskrcnn.MaskRCNN):
    """Model Garden's Mask R-CNN model config; one norm-act layer for backbone, FPN and heads."""

    backbone: mg.Backbone = dataclasses.field(default_factory=_resnet50_v1)
    decoder: Decoder = dataclasses.field(default_factory=lambda: Decoder(type="evonorm_fpn"))
    norm_activation: mg.EvoNormActivation = dataclasses.field(
        default_factory=lambda: mg.EvoNormActivation(type="bn_relu", norm_momentum=0.997,
                                                     norm_epsilon=1e-4, use_sync_bn=True))


@dataclasses.dataclass
class EvoNormMaskRCNNTask(mg_maskrcnn.MaskRCNNTask):
    """Model Garden's Mask R-CNN task config whose model is :class:`EvoNormMaskRCNN`."""

    model: EvoNormMaskRCNN = dataclasses.field(default_factory=EvoNormMaskRCNN)
    init_checkpoint: str = ""  # Model Garden's experiments point at cloud paths; never by default


def check_detection_data(task_config: EvoNormMaskRCNNTask, data_config) -> None:
    """Raises :class:`DataNotFoundError` unless ``data_config`` can feed this task (records or TFDS data
    exist, and carry instance masks when the model has a mask head); the message says what to do."""
    if data_config.tfds_name and task_config.model.include_mask:
        raise DataNotFoundError(f"task data tfds_name={data_config.tfds_name!r}: {coco.tfds_message()} "
                                f"Or set task.model.include_mask=false to train box-only.")
    check_data(data_config, DETECTION_RECORDS, PREPARE_HINT)


@task_factory.register_task_cls(EvoNormMaskRCNNTask)
class MaskRCNNTask(mg_task.MaskRCNNTask):
    """Model Garden's MaskRCNNTask with the seam model and data checks."""

    def build_model(self):
        """Builds the model and warms it up with symbolic inputs, as Model Garden's task does."""
        config = self.task_config
        l2 = config.losses.l2_weight_decay
        # Halved to match tf.nn.l2_loss, as Model Garden does.
        regularizer = tf_keras.regularizers.l2(l2 / 2.0) if l2 else None
        model = build_maskrcnn(tf_keras.layers.InputSpec(shape=[None] + list(config.model.input_size)),
                               config.model, regularizer)
        if config.freeze_backbone:
            model.backbone.trainable = False
        model(tf_keras.Input(config.model.input_size), image_shape=tf_keras.layers.Input([2]),
              training=False)
        return model

    def build_inputs(self, params, input_context=None, dataset_fn=None):
        check_detection_data(self.task_config, params)
        return super().build_inputs(params, input_context=input_context, dataset_fn=dataset_fn)

    def _build_coco_metrics(self):
        annotation_file = self.task_config.annotation_file
        if annotation_file and "://" not in annotation_file and not os.path.isfile(annotation_file):
            raise DataNotFoundError(f"task.annotation_file {annotation_file!r} does not exist. "
                                    f"{PREPARE_HINT}")
        return super()._build_coco_metrics()

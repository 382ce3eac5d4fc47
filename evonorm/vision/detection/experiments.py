"""Model Garden experiment configs of the paper's COCO Mask R-CNN runs (Sec. 5.2, Table 5).

Importing this module registers, with ``official.core.exp_factory.register_config_factory``, one
experiment per Table 5 row: R-50-FPN and SpineNet-96 x {BN-ReLU, BN-SiLU, EvoNorm-B0, GN-ReLU,
EvoNorm-S0}, plus the same five layers on SpineNet-49 (Model Garden's ``maskrcnn_spinenet_coco``,
640 px; not in the paper), and a ``<name>_tiny`` twin of each that trains on this CPU on the offline
COCO-format sample (:mod:`evonorm.data.coco_sample`). Run one with::

    evonorm-train --experiment=evonorm_maskrcnn_r50fpn_coco_evonorm_b0 --mode=train_and_eval \\
        --model_dir=gs://bucket/r50_b0 --config_file=official/tpu.yaml --tpu=my-tpu

Hyperparameters are inherited from Model Garden, in favour of BN as the paper says (its Appendix C
is not in our copy). Both Table 5 backbones are trained from scratch with the SpineNet recipe
(Model Garden's ``maskrcnn_spinenet_coco``: batch 256, SGD 0.9, lr 0.32 with 2000 warmup steps, x0.1
at epochs 320 and 340 of 350, scale jitter 0.5-2.0, weight decay 4e-5): the paper's BN-ReLU rows
(42.1/37.8 and 47.1/41.5) match Model Garden's and the TPU code's from-scratch results (42.3/37.6,
47.18/41.53), not the 12-epoch ImageNet-initialized R-50 recipe. R-50-FPN keeps Model Garden's
levels 2..6 with norms in every head and the post-activation (v1) ResNet-50, the only layout whose
parameter counts are Table 5's (``detection/README.md``). Layers use Model Garden's Mask R-CNN norm
settings (epsilon 1e-4, momentum 0.997, synchronized batch statistics).
"""

from __future__ import annotations

import dataclasses

from official.core import config_definitions as cfg
from official.vision.configs import maskrcnn as mg_maskrcnn

from evonorm.vision import model_garden as mg
from evonorm.vision import registration
from evonorm.vision.detection.paper_results import LAYERS, paper_row
from evonorm.vision.detection.task import Decoder, EvoNormMaskRCNNTask

TINY_STEPS, TINY_BATCH, TINY_SIZE = 300, 2, 256


@dataclasses.dataclass(frozen=True)
class DetectionArch:
    """One backbone + decoder layout at paper scale and as a tiny CPU twin."""

    key: str  # experiment name part
    table: str | None  # Table 5 key of paper_results, None when the paper has no row
    backbone: mg.Backbone
    decoder: Decoder
    levels: tuple
    anchor_size: float
    input_size: int
    tiny_backbone: mg.Backbone


def _resnet(model_id, width=1.0):
    return mg.Backbone(type="evonorm_resnet", evonorm_resnet=mg.EvoNormResNet(
        model_id=model_id, version=1, width_multiplier=width, allow_post_activation_evonorm=True))


def _spinenet(model_id):
    return mg.Backbone(type="evonorm_spinenet", evonorm_spinenet=mg.EvoNormSpineNet(model_id=model_id))


FPN = Decoder(type="evonorm_fpn")
IDENTITY = Decoder(type="identity")
R50_FPN = DetectionArch("r50fpn", "r50_fpn", _resnet(50), FPN, (2, 6), 8.0, 1024, _resnet(18, 0.25))
SPINENET96 = DetectionArch("spinenet96", "spinenet96", _spinenet("96"), IDENTITY, (3, 7), 3.0, 1024,
                           _spinenet("49S"))
SPINENET49 = DetectionArch("spinenet49", None, _spinenet("49"), IDENTITY, (3, 7), 3.0, 640, _spinenet("49S"))
ARCHS = (R50_FPN, SPINENET96, SPINENET49)


def _base_task() -> EvoNormMaskRCNNTask:
    """Model Garden's ``maskrcnn_spinenet_coco`` task (data, parser, losses, samplers) as our config."""
    theirs = mg_maskrcnn.maskrcnn_spinenet_coco().task.as_dict()
    for key in ("backbone", "decoder", "norm_activation"):
        theirs["model"].pop(key)
    theirs.pop("init_checkpoint")
    task = EvoNormMaskRCNNTask()
    task.override(theirs, is_strict=True)
    return task


def _tiny_task(task: EvoNormMaskRCNNTask, arch: DetectionArch) -> None:
    """Shrinks ``task`` in place to a CPU twin on the offline sample."""
    from evonorm.data import coco_sample  # noqa: PLC0415 - heavy-ish, only for the twins

    paths = coco_sample.sample_paths()
    model = task.model
    model.backbone = arch.tiny_backbone
    model.input_size = [TINY_SIZE, TINY_SIZE, 3]
    model.num_classes = paths["num_classes"]
    model.decoder.evonorm_fpn.num_filters = 64
    model.rpn_head.num_filters = 64
    model.detection_head.override({"num_convs": 2, "num_filters": 64, "fc_dims": 256})
    model.mask_head.override({"num_convs": 2, "num_filters": 64})
    model.roi_sampler.num_sampled_rois = 128
    model.mask_sampler.num_sampled_masks = 32  # must not exceed num_sampled_rois
    model.roi_generator.override({"num_proposals": 256, "test_num_proposals": 100, "pre_nms_top_k": 1000,
                                  "test_pre_nms_top_k": 500})
    model.norm_activation.override({"momentum": 0.9, "use_sync_bn": False})
    task.annotation_file = paths["annotation_file"]
    for data, pattern in ((task.train_data, paths["train_pattern"]), (task.validation_data,
                                                                        paths["val_pattern"])):
        data.override({"input_path": pattern, "global_batch_size": TINY_BATCH, "dtype": "float32",
                       "shuffle_buffer_size": 16, "cycle_length": 1})
    task.train_data.parser.override({"aug_scale_min": 0.8, "aug_scale_max": 1.25})


def build_experiment(arch: DetectionArch, norm_act: str, tiny: bool = False) -> cfg.ExperimentConfig:
    """The ExperimentConfig of one Table 5 setting (backbone ``arch``, layer ``norm_act``) or its twin."""
    theirs = mg_maskrcnn.maskrcnn_spinenet_coco()
    task = _base_task()
    model = task.model
    model.backbone = arch.backbone
    model.decoder = arch.decoder
    model.min_level, model.max_level = arch.levels
    model.anchor.anchor_size = arch.anchor_size
    model.input_size = [arch.input_size, arch.input_size, 3]
    if arch.backbone.type == "evonorm_spinenet":
        model.backbone.evonorm_spinenet.override({"min_level": arch.levels[0], "max_level": arch.levels[1]})
    model.norm_activation = mg.EvoNormActivation(type=norm_act, norm_momentum=0.997, norm_epsilon=1e-4,
                                                 use_sync_bn=True)
    trainer = theirs.trainer
    runtime = cfg.RuntimeConfig(distribution_strategy="mirrored", mixed_precision_dtype="bfloat16")
    if tiny:
        _tiny_task(task, arch)
        loop = 50
        trainer = cfg.TrainerConfig(
            train_steps=TINY_STEPS, steps_per_loop=loop, summary_interval=loop, checkpoint_interval=loop,
            validation_steps=2, validation_interval=TINY_STEPS, max_to_keep=2,
            optimizer_config=mg_maskrcnn.maskrcnn_spinenet_coco().trainer.optimizer_config)
        trainer.optimizer_config.override({
            "learning_rate": {"stepwise": {"boundaries": [int(TINY_STEPS * 0.8), int(TINY_STEPS * 0.9)],
                                           "values": [0.02, 0.002, 0.0002]}},
            "warmup": {"linear": {"warmup_steps": 50, "warmup_learning_rate": 0.001}}})
        runtime = cfg.RuntimeConfig(distribution_strategy="one_device", mixed_precision_dtype="float32",
                                    enable_xla=False)
    restrictions = ["task.train_data.is_training != None", "task.validation_data.is_training != None"]
    if arch.backbone.type == "evonorm_spinenet":
        restrictions += ["task.model.min_level == task.model.backbone.evonorm_spinenet.min_level",
                         "task.model.max_level == task.model.backbone.evonorm_spinenet.max_level"]
    return cfg.ExperimentConfig(runtime=runtime, task=task, trainer=trainer, restrictions=restrictions)


def experiment_name(arch: DetectionArch, norm_act: str, tiny: bool = False) -> str:
    """``evonorm_maskrcnn_<backbone>_coco_<layer>[_tiny]``."""
    return f"evonorm_maskrcnn_{arch.key}_coco_{norm_act}" + ("_tiny" if tiny else "")


EXPERIMENTS = {experiment_name(arch, layer): (arch, layer) for arch in ARCHS for layer in LAYERS}


def paper_numbers(name: str) -> str:
    """Table 5's APbox / APmask (AP50/AP75 where printed) of experiment ``name``, or why there are none."""
    arch, layer = EXPERIMENTS[name.removesuffix("_tiny")]
    row = paper_row(arch.table, layer) if arch.table else None
    if row is None:
        return "not in the paper"

    def cell(prefix):
        extra = (f" ({row[prefix + 'AP50']}/{row[prefix + 'AP75']})"
                 if row[prefix + "AP50"] is not None else "")
        return f"{row[prefix + 'AP']}{extra}"
    return f"APbox {cell('')}, APmask {cell('mask_')}"


def markdown_table() -> str:
    """The detection README table: experiment, command, and Table 5's numbers beside it."""
    rows = ["| experiment | command | paper COCO val2017 |", "|---|---|---|"]
    for name in EXPERIMENTS:
        rows.append(f"| `{name}` | `{registration.command(name)}` | {paper_numbers(name)} |")
    return "\n".join(rows)


def experiment_names(tiny: bool | None = None) -> list:
    """Our registered detection experiment names (both kinds by default; ``tiny=True``: twins only)."""
    return registration.with_twins(EXPERIMENTS, tiny)


def _factory(name: str, tiny: bool):
    arch, layer = EXPERIMENTS[name]

    def factory() -> cfg.ExperimentConfig:
        return build_experiment(arch, layer, tiny=tiny)

    full = name + ("_tiny" if tiny else "")
    factory.__name__ = factory.__qualname__ = full
    scope = ("Tiny CPU twin on the offline COCO-format sample (wiring check, not COCO) of "
             if tiny else "Table 5 setting ")
    factory.__doc__ = (f"{scope}Mask R-CNN {arch.key} with {layer}.\n\nCommand:\n    {registration.command(full)}\n"
                       + ("" if tiny else f"\nPaper: {paper_numbers(name)}\n"))
    return factory


def register_experiments() -> None:
    """Registers every experiment and its tiny twin (idempotent)."""
    registration.register_with_twins(EXPERIMENTS, _factory)


register_experiments()

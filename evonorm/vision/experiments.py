"""Model Garden experiment configs of the paper's ImageNet classification runs (Sec. 5.1, Tables 3, 4, 7).

Importing this module registers one experiment per paper setting with
``official.core.exp_factory.register_config_factory``, plus a ``<name>_tiny`` twin of each that trains
a few steps on this CPU on Fashion-MNIST records (32x32 inputs, a narrow/shallow member of the same
family, batch 16 or 4, float32, no XLA, no initial checkpoint). Run one with::

    evonorm-train --experiment=evonorm_resnet50_imagenet --mode=train_and_eval \\
        --model_dir=/tmp/r50 --params_override=task.model.norm_activation.type=evonorm_s0

Every experiment is Model Garden's image-classification task (:mod:`evonorm.vision.classification_task`)
with an evonorm backbone; ``task.model.norm_activation.type`` selects the norm-act layer (default:
EvoNorm-B0 for Table 3 and 7 settings, EvoNorm-S0 for Table 4). ImageNet comes from TFDS
``imagenet2012`` (prepared offline, 1000 classes) or, with ``official/imagenet_tfrecords.yaml``, from
Model Garden TFRecords. Learning rates scale linearly with the batch: ``lr = base_lr * batch / 256``.

Hyperparameters: the paper inherits them "from the original implementations" (its Appendix C is not
part of our copy of the paper). ResNet-50 follows the TPU reference ResNet (SGD momentum 0.9, base lr
0.1, 5 warmup epochs, x0.1 at epochs 30/60/80, weight decay 1e-4, batch 1024 = 128x8); the mobile
models follow the TPU MnasNet/EfficientNet recipe (RMSProp, base lr 0.016, x0.97 every 2.4 epochs,
350 epochs, weight decay 1e-5, label smoothing 0.1, EMA 0.9999, batch 4096 = 128x32). These are our
reading of those implementations, not numbers quoted by the paper.
"""

from __future__ import annotations

import dataclasses

from official.core import config_definitions as cfg
from official.modeling import optimization
from official.vision.configs import common
from official.vision.configs import image_classification as mg_cls

from evonorm.data import records
from evonorm.vision import model_garden as mg
from evonorm.vision import registration
from evonorm.vision.classification_task import EvoNormClassificationModel, EvoNormClassificationTaskConfig
from evonorm.vision.paper_results import PAPER_RESULTS

IMAGENET_TRAIN, IMAGENET_VAL = 1_281_167, 50_000
TINY_STEPS, TINY_EVAL_STEPS, TINY_EVAL_BATCH = 20, 10, 32


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A training recipe: schedule lengths in epochs, ``base_lr`` per 256 examples."""

    epochs: int
    batch_size: int
    base_lr: float
    optimizer: str  # 'sgd' or 'rmsprop'
    schedule: str  # 'stepwise' (x0.1 at 1/3, 2/3, 8/9 of training), 'cosine' or 'exponential'
    warmup_epochs: float = 5.0
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    randaugment: bool = False
    ema_decay: float | None = None

    def lr(self, batch_size: int) -> float:
        """Linear scaling (Goyal et al. 2017): ``base_lr * batch / 256``."""
        return self.base_lr * batch_size / 256


@dataclasses.dataclass(frozen=True)
class Arch:
    """Backbone family, its paper-scale and tiny configs, and the norm-act defaults of its recipe."""

    key: str  # Model Garden backbone key
    full: dict
    tiny: dict
    image_size: int = 224
    dropout: float = 0.0
    epsilon: float = 1e-5
    momentum: float = 0.9


RESNET50 = Arch("evonorm_resnet", dict(model_id=50, version=2), dict(model_id=18, version=2,
                                                                      width_multiplier=0.25))
MOBILENETV2 = Arch("evonorm_mobilenet", dict(width_multiplier=1.0), dict(width_multiplier=0.25),
                   dropout=0.2, epsilon=1e-3, momentum=0.99)
MNASNET_B1 = Arch("evonorm_mnasnet", dict(width_multiplier=1.0), dict(width_multiplier=0.25),
                  dropout=0.2, epsilon=1e-3, momentum=0.99)
# The registered EfficientNet config has no width option: both tiny twins are B0 at 32x32.
EFFICIENTNET_B0 = Arch("evonorm_efficientnet", dict(model_id="b0"), dict(model_id="b0"),
                       dropout=0.2, epsilon=1e-3, momentum=0.99)
EFFICIENTNET_B5 = Arch("evonorm_efficientnet", dict(model_id="b5"), dict(model_id="b0"), image_size=456,
                       dropout=0.4, epsilon=1e-3, momentum=0.99)

RESNET_ORIGINAL = Recipe(epochs=90, batch_size=1024, base_lr=0.1, optimizer="sgd", schedule="stepwise")
RESNET_AUG = dataclasses.replace(RESNET_ORIGINAL, randaugment=True)
RESNET_AUG_2X = dataclasses.replace(RESNET_AUG, epochs=180)
RESNET_AUG_2X_COS = dataclasses.replace(RESNET_AUG_2X, schedule="cosine")
MOBILE = Recipe(epochs=350, batch_size=4096, base_lr=0.016, optimizer="rmsprop", schedule="exponential",
                weight_decay=1e-5, label_smoothing=0.1, ema_decay=0.9999)


def _optimization(recipe: Recipe, batch_size: int, total_steps: int, steps_per_epoch: float):
    lr = recipe.lr(batch_size)
    if recipe.schedule == "stepwise":
        fractions = (30 / 90, 60 / 90, 80 / 90)
        schedule = {"type": "stepwise", "stepwise": {
            "boundaries": [max(1, int(total_steps * f)) for f in fractions],
            "values": [lr, lr * 0.1, lr * 0.01, lr * 0.001]}}
    elif recipe.schedule == "cosine":
        schedule = {"type": "cosine", "cosine": {"initial_learning_rate": lr, "decay_steps": total_steps}}
    elif recipe.schedule == "exponential":
        schedule = {"type": "exponential", "exponential": {
            "initial_learning_rate": lr, "decay_steps": max(1, int(2.4 * steps_per_epoch)),
            "decay_rate": 0.97, "staircase": True}}
    else:
        raise ValueError(f"unknown schedule {recipe.schedule!r}")
    optimizer = ({"type": "sgd", "sgd": {"momentum": 0.9}} if recipe.optimizer == "sgd" else
                 {"type": "rmsprop", "rmsprop": {"rho": 0.9, "momentum": 0.9, "epsilon": 0.001}})
    config = {"optimizer": optimizer, "learning_rate": schedule,
              "warmup": {"type": "linear", "linear": {
                  "warmup_steps": max(1, int(recipe.warmup_epochs * steps_per_epoch)),
                  "warmup_learning_rate": 0.0}}}
    if recipe.ema_decay is not None:
        config["ema"] = {"average_decay": recipe.ema_decay, "trainable_weights_only": False}
    return optimization.OptimizationConfig(config)


def _data(tiny: bool, training: bool, batch_size: int, recipe: Recipe) -> mg_cls.DataConfig:
    aug = (common.Augmentation(type="randaug", randaug=common.RandAugment(num_layers=2, magnitude=9))
           if recipe.randaugment and training else None)
    if tiny:  # Fashion-MNIST PNG records: small images, so no JPEG-only fast path, mild crops
        split = "train" if training else "test"
        return mg_cls.DataConfig(input_path=records.file_pattern(split), is_training=training,
                                 global_batch_size=batch_size, decode_jpeg_only=False,
                                 aug_crop=training, crop_area_range=(0.64, 1.0), aug_type=aug,
                                 shuffle_buffer_size=1000, cycle_length=2, dtype="float32")
    return mg_cls.DataConfig(tfds_name="imagenet2012", tfds_split="train" if training else "validation",
                             is_training=training, global_batch_size=batch_size, aug_type=aug,
                             dtype="float32")


def build_experiment(arch: Arch, recipe: Recipe, norm_act: str, tiny: bool = False,
                     batch_size: int | None = None) -> cfg.ExperimentConfig:
    """The ExperimentConfig of one paper setting, or of its tiny CPU twin.

    Args:
      arch: backbone family and its norm-act defaults.
      recipe: training recipe.
      norm_act: default ``task.model.norm_activation.type``.
      tiny: the CPU twin (Fashion-MNIST records, 32 px, tiny network, ``TINY_STEPS`` steps).
      batch_size: global batch overriding ``recipe.batch_size`` (the lr follows linearly).
    """
    batch = batch_size or recipe.batch_size
    if tiny:
        batch = 4 if batch < 256 else 16  # small- vs large-batch twin
        total, per_epoch, eval_batch, eval_steps = TINY_STEPS, TINY_STEPS / recipe.epochs, \
            TINY_EVAL_BATCH, TINY_EVAL_STEPS
        size, classes, backbone_args = 32, 10, arch.tiny
        recipe = dataclasses.replace(recipe, ema_decay=None)  # 0.9999 would freeze 20-step eval weights
    else:
        per_epoch = IMAGENET_TRAIN // batch  # whole steps, as Model Garden
        total, eval_batch = int(recipe.epochs * per_epoch), min(batch, 1024)
        eval_steps = IMAGENET_VAL // eval_batch
        size, classes, backbone_args = arch.image_size, 1000, arch.full
    sub = {"evonorm_resnet": mg.EvoNormResNet, "evonorm_mobilenet": mg.EvoNormMobileNet,
           "evonorm_mnasnet": mg.EvoNormMnasNet, "evonorm_efficientnet": mg.EvoNormEfficientNet}[arch.key]
    model = EvoNormClassificationModel(
        num_classes=classes, input_size=[size, size, 3], dropout_rate=arch.dropout,
        backbone=mg.Backbone(type=arch.key, **{arch.key: sub(**backbone_args)}),
        norm_activation=mg.EvoNormActivation(type=norm_act, epsilon=arch.epsilon, momentum=arch.momentum,
                                             use_sync_bn=False))
    task = EvoNormClassificationTaskConfig(
        model=model, init_checkpoint="",
        losses=mg_cls.Losses(l2_weight_decay=recipe.weight_decay, label_smoothing=recipe.label_smoothing),
        train_data=_data(tiny, True, batch, recipe), validation_data=_data(tiny, False, eval_batch, recipe))
    loop = TINY_STEPS // 2 if tiny else max(1, int(per_epoch))
    trainer = cfg.TrainerConfig(
        train_steps=total, steps_per_loop=loop, summary_interval=loop, checkpoint_interval=loop,
        validation_steps=eval_steps, validation_interval=total if tiny else loop,
        max_to_keep=3 if tiny else 5,
        optimizer_config=_optimization(recipe, batch, total, per_epoch))
    runtime = cfg.RuntimeConfig(distribution_strategy="one_device" if tiny else "mirrored",
                                mixed_precision_dtype="float32", enable_xla=False)
    return cfg.ExperimentConfig(runtime=runtime, task=task, trainer=trainer, restrictions=[
        "task.train_data.is_training != None", "task.validation_data.is_training != None"])


# name -> (arch, recipe, default norm-act, global batch or None, paper column), in README order.
EXPERIMENTS = {
    "evonorm_resnet50_imagenet": (RESNET50, RESNET_ORIGINAL, "evonorm_b0", None, "t3_r50"),
    "evonorm_resnet50_aug_imagenet": (RESNET50, RESNET_AUG, "evonorm_b0", None, "t3_r50_aug"),
    "evonorm_resnet50_aug_2x_imagenet": (RESNET50, RESNET_AUG_2X, "evonorm_b0", None, "t3_r50_aug_2x"),
    "evonorm_resnet50_aug_2x_cos_imagenet": (RESNET50, RESNET_AUG_2X_COS, "evonorm_b0", None,
                                             "t3_r50_aug_2x_cos"),
    "evonorm_mobilenetv2_imagenet": (MOBILENETV2, MOBILE, "evonorm_b0", None, "t3_mv2"),
    "evonorm_mnasnet_b1_imagenet": (MNASNET_B1, MOBILE, "evonorm_b0", None, "t3_mn"),
    "evonorm_efficientnet_b0_imagenet": (EFFICIENTNET_B0, MOBILE, "evonorm_b0", None, "t3_en_b0"),
    "evonorm_efficientnet_b5_imagenet": (EFFICIENTNET_B5, MOBILE, "evonorm_b0", None, "t3_en_b5"),
    "evonorm_resnet50_bs1024_imagenet": (RESNET50, RESNET_ORIGINAL, "evonorm_s0", 1024, "t4_r50_large"),
    "evonorm_resnet50_bs32_imagenet": (RESNET50, RESNET_ORIGINAL, "evonorm_s0", 32, "t4_r50_small"),
    "evonorm_resnet50_aug_2x_cos_bs1024_imagenet": (RESNET50, RESNET_AUG_2X_COS, "evonorm_s0", 1024,
                                                    "t4_r50_fancy_large"),
    "evonorm_resnet50_aug_2x_cos_bs32_imagenet": (RESNET50, RESNET_AUG_2X_COS, "evonorm_s0", 32,
                                                  "t4_r50_fancy_small"),
    "evonorm_mobilenetv2_bs4096_imagenet": (MOBILENETV2, MOBILE, "evonorm_s0", 4096, "t4_mv2_large"),
    "evonorm_mobilenetv2_bs128_imagenet": (MOBILENETV2, MOBILE, "evonorm_s0", 128, "t4_mv2_small"),
    "evonorm_resnet50_b0_no_v1x_imagenet": (RESNET50, RESNET_ORIGINAL, "evonorm_b0_no_v1x", None, "t7"),
    "evonorm_resnet50_b0_no_local_imagenet": (RESNET50, RESNET_ORIGINAL, "evonorm_b0_no_local", None, "t7"),
    "evonorm_resnet50_b0_no_global_imagenet": (RESNET50, RESNET_ORIGINAL, "evonorm_b0_no_global", None,
                                               "t7"),
    "evonorm_resnet50_b0_max_to_add_imagenet": (RESNET50, RESNET_ORIGINAL, "evonorm_b0_max_to_add", None,
                                                "t7"),
}


def rescale_schedule(params: cfg.ExperimentConfig, train_steps: int) -> cfg.ExperimentConfig:
    """Sets ``trainer.train_steps`` and stretches the schedule to match, in place.

    Model Garden schedules count absolute steps, so overriding ``train_steps`` alone would, e.g., leave
    the tiny twins' learning rate decayed to 1/1000 after step 17. This scales every step count of
    the learning-rate and warmup schedules by ``train_steps / old train_steps``.
    """
    if not isinstance(train_steps, int) or train_steps < 1:
        raise ValueError(f"train_steps must be a positive integer, got {train_steps!r}.")
    ratio = train_steps / params.trainer.train_steps

    def scaled(steps):
        return max(1, round(steps * ratio))

    opt = params.trainer.optimizer_config
    lr = opt.learning_rate.get()
    updates = {}
    if opt.learning_rate.type == "stepwise":
        updates["boundaries"] = sorted({scaled(b) for b in lr.boundaries})
        if len(updates["boundaries"]) != len(lr.boundaries):
            raise ValueError(f"train_steps={train_steps} is too short for {len(lr.boundaries)} "
                             f"learning-rate boundaries.")
    elif getattr(lr, "decay_steps", None):
        updates["decay_steps"] = scaled(lr.decay_steps)
    warmup = {}
    if opt.warmup.type and getattr(opt.warmup.get(), "warmup_steps", None):
        warmup = {opt.warmup.type: {"warmup_steps": scaled(opt.warmup.get().warmup_steps)}}
    params.override({"trainer": {"train_steps": train_steps, "optimizer_config": {
        "learning_rate": {opt.learning_rate.type: updates}, "warmup": warmup}}}, is_strict=True)
    return params


def _factory(name: str, tiny: bool):
    arch, recipe, norm_act, batch, _ = EXPERIMENTS[name]

    def factory() -> cfg.ExperimentConfig:
        return build_experiment(arch, recipe, norm_act, tiny=tiny, batch_size=batch)

    full = name + ("_tiny" if tiny else "")
    scope = ("Tiny CPU twin on Fashion-MNIST records (a few steps; smoke test, no paper number) of "
             if tiny else "Paper setting ")
    factory.__name__ = full
    factory.__qualname__ = full
    factory.__doc__ = (f"{scope}{name}: {arch.key} {arch.full if not tiny else arch.tiny}, "
                       f"{recipe.epochs} epochs, batch {batch or recipe.batch_size}, {recipe.schedule} "
                       f"schedule, default norm-act {norm_act}.\n\nCommand:\n    {registration.command(full)}\n"
                       + ("" if tiny else f"\nPaper (ImageNet top-1 %): {paper_numbers(name)}\n"))
    return factory


def paper_numbers(name: str) -> str:
    """The paper's top-1 accuracies for experiment ``name``'s column: the default layer first (bold),
    then the other rows; Table 7 variants list their three seeds and unmodified EvoNorm-B0's."""
    _, _, norm_act, _, column = EXPERIMENTS[name.removesuffix("_tiny")]
    results = PAPER_RESULTS[column]
    if column == "t7":
        results = {norm_act: results[norm_act], "evonorm_b0": results["evonorm_b0"]}
    cells = [f"**{norm_act} {results[norm_act]}**"]
    cells += [f"{layer} {acc}" for layer, acc in results.items() if layer != norm_act]
    return "; ".join(cells)


def markdown_table() -> str:
    """The README table: experiment, default layer, command, and the paper's numbers beside it."""
    rows = ["| experiment | default layer | command | paper ImageNet top-1 % |", "|---|---|---|---|"]
    for name, (_, _, norm_act, _, _) in EXPERIMENTS.items():
        rows.append(f"| `{name}` | {norm_act} | `{registration.command(name)}` | {paper_numbers(name)} |")
    return "\n".join(rows)


def experiment_names(tiny: bool | None = None) -> list:
    """Our registered experiment names (both kinds by default; ``tiny=True``: twins only)."""
    return registration.with_twins(EXPERIMENTS, tiny)


def register_experiments() -> None:
    """Registers every experiment and its tiny twin (idempotent)."""
    registration.register_with_twins(EXPERIMENTS, _factory)


register_experiments()

"""Registers the evonorm backbones in TF Model Garden's backbone factory, with their configs.

Importing this module registers the builders under 'evonorm_resnet', 'evonorm_mobilenet',
'evonorm_mnasnet', 'evonorm_efficientnet' and 'evonorm_spinenet' (importing or reloading it again
is harmless). A Model Garden experiment then selects one with a :class:`Backbone` config (Model
Garden's OneOfConfig with one field per key) and chooses the norm-act layer with
:class:`EvoNormActivation`, Model Garden's ``NormActivation`` plus the layer name and the shared
layer kwargs::

    from official.vision.modeling.backbones import factory
    from evonorm.vision import model_garden as mg

    backbone = factory.build_backbone(
        tf_keras.layers.InputSpec(shape=[None, 224, 224, 3]),
        mg.Backbone(type='evonorm_resnet', evonorm_resnet=mg.EvoNormResNet(model_id=50)),
        mg.EvoNormActivation(type='evonorm_s0', groups=32))

A plain ``NormActivation`` works too: its ``activation`` maps to 'bn_relu' or 'bn_silu'.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from official.core import registry
from official.modeling import hyperparams
from official.vision.configs import backbones as mg_backbones
from official.vision.configs import common as mg_common
from official.vision.modeling.backbones import factory

from evonorm.vision.backbones import EfficientNet, MobileNet, ResNet, SpineNet

_ACTIVATION_TO_NORM_ACT = {"relu": "bn_relu", "relu6": "bn_relu", "swish": "bn_silu", "silu": "bn_silu"}


@dataclasses.dataclass
class EvoNormActivation(mg_common.NormActivation):
    """Model Garden's NormActivation extended with the norm-act layer and its shared kwargs.

    Attributes:
      type: norm-act registry name ('bn_relu', 'evonorm_b0', 'evonorm_s0'...); '' derives it from
        ``activation`` ('relu' -> 'bn_relu', 'swish' -> 'bn_silu'), as Model Garden would build.
      groups, group_size: channel grouping of grouped layers (None: the layers' default rule).
      no_act_mode: what ``apply_act=False`` positions keep: 'norm' or 'affine' (reference code).
      epsilon, momentum: the layers' epsilon and moving-average decay; None uses ``norm_epsilon`` /
        ``norm_momentum`` (Model Garden defaults 0.001 / 0.99; the paper's EvoNorms used 1e-5 / 0.9).
    The inherited ``use_sync_bn`` sets the layers' ``synchronized``.
    """

    type: str = ""
    groups: Optional[int] = None
    group_size: Optional[int] = None
    no_act_mode: str = "norm"
    epsilon: Optional[float] = None
    momentum: Optional[float] = None


@dataclasses.dataclass
class EvoNormResNet(hyperparams.Config):
    """Config of :class:`evonorm.vision.backbones.ResNet` (v2 = pre-activation, what EvoNorms need)."""

    model_id: int = 50
    version: int = 2
    width_multiplier: float = 1.0
    zero_init_residual: bool = False
    allow_post_activation_evonorm: bool = False


@dataclasses.dataclass
class EvoNormMobileNet(hyperparams.Config):
    """Config of the MobileNetV2 :class:`evonorm.vision.backbones.MobileNet`."""

    width_multiplier: float = 1.0
    stochastic_depth_drop_rate: float = 0.0


@dataclasses.dataclass
class EvoNormMnasNet(EvoNormMobileNet):
    """Config of the MnasNet-B1 :class:`evonorm.vision.backbones.MobileNet`."""


@dataclasses.dataclass
class EvoNormEfficientNet(hyperparams.Config):
    """Config of :class:`evonorm.vision.backbones.EfficientNet` (SE and drop-connect as the paper)."""

    model_id: str = "b0"
    se_ratio: float = 0.25
    stochastic_depth_drop_rate: float = 0.2


@dataclasses.dataclass
class EvoNormSpineNet(hyperparams.Config):
    """Config of :class:`evonorm.vision.backbones.SpineNet`; the fields of Model Garden's ``SpineNet``
    config, so a Mask R-CNN/RetinaNet experiment's ``min_level``/``max_level`` checks carry over."""

    model_id: str = "49"
    stochastic_depth_drop_rate: float = 0.0
    min_level: int = 3
    max_level: int = 7


@dataclasses.dataclass
class Backbone(mg_backbones.Backbone):
    """Model Garden's backbone OneOfConfig plus one field per evonorm registry key."""

    evonorm_resnet: EvoNormResNet = dataclasses.field(default_factory=EvoNormResNet)
    evonorm_mobilenet: EvoNormMobileNet = dataclasses.field(default_factory=EvoNormMobileNet)
    evonorm_mnasnet: EvoNormMnasNet = dataclasses.field(default_factory=EvoNormMnasNet)
    evonorm_efficientnet: EvoNormEfficientNet = dataclasses.field(default_factory=EvoNormEfficientNet)
    evonorm_spinenet: EvoNormSpineNet = dataclasses.field(default_factory=EvoNormSpineNet)


def norm_act_from_config(norm_activation_config) -> tuple[str, dict]:
    """(registry name, layer kwargs) for an :class:`EvoNormActivation` or a plain NormActivation.

    Raises:
      ValueError: for an activation with no BN-based norm-act equivalent and no explicit ``type``.
    """
    cfg = norm_activation_config
    name = getattr(cfg, "type", "") or ""
    if not name:
        activation = str(cfg.activation).lower()
        if activation not in _ACTIVATION_TO_NORM_ACT:
            raise ValueError(f"NormActivation.activation={cfg.activation!r} has no norm-act layer; use "
                             f"one of {sorted(_ACTIVATION_TO_NORM_ACT)} or set EvoNormActivation.type.")
        name = _ACTIVATION_TO_NORM_ACT[activation]
    epsilon = getattr(cfg, "epsilon", None)
    momentum = getattr(cfg, "momentum", None)
    kwargs = dict(epsilon=cfg.norm_epsilon if epsilon is None else epsilon,
                  momentum=cfg.norm_momentum if momentum is None else momentum,
                  synchronized=bool(cfg.use_sync_bn))
    for key in ("groups", "group_size"):
        if getattr(cfg, key, None) is not None:
            kwargs[key] = int(getattr(cfg, key))
    if getattr(cfg, "no_act_mode", "norm") != "norm":
        kwargs["no_act_mode"] = cfg.no_act_mode
    return name, kwargs


def _common_args(input_specs, backbone_config, norm_activation_config, l2_regularizer, key):
    if backbone_config.type != key:
        raise ValueError(f"backbone_config.type is {backbone_config.type!r}, expected {key!r}.")
    name, kwargs = norm_act_from_config(norm_activation_config)
    return backbone_config.get(), dict(norm_act=name, norm_kwargs=kwargs,
                                       input_shape=tuple(input_specs.shape[1:]),
                                       kernel_regularizer=l2_regularizer)


def build_evonorm_resnet(input_specs, backbone_config, norm_activation_config, l2_regularizer=None):
    """Model Garden builder for 'evonorm_resnet'."""
    cfg, args = _common_args(input_specs, backbone_config, norm_activation_config, l2_regularizer,
                             "evonorm_resnet")
    return ResNet(depth=cfg.model_id, version=cfg.version, width_multiplier=cfg.width_multiplier,
                  zero_init_residual=cfg.zero_init_residual,
                  allow_post_activation_evonorm=cfg.allow_post_activation_evonorm, **args)


def _build_mobile(model_id, key):
    def build(input_specs, backbone_config, norm_activation_config, l2_regularizer=None):
        cfg, args = _common_args(input_specs, backbone_config, norm_activation_config, l2_regularizer,
                                 key)
        return MobileNet(model_id, width_multiplier=cfg.width_multiplier,
                         stochastic_depth_rate=cfg.stochastic_depth_drop_rate, **args)
    build.__name__ = f"build_{key}"
    build.__qualname__ = build.__name__
    build.__doc__ = f"Model Garden builder for {key!r}."
    return build


build_evonorm_mobilenet = _build_mobile("mobilenet_v2", "evonorm_mobilenet")
build_evonorm_mnasnet = _build_mobile("mnasnet_b1", "evonorm_mnasnet")


def build_evonorm_efficientnet(input_specs, backbone_config, norm_activation_config,
                               l2_regularizer=None):
    """Model Garden builder for 'evonorm_efficientnet'."""
    cfg, args = _common_args(input_specs, backbone_config, norm_activation_config, l2_regularizer,
                             "evonorm_efficientnet")
    return EfficientNet(cfg.model_id, se_ratio=cfg.se_ratio,
                        drop_connect_rate=cfg.stochastic_depth_drop_rate, **args)


def build_evonorm_spinenet(input_specs, backbone_config, norm_activation_config, l2_regularizer=None):
    """Model Garden builder for 'evonorm_spinenet' (endpoints ``min_level``..``max_level``)."""
    cfg, args = _common_args(input_specs, backbone_config, norm_activation_config, l2_regularizer,
                             "evonorm_spinenet")
    return SpineNet(cfg.model_id, min_level=cfg.min_level, max_level=cfg.max_level,
                    stochastic_depth_rate=cfg.stochastic_depth_drop_rate, **args)


BUILDERS = {
    "evonorm_resnet": build_evonorm_resnet,
    "evonorm_mobilenet": build_evonorm_mobilenet,
    "evonorm_mnasnet": build_evonorm_mnasnet,
    "evonorm_efficientnet": build_evonorm_efficientnet,
    "evonorm_spinenet": build_evonorm_spinenet,
}


def register_once(table: dict, key: str, builder, register, kind: str) -> None:
    """Registers ``builder`` under ``key`` with Model Garden's ``register(key)`` decorator, unless
    ``table`` (that registry's dict) already holds this very builder (a second import or a reload);
    a key held by foreign code is an error."""
    try:
        existing = registry.lookup(table, key)
    except LookupError:
        register(key)(builder)
        return
    if (getattr(existing, "__module__", None), getattr(existing, "__qualname__", None)) != (
            builder.__module__, builder.__qualname__):
        raise ValueError(f"Model Garden {kind} key {key!r} is already registered to {existing!r}.")


def register_backbones() -> None:
    """Registers every builder of ``BUILDERS`` in Model Garden's backbone factory (see
    :func:`register_once`)."""
    for key, builder in BUILDERS.items():
        register_once(factory._REGISTERED_BACKBONE_CLS, key, builder,  # noqa: SLF001
                      factory.register_backbone_builder, "backbone")


register_backbones()

"""The three anchor proxy architectures of the layer search (paper Sec. 4.3, Fig. 4), sized for small CPUs.

The paper pairs every candidate layer with ResNet-50 (v2), MobileNetV2 and EfficientNet-B0 whose
widths and strides are adapted to CIFAR-10. Here the same three block families are shrunk further so
a 100-step quality test fits on one CPU core, for 28x28 (Fashion-MNIST) or 32x32 (CIFAR-10) inputs.
Every normalization-activation position of each proxy is a fresh layer from the candidate factory
(the paper replaces every BN-activation); nothing else normalizes.

Default sizes (``ProxySpec``; ``width`` multiplies every channel count, ``depth`` the block counts):

* ``resnet`` -- pre-activation ResNet-(6n+2), the blocks of ``evonorm.vision.cifar_resnet``: depth 8
  (n = 1 basic block per stage), 3x3 stem with stride 1, stages of ``w, 2w, 4w`` channels with
  ``w = 16 * width`` at strides 1, 2, 2 (28 -> 28, 14, 7), a final norm-act, global pooling, dense.
  7 norm-act layers.
* ``mobilenetv2`` -- inverted residuals (``backbones.mobile``; MobileNetV2 ``expand=6`` blocks, ReLU6 and
  the BN after the stem, expansion and depthwise replaced by the candidate; the linear projection gets
  ``apply_act=False``): stem 3x3 stride 2 (fixed in ``build_mobile_network``; 28 -> 14), stages
  (expand, channels, blocks, stride) = (1, 16, 1, 1), (6, 24, 1, 1), (6, 32, 1, 2), (6, 64, 1, 2), head
  1x1 to 128 channels (all x ``width``, rounded to multiples of 8); the original's strides 2 of stages
  2-3 are removed. 13 norm-act layers.
* ``efficientnet`` -- MBConv with squeeze-and-excitation (ratio 0.25), kernels 3/5: stem 3x3 stride 2
  (28 -> 14), stages (1, 16, 1, 1, k3), (6, 24, 1, 1, k3), (6, 40, 1, 2, k5), (6, 80, 1, 2, k3), head 1x1
  to 128 channels; EfficientNet-B0's early strides removed and its 7 stages cut to 4. 13 norm-act layers.

At the positions without an activation (the linear projection of every MBConv block) a search graph
and a registry EvoNorm are the affine ``x * gamma + beta`` alone (the reference code's
``nonlinearity=False``); the baselines keep their normalization there (BN-ReLU: BN).

Grouped statistics use ``group_size=4`` channels by default (every proxy channel count is a multiple
of 8), so S-series candidates see several groups even at small widths.

Usage::

    model = build_proxy("resnet", candidate="bn_relu", input_shape=(28, 28, 1))
    model = build_proxy("efficientnet", candidate=KNOWN_GRAPHS["evonorm_s0"], width=0.5)
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import tf_keras

from evonorm.layers import legacy
from evonorm.layers.evonorm import EVONORM_LAYERS
from evonorm.vision import cifar_resnet
from evonorm.vision.backbones.mobile import Scaling, Stage, build_mobile_network

ARCHITECTURES = ("resnet", "mobilenetv2", "efficientnet")
DEFAULT_GROUP_SIZE = 4
# What an EvoNorm (registry name) is at a position without activation; see ``norm_act_factory``.
NO_ACT_MODE_EVONORM = "affine"

MOBILENETV2_STAGES = (
    Stage(expand=1, filters=16, repeats=1, strides=1, kernel=3),
    Stage(expand=6, filters=24, repeats=1, strides=1, kernel=3),
    Stage(expand=6, filters=32, repeats=1, strides=2, kernel=3),
    Stage(expand=6, filters=64, repeats=1, strides=2, kernel=3),
)
EFFICIENTNET_STAGES = (
    Stage(expand=1, filters=16, repeats=1, strides=1, kernel=3),
    Stage(expand=6, filters=24, repeats=1, strides=1, kernel=3),
    Stage(expand=6, filters=40, repeats=1, strides=2, kernel=5),
    Stage(expand=6, filters=80, repeats=1, strides=2, kernel=3),
)

NormActFactory = Callable[..., tf_keras.layers.Layer]


@dataclasses.dataclass(frozen=True)
class ProxySpec:
    """Size of one proxy network.

    Attributes:
      arch: 'resnet', 'mobilenetv2' or 'efficientnet'.
      width: channel multiplier (1.0 gives the sizes in the module docstring).
      depth: ResNet depth (6n+2, default 8) for 'resnet'; block-count multiplier for the mobile nets
        (default 1: one block per stage).
    """

    arch: str
    width: float = 1.0
    depth: int | None = None

    def __post_init__(self):
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown proxy architecture {self.arch!r}; expected one of {ARCHITECTURES}")
        if self.depth is None:
            object.__setattr__(self, "depth", 8 if self.arch == "resnet" else 1)
        if not self.width > 0:
            raise ValueError(f"ProxySpec.width must be > 0, got {self.width!r}")
        if self.arch == "resnet":
            cifar_resnet.blocks_per_stage(self.depth)  # validates 6n+2
        elif not (isinstance(self.depth, int) and self.depth >= 1):
            raise ValueError(f"ProxySpec.depth of a mobile proxy is a block multiplier >= 1, got {self.depth!r}")


def norm_act_factory(candidate, group_size: int | None = DEFAULT_GROUP_SIZE, **norm_kwargs) -> NormActFactory:
    """A callable ``factory(name=..., apply_act=...)`` returning a fresh tf_keras norm-act layer.

    Args:
      candidate: a registry name (``'bn_relu'``, ``'evonorm_b0'``...; see
        ``evonorm.layers.list_norm_acts()``), or a search :class:`Graph` / its dict / its JSON string.
      group_size: channels per group of grouped statistics (None: the layers' default rule).
      **norm_kwargs: other constructor kwargs of every layer (``epsilon``, ``momentum``...).

    Raises:
      ValueError: for an unknown registry name.
    """
    kwargs = dict(norm_kwargs)
    if group_size is not None:
        kwargs["group_size"] = group_size
    if isinstance(candidate, str) and not candidate.lstrip().startswith("{"):
        cls = legacy.get_norm_act_class(candidate)  # fail early, listing the known names
        # Positions without an activation (the MBConv linear projection): an EvoNorm gets the authors'
        # ``nonlinearity=False`` (``x * gamma + beta``), exactly as a search graph does (keras_layer),
        # so registry "evonorm_b0" and KNOWN_GRAPHS["evonorm_b0"] build the same proxy. The layers'
        # own default there, B-series ``x / sqrt(s2_bwh + eps)``, divides by a centered std without
        # centering; in the MBConv chain this amplified per-channel offsets until the features were
        # sample-independent (official/results/reproduce/b0_efficientnet.md). Baselines keep their
        # normalization (BN-ReLU -> BN, as in MobileNetV2/EfficientNet).
        no_act = {}
        if issubclass(cls, EVONORM_LAYERS) and "no_act_mode" not in kwargs:
            no_act = {"no_act_mode": NO_ACT_MODE_EVONORM}

        def make(name=None, apply_act=True):
            extra = {} if apply_act else no_act
            return legacy.create_norm_act(candidate, apply_act=apply_act, name=name, **kwargs, **extra)
    else:
        from evonorm.search.keras_layer import as_graph, graph_to_layer  # noqa: PLC0415

        graph = as_graph(candidate)

        def make(name=None, apply_act=True):
            return graph_to_layer(graph, generation="tf_keras", apply_act=apply_act, name=name, **kwargs)
    return make


class _FactorySeam:
    """Duck-typed ``NormActSeam`` (``seam(x, name, apply_act=...)``) backed by a factory."""

    def __init__(self, factory: NormActFactory):
        self.factory = factory

    def __call__(self, x, name: str, apply_act: bool = True, zero_init: bool = False):
        del zero_init  # the proxies train from the default init, like every candidate
        return self.factory(name=name, apply_act=apply_act)(x)


def _conv(x, filters, kernel_size, strides, name):
    return tf_keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False,
                                  kernel_initializer="he_normal", name=name)(x)


def _resnet(inputs, factory: NormActFactory, spec: ProxySpec):
    # cifar_resnet.preact_block takes a registry name; this is the same block with a factory.
    n = cifar_resnet.blocks_per_stage(spec.depth)
    base = max(4, int(round(16 * spec.width / 4)) * 4)
    x = _conv(inputs, base, 3, 1, "stem_conv")
    for stage in range(cifar_resnet.STAGES):
        filters = base * 2 ** stage
        for block in range(n):
            name = f"stage{stage + 1}_block{block + 1}"
            strides = 2 if stage > 0 and block == 0 else 1
            preact = factory(name=f"{name}_na1")(x)
            shortcut = x if strides == 1 and x.shape[-1] == filters else _conv(preact, filters, 1, strides,
                                                                                  f"{name}_proj")
            y = _conv(preact, filters, 3, strides, f"{name}_conv1")
            y = factory(name=f"{name}_na2")(y)
            y = _conv(y, filters, 3, 1, f"{name}_conv2")
            x = tf_keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return factory(name="final_na")(x)


def _mobile(inputs, factory: NormActFactory, spec: ProxySpec):
    stages = MOBILENETV2_STAGES if spec.arch == "mobilenetv2" else EFFICIENTNET_STAGES
    scaling = Scaling(width=spec.width, depth=float(spec.depth), stem_filters=16, head_filters=128,
                      se_ratio=0.25 if spec.arch == "efficientnet" else 0.0, divisor=8)
    endpoints = build_mobile_network(inputs, stages, scaling, _FactorySeam(factory),
                                     {"kernel_initializer": "he_normal"})
    return endpoints["6"]


def build_proxy(arch: str | ProxySpec, candidate=None, input_shape=(28, 28, 1), num_classes: int = 10,
                factory: NormActFactory | None = None, width: float | None = None,
                depth: int | None = None) -> tf_keras.Model:
    """Builds one proxy classifier (logits) whose every norm-act is the candidate layer.

    Args:
      arch: architecture name or a :class:`ProxySpec`.
      candidate: registry name or graph (see :func:`norm_act_factory`); ignored if ``factory`` is given.
      input_shape: (height, width, channels).
      num_classes: outputs of the dense classifier.
      factory: a ready norm-act factory (overrides ``candidate``).
      width, depth: override the spec's (or the default spec's) fields.

    Returns:
      A ``tf_keras.Model`` mapping images to logits.
    """
    spec = arch if isinstance(arch, ProxySpec) else ProxySpec(arch)
    overrides = {k: v for k, v in (("width", width), ("depth", depth)) if v is not None}
    if overrides:
        spec = dataclasses.replace(spec, **overrides)
    if factory is None:
        if candidate is None:
            raise ValueError("build_proxy needs a candidate (registry name or graph) or a factory")
        factory = norm_act_factory(candidate)
    inputs = tf_keras.Input(shape=tuple(input_shape), name="images")
    x = _resnet(inputs, factory, spec) if spec.arch == "resnet" else _mobile(inputs, factory, spec)
    x = tf_keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = tf_keras.layers.Dense(num_classes, name="logits")(x)
    return tf_keras.Model(inputs, outputs, name=f"proxy_{spec.arch}")


def count_norm_acts(model) -> int:
    """Number of norm-act layers (``evonorm.layers.NormActBase``) in ``model``."""
    from evonorm.layers import NormActBase  # noqa: PLC0415

    return sum(isinstance(layer, NormActBase) for layer in model.layers)


__all__ = ["ARCHITECTURES", "ProxySpec", "norm_act_factory", "build_proxy", "count_norm_acts"]

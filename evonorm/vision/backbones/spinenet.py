"""SpineNet (Du et al. 2020, "SpineNet: Learning Scale-Permuted Backbone for Recognition and
Localization", arXiv:1912.05027) with any norm-act layer.

A stem (7x7 conv, max pool, two level-2 bottleneck groups) feeds sixteen blocks found by NAS whose
levels are permuted (2..7, i.e. stride 4..128) and each fuses two earlier blocks through
cross-scale resampling; 1x1 convolutions then give every output level the same width. With
``'bn_relu'`` (epsilon 1e-3 as Model Garden's) the network computes the same function as Model
Garden's ``spinenet`` backbone: equal parameter counts (SpineNet-49: 21,920,192, moving statistics
included), the same ``output_specs`` (levels '3'..'7') and equal outputs for equal weights.

Norm-act positions: every "BN + activation" of Model Garden's SpineNet is one norm-act layer. Norms
with no activation there get ``apply_act=False``: the last norm of each residual branch, projection
shortcuts, and the last 1x1 conv of each resampling path (its output is summed with the other
parents before an activation). The blocks are post-activation (as ResNet v1), so the activation
after each residual add and after each multi-scale fusion belongs to no norm: it stays a plain
activation (ReLU; SiLU for ``*_silu`` layers) whatever layer is chosen. The EvoNorm paper (Sec.
5.2) replaces SpineNet's "activation-normalization layers" without naming these positions; keeping
them is the reading that leaves the architecture unchanged. Unlike ResNet v1, EvoNorms are
therefore accepted here without an override, as in the paper's Table 5.

Resampling and fusion are decided from block levels, not static widths: at known sides (multiples
of 128) that is Model Garden's graph; with None sides Model Garden's static-width test never
matches and drops the fusion of unconsumed same-level blocks, while this model keeps it (no
parameter changes). Blocks that feed no level in ``min_level..max_level`` (by default the final
level-2 block) are built but left out of the model, as in Model Garden.
"""

from __future__ import annotations

import dataclasses

import tf_keras

from evonorm.vision.backbones.base import Backbone
from evonorm.vision.backbones.common import (DEFAULT_KERNEL_INITIALIZER, SERIALIZATION_PACKAGE,
                                             DropConnect, NormActSeam, check_input_shape, conv2d,
                                             serialize_regularizer)


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """One scale-permuted block.

    Attributes:
      level: output level (stride ``2**level``).
      kind: 'bottleneck' (1x1, 3x3, 1x1 with 4x output channels) or 'residual' (3x3, 3x3).
      inputs: indices of the two parent blocks in the list [stem block 1, stem block 2, block 1...].
      is_output: the block is an output of its level; it also absorbs earlier blocks of the same
        level and width that no block has consumed yet.
    """

    level: int
    kind: str
    inputs: tuple
    is_output: bool


# The architecture found by NAS (the paper's Figure 4 / Model Garden's SPINENET_BLOCK_SPECS).
BLOCK_SPECS = tuple(BlockSpec(*spec) for spec in (
    (2, "bottleneck", (0, 1), False), (4, "residual", (0, 1), False),
    (3, "bottleneck", (2, 3), False), (4, "bottleneck", (2, 4), False),
    (6, "residual", (3, 5), False), (4, "bottleneck", (3, 5), False),
    (5, "residual", (6, 7), False), (7, "residual", (6, 8), False),
    (5, "bottleneck", (8, 9), False), (5, "bottleneck", (8, 10), False),
    (4, "bottleneck", (5, 10), True), (3, "bottleneck", (4, 10), True),
    (5, "bottleneck", (7, 12), True), (7, "bottleneck", (5, 14), True),
    (6, "bottleneck", (12, 14), True), (2, "bottleneck", (2, 13), True),
))
# Block width by level before ``filter_size_scale`` (bottleneck outputs are 4x this).
LEVEL_FILTERS = {2: 64, 3: 128, 4: 256, 5: 256, 6: 256, 7: 256}
STEM_FILTERS = 64
MAX_LEVEL = max(spec.level for spec in BLOCK_SPECS)
OUTPUT_LEVELS = sorted({spec.level for spec in BLOCK_SPECS if spec.is_output})


@dataclasses.dataclass(frozen=True)
class Scaling:
    """Per-model scaling of the shared block specs.

    Attributes:
      endpoint_filters: channels of every output level.
      filter_scale: multiplier of every block width (the stem conv stays at 64).
      resample_alpha: width of the resampling paths as a fraction of their input block's width.
      block_repeats: blocks per scale-permuted node (and per stem group).
    """

    endpoint_filters: int
    filter_scale: float
    resample_alpha: float
    block_repeats: int


SCALINGS = {
    "49S": Scaling(128, 0.65, 0.5, 1),
    "49": Scaling(256, 1.0, 0.5, 1),
    "96": Scaling(256, 1.0, 0.5, 2),
    "143": Scaling(256, 1.0, 1.0, 3),
}


def _out_channels(kind: str, filters: int) -> int:
    return filters * 4 if kind == "bottleneck" else filters


class _Blocks:
    """Residual blocks and resampling paths sharing one seam and the convolution settings."""

    def __init__(self, seam: NormActSeam, conv_kwargs: dict):
        self.na = seam
        self.conv_kwargs = conv_kwargs

    def conv(self, x, filters, kernel, strides, name):
        return conv2d(x, filters, kernel, strides, name=name, **self.conv_kwargs)

    def block(self, x, kind, filters, projection, drop_rate, name):
        """One post-activation bottleneck or residual block (stride 1: SpineNet resamples outside)."""
        out_filters = _out_channels(kind, filters)
        shortcut = x
        if projection:
            shortcut = self.conv(x, out_filters, 1, 1, f"{name}_proj")
            shortcut = self.na(shortcut, f"{name}_proj_norm", apply_act=False)
        if kind == "bottleneck":
            x = self.na(self.conv(x, filters, 1, 1, f"{name}_conv1"), f"{name}_na1")
            x = self.na(self.conv(x, filters, 3, 1, f"{name}_conv2"), f"{name}_na2")
            x = self.conv(x, out_filters, 1, 1, f"{name}_conv3")
        else:
            x = self.na(self.conv(x, filters, 3, 1, f"{name}_conv1"), f"{name}_na1")
            x = self.conv(x, out_filters, 3, 1, f"{name}_conv2")
        x = self.na(x, f"{name}_norm_out", apply_act=False)
        if drop_rate > 0:
            x = DropConnect(drop_rate, name=f"{name}_drop")(x)
        x = tf_keras.layers.Add(name=f"{name}_add")([x, shortcut])
        return self.na.post_add_activation(x, f"{name}_out_act")

    def group(self, x, kind, filters, repeats, drop_rate, name):
        """``repeats`` blocks; only the first may project (when the width changes)."""
        projection = int(x.shape[-1]) != _out_channels(kind, filters)
        for index in range(repeats):
            x = self.block(x, kind, filters, projection and index == 0, drop_rate, f"{name}_b{index}")
        return x

    def resample(self, x, level, kind, target_level, target_filters, target_kind, alpha, name):
        """Brings a parent to the target level and width: 1x1 reduce, resize, 1x1 expand (no act)."""
        # Widths follow the parent's block width (a bottleneck's output is 4x it), as in the paper;
        # the float product truncated by int() is what fixes the channel counts of SpineNet-49S.
        width = int(x.shape[-1]) / 4 if kind == "bottleneck" else int(x.shape[-1])
        filters = int(width * alpha)
        x = self.na(self.conv(x, filters, 1, 1, f"{name}_reduce"), f"{name}_reduce_na")
        if level < target_level:
            # One strided 3x3 conv, then parameter-free max pooling for the remaining factors of 2.
            x = self.na(self.conv(x, filters, 3, 2, f"{name}_down"), f"{name}_down_na")
            for step in range(target_level - level - 1):
                x = tf_keras.layers.MaxPool2D(3, strides=2, padding="same",
                                              name=f"{name}_pool{step}")(x)
        elif level > target_level:
            x = tf_keras.layers.UpSampling2D(2 ** (level - target_level), interpolation="nearest",
                                             name=f"{name}_up")(x)
        x = self.conv(x, _out_channels(target_kind, target_filters), 1, 1, f"{name}_expand")
        return self.na(x, f"{name}_expand_norm", apply_act=False)


def _check_spinenet_input_shape(input_shape):
    shape = tuple(input_shape)
    if len(shape) == 3:
        for side in shape[:2]:
            if side is not None and (side <= 0 or side % 2 ** MAX_LEVEL):
                raise ValueError(f"SpineNet needs input sides divisible by {2 ** MAX_LEVEL} (its "
                                 f"coarsest level is {MAX_LEVEL}, stride {2 ** MAX_LEVEL}), got "
                                 f"input_shape={input_shape!r}.")
    return check_input_shape(shape, min_side=2 ** MAX_LEVEL)


@tf_keras.utils.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class SpineNet(Backbone):
    """SpineNet backbone with endpoints ``min_level``..``max_level`` (default '3'..'7', stride
    8..128), all ``endpoint_filters`` wide; see the module docstring.

    Example::

        model = SpineNet('49S', 'evonorm_s0', input_shape=(256, 256, 3))
        features = model(images)  # {'3': (B, 32, 32, 128), ..., '7': (B, 2, 2, 128)}

    Args:
      model_id: '49S', '49', '96' or '143' (case-insensitive; ints allowed).
      norm_act: norm-act registry name, e.g. 'bn_relu', 'evonorm_b0', 'evonorm_s0'.
      norm_kwargs: kwargs passed unchanged to every norm-act layer.
      input_shape: (height, width, channels); known sides must be multiples of 128. None sides
        build a variable-size model whose inputs must still be multiples of 128.
      min_level, max_level: output levels, within the blocks' output levels 2..7.
      stochastic_depth_rate: residual-branch drop rate of the last scale-permuted block; block i
        (1-based, of 16) drops with ``rate * i / 16``, the stem never (Model Garden's schedule).
      kernel_initializer: initializer of the convolution kernels.
      kernel_regularizer: regularizer of the convolution kernels (never of norm-act variables).
      name: model name.

    Raises:
      ValueError: unknown model_id, levels out of range, or input sides not multiples of 128.
    """

    def __init__(self, model_id: str = "49", norm_act: str = "bn_relu", norm_kwargs: dict | None = None,
                 input_shape=(640, 640, 3), min_level: int = 3, max_level: int = 7,
                 stochastic_depth_rate: float = 0.0, kernel_initializer=DEFAULT_KERNEL_INITIALIZER,
                 kernel_regularizer=None, name=None):
        model_id = str(model_id).upper()
        if model_id not in SCALINGS:
            raise ValueError(f"unknown SpineNet model_id {model_id!r}; choose from {list(SCALINGS)}.")
        if not (min(OUTPUT_LEVELS) <= min_level <= max_level <= max(OUTPUT_LEVELS)):
            raise ValueError(f"SpineNet levels must satisfy {min(OUTPUT_LEVELS)} <= min_level <= "
                             f"max_level <= {max(OUTPUT_LEVELS)}, got {min_level}..{max_level}.")
        if not 0.0 <= float(stochastic_depth_rate) < 1.0:
            raise ValueError(f"stochastic_depth_rate must be in [0, 1), got {stochastic_depth_rate!r}.")
        seam = NormActSeam(norm_act, norm_kwargs)
        input_shape = _check_spinenet_input_shape(input_shape)
        config = dict(model_id=model_id, norm_act=seam.name, norm_kwargs=dict(seam.kwargs),
                      input_shape=input_shape, min_level=int(min_level), max_level=int(max_level),
                      stochastic_depth_rate=float(stochastic_depth_rate),
                      kernel_initializer=kernel_initializer,
                      kernel_regularizer=serialize_regularizer(kernel_regularizer))
        scaling = SCALINGS[model_id]
        blocks = _Blocks(seam, dict(kernel_initializer=kernel_initializer,
                                    kernel_regularizer=tf_keras.regularizers.get(kernel_regularizer)))

        def width(level):
            return int(LEVEL_FILTERS[level] * scaling.filter_scale)

        inputs = tf_keras.Input(shape=input_shape, name="image")
        x = blocks.conv(inputs, STEM_FILTERS, 7, 2, "stem_conv")
        x = seam(x, "stem_na")
        x = tf_keras.layers.MaxPool2D(3, strides=2, padding="same", name="stem_pool")(x)
        # Every node: (tensor, level, block kind); the stem's two groups are nodes 0 and 1.
        nodes = []
        for index in range(2):
            x = blocks.group(x, "bottleneck", width(2), scaling.block_repeats, 0.0, f"stem{index + 1}")
            nodes.append((x, 2, "bottleneck"))
        consumers = [0] * len(nodes)
        features = {}
        for index, spec in enumerate(BLOCK_SPECS):
            name = f"block{index + 1}"
            parents = []
            for slot, parent in enumerate(spec.inputs):
                tensor, level, kind = nodes[parent]
                parents.append(blocks.resample(tensor, level, kind, spec.level, width(spec.level),
                                               spec.kind, scaling.resample_alpha, f"{name}_in{slot}"))
                consumers[parent] += 1
            if spec.is_output:
                # Output blocks also sum in the unconsumed nodes of their level and width, so no
                # computed block is a dead end.
                channels = _out_channels(spec.kind, width(spec.level))
                for node_id, (tensor, level, _) in enumerate(nodes):
                    if consumers[node_id] == 0 and level == spec.level and tensor.shape[-1] == channels:
                        parents.append(tensor)
                        consumers[node_id] += 1
            x = tf_keras.layers.Add(name=f"{name}_fuse")(parents)
            x = seam.post_add_activation(x, f"{name}_fuse_act")
            drop_rate = float(stochastic_depth_rate) * (index + 1) / len(BLOCK_SPECS)
            x = blocks.group(x, spec.kind, width(spec.level), scaling.block_repeats, drop_rate, name)
            nodes.append((x, spec.level, spec.kind))
            consumers.append(0)
            if spec.is_output:
                features[spec.level] = x

        endpoints = {}
        for level in range(min_level, max_level + 1):
            x = blocks.conv(features[level], scaling.endpoint_filters, 1, 1, f"endpoint{level}_conv")
            endpoints[str(level)] = seam(x, f"endpoint{level}_na")
        super().__init__(inputs, endpoints, config, levels=tuple(endpoints),
                         name=name or f"spinenet{model_id.lower()}")


def spinenet(model_id: str = "49", norm_act: str = "bn_relu", norm_kwargs=None,
             input_shape=(640, 640, 3), **kwargs) -> SpineNet:
    """Builds a :class:`SpineNet` backbone (see its Args); returns a tf_keras.Model of endpoints."""
    return SpineNet(model_id=model_id, norm_act=norm_act, norm_kwargs=norm_kwargs,
                    input_shape=input_shape, **kwargs)

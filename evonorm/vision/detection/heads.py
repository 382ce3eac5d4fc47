"""Model Garden's Mask R-CNN heads with every normalization-activation from the norm-act seam.

Model Garden's ``RPNHead``, ``DetectionHead`` and ``MaskHead`` create a BatchNormalization after each
convolution / FC layer and apply an activation function after it. The subclasses here keep
everything else of those heads (convolutions, initializers, regularizers, prediction layers, the
forward pass) and replace, in ``build``, each BatchNormalization by a ``create_norm_act`` layer of
the same name, with the head's activation set to the identity because the norm-act layer carries
the nonlinearity. Model Garden's BN objects are discarded before they ever own variables.

The positions, all with ``apply_act=True`` (Model Garden follows each of these norms by its
activation):

- RPN: one norm per level behind the shared convolution(s), ``rpn-conv-norm_{level}_{i}`` (the
  convolution is shared across levels, the norms are not, as in Model Garden and the TPU code).
- Box head: ``detection-conv-bn_{i}`` after each 3x3 conv on ``[batch*RoIs, 7, 7, C]``, and
  ``detection-fc-bn_{i}`` after each FC layer, whose input is ``[batch, RoIs, fc_dims]``.
- Mask head: ``mask-conv-bn_{i}`` after each 3x3 conv and ``mask-deconv-bn`` after the 2x2 deconv.

**The FC norm treats every RoI as one sample of spatial size 1x1** (:class:`PerRoINormAct`): batch
statistics (BN, EvoNorm-B*) are taken over all RoIs of all images, which is exactly Model Garden's
BatchNormalization over the ``[batch, RoIs, C]`` tensor; grouped and instance statistics (GN,
EvoNorm-S*) are taken per RoI over its channels, as GN heads normalize a ``[N, C]`` FC output (one
RoI's result never depends on the other RoIs of its image, which are proposals of different
objects, padded ones included). For EvoNorm-B0 the instance variance of a 1x1 sample is 0, so its
local term is ``v1*x + sqrt(eps)``. The paper does not say which form it used.

These heads rely on private attribute names of Model Garden 2.20 (``_norms``, ``_conv_norms``,
``_fc_norms``, ``_deconv_bn``, ``_activation``, ``_config_dict``); Model Garden is pinned, and
``tests/vision/test_detection_model.py`` pins the names and Model Garden's outputs with
``bn_relu``.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras
from official.vision.modeling.heads import dense_prediction_heads, instance_heads

from evonorm.vision.backbones.common import NormActSeam


def _identity(x):
    return x


class PerRoINormAct(tf_keras.layers.Layer):
    """Applies a norm-act layer to ``[batch, RoIs, C]`` features, each RoI a ``[1, 1, C]`` sample.

    Args:
      norm: the norm-act layer (rank-4 input, channels last).
    """

    def __init__(self, norm: tf_keras.layers.Layer, **kwargs):
        super().__init__(**kwargs)
        self.norm = norm

    def call(self, inputs, training=None):
        if inputs.shape.rank != 3:
            raise ValueError(f"{self.name}: expects [batch, RoIs, channels] features, got shape "
                             f"{inputs.shape}.")
        channels = inputs.shape[-1]
        x = tf.reshape(inputs, [-1, 1, 1, channels])
        x = self.norm(x, training=training)
        return tf.reshape(x, tf.shape(inputs))


class _SeamHead:
    """Mixin: takes ``norm_act``/``norm_kwargs``, keeps them in the config, builds norms from them."""

    def __init__(self, *args, norm_act: str = "bn_relu", norm_kwargs: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        norm_kwargs = dict(norm_kwargs or {})
        # Model Garden's own norm arguments apply unless norm_kwargs says otherwise.
        norm_kwargs.setdefault("epsilon", self._config_dict["norm_epsilon"])
        norm_kwargs.setdefault("momentum", self._config_dict["norm_momentum"])
        norm_kwargs.setdefault("synchronized", bool(self._config_dict.get("use_sync_bn", False)))
        self._seam = NormActSeam(norm_act, norm_kwargs)
        self._config_dict.update(norm_act=self._seam.name, norm_kwargs=dict(self._seam.kwargs))

    def _norm(self, name: str):
        return self._seam.layer(name)

    def _replaced(self, norms: list) -> list:
        """A list of fresh norm-act layers with the names of Model Garden's ``norms``."""
        return [self._norm(norm.name) for norm in norms]


class RPNHead(_SeamHead, dense_prediction_heads.RPNHead):
    """Model Garden's RPN head with per-level norm-act layers (extra args: ``norm_act``, ``norm_kwargs``)."""

    def build(self, input_shape):
        super().build(input_shape)
        self._norms = [self._replaced(level_norms) for level_norms in self._norms]
        self._activation = _identity


class DetectionHead(_SeamHead, instance_heads.DetectionHead):
    """Model Garden's box head with norm-act layers; the FC norms normalize per RoI (module docstring)."""

    def build(self, input_shape):
        super().build(input_shape)
        self._conv_norms = self._replaced(self._conv_norms)
        self._fc_norms = [PerRoINormAct(self._norm("norm"), name=norm.name) for norm in self._fc_norms]
        self._activation = _identity


class MaskHead(_SeamHead, instance_heads.MaskHead):
    """Model Garden's mask head with norm-act layers after its convs and its deconv."""

    def build(self, input_shape):
        super().build(input_shape)
        self._conv_norms = self._replaced(self._conv_norms)
        self._deconv_bn = self._norm(self._deconv_bn.name)
        self._activation = _identity


def seam_head(head: tf_keras.layers.Layer, norm_act: str, norm_kwargs: dict | None = None):
    """The seam version of a (not yet built) Model Garden head, with the same constructor config.

    Raises:
      TypeError: for a head class this module has no seam version of.
    """
    for ours in (RPNHead, DetectionHead, MaskHead):
        theirs = ours.__mro__[2]
        if type(head) is theirs:
            config = dict(head.get_config())
            return ours(norm_act=norm_act, norm_kwargs=norm_kwargs, name=head.name, **config)
    raise TypeError(f"no seam version of head {type(head).__name__}.")

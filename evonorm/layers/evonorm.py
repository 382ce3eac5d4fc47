"""EvoNorm B series (batch-dependent) and S series (per-sample) of Liu et al., NeurIPS 2020.

Each class here is a generation-agnostic mixin; ``evonorm.layers`` exposes it as a Keras layer of the
same name (``from evonorm import layers; layers.EvoNormB0()``). Formulas are the paper's Tables 1, 3
and 4; every variance or mean square carries ``epsilon`` inside its square root, as in the authors'
reference code. All layers end with the channel-wise affine ``* gamma + beta``.
"""

from __future__ import annotations

import tensorflow as tf

from evonorm import kernels, ops
from evonorm.layers.base import NormActBase

CITATION = ("Liu, Brock, Simonyan, Le. Evolving Normalization-Activation Layers. NeurIPS 2020. "
            "https://arxiv.org/abs/2004.02967")


class _BatchDependent(NormActBase):
    """B series: mixes a batch standard deviation (moving average at inference) into the formula.

    With ``apply_act=False`` (and ``no_act_mode='norm'``) the layer is ``x / sqrt(s2_bwh(x) + eps)``:
    the batch normalization without centering that every B-series layer contains.
    """

    moving_stat = "moving_variance"

    def _normalize(self, x, training):
        batch_std = self._batch_std(x, training)
        if not self.apply_act:
            return x / batch_std
        return self._formula(x, batch_std)


class _SampleBased(NormActBase):
    """S series: grouped per-sample statistics, no batch dependence, identical in training and inference.

    With ``apply_act=False`` (and ``no_act_mode='norm'``) the layer is the formula's normalizer alone,
    ``x / sqrt(s2_{w,h,c/g}(x) + eps)`` (S0, S1) or ``x / sqrt(mu_{w,h,c/g}(x^2) + eps)`` (S2).
    """

    uses_groups = True


class EvoNormB0(_BatchDependent):
    """EvoNorm-B0: ``x / max(sqrt(s2_bwh(x) + eps), v1 * x + sqrt(s2_wh(x) + eps)) * gamma + beta``.

    The paper's best batch-dependent layer (Table 1): it mixes the batch variance (a moving average
    at inference) with the per-instance variance and has no explicit activation.

    Example:
      >>> from evonorm import layers
      >>> norm = layers.EvoNormB0()          # drop-in for BatchNorm + ReLU
      >>> y = norm(tf.random.normal([8, 32, 32, 64]), training=True)

    Reference: Liu et al., NeurIPS 2020 (https://arxiv.org/abs/2004.02967), Table 1.
    """

    registry_name = "evonorm_b0"
    has_v1 = True

    def _forward(self, x, training):
        # Fused CPU kernel (see evonorm.kernels) when it applies; the TF formula otherwise.
        lib = None
        if self.apply_act and (training is None or isinstance(training, bool)):
            lib = kernels.usable(x, self.data_format, self.synchronized)
        if lib is None:
            return super()._forward(x, training)
        gamma, beta, after = self._kernel_affine()
        out, batch_var = kernels.evonorm_b0(
            lib, x, self._param(self.v1), gamma, beta, tf.cast(self.moving_variance, tf.float32),
            self.epsilon, bool(training))
        if training:
            self._update_moving(self.moving_variance, batch_var)
        return self._apply_affine(out, after)

    def _formula(self, x, batch_std):
        return ops.evonorm_b0(x, self._param(self.v1), batch_std, self.epsilon, self.data_format)


class EvoNormB1(_BatchDependent):
    """EvoNorm-B1: ``x / max(sqrt(s2_bwh(x) + eps), (x + 1) * sqrt(mu_wh(x^2) + eps)) * gamma + beta``.

    Reference: Liu et al., NeurIPS 2020, Table 3.
    """

    registry_name = "evonorm_b1"

    def _formula(self, x, batch_std):
        return ops.evonorm_b1(x, batch_std, self.epsilon, self.data_format)


class EvoNormB2(_BatchDependent):
    """EvoNorm-B2: ``x / max(sqrt(s2_bwh(x) + eps), sqrt(mu_wh(x^2) + eps) - x) * gamma + beta``.

    Reference: Liu et al., NeurIPS 2020, Table 3.
    """

    registry_name = "evonorm_b2"

    def _formula(self, x, batch_std):
        return ops.evonorm_b2(x, batch_std, self.epsilon, self.data_format)


class EvoNormS0(_SampleBased):
    """EvoNorm-S0: ``x * sigmoid(v1 * x) / sqrt(s2_{w,h,c/g}(x) + eps) * gamma + beta``.

    The paper's best batch-independent layer (Table 4): SiLU/Swish divided by the GroupNorm standard
    deviation. Works at any batch size, identical in training and inference.

    Example:
      >>> from evonorm import layers
      >>> norm = layers.EvoNormS0(groups=8)
      >>> y = norm(tf.random.normal([2, 16, 16, 64]))

    Reference: Liu et al., NeurIPS 2020 (https://arxiv.org/abs/2004.02967), Table 4.
    """

    registry_name = "evonorm_s0"
    has_v1 = True

    def _forward(self, x, training):
        lib = kernels.usable(x, self.data_format) if self.apply_act else None
        if lib is None:
            return super()._forward(x, training)
        gamma, beta, after = self._kernel_affine()
        out = kernels.evonorm_s0(lib, x, self._param(self.v1), gamma, beta, self.effective_groups,
                                 self.epsilon)
        return self._apply_affine(out, after)

    def _normalize(self, x, training):
        if not self.apply_act:
            return x / ops.group_std(x, self.effective_groups, self.epsilon, self.data_format)
        return ops.evonorm_s0(x, self._param(self.v1), self.effective_groups, self.epsilon,
                              self.data_format)


class EvoNormS1(_SampleBased):
    """EvoNorm-S1: ``x * sigmoid(x) / sqrt(s2_{w,h,c/g}(x) + eps) * gamma + beta``.

    Reference: Liu et al., NeurIPS 2020, Table 4.
    """

    registry_name = "evonorm_s1"

    def _normalize(self, x, training):
        if not self.apply_act:
            return x / ops.group_std(x, self.effective_groups, self.epsilon, self.data_format)
        return ops.evonorm_s1(x, self.effective_groups, self.epsilon, self.data_format)


class EvoNormS2(_SampleBased):
    """EvoNorm-S2: ``x * sigmoid(x) / sqrt(mu_{w,h,c/g}(x^2) + eps) * gamma + beta``.

    Reference: Liu et al., NeurIPS 2020, Table 4.
    """

    registry_name = "evonorm_s2"

    def _normalize(self, x, training):
        if not self.apply_act:
            return x / ops.group_rms(x, self.effective_groups, self.epsilon, self.data_format)
        return ops.evonorm_s2(x, self.effective_groups, self.epsilon, self.data_format)


# --- Table 7: manual modifications of EvoNorm-B0 that show its local optimality --------------------


class EvoNormB0NoV1x(_BatchDependent):
    """Table 7 "No v1 x": ``x / max(sqrt(s2_bwh(x) + eps), sqrt(s2_wh(x) + eps)) * gamma + beta``."""

    registry_name = "evonorm_b0_no_v1x"

    def _formula(self, x, batch_std):
        return x / tf.maximum(batch_std, ops.instance_std(x, self.epsilon, self.data_format))


class EvoNormB0NoLocal(_BatchDependent):
    """Table 7 "No local term": ``x / sqrt(s2_bwh(x) + eps) * gamma + beta``."""

    registry_name = "evonorm_b0_no_local"

    def _formula(self, x, batch_std):
        return x / batch_std


class EvoNormB0NoGlobal(NormActBase):
    """Table 7 "No global term": ``x / (v1 * x + sqrt(s2_wh(x) + eps)) * gamma + beta``.

    Batch-independent (no moving statistics). Diverges in the paper (accuracy 1e-3 on ImageNet).
    """

    registry_name = "evonorm_b0_no_global"
    has_v1 = True

    def _normalize(self, x, training):
        inst = ops.instance_std(x, self.epsilon, self.data_format)
        if not self.apply_act:
            return x / inst
        return x / (self._param(self.v1) * x + inst)


class EvoNormB0MaxToAdd(_BatchDependent):
    """Table 7 "max -> add": ``x / (sqrt(s2_bwh(x) + eps) + v1 * x + sqrt(s2_wh(x) + eps)) * gamma + beta``.
    """

    registry_name = "evonorm_b0_max_to_add"
    has_v1 = True

    def _formula(self, x, batch_std):
        inst = ops.instance_std(x, self.epsilon, self.data_format)
        return x / (batch_std + self._param(self.v1) * x + inst)


EVONORM_LAYERS = (EvoNormB0, EvoNormB1, EvoNormB2, EvoNormS0, EvoNormS1, EvoNormS2,
                  EvoNormB0NoV1x, EvoNormB0NoLocal, EvoNormB0NoGlobal, EvoNormB0MaxToAdd)

"""Normalization-activation layers: every EvoNorm of the paper and every baseline it compares against.

``from evonorm import layers; layers.EvoNormS0()`` gives a layer of the Keras generation that
``tf.keras`` resolves to (Keras 3 on TF >= 2.16, tf_keras under ``TF_USE_LEGACY_KERAS=1``), so it drops
into a plain ``tf.keras`` model. ``evonorm.layers.legacy`` (tf_keras, for Model Garden) and
``evonorm.layers.keras3`` pin a generation. ``create_norm_act(name, ...)`` builds any registered
layer by name; ``list_norm_acts()`` lists the names.

Layers: EvoNormB0, EvoNormB1, EvoNormB2, EvoNormS0, EvoNormS1, EvoNormS2; baselines BNReLU, BNSiLU,
GNReLU, GNSiLU, FRN, LayerNormReLU, PixelNormReLU; Table 3 rows RandomLayer, RandomRejLayer,
RSRejLayer; Table 7 variants EvoNormB0NoV1x, EvoNormB0NoLocal, EvoNormB0NoGlobal, EvoNormB0MaxToAdd.
"""

from evonorm.layers.base import NormActBase
from evonorm.layers.generations import KERAS3, TF_KERAS, default_generation
from evonorm.layers.registry import bind_generation, canonical_name, list_norm_acts

create_norm_act, get_norm_act_class, __getattr__, __dir__ = bind_generation(__name__, None)

__all__ = ["create_norm_act", "get_norm_act_class", "list_norm_acts", "canonical_name", "NormActBase",
           "default_generation", "TF_KERAS", "KERAS3"]

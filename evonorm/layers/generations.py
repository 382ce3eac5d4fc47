"""Turns the generation-agnostic layer mixins into Keras layers of one Keras generation.

TF >= 2.16 ships Keras 3 as ``tf.keras``, while TF Model Garden is written against ``tf_keras``
(Keras 2). A layer of one generation inside a model of the other either fails or silently loses its
weights, so each generation gets its own classes -- with the same names, the same math (the mixins)
and the same serialization name (``evonorm>EvoNormS0``).
"""

from __future__ import annotations

import functools
import importlib
import os

from evonorm.layers.baselines import BASELINE_LAYERS
from evonorm.layers.evonorm import EVONORM_LAYERS

ALL_MIXINS = EVONORM_LAYERS + BASELINE_LAYERS
TF_KERAS = "tf_keras"
KERAS3 = "keras3"
PACKAGE = "evonorm"


def default_generation() -> str:
    """The generation ``tf.keras`` resolves to: tf_keras under ``TF_USE_LEGACY_KERAS=1``, else Keras 3."""
    if os.environ.get("TF_USE_LEGACY_KERAS", "").lower() in ("1", "true", "yes"):
        return TF_KERAS
    import keras  # noqa: PLC0415 - imported lazily: heavy, and only needed for Keras 3 users.
    return KERAS3 if keras.__version__.startswith("3") else TF_KERAS


def _generation_spec(generation: str):
    """(Layer base class, serializable decorator, extra add_weight kwargs) for one generation."""
    import tensorflow as tf  # noqa: PLC0415

    if generation == TF_KERAS:
        tf_keras = importlib.import_module("tf_keras")
        register = tf_keras.utils.register_keras_serializable
        no_autocast = {"experimental_autocast": False}
        moving = {"synchronization": tf.VariableSynchronization.ON_READ,
                  "aggregation": tf.VariableAggregation.MEAN}
        return tf_keras.layers.Layer, register, no_autocast, moving
    if generation == KERAS3:
        keras = importlib.import_module("keras")
        register = keras.saving.register_keras_serializable
        return keras.layers.Layer, register, {"autocast": False}, {"aggregation": "mean"}
    raise ValueError(f"unknown Keras generation {generation!r}; use {TF_KERAS!r} or {KERAS3!r}.")


@functools.lru_cache(maxsize=None)
def layer_classes(generation: str) -> dict:
    """Class name -> Keras layer class of ``generation`` (built once, registered for serialization)."""
    layer_base, register, no_autocast, moving = _generation_spec(generation)
    module = f"evonorm.layers.{'legacy' if generation == TF_KERAS else 'keras3'}"
    classes = {}
    for mixin in ALL_MIXINS:
        name = mixin.__name__
        cls = type(name, (mixin, layer_base), {
            "__module__": module,
            "__qualname__": name,
            "__doc__": mixin.__doc__,
            "_no_autocast_kwargs": no_autocast,
            "_moving_kwargs": moving,
            "keras_generation": generation,
        })
        classes[name] = register(package=PACKAGE, name=name)(cls)
    return classes

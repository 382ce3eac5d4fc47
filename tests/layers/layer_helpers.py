"""Helpers shared by the norm-act layer tests: building layers of either generation, assigning
non-trivial parameter values, and reading parameters back for the NumPy reference."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

import numpy_reference as ref
from evonorm.layers import keras3, legacy

GENERATIONS = ("tf_keras", "keras3")
MODULES = {"tf_keras": legacy, "keras3": keras3}
# Per-name ranges for v1: the Table 7 variants without the max(., batch std) guard divide by
# v1 * x + inst_std, which must stay away from zero for a well-conditioned comparison.
V1_RANGE = {"evonorm_b0_no_global": (0.02, 0.08), "evonorm_b0_max_to_add": (0.02, 0.08)}


def create(name, generation, /, apply_act=True, **kwargs):
    return MODULES[generation].create_norm_act(name, apply_act=apply_act, **kwargs)


def short_name(variable) -> str:
    """'gamma' from 'layer/gamma:0' (tf_keras) or 'gamma' / 'layer/gamma' (Keras 3)."""
    return variable.name.split("/")[-1].split(":")[0]


def variables_by_name(layer) -> dict:
    return {short_name(v): v for v in layer.weights}


def params_of(layer) -> dict:
    """Every variable of a built layer as a float64 NumPy array, keyed by its short name."""
    return {k: np.asarray(v.numpy(), np.float64) for k, v in variables_by_name(layer).items()}


def randomize(layer, rng, name=None):
    """Assigns distinct, non-trivial per-channel values to every trainable variable."""
    for key, var in variables_by_name(layer).items():
        if not var.trainable:
            continue
        size = var.shape[0]
        if key == "gamma":
            value = rng.uniform(0.5, 1.5, size) * rng.choice([-1.0, 1.0], size)
        elif key == "beta":
            value = rng.uniform(-1.0, 1.0, size)
        elif key == "v1":
            value = rng.uniform(*V1_RANGE.get(name, (0.3, 1.7)), size)
        elif key == "tau":
            value = rng.uniform(-0.5, 0.5, size)
        else:
            raise AssertionError(f"unexpected trainable variable {key!r}")
        var.assign(value.astype(np.float32))


def make_input(rng, shape, mean=0.7, scale=1.6):
    """float32 input with a non-zero mean and per-channel offsets (so channel mix-ups show)."""
    offsets = np.linspace(-0.5, 0.5, shape[-1])
    return (rng.normal(mean, scale, shape) + offsets).astype(np.float32)


def built_layer(name, generation, shape, rng, warmup=1, **kwargs):
    """A layer built on ``shape`` with random parameters, after ``warmup`` training calls (so moving
    statistics have left their initial values). Returns (layer, warmup inputs)."""
    layer = create(name, generation, **kwargs)
    layer.build(shape)
    randomize(layer, rng, name)
    inputs = []
    for _ in range(warmup):
        x = make_input(rng, shape, mean=1.3, scale=2.0)
        layer(tf.constant(x), training=True)
        inputs.append(x)
    return layer, inputs


def reference_kwargs(layer_kwargs: dict) -> dict:
    """The subset of layer constructor kwargs the NumPy reference understands."""
    keys = {"apply_act": "apply_act", "no_act_mode": "no_act_mode", "groups": "groups",
            "epsilon": "eps", "momentum": "momentum"}
    return {keys[k]: v for k, v in layer_kwargs.items() if k in keys}


def run_reference(name, x, params, training, **layer_kwargs):
    return ref.forward(name, x, params, training, **reference_kwargs(layer_kwargs))

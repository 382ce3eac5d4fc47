"""Standalone classifiers on a backbone, and the weight-decay filter of the reference training code."""

from __future__ import annotations

import tensorflow as tf
import tf_keras

from evonorm.layers import NormActBase


def classification_model(backbone: tf_keras.Model, num_classes: int, dropout_rate: float = 0.0,
                         kernel_regularizer=None, name: str | None = None) -> tf_keras.Model:
    """Backbone + global average pooling + dropout + dense logits, as a tf_keras.Model.

    The features are the backbone's highest endpoint by key (the 1x1 head conv '6' where the network
    has one, else '5'), the rule Model Garden's ImageClassificationModel uses.

    Args:
      backbone: a model returning a dict of endpoints (any backbone of this package).
      num_classes: number of logits.
      dropout_rate: dropout before the dense layer (EfficientNet: ``classifier_dropout(model_id)``).
      kernel_regularizer: regularizer of the dense kernel.
      name: model name (default: '<backbone>_classifier').

    Returns:
      A tf_keras.Model mapping images to logits (float32, no softmax).
    """
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}.")
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate!r}.")
    inputs = tf_keras.Input(shape=backbone.input_shape[1:], name="image")
    endpoints = backbone(inputs)
    if not isinstance(endpoints, dict):
        raise ValueError("backbone must return a dict of endpoints by level.")
    x = endpoints[max(endpoints, key=int)]
    x = tf_keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout_rate > 0:
        x = tf_keras.layers.Dropout(dropout_rate, name="dropout")(x)
    logits = tf_keras.layers.Dense(num_classes, kernel_regularizer=kernel_regularizer,
                                   kernel_initializer=tf_keras.initializers.RandomNormal(stddev=0.01),
                                   name="logits")(x)
    return tf_keras.Model(inputs, logits, name=name or f"{backbone.name}_classifier")


def norm_act_variables(model: tf.Module) -> list:
    """Every variable owned by a norm-act layer (an ``evonorm.layers.NormActBase``) inside ``model``."""
    found, seen = [], set()
    for module in model.submodules:
        if isinstance(module, NormActBase):
            for variable in module.weights:
                if id(variable) not in seen:
                    seen.add(id(variable))
                    found.append(variable)
    return found


def weight_decay_variables(model: tf.Module) -> list:
    """Trainable variables that take weight decay: all but the norm-act layers' (gamma, beta, v1...).

    The reference training code excludes normalization variables (names containing 'evonorm' or
    'batch_normalization') from the L2 penalty; here the test is the layer type, not the name.
    """
    excluded = {id(v) for v in norm_act_variables(model)}
    return [v for v in model.trainable_variables if id(v) not in excluded]


def l2_weight_decay(model: tf.Module, weight_decay: float) -> tf.Tensor:
    """``weight_decay * sum(||w||^2 / 2)`` over :func:`weight_decay_variables` (a scalar tensor)."""
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}.")
    variables = weight_decay_variables(model)
    if not variables:
        return tf.constant(0.0)
    return weight_decay * tf.add_n([tf.nn.l2_loss(tf.cast(v, tf.float32)) for v in variables])

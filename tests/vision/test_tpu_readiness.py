"""What a TPU needs from a training step, checked on this CPU (there is no TPU here).

A TPU runs one XLA program per step: every shape static, no op XLA cannot compile (the project's fused
C++ CPU kernels are such ops), bfloat16 compute with float32 variables, and cross-replica statistics
through ``ReplicaContext.all_reduce`` (lowered to CrossReplicaSum). So: ``official/tpu.yaml`` applies to
every paper experiment; the real input pipeline yields static shapes; and the tiny twin's whole train
step (forward, loss, gradients) under that config compiles with ``jit_compile=True`` and runs, with the
fused kernels absent from its graph. A control shows the same step outside XLA does use them, so the
check would see them. What this cannot show: TPU memory, speed, or a multi-core TPU all-reduce.
"""

import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from official.core import exp_factory, task_factory
from official.modeling import hyperparams

from evonorm import kernels
from evonorm.layers.base import NormActBase
from evonorm.vision import experiments
from train_helpers import TINY, data_yaml, needs_fashion_mnist  # noqa: F401 - data_yaml is a fixture

pytestmark = needs_fashion_mnist
TPU_YAML = os.path.join(os.path.dirname(__file__), "..", "..", "official", "tpu.yaml")


def tpu_params(name, *files, override=None):
    params = exp_factory.get_exp_config(name)
    for path in (TPU_YAML, *files):
        params = hyperparams.override_params_dict(params, path, is_strict=True)
    if override:
        params = hyperparams.override_params_dict(params, override, is_strict=True)
    params.validate()
    return params


def test_tpu_yaml_fits_every_paper_experiment_with_static_batches():
    for name in experiments.experiment_names(tiny=False):
        params = tpu_params(name)
        assert params.runtime.distribution_strategy == "tpu", name
        assert params.runtime.mixed_precision_dtype == "bfloat16", name
        assert params.task.train_data.drop_remainder and params.task.validation_data.drop_remainder, name


def custom_ops(graph):
    found = {op.type for op in graph.get_operations() if op.type.startswith("Evonorm")}
    for function in graph._functions.values():  # noqa: SLF001 - nested function bodies (tape, cond)
        found |= {node.op for node in function.definition.node_def if node.op.startswith("Evonorm")}
    return found


@pytest.fixture
def policy(request):
    tf_keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    tf_keras.mixed_precision.set_global_policy("float32")


def build(layer, data_yaml, sync):
    params = tpu_params(TINY, data_yaml, override=f"task.model.norm_activation.type={layer},"
                        f"task.model.norm_activation.use_sync_bn={str(sync).lower()}")
    task = task_factory.get_task(params.task)
    dataset = task.build_inputs(params.task.train_data)
    images, labels = next(iter(dataset))
    return task.build_model(), dataset, images, labels


def train_step(model, jit):
    @tf.function(jit_compile=jit)
    def step(images, labels):
        with tf.GradientTape() as tape:
            logits = tf.cast(model(images, training=True), tf.float32)
            loss = tf.reduce_mean(tf_keras.losses.sparse_categorical_crossentropy(
                labels, logits, from_logits=True))
        return loss, tape.gradient(loss, model.trainable_variables)
    return step


# bfloat16 with synchronized statistics (the TPU setting); float32 unsynchronized, where XLA alone
# must keep the fused CPU kernels out (they would serve that dtype outside XLA: see the control).
@pytest.mark.parametrize("layer,policy,sync", [("evonorm_b0", "mixed_bfloat16", True),
                                               ("evonorm_s0", "mixed_bfloat16", True),
                                               ("evonorm_b0", "float32", False)], indirect=["policy"])
def test_tiny_twin_train_step_compiles_with_xla(layer, policy, sync, data_yaml):
    model, dataset, images, labels = build(layer, data_yaml, sync=sync)
    for spec in tf.nest.flatten(dataset.element_spec):
        assert spec.shape.is_fully_defined(), spec  # static shapes, batch dimension included
    norm_acts = [m for m in model.submodules if isinstance(m, NormActBase)]
    assert norm_acts
    for norm in norm_acts:
        expected = "bfloat16" if policy == "mixed_bfloat16" else "float32"
        assert norm.compute_dtype == expected and all(v.dtype == tf.float32 for v in norm.weights)
        assert norm.synchronized == sync  # use_sync_bn reaches every layer (cross-replica on a TPU)

    step = train_step(model, jit=True)
    loss, grads = step(images, labels)
    assert np.isfinite(float(loss)) and len(grads) == len(model.trainable_variables)
    for grad in grads:
        assert grad is not None and bool(tf.reduce_all(tf.math.is_finite(tf.cast(grad, tf.float32))))
    assert custom_ops(step.get_concrete_function(images, labels).graph) == set()


@pytest.mark.skipif(kernels.load() is None, reason="fused kernels could not be built here")
def test_control_outside_xla_the_fused_cpu_kernels_are_in_the_graph(data_yaml):
    model, _, images, labels = build("evonorm_b0", data_yaml, sync=False)
    graph = train_step(model, jit=False).get_concrete_function(images, labels).graph
    assert {"EvonormB0", "EvonormB0Grad"} <= custom_ops(graph)

"""Pre-activation CIFAR ResNet: pinned sizes, every norm-act through the seam, input validation."""

import numpy as np
import pytest
import tf_keras

from evonorm.layers import NormActBase, list_norm_acts
from evonorm.vision.cifar_resnet import blocks_per_stage, build_preact_resnet


@pytest.mark.parametrize("depth, total, trainable", [
    # ResNet-20 ~0.27M as in He et al. 2016; the two 1x1 projection shortcuts add 16*32 + 32*64 weights.
    (8, 78_330, 77_850),
    (20, 273_658, 272_282),
])
def test_parameter_counts_are_pinned(depth, total, trainable):
    model = build_preact_resnet(depth=depth, norm_act="bn_relu", input_shape=(32, 32, 3), num_classes=10)
    assert model.count_params() == total
    assert sum(int(np.prod(v.shape)) for v in model.trainable_variables) == trainable


def test_structure_of_resnet8():
    model = build_preact_resnet(depth=8)
    convs = [layer for layer in model.layers if isinstance(layer, tf_keras.layers.Conv2D)]
    norm_acts = [layer for layer in model.layers if isinstance(layer, NormActBase)]
    # stem + 2 per block x 3 blocks + 2 projection shortcuts; 2 norm-acts per block + the final one.
    assert len(convs) == 9 and len(norm_acts) == 7
    assert [c.filters for c in convs if c.name.endswith("conv2")] == [16, 32, 64]
    assert {c.name for c in convs if c.kernel_size == (1, 1)} == {"stage2_block1_proj", "stage3_block1_proj"}
    assert all(not c.use_bias for c in convs)
    assert model.output_shape == (None, 10)


def test_width_and_input_shape_are_honoured():
    model = build_preact_resnet(depth=14, input_shape=(28, 28, 1), num_classes=7, width=8)
    assert model.input_shape == (None, 28, 28, 1) and model.output_shape == (None, 7)
    assert max(layer.filters for layer in model.layers if isinstance(layer, tf_keras.layers.Conv2D)) == 32


@pytest.mark.parametrize("name", list_norm_acts())
def test_every_norm_act_builds_and_runs_through_the_seam(name, rng):
    model = build_preact_resnet(depth=8, norm_act=name, input_shape=(8, 8, 3), width=8, groups=4)
    x = rng.standard_normal((4, 8, 8, 3)).astype("float32")
    for training in (True, False):
        out = model(x, training=training).numpy()
        assert out.shape == (4, 10) and np.isfinite(out).all()
    kinds = {type(layer).__name__ for layer in model.submodules}
    assert "BatchNormalization" not in kinds
    assert not any(isinstance(layer, tf_keras.layers.Activation) for layer in model.submodules)
    assert sum(isinstance(layer, NormActBase) for layer in model.layers) == 7


def test_norm_kwargs_reach_every_norm_act():
    model = build_preact_resnet(depth=8, norm_act="evonorm_s0", groups=4, epsilon=1e-3)
    norm_acts = [layer for layer in model.layers if isinstance(layer, NormActBase)]
    assert {(layer.groups, layer.epsilon) for layer in norm_acts} == {(4, 1e-3)}


@pytest.mark.parametrize("depth", [0, 7, 9, 10, 21, "20", 20.0, True])
def test_invalid_depth_names_the_rule(depth):
    with pytest.raises(ValueError, match="6n\\+2"):
        build_preact_resnet(depth=depth)


def test_blocks_per_stage():
    assert [blocks_per_stage(d) for d in (8, 20, 56, 110)] == [1, 3, 9, 18]


@pytest.mark.parametrize("kwargs, match", [
    ({"width": 0}, "width"),
    ({"num_classes": -1}, "num_classes"),
    ({"input_shape": (32, 32)}, "input_shape"),
    ({"norm_act": "batchnorm_relu"}, "unknown norm-act"),
])
def test_bad_arguments_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_preact_resnet(**kwargs)

"""MAdds counter: exact hand counts per op kind, per-layer attribution, Model Garden's convention, the CLI."""

import os
import subprocess
import sys

import pytest
import tensorflow as tf
import tf_keras

from evonorm.layers import legacy
from evonorm.vision import madds

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
L = tf_keras.layers


def functional(input_shape, *layers, name="net"):
    x = inputs = tf_keras.Input(input_shape)
    for layer in layers:
        x = layer(x)
    return tf_keras.Model(inputs, x, name=name)


@pytest.mark.parametrize("layer,input_shape,expected", [
    # 16x16 output pixels x 3x3 kernel x 3 in x 8 out; the bias is a BiasAdd: 1 FLOP = 1/2 MAdd per element
    (L.Conv2D(8, 3, padding="same", use_bias=False), (16, 16, 3), 16 * 16 * 9 * 3 * 8),
    (L.Conv2D(8, 3, padding="same"), (16, 16, 3), 16 * 16 * 9 * 3 * 8 + 16 * 16 * 8 / 2),
    (L.Conv2D(8, 3, strides=2, padding="valid", use_bias=False), (17, 17, 3), 8 * 8 * 9 * 3 * 8),
    (L.Dense(4), (10,), 10 * 4 + 4 / 2),
    (L.DepthwiseConv2D(3, padding="same", use_bias=False), (16, 16, 8), 16 * 16 * 9 * 8),
    # transposed 2x2 stride 2: every input pixel x 2x2 taps x 8 in x 4 out
    (L.Conv2DTranspose(4, 2, strides=2, use_bias=False), (8, 8, 8), 8 * 8 * 4 * 8 * 4),
    (L.Activation("relu"), (4, 4, 2), 0),  # unregistered ops are free
    (L.Add(), None, 4 * 4 * 2 / 2),
])
def test_exact_counts_per_op_kind(layer, input_shape, expected):
    if input_shape is None:  # two inputs
        a, b = tf_keras.Input((4, 4, 2)), tf_keras.Input((4, 4, 2))
        model = tf_keras.Model([a, b], layer([a, b]))
    else:
        model = functional(input_shape, layer)
    report = madds.count_madds(model)
    assert report.total == expected
    assert list(report.by_layer) == [layer.name]
    assert report.uncounted == []


def test_nested_layers_are_attributed_and_sum_to_the_total():
    block = tf_keras.Sequential([L.Conv2D(4, 3, padding="same", use_bias=False, name="conv"),
                                 L.Conv2D(4, 1, use_bias=False, name="proj")], name="block")
    model = functional((8, 8, 3), block, L.GlobalAveragePooling2D(name="pool"), L.Dense(5, name="fc"))
    report = madds.count_madds(model)
    assert list(report.by_layer) == ["block/conv", "block/proj", "pool", "fc"]
    assert report.by_layer["block/conv"] == 8 * 8 * 9 * 3 * 4
    assert report.by_layer["block/proj"] == 8 * 8 * 4 * 4
    assert report.by_layer["fc"] == 4 * 5 + 5 / 2
    assert report.total == pytest.approx(sum(report.by_layer.values()))
    assert report.grouped(1)["block"] == 8 * 8 * 9 * 3 * 4 + 8 * 8 * 4 * 4
    assert sum(report.by_op_type.values()) == pytest.approx(report.total)
    table = report.markdown(top=2)
    assert "| block/conv |" in table and "(2 other layers)" in table and "**total**" in table
    assert report.markdown().count("\n") == 2 + 4  # header, separator, 4 layers, total


def test_shared_layer_called_twice_counts_twice_under_one_name():
    conv = L.Conv2D(2, 1, use_bias=False, name="shared")
    x = tf_keras.Input((4, 4, 2))
    model = tf_keras.Model(x, conv(conv(x)))
    assert madds.count_madds(model).by_layer == {"shared": 2 * 4 * 4 * 2 * 2}


class TwoInputs(tf_keras.Model):
    def __init__(self):
        super().__init__(name="two_inputs")
        self.conv = L.Conv2D(3, 1, use_bias=False, name="conv")

    def call(self, images, scale, training=None):
        return self.conv(images) * scale


def test_subclassed_model_with_keyword_specs_and_ops_outside_layers():
    model = TwoInputs()
    report = madds.count_madds(model, {"images": (6, 6, 2), "scale": tf.TensorSpec([1, 1, 1, 3])})
    assert report.by_layer == {"conv": 6 * 6 * 2 * 3, madds.TOP: 6 * 6 * 3 / 2}
    with pytest.raises(ValueError, match="no symbolic inputs"):
        madds.count_madds(model)


def test_evonorm_layer_counts_more_than_identity_and_unfrozen_agrees():
    conv = dict(filters=8, kernel_size=3, padding="same", use_bias=False, name="conv")
    plain = madds.count_madds(functional((8, 8, 3), L.Conv2D(**conv), L.Activation("linear", name="norm")))
    evo = functional((8, 8, 3), L.Conv2D(**conv), legacy.create_norm_act("evonorm_s0", groups=4, name="norm"))
    report = madds.count_madds(evo)
    assert plain.by_layer["conv"] == report.by_layer["conv"]
    # several FLOPs per element (the fused CPU kernel is switched off: a custom op would count 0)
    assert report.by_layer["norm"] > 2 * 8 * 8 * 8
    assert report.total > plain.total
    assert madds.count_madds(evo, freeze=False).by_layer == report.by_layer


def test_equals_model_gardens_profiler_count_halved():
    from official.core import train_utils

    model = functional((12, 12, 3), L.Conv2D(8, 3, padding="same"), L.BatchNormalization(), L.ReLU(),
                       L.DepthwiseConv2D(3), L.MaxPooling2D(), L.Flatten(), L.Dense(3))
    assert madds.count_madds(model).total == train_utils.try_count_flops(model) / 2


def test_script_prints_table_and_total():
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    script = os.path.join(REPO, "scripts", "count_madds.py")
    proc = subprocess.run([sys.executable, script, "--experiment=evonorm_resnet50_imagenet_tiny", "--depth=1",
                           "--input_size=64,64"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| **total** |" in proc.stdout and "B MAdds" in proc.stdout and "[64, 64, 3]" in proc.stdout
    bad = subprocess.run([sys.executable, script, "--experiment=no_such"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert bad.returncode == 1 and "count_madds: error: unknown experiment" in bad.stderr

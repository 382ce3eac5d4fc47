"""The benchmark's memory probe (a fresh process on TensorFlow's BFC allocator); timings are not tested."""

import pytest

from evonorm import benchmark


def test_peak_memory_of_a_training_step_is_measured_in_a_fresh_process():
    small = benchmark.peak_memory_mb_subprocess("bn_relu", 8, 4)
    large = benchmark.peak_memory_mb_subprocess("bn_relu", 8, 64)
    assert 0 < small < large  # activations kept for the backward pass grow with the batch


def test_a_failed_measurement_says_which_and_why():
    with pytest.raises(RuntimeError, match="(?s)memory measurement of no_such_layer .*unknown norm-act"):
        benchmark.peak_memory_mb_subprocess("no_such_layer", 8, 4)

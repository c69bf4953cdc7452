"""The probe on TensorFlow (`rnn_monitor.backends.tensorflow`): the compiled function reads the
current weights, the forward pass's gradients against the loss's derivative by hand and a plain
`tf.GradientTape`, one vector-Jacobian product against its formula, and Grappler's options left
as they were."""

import pytest

from backend_checks import check_compile_reads_the_current_weights, check_forward_gradients, check_vjp_and_after


def test_compile_and_inference_read_the_current_weights():
    check_compile_reads_the_current_weights("tensorflow")


def test_forward_gradients_against_a_plain_tape(grad):
    check_forward_gradients(grad)


def test_vjp_and_after(grad):
    check_vjp_and_after(grad)


def test_the_probe_leaves_grappler_options_as_they_were():
    tf = pytest.importorskip("tensorflow")
    from rnn_monitor.backends.tensorflow import _without_arithmetic_optimizer

    before = tf.config.optimizer.get_experimental_options()
    with _without_arithmetic_optimizer():
        assert tf.config.optimizer.get_experimental_options()["arithmetic_optimization"] is False
    assert tf.config.optimizer.get_experimental_options() == before

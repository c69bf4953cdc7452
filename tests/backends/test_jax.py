"""The probe on JAX (`rnn_monitor.backends.jax`), run under ``KERAS_BACKEND=jax``: the jitted
function reads the current weights (compiled ahead or not), the forward pass's gradients against
the loss's derivative by hand and `jax.grad`, one vector-Jacobian product against its formula,
arrays of this process alone."""

import keras
import numpy as np
import pytest

from backend_checks import check_compile_reads_the_current_weights, check_forward_gradients, check_vjp_and_after

pytestmark = [pytest.mark.backends,
              pytest.mark.skipif(keras.backend.backend() != "jax", reason="runs under KERAS_BACKEND=jax")]


def test_compile_and_inference_read_the_current_weights():
    check_compile_reads_the_current_weights("jax")


def test_forward_gradients_against_jax_grad(grad):
    check_forward_gradients(grad)


def test_vjp_and_after(grad):
    check_vjp_and_after(grad)


def test_a_call_unlike_the_prepared_one_traces_anew():
    from rnn_monitor.backends import backend_for

    model = keras.Sequential([keras.Input((None, 2)), keras.layers.GRU(3)])
    backend = backend_for(model)
    run = backend.compile(lambda x, y, sw: model(x))
    short, long = np.ones((2, 3, 2), "float32"), np.ones((4, 5, 2), "float32")
    run.prepare(short)
    np.testing.assert_allclose(run(long), np.asarray(model(long)), atol=1e-6)
    np.testing.assert_allclose(run(short), np.asarray(model(short)), atol=1e-6)


def test_local_arrays_pass_through():
    import jax.numpy as jnp

    from rnn_monitor.backends.jax import _local

    value = jnp.arange(3.0)
    assert _local(value) is value and _local(2.0) == 2.0

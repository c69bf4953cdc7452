"""Shared test settings: quiet TensorFlow, deterministic seeds, and what differs by backend.

The suite runs on TensorFlow (every test) and on JAX (``KERAS_BACKEND=jax``: the tests marked
``backends``, which build models; the others check the log, the plugin and the statistics,
which no backend touches). References that need a gradient take it with the backend's own
autodiff (`backend_grad`): a plain `tf.GradientTape` or `jax.grad`.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def keras_backend() -> str:
    import keras

    return keras.backend.backend()


def pytest_collection_modifyitems(config, items):
    """On a backend other than TensorFlow, only the tests marked ``backends`` run."""
    if keras_backend() == "tensorflow":
        return
    kept = [item for item in items if item.get_closest_marker("backends")]
    dropped = [item for item in items if not item.get_closest_marker("backends")]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def backend_grad(fn, *args):
    """The gradient of the scalar ``fn(*args)`` with respect to each argument (pytrees of
    arrays), by the backend's own autodiff, as numpy: a tuple with one entry per argument."""
    import keras

    if keras_backend() == "jax":
        import jax

        grads = jax.grad(fn, argnums=tuple(range(len(args))))(*args)
    else:
        import tensorflow as tf

        args = tf.nest.map_structure(tf.convert_to_tensor, args)
        with tf.GradientTape() as tape:
            tape.watch(args)
            out = fn(*args)
        grads = tape.gradient(out, args, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return tuple(keras.tree.map_structure(lambda g: np.asarray(g, np.float64), list(grads)))


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same seeds."""
    import keras

    keras.utils.set_random_seed(1234)
    yield


@pytest.fixture
def log_dir(tmp_path):
    """A fresh log directory for one test."""
    path = tmp_path / "logs"
    path.mkdir()
    return str(path)


@pytest.fixture
def lstm_flow_by_tape():
    """``flow(cell, inputs, v, lengths, steps) -> [B, steps]``: ||d<v_b, h_last_b>/dh_t|| of an
    LSTM cell stepped by hand over each sequence's valid steps only (zero elsewhere), the
    gradient by the backend's autodiff; `inputs` [B, T, D] are the cell's inputs, `v` [B, units]."""

    def flow(cell, inputs, v, lengths, steps):
        import keras

        units = v.shape[1]
        inputs = np.asarray(inputs)
        norms = np.zeros((len(lengths), steps))
        for b, n in enumerate(lengths):

            def target(eps, b=b, n=n):
                h = c = keras.ops.zeros((1, units))
                for t in range(n):
                    h, (h, c) = cell(inputs[b : b + 1, t], [h, c])
                    h = h + eps[t]
                return keras.ops.sum(v[b] * h)

            (grads,) = backend_grad(target, [np.zeros((1, units), "float32") for _ in range(n)])
            for t, g in enumerate(grads):
                norms[b, t] = np.linalg.norm(g)
        return norms

    return flow


@pytest.fixture
def grad():
    """`backend_grad`: gradients by the backend's own autodiff."""
    return backend_grad

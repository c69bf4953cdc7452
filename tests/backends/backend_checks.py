"""Checks every backend module's `Backend` must pass (imported by tests/backends/test_<backend>.py:
not a test module), against numpy and the backend's plain autodiff (`grad`, the tests'
`backend_grad`): a model whose head adds the probe's zero perturbation to its output."""

from __future__ import annotations

import contextlib

import keras
import numpy as np

from rnn_monitor.backends import Forward, backend_for, backend_name

B, T, D = 3, 4, 2


def model_and_data():
    keras.utils.set_random_seed(11)
    model = keras.Sequential([keras.Input((T, D)), keras.layers.GRU(3), keras.layers.Dense(2, name="head")])
    model.compile("sgd", "mse")
    rng = np.random.default_rng(11)
    return model, rng.normal(size=(B, T, D)).astype("float32"), rng.normal(size=(B, 2)).astype("float32")


def head_loops(model):
    """``loops(provider, record)``: while active, the head's output gets the perturbation
    ``("head", "out")`` added, and `record` holds it."""
    head = model.get_layer("head")
    own = head.call

    @contextlib.contextmanager
    def loops(provider, record):
        def call(inputs, **kwargs):
            out = own(inputs, **kwargs)
            record["head"] = provider(("head", "out"), (B, 2), "float32")
            return out + record["head"]

        object.__setattr__(head, "call", call)
        try:
            yield
        finally:
            object.__delattr__(head, "call")

    return loops


def check_compile_reads_the_current_weights(expected_name):
    model, x, _ = model_and_data()
    backend = backend_for(model)
    assert backend.name == expected_name == backend_name(model)
    run = backend.compile(lambda x, y, sw: {"out": model(x), "twice": 2 * model(x)})
    run.prepare(x)
    first = run(x)
    assert isinstance(first["out"], np.ndarray)
    np.testing.assert_allclose(first["out"], np.asarray(model(x)), atol=1e-6)
    np.testing.assert_allclose(first["twice"], 2 * first["out"], atol=1e-6)
    bias = model.get_layer("head").bias
    bias.assign(np.asarray(bias) + 1.0)
    np.testing.assert_allclose(run(x)["out"], first["out"] + 1.0, atol=1e-5)  # not frozen into the trace
    np.testing.assert_allclose(np.asarray(backend.inference()(x)), first["out"] + 1.0, atol=1e-5)


def check_forward_gradients(grad):
    """dL/d(perturbation) is dL/dy_pred of the mean squared error, by hand; dL/d kernel by a
    plain autodiff of the same loss on the kernel's value."""
    model, x, y = model_and_data()
    backend = backend_for(model)
    head = model.get_layer("head")
    run = backend.compile(lambda x, y, sw: _forward_parts(backend.forward(model, x, y, sw, [head.kernel],
                                                                          head_loops(model), True)))
    out = run(x, y)
    y_pred = np.asarray(model(x))
    np.testing.assert_allclose(out["y_pred"], y_pred, atol=1e-6)
    np.testing.assert_allclose(float(out["loss"]), np.mean((y_pred - y) ** 2), rtol=1e-5)
    np.testing.assert_allclose(out["dpert"], 2 * (y_pred - y) / y.size, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(out["kept"], np.zeros((B, 2)))
    features = np.asarray(model.layers[0](x))

    def loss_of(kernel):
        return keras.ops.mean((keras.ops.matmul(features, kernel) + head.bias - y) ** 2)

    (expected,) = grad(loss_of, np.asarray(head.kernel))
    np.testing.assert_allclose(out["dkernel"], expected, rtol=1e-5, atol=1e-7)
    without = backend.compile(lambda x, y, sw: _forward_parts(backend.forward(model, x, y, sw, [], head_loops(model),
                                                                              False)))(x)
    assert sorted(without) == ["kept", "y_pred"]  # no loss, no gradients
    np.testing.assert_allclose(without["y_pred"], y_pred, atol=1e-6)


def _forward_parts(fwd: Forward) -> dict:
    """The forward pass's tensors by name (those that are None left out)."""
    grads = fwd.perturbation_grads
    parts = {"loss": fwd.loss, "y_pred": fwd.y_pred, "kept": fwd.record["head"],
             "dpert": grads.get(("head", "out")), "dkernel": fwd.weight_grads[0] if fwd.weight_grads else None}
    return {name: value for name, value in parts.items() if value is not None}


def check_vjp_and_after(grad):
    model, _, _ = model_and_data()
    backend = backend_for(model)
    primal = np.array([[1.0, -2.0], [0.5, 3.0]], "float32")
    cotangent = np.array([[1.0, 0.0], [2.0, -1.0]], "float32")

    def fn(v):
        return keras.ops.sin(v) * v

    got = backend.compile(lambda x, y, sw: backend.vjp(fn, x, cotangent))(primal)
    np.testing.assert_allclose(got, cotangent * (np.cos(primal) * primal + np.sin(primal)), rtol=1e-5)
    (expected,) = grad(lambda v: keras.ops.sum(fn(v) * cotangent), primal)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    after = backend.compile(lambda x, y, sw: backend.after([x * 2], lambda v: v + 1.0, x))(primal)
    np.testing.assert_allclose(after, primal + 1.0)

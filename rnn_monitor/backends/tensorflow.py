"""The probe on TensorFlow (Keras 3 with ``KERAS_BACKEND=tensorflow``, and tf.keras 2): one
`tf.function`, gradients by `tf.GradientTape`."""

from __future__ import annotations

import contextlib
from typing import Any, Callable

import tensorflow as tf

from rnn_monitor.backends import Forward
from rnn_monitor.model import backend


@contextlib.contextmanager
def _without_arithmetic_optimizer():
    """Switch Grappler's arithmetic optimizer off for the functions called inside, then restore
    the options exactly as they were (so the user's own functions keep their cached graphs).

    Why: at larger widths (TF 2.21, e.g. 3 x LSTM 256 at T = 200) it rewrites sums in gradient
    loops into temporary variables that leak from one call to the next, and the second call
    fails with AlreadyExistsError ("tmp_var ... iter:200"). The options are read when a function
    is called, so only the probe's own function is affected.
    """
    from tensorflow.python.eager import context as tf_context

    ctx = tf_context.context()
    saved = dict(getattr(ctx, "_optimizer_experimental_options", {}))
    tf.config.optimizer.set_experimental_options({"arithmetic_optimization": False})
    try:
        yield
    finally:
        if hasattr(ctx, "_optimizer_experimental_options"):
            ctx._optimizer_experimental_options = saved
            ctx._thread_local_data.function_call_options = None
        else:  # pragma: no cover - other TF versions
            tf.config.optimizer.set_experimental_options({"arithmetic_optimization": True})


class Backend:
    """The probe's backend functions on TensorFlow (see `rnn_monitor.backends`)."""

    name = "tensorflow"

    def __init__(self, model: Any) -> None:
        self.model = model

    def compile(self, body: Callable[..., Any]) -> Callable[..., Any]:
        # Relaxed shapes: a changed probe shape does not trace a new graph every call.
        fn = tf.function(body, reduce_retracing=True, autograph=False)

        def run(x, y=None, sample_weight=None):
            with _without_arithmetic_optimizer():
                out = fn(x, y, sample_weight)
            return tf.nest.map_structure(lambda t: t.numpy(), out)

        def prepare(x, y=None, sample_weight=None):
            """Nothing ahead of the first call: tracing is cheap in memory here, and a trace at the
            start of a tf.keras 2 `fit` under MultiWorkerMirroredStrategy puts the chief's
            collective ops out of step with the other workers'."""

        run.prepare = prepare
        return run

    def forward(self, model, x, y, sample_weight, weights, loops, gradients) -> Forward:
        record: dict = {}
        if not gradients:
            with loops(lambda key, shape, dtype: tf.zeros(shape, dtype), record):
                y_pred = model(x, training=False)
            return Forward(None, y_pred, record, {}, [])
        made = {}
        # Not persistent: a persistent tape would keep every intermediate of the loops alive.
        with tf.GradientTape() as tape:

            def provider(key, shape, dtype):
                made[key] = tf.zeros(shape, dtype)
                tape.watch(made[key])
                return made[key]

            with loops(provider, record):
                y_pred = model(x, training=False)
            loss = backend.compiled_loss(model, x, y, y_pred, sample_weight)
        keys = list(made)
        # A tf.distribute variable of tf.keras 2 is differentiated through its per-device parts
        # (its own handle does not exist outside replica context).
        parts = [backend.variable_parts(w) for w in weights]
        grads = tape.gradient(
            loss, [made[k] for k in keys] + [p for ps in parts for p in ps],
            unconnected_gradients=tf.UnconnectedGradients.ZERO,
        )
        return Forward(loss, y_pred, record, dict(zip(keys, grads[: len(keys)])),
                       backend.sum_parts(grads[len(keys):], parts))

    def vjp(self, fn: Callable[[Any], Any], primal: Any, cotangent: Any) -> Any:
        with tf.GradientTape() as tape:
            tape.watch(primal)
            out = fn(primal)
        return tape.gradient(out, primal, output_gradients=cotangent,
                             unconnected_gradients=tf.UnconnectedGradients.ZERO)

    def after(self, done: Any, fn: Callable[[Any], Any], inputs: Any) -> Any:
        """``fn(inputs)`` with every op it creates waiting for the tensors in `done` (the probe's
        parts run one after the other: their temporaries are never alive together)."""
        with tf.control_dependencies([t for t in tf.nest.flatten(done) if tf.is_tensor(t)]):
            return fn(inputs)

    def inference(self) -> Callable[[Any], Any]:
        # Relaxed shapes: prefixes of every length do not each cost a trace.
        model = self.model
        return tf.function(lambda inputs: model(inputs, training=False), reduce_retracing=True)

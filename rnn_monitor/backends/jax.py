"""The probe on JAX (Keras 3 with ``KERAS_BACKEND=jax``): one `jax.jit` over the values of every
variable the model reads, the forward pass in a `keras.StatelessScope` that maps them (as
`model.stateless_call` does, and as Keras's own JAX trainer computes the loss), gradients by
`jax.value_and_grad` with respect to the loops' zero perturbations, which are the function's
arguments (their shapes come from a first forward whose results are dropped: XLA removes it).

The variables are the model's trainable and non-trainable ones plus the carried states of
stateful recurrent layers, which Keras does not list among them: every value the jitted function
reads is an argument, so no weight or state is frozen into the compiled function.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import keras
import numpy as np

from rnn_monitor.backends import Forward
from rnn_monitor.model.backend import carried_states


def _return_freed_heap() -> None:
    """Hand the heap XLA's compiler has just freed back to the system (glibc keeps it otherwise,
    and the process's peak then stacks training's on top of it: at 3 x LSTM 128, T = 100, the
    monitor's extra peak went from 1.10x to 0.73x of the training step's working set). A no-op
    where the C library has no `malloc_trim`."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _local(value: Any) -> Any:
    """`value` as an array of this process alone. In a multi-process run (`keras.distribution`)
    a variable is one array over every process's devices, and a computation on it would wait for
    the other processes; the probe runs on process 0 only, on its own full copy (a replicated
    variable, as under `DataParallel`)."""
    if not isinstance(value, jax.Array) or value.is_fully_addressable:
        return value
    if not value.sharding.is_fully_replicated:
        raise NotImplementedError(
            "the probe needs a full copy of every weight on process 0; a variable sharded across "
            "processes (ModelParallel) has none")
    return value.addressable_shards[0].data


class Backend:
    """The probe's backend functions on JAX (see `rnn_monitor.backends`)."""

    name = "jax"

    def __init__(self, model: Any) -> None:
        self.model = model
        listed = model.trainable_variables + model.non_trainable_variables
        seen = {id(v) for v in listed}
        self.variables = listed + [v for v in carried_states(model) if id(v) not in seen]
        self._values: Any = None  # the variables' values while `compile`'s body is traced

    def _current(self) -> list:
        return [_local(v.value) for v in self.variables]

    def _scope(self, values: list, collect_losses: bool = False) -> Any:
        return keras.StatelessScope(state_mapping=list(zip(self.variables, values)), collect_losses=collect_losses)

    def compile(self, body: Callable[..., Any]) -> Callable[..., Any]:
        def traced(values, x, y, sample_weight):
            self._values = list(values)
            try:
                with self._scope(values):
                    return body(x, y, sample_weight)
            finally:
                self._values = None

        jitted = jax.jit(traced)
        compiled = {}

        def run(x, y=None, sample_weight=None):
            args = (self._current(), x, y, sample_weight)
            try:
                out = compiled.get("fn", jitted)(*args)
            except (TypeError, ValueError):  # arguments unlike those compiled ahead: jit traces anew
                if compiled.pop("fn", None) is None:
                    raise
                out = jitted(*args)
            return jax.tree_util.tree_map(np.asarray, out)

        def prepare(x, y=None, sample_weight=None):
            """Compile now, ahead of the first call (XLA's compiler memory is then spent before
            training's own peak, not on top of the probe's)."""
            compiled["fn"] = jitted.lower(self._current(), x, y, sample_weight).compile()
            _return_freed_heap()

        run.prepare = prepare
        return run

    def _call(self, values: list, x: Any) -> tuple[Any, list]:
        """The model's output and the losses its layers added, with the variables at `values`."""
        with self._scope(values, collect_losses=True):
            y_pred = self.model(x, training=False)
            losses = self.model.losses
        return y_pred, losses

    def forward(self, model, x, y, sample_weight, weights, loops, gradients) -> Forward:
        values = self._values
        record: dict = {}
        if not gradients:
            with loops(lambda key, shape, dtype: jnp.zeros(shape, dtype), record):
                y_pred, _ = self._call(values, x)
            return Forward(None, y_pred, record, {}, [])
        wanted = {}

        def recording(key, shape, dtype):
            wanted[key] = (tuple(shape), dtype)
            return jnp.zeros(shape, dtype)

        def discover():
            with loops(recording, {}):
                self._call(values, x)

        jax.eval_shape(discover)  # traced apart: not a part of the compiled function
        made = {key: jnp.zeros(shape, dtype) for key, (shape, dtype) in wanted.items()}
        where = [next(i for i, v in enumerate(self.variables) if v is w) for w in weights]

        def loss_of(perturbations, weight_values):
            current = list(values)
            for i, value in zip(where, weight_values):
                current[i] = value
            kept: dict = {}
            with loops(lambda key, shape, dtype: perturbations[key], kept):
                y_pred, losses = self._call(current, x)
            return self._loss(current, x, y, y_pred, sample_weight, losses), (y_pred, kept)

        (loss, (y_pred, record)), (grads, weight_grads) = jax.value_and_grad(
            loss_of, argnums=(0, 1), has_aux=True)(made, [values[i] for i in where])
        return Forward(loss, y_pred, record, grads, list(weight_grads))

    def _loss(self, values, x, y, y_pred, sample_weight, losses):
        """The compiled loss as Keras's JAX trainer computes it (`compute_loss_and_updates`),
        with the forward pass's own losses, at training=False."""
        model = self.model
        n = len(model.trainable_variables)
        m = n + len(model.non_trainable_variables)
        metrics = [v.value for v in model.metrics_variables]
        if losses:
            model._losses_override.clear()
            model._losses_override = losses
        try:
            loss, _ = model.stateless_compute_loss(
                values[:n], values[n:m], metrics, x=x, y=y, y_pred=y_pred,
                sample_weight=sample_weight, training=False)
        finally:
            if losses:
                model._losses_override.clear()
        return loss

    def vjp(self, fn: Callable[[Any], Any], primal: Any, cotangent: Any) -> Any:
        _, pull = jax.vjp(fn, primal)
        return pull(cotangent)[0]

    def after(self, done: Any, fn: Callable[[Any], Any], inputs: Any) -> Any:
        """``fn(inputs)`` computed after the values in `done`: an optimization barrier ties
        `inputs` to them, so the probe's parts run one after the other."""
        _, inputs = jax.lax.optimization_barrier((jax.tree_util.tree_leaves(done), inputs))
        return fn(inputs)

    def inference(self) -> Callable[[Any], Any]:
        # One compilation per input shape, kept for the run.
        jitted = jax.jit(lambda values, inputs: self._call(values, inputs)[0])
        return lambda inputs: jitted(self._current(), inputs)

"""What differs between Keras backends for the probe, one small module each: how the probe's
function is compiled (`tf.function`, `jax.jit`) and differentiated (`tf.GradientTape`,
`jax.value_and_grad` over `model.stateless_call`). Everything else (the perturbed loops, the
reductions, the statistics, the log) is written once, in `keras.ops` or numpy.

Each backend module's `Backend` offers the same five things:

* ``compile(body)``: ``body(x, y, sample_weight)`` -> a pytree of tensors, compiled once and
  returned as a function giving numpy arrays, reading the model's current weights at every call
  (its ``prepare(x, y, sample_weight)`` compiles it ahead of the first call);
* ``forward(model, x, y, sample_weight, weights, loops, gradients)`` -> `Forward`: the model's
  forward pass with the probe's loops installed (``loops(provider, record)``), the compiled loss
  and, with `gradients`, the gradients of the loss with respect to every perturbation the loops
  asked the provider for and to `weights`;
* ``vjp(fn, primal, cotangent)``: one vector-Jacobian product (the temporal flow);
* ``after(done, fn, inputs)``: ``fn(inputs)`` computed once the tensors in `done` are (the
  probe's parts run one after the other, so their temporaries are never alive together);
* ``inference()``: the model's inference call compiled once (the interpretability methods call
  it on many input copies), reading the current weights at every call.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

SUPPORTED = ("tensorflow", "jax")


class UnsupportedBackend(RuntimeError):
    """The model runs on a Keras backend the probe does not support yet."""


@dataclasses.dataclass
class Forward:
    """One forward pass of the probe (and its gradients, when there is a loss)."""

    loss: Optional[Any]
    y_pred: Any
    record: dict  # recurrence name -> what its loop kept (`rnn_monitor.model.perturbed_loop`)
    perturbation_grads: dict  # (recurrence name, kind) -> dL/d perturbation
    weight_grads: list  # dL/dw for each of the requested weights


def backend_name(model: Any) -> str:
    """The backend `model` runs on: "tensorflow" for tf.keras 2, else Keras 3's backend."""
    from rnn_monitor.model.backend import TF_KERAS, engine_of

    if engine_of(model) == TF_KERAS:
        return "tensorflow"
    import keras

    return keras.backend.backend()


def backend_for(model: Any) -> Any:
    """The `Backend` of the backend `model` runs on; UnsupportedBackend for the others."""
    name = backend_name(model)
    if name == "tensorflow":
        from rnn_monitor.backends.tensorflow import Backend
    elif name == "jax":
        from rnn_monitor.backends.jax import Backend
    else:
        raise UnsupportedBackend(name)
    return Backend(model)

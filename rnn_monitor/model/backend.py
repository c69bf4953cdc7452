"""Which Keras a model comes from, and the few places where the two engines differ for the probe.

rnn-monitor runs with Keras 3 (`keras`) and with tf.keras 2 (`tf-keras`: `import tf_keras`, or
`tf.keras` under ``TF_USE_LEGACY_KERAS=1``), the TensorFlow engine that trains under
`MultiWorkerMirroredStrategy` (Keras 3's `fit` does not). The two share layer names and cell
formulas but not classes, so every `isinstance` goes through `is_a`, and the probe's hooks differ:

* the step loop: Keras 3's `RNN.call` calls ``self.inner_loop`` (the probe replaces it on the
  layer); tf.keras 2 calls the module function ``tf_keras.src.backend.rnn`` from the layer's
  `call` (`legacy_rnn_route` routes that call to the same replacement, only for the monitored
  layers and only while the probe is traced);
* the loss: Keras 3's `compute_loss` has no side effects; tf.keras 2's updates the loss metrics
  and divides by the number of replicas under a distribution strategy, so `legacy_loss`
  computes the compiled loss without either.

tf_keras is never imported here: a tf.keras 2 model can only exist when it already is.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
from typing import Any, Callable, Iterator, Optional

KERAS = "keras"
TF_KERAS = "tf_keras"

# Class names looked up in both engines' `layers` namespaces (and `Model` at the top level).
_LAYER_NAMES = (
    "RNN", "Bidirectional", "LSTMCell", "GRUCell", "SimpleRNNCell", "LSTM", "GRU", "SimpleRNN", "StackedRNNCells",
)


def _tf_keras() -> Optional[Any]:
    """The tf_keras package when something in this process imported it, else None."""
    return sys.modules.get("tf_keras")


def engine_of(obj: Any) -> str:
    """``"tf_keras"`` for an object (model, layer, cell) of tf.keras 2, else ``"keras"``."""
    for klass in type(obj).__mro__:
        if klass.__module__.split(".", 1)[0] == TF_KERAS:
            return TF_KERAS
    return KERAS


def _classes(name: str) -> tuple[type, ...]:
    import keras

    found = [keras.Model if name == "Model" else getattr(keras.layers, name)]
    legacy = _tf_keras()
    if legacy is not None:
        found.append(legacy.Model if name == "Model" else getattr(legacy.layers, name))
    return tuple(found)


def is_a(obj: Any, name: str) -> bool:
    """`isinstance(obj, <Keras class `name`>)` for either engine (``"LSTMCell"``, ``"Model"``...)."""
    if name != "Model" and name not in _LAYER_NAMES:
        raise ValueError(f"unknown Keras class {name!r}")
    return isinstance(obj, _classes(name))


def variable_numpy(var: Any) -> Any:
    """A variable's value as numpy: Keras 3's on any backend and device, tf.keras 2's too."""
    import keras

    if isinstance(var, keras.Variable):
        value = var.value
        if not getattr(value, "is_fully_addressable", True) and value.sharding.is_fully_replicated:
            value = value.addressable_shards[0].data  # a JAX multi-process run: this process's copy
        return keras.ops.convert_to_numpy(value)
    return var.numpy()


def _snapshot(var: Any) -> Any:
    """A copy of a variable's value that `assign` puts back: numpy, or in a JAX multi-process run
    the (immutable) array itself, put back only if it was replaced (putting back numpy there
    would be checked against every other process, a collective they do not join)."""
    value = getattr(var, "value", None)
    if not getattr(value, "is_fully_addressable", True):
        return value
    return variable_numpy(var)


def _put_back(var: Any, saved: Any) -> None:
    if getattr(var, "value", None) is not saved:
        var.assign(saved)


def cell_call_kwargs(cell: Any) -> dict:
    """``{"training": False}`` when the cell's `call` takes `training` (no dropout in the probe)."""
    if engine_of(cell) == TF_KERAS:
        takes = bool(getattr(cell, "_expects_training_arg", False))
    else:
        takes = bool(getattr(cell, "_call_has_training_arg", False))
    return {"training": False} if takes else {}


def has_compiled_loss(model: Any) -> bool:
    """Whether the model can compute a loss for the probe (a compiled loss or added losses)."""
    if engine_of(model) == TF_KERAS:
        compiled = getattr(model, "compiled_loss", None)
    else:
        compiled = getattr(model, "_compile_loss", None)
    return compiled is not None or bool(getattr(model, "losses", None))


def compiled_loss(model: Any, x: Any, y: Any, y_pred: Any, sample_weight: Any) -> Any:
    """The model's compiled loss on one batch, as its `fit` computes it, without side effects."""
    if engine_of(model) == TF_KERAS:
        return legacy_loss(model, x, y, y_pred, sample_weight)
    if hasattr(model, "_compute_loss"):
        return model._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False)
    return model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight)


def legacy_loss(model: Any, x: Any, y: Any, y_pred: Any, sample_weight: Any) -> Any:
    """A tf.keras 2 model's loss on one batch, as its `fit` defines it, without side effects.

    A model that overrides `compute_loss` is asked directly. Otherwise this is the compiled
    loss container's sum (per-output losses times their weights, plus `model.losses`) without
    its two extras, both wrong for the probe: it updates the model's loss metrics, and under a
    distribution strategy it divides by the number of replicas (the probe runs once, on one
    worker, outside the replicas).
    """
    legacy = _tf_keras()
    import tensorflow as tf

    if type(model).compute_loss is not legacy.Model.compute_loss or model.compiled_loss is None:
        return model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight)
    from tf_keras.src.engine.compile_utils import match_dtype_and_rank
    from tf_keras.src.utils import losses_utils

    container = model.compiled_loss
    y_true = container._conform_to_outputs(y_pred, y)
    weights = container._conform_to_outputs(y_pred, sample_weight)
    if not container._built:
        container.build(y_pred)
    terms = []
    for y_t, y_p, sw, loss_obj, loss_weight in zip(
        tf.nest.flatten(y_true),
        tf.nest.flatten(y_pred),
        tf.nest.flatten(weights),
        container._losses,
        container._loss_weights,
    ):
        if y_t is None or loss_obj is None:  # an output without a loss
            continue
        y_t, y_p, sw = match_dtype_and_rank(y_t, y_p, sw)
        sw = losses_utils.apply_mask(y_p, sw, losses_utils.get_mask(y_p))
        value = loss_obj(y_t, y_p, sample_weight=sw)
        terms.append(value * loss_weight if loss_weight is not None else value)
    if model.losses:
        terms.append(tf.add_n(losses_utils.cast_losses_to_common_dtype(model.losses)))
    if not terms:
        raise ValueError("the model's compiled loss gives no term for the probe's outputs")
    return tf.add_n(losses_utils.cast_losses_to_common_dtype(terms))


def variable_parts(var: Any) -> list:
    """What a tape can differentiate for `var`: the variable, or the local per-device copies of a
    tf.distribute variable (tf.keras 2 under a strategy; the distributed variable's handle is not
    available outside replica context, where the probe runs)."""
    import tensorflow as tf

    if isinstance(var, tf.distribute.DistributedValues):
        return list(var.distribute_strategy.experimental_local_results(var))
    return [var]


def sum_parts(grads: list, parts: list) -> list:
    """One gradient per variable from the gradients of its `variable_parts` (their sum: the
    forward pass read one of the copies, the others have zero gradient)."""
    import tensorflow as tf

    out, start = [], 0
    for group in parts:
        chunk = [tf.convert_to_tensor(g) for g in grads[start : start + len(group)]]
        out.append(chunk[0] if len(chunk) == 1 else tf.add_n(chunk))
        start += len(group)
    return out


def _layers(model: Any) -> list:
    """The model and every layer inside it (both engines), nested ones included."""
    flatten = getattr(model, "_flatten_layers", None)
    return list(flatten(include_self=True, recursive=True)) if flatten is not None else [model]


def _seed_states(layers: list, model: Any) -> list:
    """The state variables of the Keras 3 random seed generators the layers own (an RNN cell with
    dropout has one, so has a Dropout layer) and of Keras's global one, if it exists. tf.keras 2
    draws its dropout masks only when training: nothing to keep there."""
    if engine_of(model) != KERAS:
        return []
    states = [sg.state for layer in layers for sg in getattr(layer, "_seed_generators", ())]
    try:
        from keras.src.backend.common import global_state
        from keras.src.random.seed_generator import GLOBAL_SEED_GENERATOR

        shared = global_state.get_global_attribute(GLOBAL_SEED_GENERATOR)
    except ImportError:  # pragma: no cover - another Keras layout
        shared = None
    if shared is not None:
        states.append(shared.state)
    return states


def _carried_states(layers: list) -> list:
    """The state variables of stateful recurrent layers (assigned by every call of the layer)."""
    from keras import tree

    return [v for layer in layers if getattr(layer, "stateful", False) and getattr(layer, "states", None) is not None
            for v in tree.flatten(layer.states) if hasattr(v, "assign")]


def carried_states(model: Any) -> list:
    """The state variables of every stateful recurrent layer in `model` (nested ones included)."""
    return _carried_states(_layers(model))


def forget_dropout_masks(layers: Any) -> None:
    """Drop the dropout masks the layers' cells cached while the probe was traced: a cell with
    dropout makes them on its first call, also at training=False, possibly inside one of the
    probe's loops or its backward pass, and a later trace (Keras's own training step) must not
    find a tensor of that one."""
    for layer in layers:
        reset = getattr(layer, "_maybe_reset_dropout_masks", None)
        if reset is not None and engine_of(layer) == KERAS:
            reset(layer.cell)


@contextlib.contextmanager
def kept_state(model: Any) -> Iterator[None]:
    """Run the monitor's own calls of the model without changing what training carries on with:
    the carried states of stateful layers and the random seed generators.

    Why: every call of a stateful layer assigns its states; and Keras 3's `RNN.call` draws the
    cell's dropout masks from the cell's seed generator even when ``training=False``, so every
    inference call the monitor makes (the probe, importance, generation) would advance it, and
    a seeded run would train differently with the monitor than without it. Both are put back as
    they were, also when the body raises."""
    saved = []
    try:
        layers = _layers(model)
        variables = _seed_states(layers, model) + _carried_states(layers)
        saved = [(v, _snapshot(v)) for v in {id(v): v for v in variables}.values()]
    except Exception:  # noqa: BLE001 - an unusual model: monitor without keeping them
        logging.getLogger("rnn_monitor").warning(
            "rnn_monitor: cannot read the model's carried states and random seeds; the monitor's "
            "calls of the model may change them", exc_info=True)
    try:
        yield
    finally:
        for var, value in saved:
            try:
                _put_back(var, value)
            except Exception:  # noqa: BLE001 - training goes on
                logging.getLogger("rnn_monitor").warning(
                    "rnn_monitor: could not restore %r after the monitor's calls of the model; this run "
                    "may train differently from one without the monitor",
                    getattr(var, "path", getattr(var, "name", "?")))


def keeping_state(fn: Callable) -> Callable:
    """`fn(model, ...)` run within `kept_state(model)`: a stand-alone interpretability function
    leaves the model's carried states and dropout seeds as it found them, as the callback does."""

    @functools.wraps(fn)
    def wrapper(model: Any, *args: Any, **kwargs: Any) -> Any:
        with kept_state(model):
            return fn(model, *args, **kwargs)

    return wrapper


@contextlib.contextmanager
def legacy_rnn_route(layer: Any, inner_loop: Any) -> Iterator[None]:
    """While active, a tf.keras 2 `layer` runs its steps with `inner_loop` (no-op for Keras 3).

    `inner_loop(sequences, initial_state, mask)` has the signature of Keras 3's
    `RNN.inner_loop` (batch-major sequences, processing-order outputs) and returns
    ``(last_output, outputs, states)``, or NotImplemented to have the real loop run. The route replaces ``tf_keras.src.backend.rnn`` (what
    tf.keras 2's `RNN`, `LSTM` and `GRU` call) by a dispatcher that hands the call to
    `inner_loop` when the layer whose `call` is running is `layer`, and to the real function for
    every other caller; LSTM and GRU are kept on that generic path (`_could_use_gpu_kernel`
    off). Both are restored on exit, also when tracing raises.
    """
    if engine_of(layer) != TF_KERAS:
        yield
        return
    from tf_keras.src import backend as legacy_backend
    from tf_keras.src.engine.base_layer_utils import call_context

    real = legacy_backend.rnn
    routes = getattr(real, "_rnn_monitor_routes", None)
    if routes is None:  # the first monitored layer installs the dispatcher
        routes = {}

        def rnn(step_function, inputs, initial_states, *args, **kwargs):
            loop = routes.get(id(call_context().layer))
            bound = _bind_rnn_args(args, kwargs)
            if loop is None or bound["constants"] or bound["unroll"]:
                return real(step_function, inputs, initial_states, *args, **kwargs)
            time_major, mask = bound["time_major"], bound["mask"]
            if time_major:  # the loop takes batch-major inputs and mask
                inputs = _swap_time_batch(inputs)
                mask = _swap_time_batch(mask) if mask is not None else None
            result = loop(inputs, list(initial_states), mask)
            if result is NotImplemented:  # the loop cannot step this cell: the real one runs
                return real(step_function, inputs, initial_states, *args, **kwargs)
            last, outputs, states = result
            if time_major:
                outputs = _swap_time_batch(outputs)
            return last, outputs, states

        rnn._rnn_monitor_routes = routes
        rnn._rnn_monitor_real = real
        legacy_backend.rnn = rnn
        installed = True
    else:
        installed = False
    routes[id(layer)] = inner_loop
    had_flag = "_could_use_gpu_kernel" in layer.__dict__
    flag = layer.__dict__.get("_could_use_gpu_kernel")
    if had_flag:
        object.__setattr__(layer, "_could_use_gpu_kernel", False)
    try:
        yield
    finally:
        if had_flag:
            object.__setattr__(layer, "_could_use_gpu_kernel", flag)
        routes.pop(id(layer), None)
        if installed:
            legacy_backend.rnn = real


_RNN_ARGS = (
    "go_backwards", "mask", "constants", "unroll", "input_length", "time_major",
    "zero_output_for_mask", "return_all_outputs",
)


def _bind_rnn_args(args: tuple, kwargs: dict) -> dict:
    """The optional arguments of ``tf_keras.src.backend.rnn`` by name (defaults filled in)."""
    bound = dict.fromkeys(_RNN_ARGS)
    bound.update(zip(_RNN_ARGS, args))
    bound.update(kwargs)
    return bound


def _swap_time_batch(tensor: Any) -> Any:
    import tensorflow as tf

    rank = len(tensor.shape)
    return tf.transpose(tensor, [1, 0] + list(range(2, rank)))

"""Install the probe's loops on the monitored layers while the probe's forward pass is traced.

Keras 3's `RNN.call` calls ``self.inner_loop`` (LSTM and GRU override it to try a fused kernel);
the probe gives each monitored layer an instance attribute ``inner_loop`` for the duration of
the call: the stock-layer kernel path (`rnn_monitor.model.fused_kernel`) where the backend runs
the layer as one fused kernel, else the loop path: TensorFlow's checkpointed loop
(`rnn_monitor.model.tensorflow`) on TensorFlow, the keras.ops loop
(`rnn_monitor.model.perturbed_loop`) on the other backends.
tf.keras 2 calls the module function ``tf_keras.src.backend.rnn`` instead (routed by
`backend.legacy_rnn_route`). A Bidirectional wrapper's own fused path (JAX on a GPU) is switched
off for the call, so that each half runs its own monitored loop. When a layer's cell cannot be
stepped, Keras's own loop runs it and its recurrences are marked refused, with the reason.
Everything is restored afterwards, also when the call raises.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

from rnn_monitor.model import backend
from rnn_monitor.model.perturbed_loop import PerturbedLoop, Provider, TracedRecurrence
from rnn_monitor.model.stepping import UnsupportedCell

PATHS = ("auto", "kernel", "loop")


def _guarded(layer: Any, shapes: Sequence[TracedRecurrence], loop: Any) -> Any:
    """`loop` as ``inner_loop``; when it cannot step the cell, Keras's own loop runs instead."""

    def inner_loop(sequences, initial_state, mask, training=False):
        for shape in shapes:
            shape.called += 1
        try:
            return loop(sequences, initial_state, mask, training=training)
        except UnsupportedCell as exc:
            reason = str(exc)
        except Exception as exc:  # noqa: BLE001 - anything stepping cannot do: Keras's loop runs
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            reason = f"stepping its cell failed ({type(exc).__name__}: {first[:200]})"
        for shape in shapes:
            shape.refused = reason
        if backend.engine_of(layer) == backend.TF_KERAS:
            return NotImplemented  # tf.keras 2: `backend.legacy_rnn_route` runs the real loop
        return type(layer).inner_loop(layer, sequences, initial_state, mask, training=training)

    return inner_loop


def _on_tensorflow(layer: Any) -> bool:
    import keras

    return backend.engine_of(layer) == backend.TF_KERAS or keras.backend.backend() == "tensorflow"


def _loop_for(layer: Any, shapes: Sequence[TracedRecurrence], provider: Provider, record: dict, path: str,
              settings: Any, flow: bool) -> Any:
    from rnn_monitor.model import fused_kernel

    if _on_tensorflow(layer):
        from rnn_monitor.model.tensorflow.checkpointed import CheckpointedLoop

        loop = CheckpointedLoop(layer, shapes, provider, record, settings, flow)
    else:
        loop = PerturbedLoop(layer, shapes, provider, record)
    if fused_kernel.serves(layer, shapes, path):
        return fused_kernel.FusedLoop(layer, shapes[0], provider, record, fallback=loop, forced=path == "kernel")
    return loop


@contextlib.contextmanager
def probe_loops(shapes: Sequence[TracedRecurrence], provider: Provider, record: dict, path: str, settings: Any,
                flow: bool) -> Iterator[None]:
    """Give each monitored layer the probe's loop (one per Keras layer, serving all of its
    monitored recurrences) while the body runs; `record` collects what each loop keeps.
    `settings` and `flow` are what TensorFlow's loop reduces in its backward pass."""
    if path not in PATHS:
        raise ValueError(f"probe_path must be one of {PATHS}, got {path!r}")
    groups: dict = {}
    for shape in shapes:
        groups.setdefault(id(shape.info.layer), (shape.info.layer, []))[1].append(shape)
    saved = []
    with contextlib.ExitStack() as stack:
        try:
            for layer, group in groups.values():
                loop = _guarded(layer, group, _loop_for(layer, group, provider, record, path, settings, flow))
                saved.append((layer, "inner_loop", layer.__dict__.get("inner_loop", _ABSENT)))
                object.__setattr__(layer, "inner_loop", loop)
                stack.enter_context(backend.legacy_rnn_route(layer, loop))
                container = group[0].info.container
                if container is not None:
                    for name in ("_can_attempt_fused_lstm", "_can_attempt_fused_gru"):
                        if hasattr(container, name):
                            saved.append((container, name, container.__dict__.get(name, _ABSENT)))
                            object.__setattr__(container, name, lambda *args, **kwargs: False)
            yield
        finally:
            for obj, name, previous in reversed(saved):
                if previous is _ABSENT:
                    try:
                        object.__delattr__(obj, name)
                    except AttributeError:
                        pass
                else:
                    object.__setattr__(obj, name, previous)


_ABSENT = object()

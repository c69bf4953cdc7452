"""What RNNMonitor costs during `fit`, against plain training and Keras's own TensorBoard callback.

Reference model: Embedding(V, 32) -> LSTM 128 (return_sequences) -> LSTM 128 -> Dense(V), trained
to predict the next character of 100-character windows of the Python standard library's own
source (read at run time from ``os.path.dirname(os.__file__)``; nothing is downloaded), batch 64,
200 steps per epoch. Three set-ups run one epoch at a time, alternating, in one process, on one
model per set-up:

* ``plain``        no callback;
* ``rnn_monitor``  ``RNNMonitor(log_dir, probe_data=(x[:64], y[:64]))`` with its defaults;
* ``tensorboard``  ``keras.callbacks.TensorBoard(log_dir, histogram_freq=1)``.

The first epoch of every set-up (tracing) is dropped; the order of the set-ups rotates every
round. Every set-up carries the same tiny step-timing callback (which, like RNNMonitor, makes
Keras dispatch batch callbacks synchronously). Wall time and process CPU time are both
reported: on a shared machine the CPU-time ratio is the steadier one. Reported: median epoch time, the ratio to
``plain``, the median training-step time, RNNMonitor's epoch-end seconds (all of it: weights,
probe, alerts, writing) and the bytes it wrote per epoch.

``--scale`` instead measures the probe alone at scale (default T=1000, 3 stacked LSTM 512,
probe batch 64): wall time and the peak resident memory it adds on top of a training step.

    python benchmarks/overhead.py            # full: 200 steps per epoch, 5 timed rounds
    python benchmarks/overhead.py --quick    # 40 steps per epoch, 2 timed rounds
    python benchmarks/overhead.py --scale    # probe at T=1000, 3 x LSTM 512, batch 64
    python benchmarks/overhead.py --interpret  # importance and generation, in training steps
    python benchmarks/overhead.py --probe-parts  # the probe's graph in parts, in training steps
    python benchmarks/overhead.py --epoch-end-ab # the epoch end without its concurrency, one process
    python benchmarks/overhead.py --background-ab  # the epoch end on a thread during the next epoch
    python benchmarks/overhead.py --phases       # the epoch end in each epoch's own steps, split at the graph
"""

from __future__ import annotations

import argparse
import json
import functools
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

SEQ = 100
BATCH = 64


def stdlib_text(max_chars: int) -> str:
    """The same corpus as the demo: the standard library's own source (examples/char_lstm.py)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples"))
    from char_lstm import stdlib_source

    return stdlib_source(max_chars)


def dataset(n_sequences: int, seed: int = 0):
    text = stdlib_text(n_sequences * 2 + SEQ + 1 + 200_000)
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    ids = np.array([index[c] for c in text], dtype=np.int32)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(ids) - SEQ - 1, size=n_sequences)
    x = np.stack([ids[s : s + SEQ] for s in starts])
    y = ids[starts + SEQ]
    return x, y, chars


def reference_model(vocab: int, units: int = 128, layers: int = 2, seq: int = SEQ):
    import keras

    stack = [keras.Input((seq,), dtype="int32"), keras.layers.Embedding(vocab, 32)]
    for i in range(layers):
        stack.append(keras.layers.LSTM(units, return_sequences=i < layers - 1, name=f"lstm_{i + 1}"))
    stack.append(keras.layers.Dense(vocab))
    model = keras.Sequential(stack)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _step_timer():
    import keras

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []
            self._t = 0.0

        def on_train_batch_begin(self, batch, logs=None):
            self._t = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter() - self._t)

    return StepTimer()


def overhead(steps: int, rounds: int, log_root: str) -> dict:
    import keras

    from rnn_monitor import RNNMonitor

    class TimedMonitor(RNNMonitor):
        epoch_end_seconds: list = []
        epoch_bytes: list = []
        begin_end_seconds: list = []  # on_train_begin + on_train_end, once per fit call

        def on_train_begin(self, logs=None):
            began = time.perf_counter()
            super().on_train_begin(logs)
            self.begin_end_seconds.append(time.perf_counter() - began)

        def on_train_end(self, logs=None):
            began = time.perf_counter()
            super().on_train_end(logs)
            self.begin_end_seconds[-1] += time.perf_counter() - began

        def _log_epoch(self, epoch, logs=None):
            before = self.writer.bytes_this_step
            began = time.perf_counter()
            super()._log_epoch(epoch, logs)
            self.epoch_end_seconds.append(time.perf_counter() - began)
            self.epoch_bytes.append(self.writer.bytes_this_step - before)

    x, y, chars = dataset(steps * BATCH)
    probe = (x[:BATCH], y[:BATCH])
    setups = ["plain", "rnn_monitor", "tensorboard"]
    models = {}
    for name in setups:
        keras.utils.set_random_seed(0)
        models[name] = reference_model(len(chars))
    monitor = TimedMonitor(os.path.join(log_root, "rnn_monitor_run"), probe_data=probe, vocabulary=chars)
    board = keras.callbacks.TensorBoard(os.path.join(log_root, "tensorboard_run"), histogram_freq=1)
    epoch_times: dict = {name: [] for name in setups}
    cpu_times: dict = {name: [] for name in setups}
    step_times: dict = {name: [] for name in setups}
    for r in range(rounds + 1):
        order = setups[r % 3 :] + setups[: r % 3]  # rotate so that drift hits every set-up alike
        for name in order:
            timer = _step_timer()
            callbacks = [timer] + ({"rnn_monitor": [monitor], "tensorboard": [board]}.get(name, []))
            began, cpu = time.perf_counter(), time.process_time()
            models[name].fit(
                x, y, batch_size=BATCH, epochs=r + 1, initial_epoch=r, verbose=0, callbacks=callbacks, shuffle=False
            )
            elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
            if r > 0:
                epoch_times[name].append(elapsed)
                cpu_times[name].append(cpu)
                step_times[name].extend(timer.times)
            print(f"round {r} {name:12s} {elapsed:7.2f} s wall {cpu:7.2f} s cpu", flush=True)
    median = {name: statistics.median(v) for name, v in epoch_times.items()}
    median_cpu = {name: statistics.median(v) for name, v in cpu_times.items()}
    timed_end = TimedMonitor.epoch_end_seconds[1:]  # drop the tracing epoch
    return {
        "steps_per_epoch": steps,
        "timed_rounds": rounds,
        "median_epoch_seconds": median,
        "ratio_rnn_monitor": median["rnn_monitor"] / median["plain"],
        "ratio_tensorboard": median["tensorboard"] / median["plain"],
        "median_epoch_cpu_seconds": median_cpu,
        "cpu_ratio_rnn_monitor": median_cpu["rnn_monitor"] / median_cpu["plain"],
        "cpu_ratio_tensorboard": median_cpu["tensorboard"] / median_cpu["plain"],
        "median_step_seconds": statistics.median(step_times["plain"]),
        "median_step_seconds_by_setup": {k: statistics.median(v) for k, v in step_times.items()},
        "epoch_end_over_step": (statistics.median(timed_end) / statistics.median(step_times["plain"])) if timed_end else None,
        # Robust to a noisy shared machine: what the monitor adds (its epoch end; it leaves the
        # training steps alone, see median_step_seconds_by_setup) over the plain epoch's steps.
        "estimated_ratio_rnn_monitor": (
            1.0 + statistics.median(timed_end) / (steps * statistics.median(step_times["plain"]))
        ) if timed_end else None,
        "monitor_epoch_end_seconds_median": statistics.median(timed_end) if timed_end else None,
        "monitor_epoch_end_seconds_first": TimedMonitor.epoch_end_seconds[0],
        "monitor_bytes_per_epoch_max": max(TimedMonitor.epoch_bytes[1:] or TimedMonitor.epoch_bytes),
        "monitor_bytes_per_epoch_first": TimedMonitor.epoch_bytes[0],
        "probe_seconds_last": monitor._parts["probe"].last_seconds,
        "monitor_fit_begin_end_seconds_median": statistics.median(TimedMonitor.begin_end_seconds[1:] or [0.0]),
        "note": "one fit() call per epoch, so on_train_begin/end run every epoch here (once per fit in real use)",
    }


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def scale(timesteps: int, units: int, layers: int, batch: int) -> dict:
    import keras
    import tensorflow as tf

    from rnn_monitor.model.anatomy import find_rnn_layers
    from rnn_monitor.config import Thresholds
    from rnn_monitor.probe.probe_monitor import ProbeMonitor
    from rnn_monitor.record import EpochRecord
    from rnn_monitor.logdir.writer import SummaryWriter

    vocab = 96
    rng = np.random.default_rng(0)
    x = rng.integers(0, vocab, size=(batch, timesteps)).astype("int32")
    y = rng.integers(0, vocab, size=(batch,))
    keras.utils.set_random_seed(0)
    model = reference_model(vocab, units=units, layers=layers, seq=timesteps)
    out = {"timesteps": timesteps, "units": units, "layers": layers, "batch": batch}
    base = _peak_rss_mb()
    began = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # traces and runs one training step
    out["train_first_step_seconds"] = time.perf_counter() - began
    began = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    out["train_step_seconds"] = time.perf_counter() - began
    out["peak_rss_after_training_mb"] = _peak_rss_mb()
    print("after training", json.dumps(out), flush=True)
    out["training_peak_over_start_mb"] = out["peak_rss_after_training_mb"] - base
    with tempfile.TemporaryDirectory() as tmp:
        writer = SummaryWriter(tmp)
        probe = ProbeMonitor(model, find_rnn_layers(model), (x, y), writer, Thresholds())
        probe.start()
        began = time.perf_counter()
        probe.log_epoch(0, EpochRecord(0))
        out["probe_first_seconds"] = time.perf_counter() - began
        out["peak_rss_after_probe_mb"] = _peak_rss_mb()
        print("after first probe", json.dumps(out), flush=True)
        out["probe_peak_over_training_peak_mb"] = out["peak_rss_after_probe_mb"] - out["peak_rss_after_training_mb"]
        reset = _reset_peak()
        steady = _peak_rss_mb()
        began = time.perf_counter()
        probe.log_epoch(1, EpochRecord(1))
        out["probe_seconds"] = time.perf_counter() - began
        out["probe_peak_rss_mb_second_run"] = _peak_rss_mb() if reset else None
        out["rss_before_second_probe_mb"] = steady if reset else None
        out["bytes_written_second_epoch"] = writer.bytes_this_step // 2
        writer.close()
    out["tensorflow"] = tf.__version__
    return out


def interpret_cost(rounds: int = 3, steps: int = 20) -> dict:
    """The interpretability part's epoch-end cost, in seconds and in training steps of the same
    model measured in the same process: token importance on a classifier head (the reference
    model with a sigmoid output; off for the next-token reference model itself) and generation
    of 200 characters from the reference model (windowed) and a per-timestep char model."""
    import keras

    from rnn_monitor.config import check_generate_config
    from rnn_monitor.interpret.interpret_monitor import InterpretMonitor

    class _Null:  # the writer's cost is not this part's
        def plugin_tensor(self, *a, **k): ...
        def json_tensor(self, *a, **k): ...

    x, y, chars = dataset(64 * steps)

    def step_time(model, xs, ys) -> float:
        model.fit(xs, ys, batch_size=64, epochs=1, verbose=0)  # trace
        began = time.perf_counter()
        model.fit(xs, ys, batch_size=64, epochs=1, verbose=0)
        return (time.perf_counter() - began) / steps

    def part_time(model, **kw) -> float:
        part = InterpretMonitor(model, _Null(), (x[:64], y[:64]), chars, 4, **kw)
        part.log_epoch(0)  # trace
        times = []
        for r in range(rounds):
            began = time.perf_counter()
            part.log_epoch(r + 1)
            times.append(time.perf_counter() - began)
        return statistics.median(times)

    out = {}
    lm = reference_model(len(chars))
    step = step_time(lm, x, y)
    gen = check_generate_config({"seed": [1, 2, 3, 4], "steps": 200})
    for name, kw in (("importance_auto", dict(importance="auto", generate=None)),
                     ("generate_200", dict(importance=False, generate=gen))):
        t = part_time(lm, **kw)
        out[f"reference/{name}"] = {"seconds": round(t, 4), "training_steps": round(t / step, 2)}
    clf = keras.Sequential(lm.layers[:-1] + [keras.layers.Dense(1, activation="sigmoid")])
    clf.compile("adam", "binary_crossentropy")
    labels = (y % 2).astype("float32")[:, None]
    step_c = step_time(clf, x, labels)
    t = part_time(clf, importance="auto", generate=None)
    out["classifier/importance"] = {"seconds": round(t, 4), "training_steps": round(t / step_c, 2)}
    per_t = keras.Sequential([keras.Input((SEQ,), dtype="int32"), keras.layers.Embedding(len(chars), 32)]
                             + [keras.layers.LSTM(128, return_sequences=True) for _ in range(2)]
                             + [keras.layers.Dense(len(chars))])
    per_t.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ys = np.roll(x, -1, axis=1)
    step_p = step_time(per_t, x, ys)
    t = part_time(per_t, importance=False, generate=gen)
    out["char_lstm/generate_200"] = {"seconds": round(t, 4), "training_steps": round(t / step_p, 2)}
    out["step_seconds"] = {"reference": round(step, 4), "classifier": round(step_c, 4), "char_lstm": round(step_p, 4)}
    return out


def probe_parts(rounds: int = 9) -> dict:
    """The probe's graph on the reference model, in parts, against a training step of the same
    model, one call of each set-up after the other in every round (medians): the forward and
    statistics alone (no gradients), the forward and backward without the temporal flow, and
    everything, the last with the hand-written reverse pass of stock cells and with the generic
    one (`LoopOptions.hand_written_reverse`): TensorFlow's loop path."""
    import tensorflow as tf

    from rnn_monitor.config import Thresholds
    from rnn_monitor.model.anatomy import find_rnn_layers
    from rnn_monitor.probe.graph import LoopOptions, Prober

    x, y, chars = dataset(BATCH * 4)
    model = reference_model(len(chars))
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    xb, yb = tf.constant(x[:BATCH]), tf.constant(y[:BATCH])
    infos = find_rnn_layers(model)
    setups = {  # name -> (hand-written pass, gradients, flow)
        "forward_and_statistics": (True, False, False),
        "without_flow": (True, True, False),
        "everything": (True, True, True),
        "everything_generic_pass": (False, True, True),
    }
    probes = {}
    for name, (hand_written, gradients, flow) in setups.items():
        probes[name] = Prober(model, infos, Thresholds(), 4, gradients, flow=flow, h_samples=16, path="loop",
                              loop=LoopOptions(hand_written_reverse=hand_written))
        probes[name].run(xb, yb)  # trace

    @tf.function
    def train_step(xs, ys):
        with tf.GradientTape() as tape:
            loss = model.compute_loss(x=xs, y=ys, y_pred=model(xs, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply(grads, model.trainable_variables)
        return loss

    train_step(xb, yb)
    times: dict = {name: [] for name in ["training_step"] + list(setups)}
    for _ in range(rounds):
        for name in times:
            began = time.perf_counter()
            if name == "training_step":
                train_step(xb, yb).numpy()
            else:
                probes[name].run(xb, yb)
            times[name].append(time.perf_counter() - began)
    median = {name: statistics.median(v) for name, v in times.items()}
    step = median["training_step"]
    return {name: {"seconds": round(v, 4), "training_steps": round(v / step, 2)} for name, v in median.items()}


def epoch_end_ab(rounds: int = 8, steps: int = 20) -> dict:
    """The monitor's epoch end with each of its two concurrency mechanisms switched off, in one
    process: three monitors on one reference model, one epoch each in turn (rotated every
    round, the tracing epoch dropped), medians, in seconds and in training steps of the same
    process. ``serial``: one segment in flight in the hand-written reverse pass
    (`LoopOptions.segments_in_flight = 1`) and the weight part after the probe; ``in_flight``: two
    segments in flight; ``default``: and the weight part beside the probe's graph
    (`rnn_monitor.background`), as shipped."""
    from unittest import mock

    from rnn_monitor import RNNMonitor
    from rnn_monitor.probe import graph

    shipped = graph.LoopOptions().segments_in_flight

    class Switched(RNNMonitor):
        def __init__(self, *args, in_flight: int, beside: bool, **kwargs):
            super().__init__(*args, **kwargs)
            self.in_flight, self.beside, self.seconds = in_flight, beside, []

        def on_train_begin(self, logs=None):
            # the probe is built (and traced) here: with this monitor's loop options
            options = graph.LoopOptions(segments_in_flight=self.in_flight)
            with mock.patch.object(graph, "Prober", functools.partial(graph.Prober, loop=options)):
                super().on_train_begin(logs)

        def _weights_beside(self, epoch, record):
            part = super()._weights_beside(epoch, record)
            if part is not None and not self.beside:
                part.finish()  # here, before the probe, as before `beside` existed
                return None
            return part

        def _log_epoch(self, epoch, logs=None):
            began = time.perf_counter()
            super()._log_epoch(epoch, logs)
            self.seconds.append(time.perf_counter() - began)

    x, y, chars = dataset(steps * BATCH)
    model = reference_model(len(chars))
    setups = {"serial": dict(in_flight=1, beside=False), "in_flight": dict(in_flight=shipped, beside=False),
              "default": dict(in_flight=shipped, beside=True)}
    with tempfile.TemporaryDirectory() as root:
        monitors = {name: Switched(os.path.join(root, name), probe_data=(x[:BATCH], y[:BATCH]),
                                   vocabulary=chars, **kw) for name, kw in setups.items()}
        step_times: list = []
        names = list(setups)
        for r in range(rounds + 1):
            for name in names[r % 3 :] + names[: r % 3]:
                timer = _step_timer()
                model.fit(x, y, batch_size=BATCH, epochs=r + 1, initial_epoch=r, verbose=0,
                          callbacks=[timer, monitors[name]], shuffle=False)
                if r:
                    step_times.extend(timer.times)
    step = statistics.median(step_times)
    out = {"step_seconds": round(step, 4), "rounds": rounds}
    for name, monitor in monitors.items():
        median = statistics.median(monitor.seconds[1:])
        out[name] = {"seconds": round(median, 4), "training_steps": round(median / step, 2)}
    return out


def phases(epochs: int = 16, steps: int = 20) -> dict:
    """The shipped epoch end inside one `fit`, each logged epoch in training steps of *its own*
    epoch (the median step of the epoch it ends: the machine's speed drifts within a run), split
    into the probe's graph (with the weight part beside it) and the work after the graph (unit
    descriptions, statistics, writes, alerts, scalars). The tracing epoch is dropped."""
    from rnn_monitor import RNNMonitor

    class Timed(RNNMonitor):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.seconds, self.graph = [], []

        def _log_epoch(self, epoch, logs=None):
            probe = self._parts.get("probe")
            if probe is not None and "run" not in vars(probe):
                run = probe.run

                def timed_run():
                    began = time.perf_counter()
                    try:
                        return run()
                    finally:
                        self.graph.append(time.perf_counter() - began)

                probe.run = timed_run
            began = time.perf_counter()
            super()._log_epoch(epoch, logs)
            self.seconds.append(time.perf_counter() - began)

    x, y, chars = dataset(steps * BATCH)
    model = reference_model(len(chars))
    timer = _step_timer()
    with tempfile.TemporaryDirectory() as root:
        monitor = Timed(root, probe_data=(x[:BATCH], y[:BATCH]), vocabulary=chars)
        model.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0, callbacks=[timer, monitor], shuffle=False)
    own = [statistics.median(timer.times[e * steps : (e + 1) * steps]) for e in range(epochs)]
    rows = list(zip(own, monitor.seconds, monitor.graph))[1:]
    end = [s / step for step, s, _ in rows]
    graph = [g / step for step, _, g in rows]
    after = [(s - g) / step for step, s, g in rows]
    r2 = lambda v: round(v, 2)  # noqa: E731
    return {
        "step_seconds_median": round(statistics.median(timer.times), 4),
        "epochs_timed": len(rows),
        "epoch_end_steps": {"median": r2(statistics.median(end)), "each": [r2(v) for v in end]},
        "graph_steps": {"median": r2(statistics.median(graph)), "each": [r2(v) for v in graph]},
        "after_graph_steps": {"median": r2(statistics.median(after)), "each": [r2(v) for v in after]},
    }


def background_ab(rounds: int = 16, steps: int = 20) -> dict:
    """Would the epoch end cost less on a thread while the next epoch trains? A question, not a
    shipped mode: the whole epoch end (probe graph, weights, unit descriptions, writes) of a
    clone of the reference model, its weights copied at the epoch's end, runs on a thread during
    the next epoch. Its cost is the copy plus the training time that epoch loses against an
    epoch without it (paired, the order alternating each round), in training steps; the
    shipped, synchronous epoch end is timed in the same process for comparison."""
    import threading

    import keras

    from rnn_monitor import RNNMonitor

    x, y, chars = dataset(steps * BATCH)
    model = reference_model(len(chars))
    clone = keras.models.clone_model(model)
    clone.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with tempfile.TemporaryDirectory() as root:
        background = RNNMonitor(os.path.join(root, "background"), probe_data=(x[:BATCH], y[:BATCH]), vocabulary=chars)
        background.set_model(clone)
        background.on_train_begin()
        synchronous = RNNMonitor(os.path.join(root, "sync"), probe_data=(x[:BATCH], y[:BATCH]), vocabulary=chars)
        epoch = 0

        def train_one(callbacks):
            nonlocal epoch
            timer = _step_timer()
            model.fit(x, y, batch_size=BATCH, epochs=epoch + 1, initial_epoch=epoch, verbose=0,
                      callbacks=[timer] + callbacks, shuffle=False)
            epoch += 1
            return timer.times

        train_one([synchronous])  # traces the synchronous monitor's probe
        clone.set_weights(model.get_weights())
        background._log_epoch(0, {})  # traces the clone's probe
        lost, copy, thread_seconds, sync_seconds, step_times = [], [], [], [], []
        for r in range(rounds):
            pair = {}
            for kind in (("plain", "background") if r % 2 == 0 else ("background", "plain")):
                if kind == "plain":
                    pair[kind] = sum(times := train_one([]))
                    step_times.extend(times)
                    continue
                began = time.perf_counter()
                clone.set_weights(model.get_weights())
                took: dict = {}

                def work(at=epoch):
                    start = time.perf_counter()
                    background._log_epoch(at, {})
                    took["s"] = time.perf_counter() - start

                thread = threading.Thread(target=work)
                thread.start()
                copy.append(time.perf_counter() - began)
                pair[kind] = sum(train_one([]))
                thread.join()
                thread_seconds.append(took["s"])
            lost.append(pair["background"] - pair["plain"])
            began = time.perf_counter()
            synchronous.on_epoch_end(epoch, {})
            sync_seconds.append(time.perf_counter() - began)
        background.on_train_end()
    step = statistics.median(step_times)
    in_steps = lambda v: round(v / step, 2)  # noqa: E731
    return {
        "step_seconds": round(step, 4),
        "rounds": rounds,
        "background": {
            "copy_training_steps": in_steps(statistics.median(copy)),
            "training_lost_median_steps": in_steps(statistics.median(lost)),
            "training_lost_mean_steps": in_steps(statistics.mean(lost)),
            # a neighbour's burst lands in one epoch of a pair: the tenth of rounds at each end out
            "training_lost_trimmed_mean_steps": in_steps(statistics.mean(
                sorted(lost)[len(lost) // 10 : len(lost) - len(lost) // 10])),
            "training_lost_each_round": [in_steps(v) for v in lost],
            "thread_wall_steps": in_steps(statistics.median(thread_seconds)),
        },
        "synchronous_epoch_end_steps": in_steps(statistics.median(sync_seconds)),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="40 steps per epoch, 2 timed rounds")
    parser.add_argument("--steps", type=int, default=None, help="steps per epoch (default 200)")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds after the tracing one (default 5)")
    parser.add_argument("--scale", action="store_true", help="measure the probe alone at scale")
    parser.add_argument("--timesteps", type=int, default=1000)
    parser.add_argument("--units", type=int, default=512)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--interpret", action="store_true",
                        help="the interpretability part's epoch-end cost (importance, generation)")
    parser.add_argument("--probe-parts", action="store_true",
                        help="the probe's graph in parts, in training steps of the reference model")
    parser.add_argument("--epoch-end-ab", action="store_true",
                        help="the epoch end with segments in flight and the weight part beside the probe switched off")
    parser.add_argument("--background-ab", action="store_true",
                        help="the whole epoch end on a thread while the next epoch trains, against the shipped one")
    parser.add_argument("--phases", action="store_true",
                        help="the epoch end inside one fit, in each epoch's own training steps, split at the graph")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.scale:
        result = scale(args.timesteps, args.units, args.layers, args.batch)
    elif args.interpret:
        result = interpret_cost()
    elif args.probe_parts:
        result = probe_parts()
    elif args.epoch_end_ab:
        result = epoch_end_ab()
    elif args.phases:
        result = phases(args.rounds or 16, args.steps or 20)
    elif args.background_ab:
        result = background_ab(args.rounds or 16)
    else:
        steps = args.steps or (40 if args.quick else 200)
        rounds = args.rounds or (2 if args.quick else 5)
        with tempfile.TemporaryDirectory() as log_root:
            result = overhead(steps, rounds, log_root)
    emit(result, args.json)
    return 0


def emit(result: dict, json_path=None) -> None:
    """Print `result` as JSON, and write it to `json_path` too when given."""
    text = json.dumps(result, indent=2, sort_keys=True)
    print(text)
    if json_path:
        with open(json_path, "w") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    sys.exit(main())

"""Ways to run a recurrent loop in TensorFlow on the CPU, timed against each other: design
questions for the probe's graph (TensorFlow's loop path: `rnn_monitor.model.tensorflow.checkpointed`, `.adjoint`),
measured rather than assumed.

Every set-up steps Keras's own `LSTMCell` (64 sequences, 100 steps, 128 inputs, 128 units,
float32) in a `tf.while_loop` inside a `tf.function`, keeping h of every step:

* ``one_layer``            one layer, ``parallel_iterations=1`` (as the probe's forward does);
* ``parallel_iterations``  the same loop with ``parallel_iterations=32`` (Keras's own setting);
* ``xla``                  the same loop compiled whole with XLA (``jit_compile=True``);
* ``xla_step``             the loop with only its step compiled by XLA;
* ``two_independent``      two such loops on different data in one function (what the
                           machine's second core gives when there is independent work);
* ``stacked``              two stacked layers, the second looping over the first's output (what
                           Keras and the probe do);
* ``wavefront``            the same two layers in one loop, the second one step behind the
                           first, so that their steps can run at the same time.

The XLA results are checked against the plain loop (largest difference printed). One process,
every set-up once per round in turn, medians in milliseconds.

    python benchmarks/loop_designs.py [--rounds 15] [--json FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

BATCH, STEPS, INPUTS, UNITS = 64, 100, 128, 128


def _designs() -> tuple[dict, dict]:
    """{name: zero-argument call returning numpy} and {name: largest difference to one_layer}."""
    import keras
    import tensorflow as tf

    first, second = keras.layers.LSTMCell(UNITS), keras.layers.LSTMCell(UNITS)
    first.build((BATCH, INPUTS))
    second.build((BATCH, UNITS))
    other = keras.layers.LSTMCell(UNITS)
    other.build((BATCH, INPUTS))
    x = tf.random.stateless_normal([STEPS, BATCH, INPUTS], seed=[1, 2])
    x2 = tf.random.stateless_normal([STEPS, BATCH, INPUTS], seed=[3, 4])
    zeros = tf.zeros([BATCH, UNITS])

    def loop(cell, xs, parallel=1, step=None):
        step = step or (lambda x_t, h, c: cell(x_t, [h, c])[1])
        n = tf.shape(xs)[0]

        def body(t, h, c, kept):
            h, c = step(xs[t], h, c)
            return t + 1, h, c, kept.write(t, h)

        kept = tf.TensorArray(tf.float32, size=n)
        *_, kept = tf.while_loop(lambda t, *_: t < n, body, [0, zeros, zeros, kept],
                                 parallel_iterations=parallel)
        return kept.stack()

    def wavefront(xs):
        n = tf.shape(xs)[0]
        h1, c1 = first(xs[0], [zeros, zeros])[1]  # the first layer's first step, before the loop

        def body(t, h1, c1, h2, c2, kept):
            # the first layer's step t beside the second layer's step t - 1 (on h1 of t - 1);
            # the last round's first-layer step is not used
            h1n, c1n = first(xs[tf.minimum(t, n - 1)], [h1, c1])[1]
            h2, c2 = second(h1, [h2, c2])[1]
            return t + 1, h1n, c1n, h2, c2, kept.write(t - 1, h2)

        kept = tf.TensorArray(tf.float32, size=n)
        *_, kept = tf.while_loop(lambda t, *_: t <= n, body, [1, h1, c1, zeros, zeros, kept],
                                 parallel_iterations=1)
        return kept.stack()

    xla_step = tf.function(lambda x_t, h, c: first(x_t, [h, c])[1], jit_compile=True)
    functions = {
        "one_layer": (tf.function(lambda: loop(first, x)), ()),
        "parallel_iterations": (tf.function(lambda: loop(first, x, parallel=32)), ()),
        "xla": (tf.function(lambda: loop(first, x), jit_compile=True), ()),
        "xla_step": (tf.function(lambda: loop(first, x, step=xla_step)), ()),
        "two_independent": (tf.function(lambda: tf.stack([loop(first, x), loop(other, x2)])), ()),
        "stacked": (tf.function(lambda: loop(second, loop(first, x))), ()),
        "wavefront": (tf.function(lambda: wavefront(x)), ()),
    }
    calls = {name: (lambda f=f: f().numpy()) for name, (f, _) in functions.items()}
    values = {name: call() for name, call in calls.items()}  # traces (and compiles) every set-up
    diffs = {
        name: float(abs(values[name] - values[base]).max())
        for name, base in [("parallel_iterations", "one_layer"), ("xla", "one_layer"),
                           ("xla_step", "one_layer"), ("wavefront", "stacked")]
    }
    return calls, diffs


def loop_designs(rounds: int = 15) -> dict:
    calls, diffs = _designs()
    times: dict = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            began = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - began)
    out = {name: round(1000 * statistics.median(v), 1) for name, v in times.items()}
    return {"milliseconds": out, "largest_difference": diffs, "rounds": rounds,
            "shape": {"batch": BATCH, "steps": STEPS, "inputs": INPUTS, "units": UNITS}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    from overhead import emit  # the benchmarks' folder is on the path when run as a script

    emit(loop_designs(args.rounds), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

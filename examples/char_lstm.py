"""A character-level LSTM on the Python standard library's own source, watched by RNNMonitor.

The text is read at run time from the running interpreter's standard library (nothing is
downloaded). The model predicts the next character; the monitor gets a fixed probe batch and
the vocabulary, so the dashboard can show gradients through time and colour the probe text by
each unit's activation.

    python examples/char_lstm.py --logdir runs/char_lstm --epochs 8
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import os
import sys
import time

import numpy as np


@dataclasses.dataclass(frozen=True)
class Size:
    units: int
    layers: int
    seq_len: int
    batch: int
    steps_per_epoch: int
    corpus_chars: int
    epochs: int


SIZES = {
    # The reference model of the benchmarks: Embedding 32 -> LSTM 128 -> LSTM 128 -> Dense.
    "default": Size(units=128, layers=2, seq_len=100, batch=64, steps_per_epoch=200, corpus_chars=2_000_000, epochs=8),
    # For CI and a quick look: same shape of model, much smaller.
    "small": Size(units=32, layers=2, seq_len=60, batch=32, steps_per_epoch=15, corpus_chars=200_000, epochs=2),
}

PRINTABLE = [chr(c) for c in range(32, 127)] + ["\n"]


def stdlib_source(max_chars: int) -> str:
    """Concatenated .py files of this interpreter's standard library, in a fixed order."""
    root = os.path.dirname(os.__file__)
    files = sorted(glob.glob(os.path.join(root, "*.py")))
    if not files:
        raise RuntimeError(f"no standard-library source files found in {root!r}")
    allowed = set(PRINTABLE)
    parts, total = [], 0
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read().replace("\t", "    ")
        text = "".join(ch if ch in allowed else "?" for ch in text)
        parts.append(text)
        total += len(text)
        if total >= max_chars:
            break
    return "".join(parts)[:max_chars]


def make_dataset(size: Size, seed: int = 0):
    """(train ids, probe x, probe y, vocabulary); the probe is taken from held-out text."""
    text = stdlib_source(size.corpus_chars)
    vocabulary = PRINTABLE
    index = {ch: i for i, ch in enumerate(vocabulary)}
    ids = np.fromiter((index[ch] for ch in text), dtype=np.int32, count=len(text))
    split = int(len(ids) * 0.95)
    train, held_out = ids[:split], ids[split:]
    rng = np.random.default_rng(seed)
    # Probe sequences start at line starts, so the text view reads naturally.
    starts = [i + 1 for i in range(len(held_out) - size.seq_len - 2) if held_out[i] == index["\n"]]
    picks = np.sort(rng.choice(starts, size=min(size.batch, len(starts)), replace=False))
    # The dashboard's text view shows the first few probe sequences: put those with a string
    # literal and a comment first, so that quote- and comment-tracking units have text to show.
    def shows_features(start: int) -> int:
        window = "".join(vocabulary[i] for i in held_out[start : start + size.seq_len])
        return -(("'" in window or '"' in window) + ("#" in window))

    picks = sorted(picks, key=shows_features)
    probe_x = np.stack([held_out[s : s + size.seq_len] for s in picks])
    probe_y = np.stack([held_out[s + 1 : s + size.seq_len + 1] for s in picks])
    return train, probe_x, probe_y, vocabulary


def batches(ids: np.ndarray, size: Size, seed: int = 0):
    """Endless random windows of `seq_len` characters and their next characters."""
    import tensorflow as tf

    n = len(ids) - size.seq_len - 1

    def gen():
        rng = np.random.default_rng(seed)
        while True:
            starts = rng.integers(0, n, size=size.batch)
            x = np.stack([ids[s : s + size.seq_len] for s in starts])
            y = np.stack([ids[s + 1 : s + size.seq_len + 1] for s in starts])
            yield x, y

    spec = tf.TensorSpec((size.batch, size.seq_len), tf.int32)
    return tf.data.Dataset.from_generator(gen, output_signature=(spec, spec)).prefetch(2)


def build_model(vocab_size: int, size: Size):
    import keras

    layers = [keras.Input((size.seq_len,), dtype="int32"), keras.layers.Embedding(vocab_size, 32, name="embedding")]
    for i in range(size.layers):
        layers.append(keras.layers.LSTM(size.units, return_sequences=True, name=f"lstm_{i + 1}"))
    layers.append(keras.layers.Dense(vocab_size, name="next_char"))
    model = keras.Sequential(layers, name="char_lstm")
    model.compile(
        optimizer=keras.optimizers.Adam(2e-3, clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def train(log_dir: str, size_name: str = "default", epochs: int | None = None, verbose: int = 1):
    """Train with RNNMonitor writing to `log_dir`; returns the Keras History."""
    import keras

    from rnn_monitor import RNNMonitor

    size = SIZES[size_name]
    keras.utils.set_random_seed(0)
    train_ids, probe_x, probe_y, vocabulary = make_dataset(size)
    model = build_model(len(vocabulary), size)
    # Each logged epoch the monitor also generates text from the model (colour it by a unit in
    # the text view or with `rnn-monitor text --source generated`).
    seed = "def " if all(c in vocabulary for c in "def ") else vocabulary[1]
    monitor = RNNMonitor(log_dir, probe_data=(probe_x, probe_y), vocabulary=vocabulary,
                         generate={"seed": seed, "steps": 160, "temperature": 0.5})
    tensorboard = keras.callbacks.TensorBoard(log_dir)
    start = time.time()
    history = model.fit(
        batches(train_ids, size),
        epochs=epochs or size.epochs,
        steps_per_epoch=size.steps_per_epoch,
        callbacks=[monitor, tensorboard],
        verbose=verbose,
    )
    print(f"trained {len(history.history['loss'])} epochs in {time.time() - start:.0f} s; logs in {log_dir}")
    return history


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logdir", "--log-dir", dest="logdir", default="runs/char_lstm")
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args(argv)
    train(args.logdir, args.size, args.epochs)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A Bidirectional GRU sequence classifier with masking, on generated variable-length sequences.

Each sequence is 8 to 40 letters long, padded with 0 at the end (`Embedding(mask_zero=True)`).
The label is whether the FIRST letter is a vowel: the forward GRU must carry it through the
whole sequence, the backward GRU sees it at its last step. In TensorBoard's RNN Monitor tab,
compare `bi_gru/forward` and `bi_gru/backward` gradients over time; padded steps are blank
(masked) in the heatmaps and left out of every statistic.

    python examples/classifier.py --logdir runs/classifier
"""

from __future__ import annotations

import argparse
import string
import sys

import numpy as np

PAD = "·"
VOCABULARY = [PAD] + list(string.ascii_lowercase)
VOWELS = {VOCABULARY.index(v) for v in "aeiou"}


def make_data(n: int, min_len: int = 8, max_len: int = 40, seed: int = 0):
    """(x [n, max_len] int32 post-padded with 0, y [n, 1] float32)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, max_len), np.int32)
    lengths = rng.integers(min_len, max_len + 1, size=n)
    for i, length in enumerate(lengths):
        x[i, :length] = rng.integers(1, len(VOCABULARY), size=length)
    # Balance the classes: half the sequences start with a vowel.
    starts_vowel = rng.random(n) < 0.5
    x[starts_vowel, 0] = rng.choice(sorted(VOWELS), size=starts_vowel.sum())
    y = np.array([[x[i, 0] in VOWELS] for i in range(n)], np.float32)
    return x, y


def probe_batch(n: int = 64, max_len: int = 40, longest: int = 32):
    """Held-out sequences of at most `longest` letters, padded to `max_len`: the last steps are
    padding in every sequence, so the heatmaps show masked steps as blank columns."""
    x, y = make_data(n, max_len=longest, seed=1)
    return np.pad(x, ((0, 0), (0, max_len - longest))), y


def build_model(max_len: int = 40, units: int = 32):
    import keras

    inp = keras.Input((max_len,), dtype="int32")
    x = keras.layers.Embedding(len(VOCABULARY), 16, mask_zero=True)(inp)
    x = keras.layers.Bidirectional(keras.layers.GRU(units), name="bi_gru")(x)
    out = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inp, out, name="bi_gru_classifier")
    model.compile(optimizer=keras.optimizers.Adam(5e-3), loss="binary_crossentropy", metrics=["accuracy"])
    return model


SIZES = {"small": {"epochs": 2, "samples": 512}, "default": {"epochs": 6, "samples": 4000}}


def train(log_dir: str, epochs: int = 6, n: int = 4000, verbose: int = 1):
    import keras

    from rnn_monitor import RNNMonitor

    keras.utils.set_random_seed(0)
    x, y = make_data(n)
    probe_x, probe_y = probe_batch()
    model = build_model()
    monitor = RNNMonitor(log_dir, probe_data=(probe_x, probe_y), vocabulary=VOCABULARY)
    return model.fit(x, y, epochs=epochs, batch_size=64, validation_split=0.1, callbacks=[monitor], verbose=verbose)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logdir", "--log-dir", dest="logdir", default="runs/classifier")
    parser.add_argument("--size", choices=sorted(SIZES), default="default",
                        help="small: a quick run (CI size)")
    parser.add_argument("--epochs", type=int, default=None, help="default: 6 (default size), 2 (small)")
    parser.add_argument("--samples", type=int, default=None, help="default: 4000 (default size), 512 (small)")
    args = parser.parse_args(argv)
    size = SIZES[args.size]
    epochs = size["epochs"] if args.epochs is None else args.epochs
    samples = size["samples"] if args.samples is None else args.samples
    history = train(args.logdir, epochs, samples)
    print(f"validation accuracy {history.history['val_accuracy'][-1]:.3f}; logs in {args.logdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A Bidirectional GRU sequence classifier with masking, on generated variable-length sequences.

Each sequence is 8 to 40 letters long, padded with 0 at the end (`Embedding(mask_zero=True)`).
The label is planted: whether the letter "q" occurs (half the sequences carry exactly one, at a
random place; the others have none). The model must spot that one token wherever it
is. In TensorBoard's RNN Monitor tab, the text view's *importance* source colours each letter by
how much the predicted score drops when that letter is removed (occlusion): the q's light up,
and the prediction-as-read curve jumps where the model reads them. Compare `bi_gru/forward` and
`bi_gru/backward` gradients over time; padded steps are blank (masked) in the heatmaps and left
out of every statistic.

    python examples/classifier.py --logdir runs/classifier
    python examples/classifier.py --size small --logdir /tmp/classifier   # quick (CI)
"""

from __future__ import annotations

import argparse
import string
import sys

import numpy as np

PAD = "·"
VOCABULARY = [PAD] + list(string.ascii_lowercase)
PLANTED = VOCABULARY.index("q")
OTHERS = [i for i in range(1, len(VOCABULARY)) if i != PLANTED]


def make_data(n: int, min_len: int = 8, max_len: int = 40, seed: int = 0):
    """(x [n, max_len] int32 post-padded with 0, y [n, 1] float32): y = 1 when a "q" occurs."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, max_len), np.int32)
    y = (rng.random(n) < 0.5).astype(np.float32)
    lengths = rng.integers(min_len, max_len + 1, size=n)
    for i, length in enumerate(lengths):
        x[i, :length] = rng.choice(OTHERS, size=length)
        if y[i]:
            x[i, rng.integers(0, length)] = PLANTED  # exactly one: removing it flips the label
    return x, y[:, None]


def probe_batch(n: int = 64, max_len: int = 40, longest: int = 32):
    """Held-out sequences of at most `longest` letters, padded to `max_len`: the last steps are
    padding in every sequence, so the heatmaps show masked steps as blank columns."""
    x, y = make_data(n, max_len=longest, seed=1)
    # The text view shows the first sequences: alternate a sequence with a q and one without.
    pos, neg = np.nonzero(y[:, 0] == 1)[0], np.nonzero(y[:, 0] == 0)[0]
    k = min(len(pos), len(neg))
    order = np.concatenate([np.stack([pos[:k], neg[:k]], axis=1).ravel(), pos[k:], neg[k:]])
    x, y = x[order], y[order]
    return np.pad(x, ((0, 0), (0, max_len - longest))), y


def planted_found(importance: np.ndarray, x: np.ndarray) -> tuple[int, int]:
    """(sequences with a q whose most important token is a q, sequences with a q)."""
    rows = [i for i in range(len(importance)) if (x[i] == PLANTED).any()]
    hits = sum(int(x[i, int(np.nanargmax(importance[i]))] == PLANTED) for i in rows)
    return hits, len(rows)


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
    from rnn_monitor import load_run

    from rnn_monitor.interpret import occlusion

    found = load_run(args.logdir).token_importance()
    probe_x, _ = probe_batch()
    hits, total = planted_found(found["importance"], probe_x[: len(found["importance"])])
    print(f"occlusion (logged): the most important letter is the planted q in {hits} of the {total} "
          "text-view sequences that have one")
    every = occlusion(history.model, probe_x)
    every[probe_x == 0] = np.nan  # padding
    hits, total = planted_found(every, probe_x)
    print(f"occlusion (whole probe batch): the planted q is the most important letter in {hits} of {total}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

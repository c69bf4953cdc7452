"""The labelled cases of the alert benchmark (`benchmarks/alert_benchmark.py`).

Each case is a small recurrent model on generated data or on the Python standard library's own
source (nothing is downloaded), with a label saying what is wrong with it, if anything:

* ``healthy``: it learns; verified by its held-out loss ending below ``HEALTHY_FRACTION`` (0.8)
  of the task's constant-prediction loss (the *baseline*: MSE of predicting the mean, entropy of
  the label frequencies).
* ``vanishing`` / ``exploding`` / ``dead`` / ``saturated``: it does not learn (held-out loss at
  or above ``FAILED_FRACTION`` (0.9) of the baseline) **and** a *control* run that differs in
  the one planted cause only (a short version of the task, a recurrent radius below 1, a normal
  learning rate, a normal bias or normalised inputs) does learn. Dead and saturated cases also
  check the planted state with a plain `predict` of the recurrent layer's output.
* ``nonfinite``: Keras's own training loss turns NaN/Inf.

``split`` says whether the case is used to choose the thresholds (``tune``) or only to report
on them (``report``). Every family and every fault kind has cases on both sides where two exist.
``reduced`` marks the quick cases the CI test runs.

A case's `make(control=False)` returns a `Setup`: the compiled model, training data, probe and
held-out batches, the `fit` arguments and the task's baseline loss.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from typing import Any, Callable, Optional

import numpy as np

HEALTHY_FRACTION = 0.8  # healthy: held-out loss < 0.8 x baseline
FAILED_FRACTION = 0.9  # a fault: held-out loss >= 0.9 x baseline (or not finite)
PROBE = 32
LR_HUGE = float(os.environ.get("LR_HUGE", 1.0))  # probe batch size
LABELS = ("healthy", "vanishing", "exploding", "nonfinite", "dead", "saturated")


@dataclasses.dataclass
class Setup:
    model: Any
    x: Any
    y: Any
    probe: tuple
    val: tuple
    fit: dict
    baseline: float
    layer: str  # the recurrent layer the planted fault is in (dead / saturated checks read it)


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    family: str
    label: str
    split: str  # "tune" | "report"
    summary: str
    make: Callable[..., Setup]
    control_summary: str = ""
    reduced: bool = False


# ---------------------------------------------------------------- baselines (independent numpy)
def mse_baseline(y: np.ndarray) -> float:
    """MSE of predicting the per-output mean."""
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    return float(np.mean((y - y.mean(axis=0)) ** 2))


def bce_baseline(y: np.ndarray) -> float:
    """Binary cross-entropy of predicting the positive rate p: the entropy of p."""
    p = float(np.mean(y))
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def entropy_baseline(labels: np.ndarray, n_classes: int) -> float:
    """Cross-entropy (nats) of predicting the label frequencies."""
    freq = np.bincount(np.asarray(labels, dtype=np.int64).ravel(), minlength=n_classes) / np.size(labels)
    freq = freq[freq > 0]
    return float(-(freq * np.log(freq)).sum())


# ---------------------------------------------------------------- data
def adding_data(n: int, T: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hochreiter & Schmidhuber's adding problem: (value, marker) pairs, target = sum of the
    two marked values (one marker in each half)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, T, 2), np.float32)
    x[:, :, 0] = rng.uniform(0, 1, (n, T))
    rows = np.arange(n)
    first = rng.integers(0, max(1, T // 2), n)
    second = rng.integers(T // 2, T, n)
    x[rows, first, 1] = 1
    x[rows, second, 1] = 1
    y = (x[rows, first, 0] + x[rows, second, 0])[:, None].astype(np.float32)
    return x, y


def first_symbol_data(n: int, T: int, seed: int, classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """One-hot symbols; the label is the class of the *first* symbol (the rest is noise)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, classes, (n, T))
    x = np.eye(classes, dtype=np.float32)[ids]
    return x, ids[:, :1].astype(np.int32)


def forecast_data(n: int, T: int, seed: int, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Windows of a noisy sum of two sines with random periods and phases; target = next value."""
    rng = np.random.default_rng(seed)
    t = np.arange(T + 1)[None, :]
    p1 = rng.uniform(8, 20, (n, 1))
    p2 = rng.uniform(3, 7, (n, 1))
    ph = rng.uniform(0, 2 * np.pi, (n, 2))
    s = np.sin(2 * np.pi * t / p1 + ph[:, :1]) + 0.5 * np.sin(2 * np.pi * t / p2 + ph[:, 1:])
    s = s + 0.1 * rng.standard_normal(s.shape)
    x = (scale * s[:, :T, None]).astype(np.float32)
    return x, s[:, T:].astype(np.float32)


def echo_data(n: int, T: int, seed: int, lag: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """y_t = x_{t-lag} (0 before the start): a short-memory sequence-to-sequence task."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, T, 1)).astype(np.float32)
    y = np.zeros_like(x)
    y[:, lag:] = x[:, :-lag]
    return x, y


def window_sum_data(n: int, T: int, seed: int, width: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """y_t = sum of the last `width` inputs: short memory, sequence to sequence."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, T, 1)).astype(np.float32)
    c = np.cumsum(np.pad(x, ((0, 0), (width, 0), (0, 0))), axis=1)
    y = (c[:, width:] - c[:, :-width]).astype(np.float32)
    return x, y


def neighbours_data(n: int, T: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """y_t = x_{t-2} + x_{t+2}: needs both directions (a Bidirectional layer's task)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, T, 1)).astype(np.float32)
    p = np.pad(x, ((0, 0), (2, 2), (0, 0)))
    y = (p[:, :-4] + p[:, 4:]).astype(np.float32)
    return x, y


def majority_data(n: int, T: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """+-1 sequences of odd length; label 1 when the sum is positive (counting)."""
    rng = np.random.default_rng(seed)
    x = rng.choice([-1.0, 1.0], size=(n, T, 1)).astype(np.float32)
    return x, (x.sum(axis=(1, 2)) > 0).astype(np.float32)[:, None]


def q_data(n: int, seed: int, min_len: int = 8, max_len: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Letters 1..26 post-padded with 0 to `max_len`; label 1 when letter 17 ("q") occurs."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, max_len), np.int32)
    y = (rng.random(n) < 0.5).astype(np.float32)
    others = [i for i in range(1, 27) if i != 17]
    for i, length in enumerate(rng.integers(min_len, max_len + 1, n)):
        x[i, :length] = rng.choice(others, length)
        if y[i]:
            x[i, rng.choice(length, int(rng.integers(1, 3)), replace=False)] = 17
    return x, y[:, None]


_TEXT: dict = {}


def char_data(n: int, T: int, seed: int, split: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Windows of the standard library's source: (x ids [n, T], next ids [n, T], vocab size)."""
    if "ids" not in _TEXT:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples"))
        from char_lstm import PRINTABLE, stdlib_source

        text = stdlib_source(1_200_000)
        index = {c: i for i, c in enumerate(PRINTABLE)}
        _TEXT["ids"] = np.fromiter((index[c] for c in text), np.int32, len(text))
        _TEXT["vocab"] = len(PRINTABLE)
    ids = _TEXT["ids"]
    cut = int(len(ids) * 0.9)
    part = ids[:cut] if split == "train" else ids[cut:]
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(part) - T - 1, n)
    x = np.stack([part[s : s + T] for s in starts])
    y = np.stack([part[s + 1 : s + T + 1] for s in starts])
    return x, y, _TEXT["vocab"]


# ---------------------------------------------------------------- model helpers
def _keras():
    import keras

    return keras


def _compile(model, loss: str, lr: float = 1e-2, clipnorm: Optional[float] = 1.0, optimizer: str = "adam"):
    keras = _keras()
    kwargs = {} if clipnorm is None else {"clipnorm": clipnorm}
    opt = keras.optimizers.Adam(lr, **kwargs) if optimizer == "adam" else keras.optimizers.SGD(lr, **kwargs)
    losses = {
        "mse": "mse",
        "bce": "binary_crossentropy",
        "sce_logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    }
    model.compile(optimizer=opt, loss=losses[loss])
    return model


def _split(make_data: Callable, n: int, *args, **kw):
    """(train, probe, held-out) from one generator with three seeds."""
    train = make_data(n, *args, seed=1, **kw)
    probe = make_data(PROBE, *args, seed=2, **kw)
    val = make_data(512, *args, seed=3, **kw)
    return train, probe, val


def _set_bias(layer, gate: int, value: float) -> None:
    """Set one gate's block of a recurrent cell's bias (keras gate order)."""
    cell = layer.cell
    b = cell.bias.numpy()
    units = cell.units
    if b.ndim == 2:  # GRU with reset_after: [2, 3U]
        b[:, gate * units : (gate + 1) * units] = value / 2.0
    else:
        b[gate * units : (gate + 1) * units] = value
    cell.bias.assign(b)


def _scale_recurrent(layer, radius: float) -> None:
    """Rescale the recurrent kernel so that its first U x U block (the whole kernel of a
    SimpleRNN; orthogonal, radius 1, by default) has spectral radius `radius`."""
    w = layer.cell.recurrent_kernel.numpy()
    rho = float(max(abs(np.linalg.eigvals(w[:, : w.shape[0]]))))
    layer.cell.recurrent_kernel.assign(w * (radius / rho))


def _chrono(layer, T: int, seed: int = 0) -> None:
    """Tallec & Ollivier's chrono initialisation of an LSTM's forget / input biases."""
    units = layer.cell.units
    b = layer.cell.bias.numpy()
    bf = np.log(np.random.default_rng(seed).uniform(1, max(2.0, T - 1.0), units))
    b[:units] = -bf
    b[units : 2 * units] = bf
    layer.cell.bias.assign(b)


def _seq(inp, *layers, name: str):
    keras = _keras()
    return keras.Sequential([keras.Input(inp)] + list(layers), name=name)


def _setup(model, data, fit: dict, baseline: float, layer: str) -> Setup:
    (x, y), probe, val = data
    return Setup(model=model, x=x, y=y, probe=probe, val=val, fit=fit, baseline=baseline, layer=layer)


# ---------------------------------------------------------------- healthy cases
def char_lstm2(control: bool = False) -> Setup:
    keras = _keras()
    T = 100
    x, y, V = char_data(2400, T, 1, "train")
    px, py, _ = char_data(PROBE, T, 2, "val")
    vx, vy, _ = char_data(256, T, 3, "val")
    model = _seq((T,), keras.layers.Embedding(V, 16),
                 keras.layers.LSTM(48, return_sequences=True, name="lstm_1"),
                 keras.layers.LSTM(48, return_sequences=True, name="lstm_2"),
                 keras.layers.Dense(V), name="char_lstm2")
    _compile(model, "sce_logits", 5e-3)
    return Setup(model, x, y, (px, py), (vx, vy), dict(epochs=6, batch_size=32),
                 entropy_baseline(vy, V), "lstm_2")


def char_gru(control: bool = False) -> Setup:
    keras = _keras()
    T = 100
    x, y, V = char_data(2400, T, 11, "train")
    px, py, _ = char_data(PROBE, T, 12, "val")
    vx, vy, _ = char_data(256, T, 13, "val")
    model = _seq((T,), keras.layers.Embedding(V, 16), keras.layers.GRU(64, return_sequences=True, name="gru"),
                 keras.layers.Dense(V), name="char_gru")
    _compile(model, "sce_logits", 5e-3)
    return Setup(model, x, y, (px, py), (vx, vy), dict(epochs=5, batch_size=32),
                 entropy_baseline(vy, V), "gru")


def adding_lstm_chrono(control: bool = False) -> Setup:
    keras = _keras()
    T = 100
    data = _split(adding_data, 3000, T)
    model = _seq((T, 2), keras.layers.LSTM(32, name="lstm"), keras.layers.Dense(1), name="adding_lstm")
    _chrono(model.layers[0], T)
    _compile(model, "mse", 1e-2)
    return _setup(model, data, dict(epochs=16, batch_size=64), mse_baseline(data[2][1]), "lstm")


def forecast_lstm(control: bool = False) -> Setup:
    keras = _keras()
    T = 40
    data = _split(forecast_data, 2000, T)
    model = _seq((T, 1), keras.layers.LSTM(32, name="lstm"), keras.layers.Dense(1), name="forecast_lstm")
    _compile(model, "mse", 1e-2)
    return _setup(model, data, dict(epochs=6, batch_size=64), mse_baseline(data[2][1]), "lstm")


def simple_rnn_echo(control: bool = False) -> Setup:
    keras = _keras()
    T = 30
    data = _split(echo_data, 2000, T)
    model = _seq((T, 1), keras.layers.SimpleRNN(16, return_sequences=True, name="simple_rnn"),
                 keras.layers.Dense(1), name="echo_simple_rnn")
    _compile(model, "mse", 1e-2)
    return _setup(model, data, dict(epochs=6, batch_size=64), mse_baseline(data[2][1]), "simple_rnn")


def masked_lstm_q(control: bool = False) -> Setup:
    keras = _keras()
    data = (q_data(3000, 1), q_data(PROBE, 2), q_data(512, 3))
    model = _seq((40,), keras.layers.Embedding(27, 16, mask_zero=True), keras.layers.LSTM(32, name="lstm"),
                 keras.layers.Dense(1, activation="sigmoid"), name="masked_lstm")
    _compile(model, "bce", 5e-3)
    return _setup(model, data, dict(epochs=6, batch_size=64), bce_baseline(data[2][1]), "lstm")


def masked_bigru_q(control: bool = False) -> Setup:
    keras = _keras()
    data = (q_data(2000, 11), q_data(PROBE, 12), q_data(512, 13))
    model = _seq((40,), keras.layers.Embedding(27, 16, mask_zero=True),
                 keras.layers.Bidirectional(keras.layers.GRU(24), name="bi_gru"),
                 keras.layers.Dense(1, activation="sigmoid"), name="masked_bigru")
    _compile(model, "bce", 5e-3)
    return _setup(model, data, dict(epochs=5, batch_size=64), bce_baseline(data[2][1]),
                  "bi_gru/forward")


def bi_lstm_tagger(control: bool = False) -> Setup:
    keras = _keras()
    T = 30
    data = _split(neighbours_data, 2000, T)
    model = _seq((T, 1), keras.layers.Bidirectional(keras.layers.LSTM(16, return_sequences=True), name="bi_lstm"),
                 keras.layers.Dense(1), name="bi_lstm_tagger")
    _compile(model, "mse", 1e-2)
    return _setup(model, data, dict(epochs=6, batch_size=64), mse_baseline(data[2][1]), "bi_lstm/forward")


def gru_majority(control: bool = False) -> Setup:
    keras = _keras()
    T = 41
    data = _split(majority_data, 3000, T)
    model = _seq((T, 1), keras.layers.GRU(16, name="gru"), keras.layers.Dense(1, activation="sigmoid"),
                 name="gru_majority")
    _compile(model, "bce", 1e-2)
    return _setup(model, data, dict(epochs=8, batch_size=64), bce_baseline(data[2][1]), "gru")


def simple_rnn_sum_long(control: bool = False) -> Setup:
    keras = _keras()
    T = 30
    data = _split(window_sum_data, 1500, T)
    model = _seq((T, 1), keras.layers.SimpleRNN(16, return_sequences=True, name="simple_rnn"),
                 keras.layers.Dense(1), name="sum_simple_rnn")
    _compile(model, "mse", 3e-3)
    return _setup(model, data, dict(epochs=18, batch_size=64), mse_baseline(data[2][1]), "simple_rnn")


# ---------------------------------------------------------------- vanishing
def simple_rnn_adding(control: bool = False) -> Setup:
    """SimpleRNN on the adding problem at T=100 (control: T=10)."""
    keras = _keras()
    T = 10 if control else 100
    data = _split(adding_data, 3000, T)
    model = _seq((T, 2), keras.layers.SimpleRNN(32, name="simple_rnn"), keras.layers.Dense(1), name="adding_simple_rnn")
    _compile(model, "mse", 1e-3 if not control else 1e-2)
    return _setup(model, data, dict(epochs=6, batch_size=64), mse_baseline(data[2][1]), "simple_rnn")


def lstm_shut_forget(control: bool = False) -> Setup:
    """LSTM whose forget-gate bias is -10 (forgets every step) on adding at T=100 (control: T=10)."""
    keras = _keras()
    T = 10 if control else 100
    data = _split(adding_data, 3000, T)
    model = _seq((T, 2), keras.layers.LSTM(32, name="lstm"), keras.layers.Dense(1), name="adding_shut_forget")
    _set_bias(model.layers[0], 1, -10.0)
    _compile(model, "mse", 1e-2)
    return _setup(model, data, dict(epochs=6, batch_size=64), mse_baseline(data[2][1]), "lstm")


def gru_shut_update(control: bool = False) -> Setup:
    """GRU whose update gate z is shut (bias -10: h_t = h~_t, nothing carried past the
    candidate's own recurrence) on adding at T=100 (control: T=10)."""
    keras = _keras()
    T = 10 if control else 100
    data = _split(adding_data, 3000, T)
    model = _seq((T, 2), keras.layers.GRU(32, name="gru"), keras.layers.Dense(1), name="adding_shut_update")
    _set_bias(model.layers[0], 0, -10.0)
    _compile(model, "mse", 1e-2)
    return _setup(model, data, dict(epochs=6, batch_size=64), mse_baseline(data[2][1]), "gru")


def tiny_radius_first_symbol(control: bool = False) -> Setup:
    """SimpleRNN with its recurrent kernel scaled to radius 0.05 must recall the first of 30
    symbols (control: the same at T=3)."""
    keras = _keras()
    T = 3 if control else 30
    data = _split(first_symbol_data, 3000, T)
    model = _seq((T, 4), keras.layers.SimpleRNN(32, name="simple_rnn"), keras.layers.Dense(4), name="tiny_radius")
    _scale_recurrent(model.layers[0], 0.05)
    _compile(model, "sce_logits", 3e-3)
    return _setup(model, data, dict(epochs=6, batch_size=64), entropy_baseline(data[2][1], 4), "simple_rnn")


# ---------------------------------------------------------------- exploding
def linear_radius(control: bool = False) -> Setup:
    """Linear SimpleRNN with recurrent radius 1.3 on forecasting, T=40, Adam + clipnorm
    (control: radius 0.9)."""
    keras = _keras()
    T = 40
    data = _split(forecast_data, 2000, T)
    model = _seq((T, 1), keras.layers.SimpleRNN(16, activation="linear", name="simple_rnn"), keras.layers.Dense(1),
                 name="linear_radius")
    _scale_recurrent(model.layers[0], 0.9 if control else 1.3)
    _compile(model, "mse", 1e-3)
    return _setup(model, data, dict(epochs=5, batch_size=64), mse_baseline(data[2][1]), "simple_rnn")


def relu_radius(control: bool = False) -> Setup:
    """ReLU SimpleRNN with recurrent kernel 1.5 x identity (IRNN-style, radius 1.5) on the
    window-sum task, T=30 (control: 0.9 x identity)."""
    keras = _keras()
    T = 30
    data = _split(window_sum_data, 2000, T)
    model = _seq((T, 1), keras.layers.SimpleRNN(16, activation="relu", return_sequences=True, name="simple_rnn"),
                 keras.layers.Dense(1), name="relu_radius")
    model.layers[0].cell.recurrent_kernel.assign((0.9 if control else 1.5) * np.eye(16, dtype=np.float32))
    _compile(model, "mse", 1e-3)
    return _setup(model, data, dict(epochs=5, batch_size=64), mse_baseline(data[2][1]), "simple_rnn")


def huge_lr(control: bool = False) -> Setup:
    """SimpleRNN on forecasting with SGD at learning rate 10 (clipnorm 1 keeps it finite;
    control: learning rate 0.3)."""
    keras = _keras()
    T = 40
    data = _split(forecast_data, 2000, T)
    model = _seq((T, 1), keras.layers.SimpleRNN(16, name="simple_rnn"), keras.layers.Dense(1), name="huge_lr")
    _compile(model, "mse", 0.3 if control else 10.0, clipnorm=1.0, optimizer="sgd")
    return _setup(model, data, dict(epochs=5, batch_size=64), mse_baseline(data[2][1]), "simple_rnn")


# ---------------------------------------------------------------- non-finite
def nan_in_data(control: bool = False) -> Setup:
    """One training sequence holds a NaN: the first batch with it turns every weight NaN."""
    keras = _keras()
    T = 40
    (x, y), probe, val = _split(forecast_data, 2000, T)
    x = x.copy()
    x[700, 5, 0] = np.nan
    model = _seq((T, 1), keras.layers.LSTM(16, name="lstm"), keras.layers.Dense(1), name="nan_in_data")
    _compile(model, "mse", 1e-2, clipnorm=None)
    return _setup(model, ((x, y), probe, val), dict(epochs=4, batch_size=64, shuffle=False),
                  mse_baseline(val[1]), "lstm")


def nan_weight(control: bool = False) -> Setup:
    """One element of a GRU's recurrent kernel is NaN from the start (the 'planted NaN')."""
    keras = _keras()
    T = 30
    data = _split(echo_data, 1000, T)
    model = _seq((T, 1), keras.layers.GRU(16, return_sequences=True, name="gru"), keras.layers.Dense(1),
                 name="nan_weight")
    w = model.layers[0].cell.recurrent_kernel.numpy()
    w[3, 20] = np.nan
    model.layers[0].cell.recurrent_kernel.assign(w)
    _compile(model, "mse", 1e-2)
    return _setup(model, data, dict(epochs=3, batch_size=64), mse_baseline(data[2][1]), "gru")


def diverge_to_nan(control: bool = False) -> Setup:
    """Linear SimpleRNN with recurrent radius 3 at T=100, SGD without clipping: overflows."""
    keras = _keras()
    T = 100
    data = _split(adding_data, 1000, T)
    model = _seq((T, 2), keras.layers.SimpleRNN(16, activation="linear", name="simple_rnn"), keras.layers.Dense(1),
                 name="diverge")
    _scale_recurrent(model.layers[0], 3.0)
    _compile(model, "mse", 1e-2, clipnorm=None, optimizer="sgd")
    return _setup(model, data, dict(epochs=3, batch_size=64), mse_baseline(data[2][1]), "simple_rnn")


# ---------------------------------------------------------------- dead
def relu_dead_bias(control: bool = False) -> Setup:
    """ReLU SimpleRNN whose bias is -5 (every unit below zero on every input; control: bias 0)."""
    keras = _keras()
    T = 30
    data = _split(window_sum_data, 2000, T)
    model = _seq((T, 1), keras.layers.SimpleRNN(16, activation="relu", return_sequences=True, name="simple_rnn"),
                 keras.layers.Dense(1), name="relu_dead")
    if not control:
        model.layers[0].cell.bias.assign(np.full(16, -5.0, np.float32))
    _compile(model, "mse", 3e-3)
    return _setup(model, data, dict(epochs=5, batch_size=64), mse_baseline(data[2][1]), "simple_rnn")


def lstm_output_shut(control: bool = False) -> Setup:
    """LSTM whose output-gate bias is -30: h = o * tanh(c) is 0 everywhere (control: bias 0)."""
    keras = _keras()
    T = 40
    data = _split(forecast_data, 2000, T)
    model = _seq((T, 1), keras.layers.LSTM(16, name="lstm"), keras.layers.Dense(1), name="output_shut")
    if not control:
        _set_bias(model.layers[0], 3, -30.0)
    _compile(model, "mse", 3e-3)
    return _setup(model, data, dict(epochs=5, batch_size=64), mse_baseline(data[2][1]), "lstm")


# ---------------------------------------------------------------- saturated
def tanh_unscaled(control: bool = False) -> Setup:
    """tanh SimpleRNN fed +-1 counts scaled by 100 on the majority task (control: unscaled)."""
    keras = _keras()
    T = 41
    (x, y), (px, py), (vx, vy) = _split(majority_data, 3000, T)
    k = 1.0 if control else 100.0
    model = _seq((T, 1), keras.layers.SimpleRNN(16, name="simple_rnn"), keras.layers.Dense(1, activation="sigmoid"),
                 name="tanh_unscaled")
    _compile(model, "bce", 3e-3)
    return _setup(model, ((x * k, y), (px * k, py), (vx * k, vy)), dict(epochs=6, batch_size=64),
                  bce_baseline(vy), "simple_rnn")


def gru_unscaled(control: bool = False) -> Setup:
    """GRU fed +-1 counts scaled by 200 (control: unscaled) on the majority task."""
    keras = _keras()
    T = 41
    (x, y), (px, py), (vx, vy) = _split(majority_data, 3000, T)
    k = 1.0 if control else 200.0
    model = _seq((T, 1), keras.layers.GRU(16, name="gru"), keras.layers.Dense(1, activation="sigmoid"),
                 name="gru_unscaled")
    _compile(model, "bce", 1e-2)
    return _setup(model, ((x * k, y), (px * k, py), (vx * k, vy)), dict(epochs=6, batch_size=64),
                  bce_baseline(vy), "gru")


CASES: list[Case] = [
    # healthy: tune
    Case("char_lstm2", "char LM (2x LSTM 48, T=100)", "healthy", "tune",
         "2-layer char LSTM on stdlib source, T=100", char_lstm2),
    Case("adding_lstm_chrono", "long-range regression (LSTM, T=100)", "healthy", "tune",
         "chrono-initialised LSTM learns the adding problem at T=100, 16 epochs", adding_lstm_chrono),
    Case("forecast_lstm", "forecasting (LSTM, T=40)", "healthy", "tune",
         "next value of a noisy two-sine signal", forecast_lstm, reduced=True),
    Case("echo_simple_rnn", "seq-to-seq (SimpleRNN, T=30)", "healthy", "tune",
         "SimpleRNN echoes its input 2 steps later", simple_rnn_echo, reduced=True),
    Case("masked_lstm", "masked classifier (LSTM, T<=40)", "healthy", "tune",
         "variable-length letters, mask_zero; is there a q?", masked_lstm_q),
    # healthy: report
    Case("char_gru", "char LM (GRU 64, T=100)", "healthy", "report",
         "1-layer char GRU on stdlib source, T=100", char_gru),
    Case("masked_bigru", "masked classifier (Bidirectional GRU, T<=40)", "healthy", "report",
         "variable-length letters, mask_zero; is there a q?", masked_bigru_q),
    Case("bi_lstm_tagger", "seq-to-seq (Bidirectional LSTM, T=30)", "healthy", "report",
         "y_t = x_{t-2} + x_{t+2}", bi_lstm_tagger),
    Case("gru_majority", "sequence classifier (GRU, T=41)", "healthy", "report",
         "is the sum of +-1 inputs positive?", gru_majority, reduced=True),
    Case("sum_simple_rnn_long", "seq-to-seq (SimpleRNN, T=30), 18 epochs", "healthy", "report",
         "sum of the last 3 inputs, 18 epochs", simple_rnn_sum_long),
    # vanishing
    Case("adding_simple_rnn", "long-range regression (SimpleRNN, T=100)", "vanishing", "tune",
         "SimpleRNN on the adding problem at T=100", simple_rnn_adding, "the same at T=10", reduced=True),
    Case("lstm_shut_forget", "long-range regression (LSTM, T=100)", "vanishing", "tune",
         "LSTM with forget-gate bias -10 on the adding problem", lstm_shut_forget, "the same at T=10"),
    Case("gru_shut_update", "long-range regression (GRU, T=100)", "vanishing", "report",
         "GRU with update-gate bias -10 on the adding problem", gru_shut_update, "the same at T=10"),
    Case("tiny_radius", "long-range classifier (SimpleRNN, T=30)", "vanishing", "report",
         "recurrent radius 0.05, recall the first of 30 symbols", tiny_radius_first_symbol, "the same at T=3"),
    # exploding
    Case("linear_radius", "forecasting (linear SimpleRNN, T=40)", "exploding", "tune",
         "linear units, recurrent radius 1.3", linear_radius, "recurrent radius 0.9"),
    Case("huge_lr", "forecasting (SimpleRNN, T=40)", "exploding", "tune",
         "SGD at learning rate 10 (clipnorm 1)", huge_lr, "learning rate 0.3"),
    Case("relu_radius", "seq-to-seq (ReLU SimpleRNN, T=30)", "exploding", "report",
         "ReLU units, recurrent kernel 1.5 x identity", relu_radius, "0.9 x identity", reduced=True),
    # non-finite
    Case("nan_in_data", "forecasting (LSTM, T=40)", "nonfinite", "tune",
         "one NaN in the training inputs", nan_in_data, reduced=True),
    Case("nan_weight", "seq-to-seq (GRU, T=30)", "nonfinite", "report",
         "one NaN planted in the recurrent kernel", nan_weight),
    Case("diverge_to_nan", "long-range regression (linear SimpleRNN, T=100)", "nonfinite", "report",
         "recurrent radius 3, SGD without clipping: overflows", diverge_to_nan),
    # dead
    Case("relu_dead_bias", "seq-to-seq (ReLU SimpleRNN, T=30)", "dead", "tune",
         "ReLU units with bias -5", relu_dead_bias, "bias 0"),
    Case("lstm_output_shut", "forecasting (LSTM, T=40)", "dead", "report",
         "output-gate bias -30: h = 0", lstm_output_shut, "bias 0", reduced=True),
    # saturated
    Case("tanh_unscaled", "sequence classifier (SimpleRNN, T=41)", "saturated", "tune",
         "+-1 inputs scaled by 100", tanh_unscaled, "unscaled inputs", reduced=True),
    Case("gru_unscaled", "sequence classifier (GRU, T=41)", "saturated", "report",
         "+-1 inputs scaled by 200", gru_unscaled, "unscaled inputs"),
]

BY_NAME = {c.name: c for c in CASES}


# ---------------------------------------------------------------- verification of the labels
def held_out_loss(setup: Setup) -> float:
    """The compiled loss on the held-out batch (NaN when it is not finite)."""
    value = float(np.asarray(setup.model.evaluate(*setup.val, batch_size=256, verbose=0)))
    return value if math.isfinite(value) else float("nan")


def layer_output(setup: Setup) -> np.ndarray:
    """Plain `predict` of the fault's recurrent layer on the probe: [positions, units]."""
    keras = _keras()
    layer = setup.model.get_layer(setup.layer.split("/")[0])
    out = keras.Model(setup.model.inputs, layer.output).predict(setup.probe[0], verbose=0)
    return np.asarray(out, dtype=np.float64).reshape(-1, np.shape(out)[-1])


def verify(case: Case, setup: Setup, train_losses: list, control_ratio: Optional[float]) -> tuple[bool, str]:
    """Check the case's label against what happened; (ok, one-line evidence)."""
    val = held_out_loss(setup)
    ratio = val / setup.baseline if math.isfinite(val) else float("nan")
    text = f"held-out loss {val:.4g} = {ratio:.2f} x baseline {setup.baseline:.4g}"
    if case.label == "healthy":
        return bool(ratio < HEALTHY_FRACTION), text
    if case.label == "nonfinite":
        bad = [i for i, v in enumerate(train_losses) if not math.isfinite(v)]
        return bool(bad), text + (f"; training loss not finite from epoch {bad[0]}" if bad else "; loss stayed finite")
    failed = not (ratio < FAILED_FRACTION)  # NaN counts as failed
    ok = failed and control_ratio is not None and control_ratio < HEALTHY_FRACTION
    text += f"; control ({case.control_summary}) {control_ratio:.2f} x baseline" if control_ratio is not None else ""
    if case.label in ("dead", "saturated"):
        h = layer_output(setup)
        if case.label == "dead":
            share = float(np.mean(np.std(h, axis=0) < 1e-3))
            text += f"; {share:.0%} of units with output std < 1e-3"
        else:
            share = float(np.mean(np.mean(np.abs(h) > 0.99, axis=0) > 0.95))
            text += f"; {share:.0%} of units with |h| > 0.99 in > 95% of positions"
        ok = ok and share > 0.5
    return bool(ok), text


def control_ratio(case: Case) -> Optional[float]:
    """Train the case's control (no monitor) and return its held-out loss / baseline."""
    if not case.control_summary:
        return None
    keras = _keras()
    keras.utils.set_random_seed(0)
    setup = case.make(control=True)
    setup.model.fit(setup.x, setup.y, verbose=0, **setup.fit)
    val = held_out_loss(setup)
    return val / setup.baseline if math.isfinite(val) else float("nan")

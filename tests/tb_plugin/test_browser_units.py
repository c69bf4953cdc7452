"""The Units view and the text view's new sources in a real browser (headless Chromium), on logs
from a char model that generates text and a classifier with token importance.

Skipped like test_browser.py when Chromium or Playwright is missing (failing under CI=true).
``RNN_MONITOR_SCREENSHOT_DIR`` also copies the screenshots (units.png, generated.png,
importance.png) there; ``RNN_MONITOR_UNITS_LOGDIR`` uses an existing log root instead of training
(it must hold the runs ``char`` and ``classifier``).
"""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
from test_browser import (  # noqa: F401  (fixtures: browser, shots)
    _CANVAS_STATS, TensorBoardProcess, _select_tab, browser, open_dashboard, save_shot, shots,
)

from rnn_monitor import RNNMonitor

pytestmark = pytest.mark.browser
VOCAB = list("abcdefgh ()\n")


def _write_logs(root: str) -> None:
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    # a char model with a period-4 pattern in its text, generating text each epoch
    base = np.tile(np.array([0, 1, 8, 2]), 200)
    x = np.stack([np.roll(base, -k)[:40] for k in range(96)]).astype("int32")
    x[rng.random(x.shape) < 0.1] = 3
    y = np.roll(x, -1, axis=1)
    lm = keras.Sequential([keras.Input((None,), dtype="int32"), keras.layers.Embedding(len(VOCAB), 8),
                           keras.layers.LSTM(16, return_sequences=True, name="lstm"), keras.layers.Dense(len(VOCAB))])
    lm.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    lm.fit(x, y, epochs=3, verbose=0, callbacks=[RNNMonitor(os.path.join(root, "char"), probe_data=(x[:16], y[:16]),
           vocabulary=VOCAB, generate={"seed": "ab", "steps": 40})])
    # a classifier whose label is planted: token 5 somewhere in the sequence
    xc = rng.integers(1, 9, size=(256, 20)).astype("int32")
    xc[xc == 5] = 6
    yc = (rng.random(256) < 0.5).astype("float32")
    for i in np.nonzero(yc)[0]:
        xc[i, rng.integers(0, 20)] = 5
    cl = keras.Sequential([keras.Input((20,), dtype="int32"), keras.layers.Embedding(len(VOCAB), 8, mask_zero=True),
                           keras.layers.GRU(8, name="gru"), keras.layers.Dense(1, activation="sigmoid")])
    cl.compile(keras.optimizers.Adam(1e-2), "binary_crossentropy")
    cl.fit(xc, yc[:, None], epochs=3, verbose=0, callbacks=[RNNMonitor(os.path.join(root, "classifier"),
           probe_data=(xc[:8], yc[:8, None]), vocabulary=VOCAB)])


@pytest.fixture(scope="module")
def units_dashboard(browser, tmp_path_factory):  # noqa: F811
    root = os.environ.get("RNN_MONITOR_UNITS_LOGDIR")
    if not root:
        root = str(tmp_path_factory.mktemp("units_logs"))
        _write_logs(root)
    tb = TensorBoardProcess(root, "auto", tmp_path_factory.mktemp("tb_units"))
    try:
        tb.wait_ready()
        view = open_dashboard(browser, tb.url, os.environ.get("RNN_MONITOR_VIEWPORT", "1280x1000"))
        yield view
        view["page"].close()
    finally:
        tb.stop()


def _pick(frame, select: str, value: str) -> None:
    frame.select_option(select, value)


def _run_value(frame, name: str) -> str:
    values = frame.eval_on_selector_all("#run-select option", "os => os.map(o => o.value)")
    return next(v for v in values if v.startswith(name))


def test_units_view_surface_and_card(units_dashboard, shots):  # noqa: F811
    frame = units_dashboard["frame"]
    _pick(frame, "#run-select", _run_value(frame, "char"))
    _select_tab(frame, "units")
    frame.wait_for_selector("#fourier[data-epoch]", timeout=30000)
    assert frame.evaluate(_CANVAS_STATS, "#fourier")["coloured"] > 0.3
    frame.wait_for_selector("#average-input", timeout=30000)
    assert frame.evaluate(_CANVAS_STATS, "#average-input")["coloured"] > 0.2
    for chart in ("#unit-strength", "#unit-period", "#unit-saturation"):
        assert frame.evaluate(_CANVAS_STATS, f"{chart} canvas")["coloured"] > 0.01, chart
    chips = frame.locator("#periodic-units .chip")
    if not os.environ.get("RNN_MONITOR_UNITS_LOGDIR"):  # our log's text repeats every 4 characters
        assert chips.count() >= 1
        assert "period" in chips.first.inner_text()
    frame.fill("#unit-regex", "a")
    frame.dispatch_event("#unit-regex", "change")
    frame.wait_for_selector("#unit-relevance", timeout=30000)
    save_shot(units_dashboard, shots, "units")


def test_text_view_generated_source(units_dashboard, shots):  # noqa: F811
    frame = units_dashboard["frame"]
    _pick(frame, "#run-select", _run_value(frame, "char"))
    _select_tab(frame, "text")
    frame.wait_for_selector("#text-source", timeout=30000)
    _pick(frame, "#text-source", "generated")
    frame.wait_for_function("() => document.querySelectorAll('#text-sample pre.seq').length === 1", timeout=30000)
    spans = frame.eval_on_selector_all("#text-sample pre.seq span", "ss => ss.map(s => s.textContent)")
    if not os.environ.get("RNN_MONITOR_UNITS_LOGDIR"):  # our own log: seed "ab" + 40 tokens
        assert len(spans) == 42 and "".join(spans).startswith("ab")
    save_shot(units_dashboard, shots, "generated")


def test_text_view_importance_source_with_prediction_curve(units_dashboard, shots):  # noqa: F811
    frame = units_dashboard["frame"]
    _pick(frame, "#run-select", _run_value(frame, "classifier"))
    _select_tab(frame, "text")
    frame.wait_for_selector("#text-source", timeout=30000)
    _pick(frame, "#text-source", "importance")
    frame.wait_for_selector("#reading .chart canvas", timeout=30000)
    assert frame.locator("#reading .chart").count() == 4  # one curve per text-view sequence (text_samples)
    assert frame.evaluate(_CANVAS_STATS, "#reading .chart canvas")["coloured"] > 0.01
    save_shot(units_dashboard, shots, "importance")
    errors = [m for m in units_dashboard["messages"] if m[0] in ("error", "pageerror")]
    assert not errors, errors

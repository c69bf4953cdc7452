"""`rnn-monitor text`: the probe text coloured by one unit, checked against the model itself."""

import json
import re

import keras
import numpy as np
import pytest

from rnn_monitor import RNNMonitor
from rnn_monitor.cli import text as text_cmd
from rnn_monitor.cli.main import main
from test_colour_scale import rdbu_r, wcag_contrast

VOCAB = ["_", "a", "b", " ", "\n", "'"]


@pytest.fixture(scope="module")
def char_run(tmp_path_factory):
    """A tiny char model logged for one epoch; returns (log_dir, model, probe x)."""
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    x = rng.integers(0, len(VOCAB), size=(32, 12)).astype("int32")
    y = np.roll(x, -1, axis=1)
    model = keras.Sequential([
        keras.Input((12,), dtype="int32"),
        keras.layers.Embedding(len(VOCAB), 4),
        keras.layers.LSTM(5, return_sequences=True, name="lstm"),
        keras.layers.Dense(len(VOCAB)),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    log_dir = str(tmp_path_factory.mktemp("text") / "run")
    model.fit(x, y, epochs=1, verbose=0,
              callbacks=[RNNMonitor(log_dir, probe_data=(x[:8], y[:8]), vocabulary=VOCAB, text_samples=3)])
    return log_dir, model, x[:8]


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_values_are_the_units_activation_on_the_probe_text(char_run, capsys):
    log_dir, model, x = char_run
    code, out, _ = _run(capsys, "text", log_dir, "--layer", "lstm", "--unit", "3", "--json")
    assert code == 0
    data = json.loads(out)
    h = keras.Model(model.inputs, model.get_layer("lstm").output).predict(x[:3], verbose=0)[:, :, 3]
    assert [s["index"] for s in data["sequences"]] == [0, 1, 2]
    for seq in data["sequences"]:
        assert seq["tokens"] == [VOCAB[i] for i in x[seq["index"]]]
        np.testing.assert_allclose(seq["values"], h[seq["index"]], atol=2e-3)  # stored as float16
    assert data["scale"] == pytest.approx(np.abs(h).max(), abs=2e-3)


def _cells(out):
    """(foreground, background) of each coloured cell of a 24-bit colour output."""
    found = re.findall(r"\x1b\[38;2;(\d+);(\d+);(\d+);48;2;(\d+);(\d+);(\d+)m", out)
    return [(tuple(map(int, m[:3])), tuple(map(int, m[3:]))) for m in found]


def test_colour_is_the_diverging_scale_with_readable_text(char_run, capsys, monkeypatch):
    """On a 24-bit terminal each token's background is matplotlib's RdBu_r at its logged value
    (the scale the images and the dashboard use), its text at least 4.5:1 on it."""
    log_dir, model, x = char_run
    monkeypatch.setenv("COLORTERM", "truecolor")
    code, out, _ = _run(capsys, "text", log_dir, "--layer", "lstm", "--unit", "1", "--color", "always",
                        "--sequence", "0")
    assert code == 0
    cells = _cells(out)
    assert len(cells) == 5 + x.shape[1]  # the legend's five cells, then one per token
    _, logged, _ = _run(capsys, "text", log_dir, "--layer", "lstm", "--unit", "1", "--json", "--sequence", "0")
    data = json.loads(logged)
    values = np.array(data["sequences"][0]["values"], dtype=float)
    expected = rdbu_r(0.5 + 0.5 * np.concatenate([[-1, -0.5, 0, 0.5, 1], values / data["scale"]]))
    backgrounds = np.array([bg for _, bg in cells], dtype=float)
    assert np.abs(backgrounds - expected).max() <= 1.0
    h = keras.Model(model.inputs, model.get_layer("lstm").output).predict(x[:1], verbose=0)[0, :, 1]
    strongest = int(np.argmax(np.abs(h)))  # the scale's end: ColorBrewer's darkest red or blue
    assert cells[5 + strongest][1] == ((103, 0, 31) if h[strongest] > 0 else (5, 48, 97))
    assert all(wcag_contrast(fg, bg) >= 4.5 for fg, bg in cells)
    assert "↵" in out or "\n" not in [VOCAB[i] for i in x[0]]


def test_no_color_means_plain_text_and_force_color_follows_the_terminal(char_run, capsys, monkeypatch):
    """NO_COLOR: the plain output (marker lines, no escape code); FORCE_COLOR off a terminal:
    colour, in 256 colours on a 256-colour terminal (nearest to the scale), 24-bit only where
    COLORTERM says so; --color never wins over FORCE_COLOR."""
    log_dir, _, _ = char_run
    argv = ("text", log_dir, "--layer", "lstm", "--unit", "2", "--sequence", "1")
    _, plain, _ = _run(capsys, *argv, "--color", "never")
    assert "\x1b" not in plain and "markers:" in plain
    monkeypatch.setenv("NO_COLOR", "1")
    assert _run(capsys, *argv)[1] == plain
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TERM", "xterm-256color")
    assert _run(capsys, *argv, "--color", "never")[1] == plain
    _, eight_bit, _ = _run(capsys, *argv)
    found = re.findall(r"\x1b\[38;5;(\d+);48;5;(\d+)m", eight_bit)
    assert len(found) == 5 + 12 and "38;2;" not in eight_bit and "48;2;" not in eight_bit
    monkeypatch.setenv("COLORTERM", "truecolor")
    _, true_colour, _ = _run(capsys, *argv)
    for (_, bg256), (_, bg) in zip(found, _cells(true_colour)):
        assert np.abs(np.array(xterm_256(int(bg256))) - bg).max() <= 48  # the cube's widest step


def xterm_256(index):
    """The RGB of an xterm 256-colour index from 16 on: a 6x6x6 cube, then 24 greys."""
    if index >= 232:
        return (8 + 10 * (index - 232),) * 3
    levels = (0, 95, 135, 175, 215, 255)
    i = index - 16
    return levels[i // 36], levels[i // 6 % 6], levels[i % 6]


def test_masked_steps_are_grey_with_readable_text():
    style = text_cmd.Style(colour=True)
    out = text_cmd.render(["a", "b"], np.array([np.nan, 0.0]), 1.0, style)
    (fg, bg), (_, middle) = _cells(out)
    assert bg == (221, 221, 221) and wcag_contrast(fg, bg) >= 4.5
    assert middle == (247, 247, 247)


def test_plain_output_marks_the_sign_under_each_token(capsys):
    style = text_cmd.Style(colour=False)
    out = text_cmd.render(["a", "b", "\n", "c"], np.array([0.9, -0.9, 0.0, np.nan]), 1.0, style)
    assert out.split("\n") == ["ab↵", "#=", "c", ""]


def test_errors_name_what_exists(char_run, capsys):
    log_dir, _, _ = char_run
    code, _, err = _run(capsys, "text", log_dir, "--layer", "gru", "--unit", "0")
    assert code == 2 and "no layer 'gru'" in err and "lstm" in err
    code, _, err = _run(capsys, "text", log_dir, "--layer", "lstm", "--unit", "7")
    assert code == 2 and "unit 7 of lstm was not logged; units logged: 0..4" in err
    code, _, err = _run(capsys, "text", log_dir, "--layer", "lstm", "--unit", "0", "--state", "q")
    assert code == 2 and "state 'q'" in err and "h" in err
    code, _, err = _run(capsys, "text", log_dir, "--layer", "lstm", "--unit", "0", "--sequence", "5")
    assert code == 2 and "3 probe sequence(s)" in err

"""`rnn-monitor text`: the probe text coloured by one unit, checked against the model itself."""

import json
import re

import keras
import numpy as np
import pytest

from rnn_monitor import RNNMonitor
from rnn_monitor.cli import text as text_cmd
from rnn_monitor.cli.main import main

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


def test_colour_is_diverging_white_at_zero_with_readable_text(char_run, capsys):
    log_dir, model, x = char_run
    code, out, _ = _run(capsys, "text", log_dir, "--layer", "lstm", "--unit", "1", "--color", "always",
                        "--sequence", "0")
    assert code == 0
    backgrounds = [tuple(map(int, m)) for m in re.findall(r"\x1b\[48;2;(\d+);(\d+);(\d+)m", out)]
    assert len(backgrounds) == 5 + x.shape[1]  # the legend's five cells, then one per token
    h = keras.Model(model.inputs, model.get_layer("lstm").output).predict(x[:1], verbose=0)[0, :, 1]
    strongest = int(np.argmax(np.abs(h)))
    expected = text_cmd.POSITIVE_RGB if h[strongest] > 0 else text_cmd.NEGATIVE_RGB
    assert backgrounds[5 + strongest] == expected
    assert text_cmd.diverging_rgb(0.0, 1.0) == (255, 255, 255)
    assert text_cmd.text_colour(text_cmd.POSITIVE_RGB) == (255, 255, 255)
    assert text_cmd.text_colour((255, 255, 255)) == (0, 0, 0)
    assert "↵" in out or "\n" not in [VOCAB[i] for i in x[0]]


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

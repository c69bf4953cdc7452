"""Anatomy: every kind of recurrent layer is found, named and sliced into gates as Keras lays them out."""

import keras
import numpy as np
import pytest

from rnn_monitor.model.anatomy import NoRNNLayerError, find_rnn_layers

pytestmark = pytest.mark.backends


def _build(layer, shape=(5, 3)):
    inp = keras.Input(shape)
    return keras.Model(inp, layer(inp))


def test_lstm_gate_layout_matches_keras_column_order():
    model = _build(keras.layers.LSTM(4, name="enc"))
    (info,) = find_rnn_layers(model)
    assert (info.name, info.kind, info.direction, info.units) == ("enc", "lstm", "forward", 4)
    assert info.gate_names == ("i", "f", "c", "o")
    # Keras's LSTM cell splits z = x W + h U + b into i, f, c, o along the last axis in that order.
    kernel = np.arange(3 * 16, dtype=np.float32).reshape(3, 16)
    blocks = info.gate_blocks({"kernel": kernel})
    np.testing.assert_array_equal(blocks[("kernel", "f")], kernel[:, 4:8])
    np.testing.assert_array_equal(blocks[("kernel", "o")], kernel[:, 12:16])
    assert set(info.weights) == {"kernel", "recurrent_kernel", "bias"}


@pytest.mark.parametrize("reset_after,bias_shape", [(True, (2, 9)), (False, (9,))])
def test_gru_both_bias_layouts(reset_after, bias_shape):
    model = _build(keras.layers.GRU(3, reset_after=reset_after))
    (info,) = find_rnn_layers(model)
    assert info.kind == "gru" and info.gate_names == ("z", "r", "h")
    arrays = info.weight_arrays()
    assert arrays["bias"].shape == bias_shape
    blocks = info.gate_blocks(arrays)
    # For reset_after the bias has an input row and a recurrent row; a gate keeps both.
    assert blocks[("bias", "r")].shape == bias_shape[:-1] + (3,)
    np.testing.assert_array_equal(blocks[("bias", "h")], arrays["bias"][..., 6:9])


def test_simple_rnn_and_generic_rnn_cell():
    inp = keras.Input((5, 3))
    x = keras.layers.SimpleRNN(4, return_sequences=True, name="simple")(inp)
    x = keras.layers.RNN(keras.layers.LSTMCell(2), name="generic")(x)
    infos = find_rnn_layers(keras.Model(inp, x))
    assert [(i.name, i.kind, i.gate_names) for i in infos] == [
        ("simple", "simple", ("h",)),
        ("generic", "lstm", ("i", "f", "c", "o")),
    ]


def test_bidirectional_halves_and_go_backwards():
    inp = keras.Input((5, 3))
    x = keras.layers.Bidirectional(keras.layers.GRU(2, return_sequences=True), name="bi")(inp)
    x = keras.layers.LSTM(2, go_backwards=True, name="rev")(x)
    infos = find_rnn_layers(keras.Model(inp, x))
    assert [(i.name, i.direction) for i in infos] == [
        ("bi/forward", "forward"),
        ("bi/backward", "backward"),
        ("rev", "backward"),
    ]
    assert infos[0].layer is not infos[1].layer
    assert infos[1].layer.go_backwards


def test_nested_model_layers_are_prefixed_with_the_submodel():
    inner_in = keras.Input((5, 3))
    inner = keras.Model(inner_in, keras.layers.LSTM(2, name="lstm")(inner_in), name="encoder")
    seq = keras.Sequential([keras.Input((5, 3)), inner, keras.layers.Dense(1)])
    (info,) = find_rnn_layers(seq)
    assert info.name == "encoder/lstm"


class _PeepholeCell(keras.layers.Layer):
    """A cell rnn-monitor does not know: one state, two weights."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), name="w")
        self.u = self.add_weight(shape=(self.units, self.units), name="u")

    def call(self, inputs, states):
        h = keras.ops.tanh(inputs @ self.w + states[0] @ self.u)
        return h, [h]


def test_custom_cell_is_monitored_as_one_block(caplog):
    model = _build(keras.layers.RNN(_PeepholeCell(3), name="custom"))
    with caplog.at_level("INFO", logger="rnn_monitor"):
        (info,) = find_rnn_layers(model)
    assert info.kind == "custom" and info.gate_names == ("all",)
    assert set(info.weights) == {"w", "u"}
    assert set(info.gate_blocks(info.weight_arrays())) == {("w", "all"), ("u", "all")}
    assert "does not know" in caplog.text


def test_model_without_rnn_layer_names_what_it_found():
    inp = keras.Input((5, 3))
    model = keras.Model(inp, keras.layers.Dense(1)(keras.layers.Conv1D(2, 2)(inp)))
    with pytest.raises(NoRNNLayerError, match=r"no recurrent layer.*Conv1D.*Dense"):
        find_rnn_layers(model)

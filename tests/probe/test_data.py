"""Probe data (`rnn_monitor.probe.data`): every form unpacked to numpy, cut to the last steps,
checked against the model's inputs with a message that says what to pass, and the model's own
failure on the data blamed on the data."""

import keras
import numpy as np
import pytest

from rnn_monitor.probe import data


def test_every_form_unpacks_to_numpy_with_float64_as_float32():
    x = np.arange(6, dtype=np.float64).reshape(2, 3)
    y = np.array([1, 0])
    for given, expected in ((x, (x, None, None)), ((x,), (x, None, None)), ((x, y), (x, y, None)),
                            ((x, y, y), (x, y, y))):
        got = data.unpack_probe_data(given)
        assert [None if g is None else g.tolist() for g in got] == [None if e is None else e.tolist() for e in expected]
    got_x, got_y, _ = data.unpack_probe_data(({"a": x, "b": np.array([[1, 2]])}, np.array([0.5, 1.5])))
    assert got_x["a"].dtype == np.float32 and got_x["b"].dtype == np.int64
    assert got_y.dtype == np.float32 and got_y.tolist() == [0.5, 1.5]
    _, several, _ = data.unpack_probe_data((x, [np.array([1, 2]), np.array([0.5])]))  # one array per output
    assert [a.tolist() for a in several] == [[1, 2], [0.5]] and several[1].dtype == np.float32
    listed, _, _ = data.unpack_probe_data([x, y])
    assert isinstance(listed, list) and listed[0].dtype == np.float32 and listed[1].dtype == y.dtype
    with pytest.raises(ValueError, match="got 4 items"):
        data.unpack_probe_data((x, y, y, y))
    with pytest.raises(ValueError, match="got 0 items"):
        data.unpack_probe_data(())


def test_a_dataset_gives_its_first_batch():
    tf = pytest.importorskip("tensorflow")
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    got_x, got_y, sw = data.unpack_probe_data(tf.data.Dataset.from_tensor_slices((x, x[:, 0])).batch(4))
    np.testing.assert_array_equal(got_x, x[:4])
    np.testing.assert_array_equal(got_y, x[:4, 0])
    assert sw is None
    with pytest.raises(ValueError, match="empty tf.data.Dataset"):
        data.unpack_probe_data(tf.data.Dataset.from_tensor_slices(x).take(0).batch(2))


def test_first_array_and_the_last_steps():
    a, b = np.arange(24).reshape(2, 6, 2), np.arange(12).reshape(2, 6)
    assert data.first_array({"first": a, "second": b}) is a
    assert data.first_array([b, a]) is b and data.first_array(a) is a
    labels = np.array([1, 2])
    cut = data.slice_time({"x": a, "rest": [b, labels, np.arange(10).reshape(2, 5)]}, 2, 6)
    np.testing.assert_array_equal(cut["x"], a[:, 4:])
    np.testing.assert_array_equal(cut["rest"][0], b[:, 4:])
    assert cut["rest"][1] is labels  # not a sequence: as it was
    assert cut["rest"][2].shape == (2, 5)  # another length: as it was
    assert data.slice_time(None, 2, 6) is None


def _two_inputs():
    a = keras.Input((None, 3), name="tokens")
    b = keras.Input((4,), name="extra")
    return keras.Model([a, b], keras.layers.Concatenate()([keras.layers.GRU(2)(a), b]))


def test_validate_x_matches_inputs_by_name_and_says_what_to_pass():
    model = _two_inputs()
    good = {"extra": np.zeros((2, 4)), "tokens": np.zeros((2, 7, 3))}  # any order: matched by name
    data.validate_x(good, model)
    data.validate_x([np.zeros((2, 7, 3)), np.zeros((2, 4))], model)
    with pytest.raises(ValueError, match=r"probe_data x\['extra'\] has shape \(2, 5\) but the model expects"):
        data.validate_x({"extra": np.zeros((2, 5)), "tokens": np.zeros((2, 7, 3))}, model)
    with pytest.raises(ValueError, match="has 1 input array\\(s\\) but the model takes 2"):
        data.validate_x(np.zeros((2, 7, 3)), model)
    with pytest.raises(ValueError, match="must be an array .* got str"):
        data.validate_x(["text", np.zeros((2, 4))], model)
    one = keras.Sequential([keras.Input((5, 3)), keras.layers.GRU(2)])
    with pytest.raises(ValueError, match="one sequence without its batch axis"):
        data.validate_x(np.zeros((5, 3)), one)
    with pytest.raises(ValueError) as raised:
        data.validate_x(np.zeros((2, 6, 3)), one)
    assert "batch axis" not in str(raised.value)


def test_the_data_is_blamed_only_when_the_model_itself_fails_on_it():
    model = keras.Sequential([keras.Input((4,), dtype="int32"), keras.layers.Embedding(5, 2), keras.layers.GRU(2)])
    original = RuntimeError("the monitor's own failure")
    assert data.blame_the_data(model, np.ones((2, 4), "int32"), original) is None
    with pytest.raises(data.ProbeDataError, match="the model itself fails on probe_data") as raised:
        data.blame_the_data(model, np.ones((2, 4), "int32"), original, loss=lambda p: 1 / 0)
    assert "ZeroDivisionError: division by zero" in str(raised.value) and raised.value.__cause__ is original


def test_the_gist_of_a_wrapped_error():
    message = ("Exception encountered when calling Embedding.call().\n\n"
               "\x1b[1m{{function_node __wrapped__GatherV2}} indices[0,1] = 7 is not in [0, 5)\x1b[0m\n\n"
               "Arguments received by Embedding.call():\n  • inputs=tf.Tensor(shape=(2, 4))")
    assert data._gist(ValueError(message)) == "indices[0,1] = 7 is not in [0, 5)"
    assert data._gist(KeyError()) == "KeyError"
    assert len(data._gist(ValueError("x" * 1000))) == 300

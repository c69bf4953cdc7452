"""What the probe writes each logged epoch (`rnn_monitor.probe.writes`): one layer's queued
tensors binned over time by hand, the heatmap image from the full G, tokens decoded through the
vocabulary, and the optional writes taken by priority while the byte cap allows."""

from types import SimpleNamespace

import numpy as np

from rnn_monitor.logdir import images, metadata
from rnn_monitor.probe import writes
from rnn_monitor.probe.layer_stats import LayerStats


def _stats(**arrays):
    flags = np.zeros(2, bool)
    return LayerStats(valid=np.ones((1, 5), bool), gates_ok=True, dead=flags, exploding=flags, saturated=flags,
                      **arrays)


def test_one_layers_writes_binned_over_time_with_the_activations_by_state():
    G = np.arange(10, dtype=np.float64).reshape(5, 2)
    G[1, 0] = np.nan  # a masked step is left out of its bin
    O, g, F = G + 1, np.arange(5.0), np.linspace(1, 0, 4)
    acts = {"f": np.full((1, 5, 2), 7e4), "h": np.ones((1, 5, 2)), "c": np.zeros((1, 5, 2))}
    out = _stats(G=G, O=O, g=g, F=F, activations=acts)
    essentials, optional = [], []
    writes.queue_writes(SimpleNamespace(name="lstm", kind="lstm"), out, essentials, optional, with_image=True,
                        time_bin=2)
    assert [(e[0], e[2], e[4]) for e in essentials] == [
        (metadata.TIMESTEP_GRADIENTS, "lstm", {"time_bin": 2}), (metadata.OUTPUT_GRADIENTS, "lstm", {"time_bin": 2}),
        (metadata.TIMESTEP_GRAD_NORM, "lstm", {}), (metadata.TEMPORAL_FLOW, "lstm", {})]
    np.testing.assert_allclose(essentials[0][1], [[0, 2], [5, 6], [8, 9]])  # means of steps 0-1, 2-3, 4
    np.testing.assert_allclose(essentials[1][1], [[1, 3], [6, 7], [9, 10]])
    assert all(e[1].dtype == np.float32 for e in essentials)
    labels = {label: (priority, size, item) for priority, size, item, label in optional}
    assert sorted(labels) == ["lstm c", "lstm f", "lstm h", "lstm image"]
    assert [labels[k][0] for k in ("lstm image", "lstm h", "lstm c", "lstm f")] == [0, 1, 2, 3]
    image = labels["lstm image"][2]
    assert image[:2] == ("image", "lstm/timestep_gradients")
    np.testing.assert_array_equal(image[2], writes.gradient_image(G))  # drawn from the full, unbinned G
    kind, data, layer, state = labels["lstm f"][2]
    assert (kind, layer, state, data.dtype) == (metadata.ACTIVATIONS, "lstm", "f", np.float16)
    assert np.isinf(data).all() and labels["lstm f"][1] == 10 * 2 + 300


def test_without_gradients_only_the_activations_are_queued():
    essentials, optional = [], []
    writes.queue_writes(SimpleNamespace(name="rnn", kind="simple"), _stats(activations={"h": np.ones((1, 5, 2))}),
                        essentials, optional, with_image=True)
    assert essentials == [] and [o[3] for o in optional] == ["rnn h"]


def test_the_gradient_image_averages_long_sequences_into_1024_columns():
    G = np.random.default_rng(0).random((5, 3))
    np.testing.assert_array_equal(writes.gradient_image(G), images.colorize(G.T, cmap="viridis", log=True,
                                                                            nan_rgb=images.MASKED_RGB))
    long = np.random.default_rng(1).random((2050, 2))
    long[:3] = np.nan  # the first column's steps 0-2 are masked
    columns = np.zeros((2, 1024))
    for i, steps in enumerate(np.array_split(np.arange(2050), 1024)):
        block = long[steps].T
        columns[:, i] = [np.mean(row[~np.isnan(row)]) if (~np.isnan(row)).any() else np.nan for row in block]
    got = writes.gradient_image(long)
    assert got.shape[:2] == (2, 1024)
    np.testing.assert_array_equal(got, images.colorize(columns, cmap="viridis", log=True, nan_rgb=images.MASKED_RGB))


def test_tokens_decode_through_the_vocabulary_and_ids_past_it_are_said():
    said = []
    x = np.array([[0, 1, 9], [2, 12, 3], [1, 1, 1]])
    tokens = writes.encode_tokens(x, ["a", "b", "é", "d"], 2, lambda *args: said.append(args))
    assert tokens.tolist() == [[b"a", b"b", b"<9>"], [b"\xc3\xa9", b"<12>", b"d"]]
    assert said == [("tokens-past", said[0][1], "9, 12", 4)]
    said.clear()
    assert writes.encode_tokens([x], {1: "one"}, 1, lambda *args: said.append(args)).tolist() == [[b"<0>", b"one", b"<9>"]]
    assert said[0][2:] == ("0, 2, 3, 9, 12", 1)
    said.clear()
    assert writes.encode_tokens(np.zeros((2, 3)), ["a"], 2, lambda *args: said.append(args)) is None
    assert said[0][0] == "tokens"


class _Writer:
    """Counts bytes as the real writer does: what each write adds to this step."""

    def __init__(self):
        self.bytes_this_step, self.written = 100, []

    def plugin_tensor(self, kind, data, epoch, layer=None, state=None, **extra):
        self.written.append((kind, layer, state, extra))
        self.bytes_this_step += np.asarray(data).nbytes

    def image(self, tag, rgb, epoch, description=""):
        self.written.append(("image", tag))
        self.bytes_this_step += rgb.nbytes


def test_optional_writes_by_priority_while_under_the_cap():
    writer = _Writer()
    essentials = [(metadata.TEMPORAL_FLOW, np.zeros(100, np.float32), "rnn", None, {"time_bin": 3})]  # 400 bytes
    optional = [
        (2, 300, (metadata.ACTIVATIONS, np.zeros(150, np.float16), "rnn", "c"), "rnn c"),
        (0, 100, [(metadata.TOKENS, np.zeros(25, np.float32), None, None)], "tokens"),
        (1, 50, ("image", "rnn/timestep_gradients", np.zeros((2, 2, 3), np.uint8), "d"), "rnn image"),
        (3, 10, (metadata.ACTIVATIONS, np.zeros(5, np.float16), "rnn", "i"), "rnn i"),
    ]
    skipped, wrote_tokens = writes.write_within_cap(writer, 4, essentials, optional, cap=600, start_bytes=100)
    # 400 essential; +100 tokens = 500; +50 (estimate; 12 written) fits; c: 512 + 300 > 600; i fits
    assert skipped == ["rnn c"] and wrote_tokens
    assert writer.written == [(metadata.TEMPORAL_FLOW, "rnn", None, {"time_bin": 3}), (metadata.TOKENS, None, None, {}),
                              ("image", "rnn/timestep_gradients"), (metadata.ACTIVATIONS, "rnn", "i", {})]
    writer = _Writer()
    skipped, wrote_tokens = writes.write_within_cap(writer, 4, essentials, optional[2:], cap=None, start_bytes=100)
    assert skipped == [] and not wrote_tokens and len(writer.written) == 3

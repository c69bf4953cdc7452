"""The log's on-disk contract (`rnn_monitor.logdir.metadata`): tag names, plugin metadata
written and parsed, scalar tags split by layer names, text decoding, unit ids and the dense
average input, against values written out by hand."""

import json

import numpy as np
import pytest
from tensorboard.compat.proto import summary_pb2

from rnn_monitor.logdir import metadata


def test_tags_are_laid_out_as_the_reference_says():
    assert metadata.plugin_tag("manifest") == "_rnn_monitor/manifest"
    assert metadata.plugin_tag("timestep_gradients", "bi/forward") == "bi/forward/_rnn_monitor/timestep_gradients"
    assert metadata.plugin_tag("activations", "lstm", "c") == "lstm/_rnn_monitor/activations/c"
    assert metadata.scalar_tag("lstm", "dead_ratio") == "lstm/dead_ratio"
    assert metadata.run_scalar_tag("loss_ratio") == "_run/loss_ratio"
    assert metadata.gate_scalar_name("recurrent_kernel", "f", "l2") == "recurrent_kernel/f/l2"
    assert not set(metadata.LAYER_KINDS) & set(metadata.RUN_KINDS)


def test_summary_metadata_is_a_tensor_with_json_content_that_parses_back():
    meta = metadata.create_summary_metadata("activations", "lstm", "h", units=[2, 0])
    assert meta.plugin_data.plugin_name == "rnn_monitor"
    assert meta.data_class == summary_pb2.DATA_CLASS_TENSOR
    content = meta.plugin_data.content
    assert json.loads(content) == {"version": 1, "kind": "activations", "layer": "lstm", "state": "h", "units": [2, 0]}
    assert metadata.parse_plugin_content(content)["units"] == [2, 0]
    run_wide = metadata.create_summary_metadata("tokens")
    assert json.loads(run_wide.plugin_data.content) == {"version": 1, "kind": "tokens"}


def test_plugin_content_that_is_not_ours_or_too_new_is_refused():
    assert metadata.parse_plugin_content(b'{"kind": "x"}') == {"kind": "x"}  # version 0: old logs
    with pytest.raises(TypeError):
        metadata.parse_plugin_content('{"kind": "x"}')
    for content in (b"\xff", b"{", b"[1]", b'{"version": 1}'):
        with pytest.raises(ValueError, match="not rnn_monitor plugin content"):
            metadata.parse_plugin_content(content)
    with pytest.raises(ValueError, match="content version 2.*upgrade"):
        metadata.parse_plugin_content(b'{"version": 2, "kind": "x"}')


def test_scalar_tags_split_at_the_longest_known_layer_name():
    layers = ["bi", "bi/forward", "encoder/lstm"]
    assert metadata.split_scalar_tag("bi/forward/dead_ratio", layers) == ("bi/forward", "dead_ratio")
    assert metadata.split_scalar_tag("bi/dead_ratio", layers) == ("bi", "dead_ratio")
    assert metadata.split_scalar_tag("encoder/lstm/kernel/i/l2", layers) == ("encoder/lstm", "kernel/i/l2")
    assert metadata.split_scalar_tag("bias/x", layers) is None  # "bi" is not a prefix of "bias/"
    assert metadata.split_scalar_tag("bi", layers) is None


def test_text_is_decoded_from_every_form_the_log_gives_it_back_in():
    from tensorboard.compat.proto import tensor_pb2

    assert metadata.decode_text(b"caf\xc3\xa9") == "café"
    assert metadata.decode_text(np.array(b"scalar")) == "scalar"
    assert metadata.decode_text(np.array([[b"first", b"second"]])) == "first"
    assert metadata.decode_text(tensor_pb2.TensorProto(string_val=[b"proto", b"x"])) == "proto"
    assert metadata.decode_text(b"\xff") == "\ufffd"
    assert metadata.decode_text(7) == "7"


def test_activation_unit_ids_keep_the_chosen_units_within_the_layer():
    manifest = {"probe": {"units": [5, 0, 9]}, "layers": [{"name": "lstm", "units": 8}, {"name": "gru", "units": 16}]}
    assert metadata.activation_unit_ids(manifest, "lstm", 2) == [5, 0]  # 9 is past the layer's 8
    assert metadata.activation_unit_ids(manifest, "gru", 3) == [5, 0, 9]
    assert metadata.activation_unit_ids(manifest, "lstm", 3) == [0, 1, 2]  # columns disagree: all
    assert metadata.activation_unit_ids({"probe": {"units": None}}, "lstm", 4) == [0, 1, 2, 3]
    assert metadata.activation_unit_ids({"probe": "odd", "layers": ["odd"]}, "lstm", 2) == [0, 1]
    assert metadata.activation_unit_ids({"probe": {"units": [1, -1]}}, "x", 1) == [1]


def test_dense_average_input_scatters_the_top_k_into_zeros():
    rng = np.random.default_rng(0)
    values = rng.random((3, 2, 4)).astype(np.float16)
    ids = np.stack([rng.permutation(10)[:4] for _ in range(6)]).reshape(3, 2, 4)
    dense = metadata.dense_average_input(values, ids, depth=12)
    expected = np.zeros((3, 2, 12), np.float32)
    for u in range(3):
        for w in range(2):
            for k in range(4):
                expected[u, w, ids[u, w, k]] = values[u, w, k]
    assert dense.dtype == np.float32
    np.testing.assert_array_equal(dense, expected)
    np.testing.assert_array_equal(metadata.dense_average_input(values, ids), expected[:, :, : ids.max() + 1])
    np.testing.assert_array_equal(metadata.dense_average_input(values), values.astype(np.float32))

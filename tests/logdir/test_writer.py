"""Plugin tensors are written as packed little-endian content for every numeric type, and read
back with the same shape, type and values (TensorBoard's own `make_tensor_proto` writes float16,
uint16, uint32 and bool one value at a time)."""

import numpy as np
import pytest
from tensorboard.util import tensor_util

from rnn_monitor.logdir.writer import SummaryWriter, packed_proto


@pytest.mark.parametrize("array", [
    np.arange(6, dtype=np.uint16).reshape(2, 3),
    np.array([1.5, -2.0, np.nan], np.float16),
    np.array(True),
    np.array([True, False]),
    np.arange(4, dtype=np.uint32),
    np.arange(3, dtype=">f4"),  # big-endian input
    np.array(2.5),
    np.arange(12.0).reshape(3, 4).T,  # not C-contiguous
])
def test_packed_proto_round_trips(array):
    proto = packed_proto(array)
    assert proto.tensor_content and not proto.int_val and not proto.half_val
    back = tensor_util.make_ndarray(proto)
    assert back.shape == array.shape and back.dtype == array.dtype.newbyteorder("=")
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize("data, buckets", [
    (np.random.default_rng(0).normal(size=(128, 512)), 30),
    (np.random.default_rng(1).uniform(-1, 1, size=1000).astype(np.float32), 7),
    (np.array([0.25] * 9), 30),  # one value: all in the last bucket
    (np.array([]), 30),
    (np.array([-1.0, 0.0, 1.0]), 2),  # the maximum in the last bucket, not past it
    (np.array([3.0]), 0),
])
def test_histogram_buckets_equal_tensorboards(data, buckets):
    from tensorboard.plugins.histogram.summary_v2 import histogram_pb

    from rnn_monitor.logdir.writer import histogram_buckets

    theirs = tensor_util.make_ndarray(histogram_pb("t", data, buckets=buckets).value[0].tensor)
    ours = histogram_buckets(data, buckets)
    assert ours.dtype == np.float64 and ours.shape == theirs.shape == (buckets, 3)
    np.testing.assert_array_equal(ours, theirs)


def test_histogram_is_read_by_tensorboards_histogram_plugin(tmp_path):
    """The event holds what TensorBoard's histogram dashboard reads: its plugin name and the
    [buckets, 3] tensor."""
    from tensorboard.backend.event_processing import event_accumulator

    from rnn_monitor.logdir.writer import SummaryWriter

    writer = SummaryWriter(str(tmp_path))
    writer.histogram("layer/kernel/i", np.array([1.0, 2.0, np.inf, 4.0]), 3)
    writer.close()
    acc = event_accumulator.EventAccumulator(str(tmp_path), size_guidance={"tensors": 0})
    acc.Reload()
    (event,) = acc.Tensors("layer/kernel/i")
    assert event.step == 3
    assert acc.PluginTagToContent("histograms") and "layer/kernel/i" in acc.PluginTagToContent("histograms")
    table = tensor_util.make_ndarray(event.tensor_proto)
    assert table.shape == (30, 3) and table[:, 2].sum() == 3  # the Inf is not in it
    assert table[0, 0] == 1.0 and table[-1, 1] == 4.0


@pytest.mark.parametrize("value", [0.0, -1.5, 1 / 3, 1e-42, 3.5e38, 1e300, float("nan"), float("inf"), -float("inf"), 7])
def test_scalar_is_tensorboards_scalar_pb(tmp_path, value):
    from tensorboard.plugins.scalar import summary_v2 as scalar_summary

    writer = SummaryWriter(str(tmp_path))
    written = []
    writer._add = lambda summary_value, step: written.append(summary_value)
    writer.scalar("a/b", value, 3)
    expected = scalar_summary.scalar_pb("a/b", value).value[0]
    assert written[0].SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True)

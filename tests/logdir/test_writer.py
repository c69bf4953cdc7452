"""Plugin tensors are written as packed little-endian content for every numeric type, and read
back with the same shape, type and values (TensorBoard's own `make_tensor_proto` writes float16,
uint16, uint32 and bool one value at a time)."""

import numpy as np
import pytest
from tensorboard.util import tensor_util

from rnn_monitor.logdir.writer import packed_proto


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

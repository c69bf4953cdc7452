"""Writes TensorBoard event files: standard scalars, histograms, images, text, plugin tensors.

Built on TensorBoard's own protobuf helpers (and `event_file.EventFile`, TensorBoard's record
format with checksums in C) rather than `tf.summary`:
the bytes on disk are the same (tensor-based summaries with the stock plugins' metadata), but
writing needs no TensorFlow graph or default writer, so it never interferes with Keras's own
`TensorBoard` callback, costs microseconds per value, and works the same under
`tf.distribute`. Events are flushed at the end of every logged epoch so that nothing already
logged is lost if training dies later; a full disk or a removed log directory costs the epochs
it lasts and is said in one line (`rnn_monitor.logdir.recovery`).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Optional

import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2
from tensorboard.compat.tensorflow_stub import dtypes as tf_dtypes
from tensorboard.plugins.histogram import metadata as histogram_metadata
from tensorboard.plugins.image import metadata as image_metadata
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorboard.plugins.text import summary_v2 as text_summary
from tensorboard.util import tensor_util

from rnn_monitor.logdir import images, metadata
from rnn_monitor.logdir.recovery import RecoveringEventFile


_DT_FLOAT = tf_dtypes.float32.as_datatype_enum
_SCALAR_SHAPE = tensor_shape_pb2.TensorShapeProto()
_SCALAR_METADATA = scalar_metadata.create_summary_metadata(display_name=None, description=None)


class SummaryWriter:
    """One event file in `logdir`; every method takes the TensorBoard step (the Keras epoch)."""

    def __init__(self, logdir: str) -> None:
        self.logdir = logdir
        self._writer = RecoveringEventFile(logdir)
        self.bytes_this_step = 0
        self._flusher: Optional[threading.Thread] = None
        self._flush_error: Optional[Exception] = None

    def _add(self, value: summary_pb2.Summary.Value, step: int, header: bool = False) -> None:
        summary = summary_pb2.Summary(value=[value])
        event = event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary)
        self.bytes_this_step += event.ByteSize()
        if header:
            self._writer.set_header(event)
        else:
            self._writer.add(event)

    def scalar(self, tag: str, value: float, step: int) -> None:
        """A standard scalar, the bytes of TensorBoard's `scalar_pb` (a float32 tensor with
        the scalars plugin's metadata), built directly: a hundred or so per epoch, and
        `scalar_pb` spends most of its 0.1 ms each on `make_tensor_proto`."""
        tensor = tensor_pb2.TensorProto(dtype=_DT_FLOAT, tensor_shape=_SCALAR_SHAPE, float_val=[float(value)])
        self._add(summary_pb2.Summary.Value(tag=tag, metadata=_SCALAR_METADATA, tensor=tensor), step)

    def histogram(self, tag: str, values: np.ndarray, step: int, buckets: int = 30) -> None:
        """Histogram of the finite entries (non-finite ones are counted elsewhere), in the
        format of TensorBoard's `histogram_pb`."""
        data = np.asarray(values, dtype=np.float64).ravel()
        data = data[np.isfinite(data)]
        md = histogram_metadata.create_summary_metadata(display_name=None, description=None)
        tensor = packed_proto(histogram_buckets(data, buckets))
        self._add(summary_pb2.Summary.Value(tag=tag, metadata=md, tensor=tensor), step)

    def image(self, tag: str, rgb: np.ndarray, step: int, description: str = "") -> None:
        """A standard TensorBoard image from a uint8 RGB heatmap [H, W, 3], enlarged for display
        (`images.display_png`)."""
        png, height, width = images.display_png(rgb)
        tensor = tensor_util.make_tensor_proto(
            np.array([str(width).encode(), str(height).encode(), png], dtype=object)
        )
        md = image_metadata.create_summary_metadata(display_name=tag, description=description)
        md.data_class = summary_pb2.DATA_CLASS_BLOB_SEQUENCE
        self._add(summary_pb2.Summary.Value(tag=tag, metadata=md, tensor=tensor), step)

    def text(self, tag: str, text: str, step: int) -> None:
        self._add(text_summary.text_pb(tag, text).value[0], step)

    def plugin_tensor(
        self,
        kind: str,
        data: Any,
        step: int,
        layer: Optional[str] = None,
        state: Optional[str] = None,
        **extra: Any,
    ) -> None:
        """A tensor for the RNN Monitor dashboard (see `metadata` for tags and layout). The
        manifest starts every event file of the run (a new one follows a fault of the disk)."""
        md = metadata.create_summary_metadata(kind, layer=layer, state=state, **extra)
        tag = metadata.plugin_tag(kind, layer=layer, state=state)
        if isinstance(data, np.ndarray) and data.dtype.kind in "fiub" and data.dtype.itemsize <= 8:
            tensor = packed_proto(data)
        else:
            tensor = tensor_util.make_tensor_proto(data)
        self._add(summary_pb2.Summary.Value(tag=tag, metadata=md, tensor=tensor), step,
                  header=kind == metadata.MANIFEST)

    def json_tensor(self, kind: str, payload: Any, step: int, layer: Optional[str] = None) -> None:
        """A string scalar holding JSON (manifest, alerts); NaN/Inf numbers are written as null
        (strict JSON has no NaN, and a diverged model produces them)."""
        text = json.dumps(_finite_or_null(payload), allow_nan=False, default=_json_default)
        self.plugin_tensor(kind, np.array(text.encode("utf-8"), dtype=object), step, layer=layer)

    def flush(self, wait: bool = True) -> None:
        """Put everything written so far on disk.

        With ``wait=False`` the disk write runs on a background thread, so training goes on
        meanwhile (it is ~0.1 s an epoch for the reference model); the next flush or close
        waits for it first and raises what it raised.
        """
        self._join_flush()
        if wait:
            self._writer.flush()
            return
        self._flusher = threading.Thread(target=self._background_flush, name="rnn_monitor-flush", daemon=True)
        self._flusher.start()

    def _background_flush(self) -> None:
        try:
            self._writer.flush()
        except Exception as exc:  # reported by the next flush, inside the callback's guard
            self._flush_error = exc

    def _join_flush(self) -> None:
        if self._flusher is not None:
            self._flusher.join()
            self._flusher = None
        error, self._flush_error = self._flush_error, None
        if error is not None:
            raise error

    def finish(self) -> None:
        """Flush at the end of training; if the log could not be written until then, say
        which epochs it lacks."""
        self._join_flush()
        self._writer.finish()

    def close(self) -> None:
        self._join_flush()
        self._writer.close()


def packed_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    """A numeric TensorProto with packed little-endian content (``tensor_content``).

    TensorBoard's `make_tensor_proto` writes float16, uint16, uint32 and bool one value at a
    time into ``half_val`` / ``int_val`` (slow to write and to read back, and about twice the
    bytes; 50 ms an epoch for the reference model's uint16 top tokens); `make_ndarray` reads
    packed content of every type the same way.
    """
    data = np.asarray(array)  # (np.ascontiguousarray would make a scalar 1-d)
    data = data.astype(data.dtype.newbyteorder("<"), order="C", copy=False)
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(n)) for n in data.shape]
    )
    dtype = tf_dtypes.as_dtype(data.dtype).as_datatype_enum
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape, tensor_content=data.tobytes())


def histogram_buckets(data: np.ndarray, buckets: int = 30) -> np.ndarray:
    """[buckets, 3] (left edge, right edge, count) float64: the buckets of TensorBoard's
    `histogram_pb` (equal widths from min to max, the maximum in the last bucket, all in the
    last bucket when every value is the same), counted with `np.bincount` instead of its
    [N, buckets] one-hot matrix (25 ms an epoch for the reference model's 24 gate blocks)."""
    data = np.asarray(data, dtype=np.float64).ravel()
    if buckets == 0 or data.size == 0:
        return np.zeros((buckets, 3))
    low, high = data.min(), data.max()
    spread = high - low
    if spread == 0:
        counts = np.zeros(buckets)
        counts[-1] = data.size
        return np.stack([np.full(buckets, low), np.full(buckets, low), counts], axis=1)
    index = np.minimum(np.floor((data - low) / (spread / buckets)).astype(int), buckets - 1)
    edges = np.linspace(low, high, buckets + 1)
    return np.stack([edges[:-1], edges[1:], np.bincount(index, minlength=buckets)], axis=1).astype(np.float64)


def _finite_or_null(value: Any) -> Any:
    """`value` with every non-finite float (Python or numpy, in lists, tuples, dicts) as None."""
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_null(v) for v in value]
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return [_finite_or_null(v) for v in value.tolist()]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")

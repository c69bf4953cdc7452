"""The event file writer: TensorBoard's record format with checksums from C, read back by
TensorBoard's own checksum-verifying reader (and checked against its pure-Python CRC)."""

import os
import threading

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.compat.tensorflow_stub import pywrap_tensorflow

from rnn_monitor.logdir import event_file


def test_masked_crc_matches_tensorboards():
    for data in (b"", b"a", os.urandom(1000), bytes(range(256)) * 7):
        assert event_file.masked_crc32c(data) == pywrap_tensorflow.masked_crc32c(data)


def test_events_read_back_by_tensorboards_verifying_reader(tmp_path):
    writer = event_file.EventFile(str(tmp_path))
    assert os.path.basename(writer.path).startswith("events.out.tfevents.")

    def add(lo, hi):
        for step in range(lo, hi):
            value = summary_pb2.Summary.Value(tag="x", simple_value=float(step))
            writer.add(event_pb2.Event(step=step, summary=summary_pb2.Summary(value=[value])))

    add(0, 50)
    flusher = threading.Thread(target=writer.flush)  # a background flush while more is added
    flusher.start()
    add(50, 100)
    flusher.join()
    writer.close()
    reader = pywrap_tensorflow.PyRecordReader_New(writer.path)
    events = []
    while True:
        try:
            reader.GetNext()  # raises DataLossError on a wrong checksum
        except Exception as exc:
            assert type(exc).__name__ == "OutOfRangeError", exc
            break
        events.append(event_pb2.Event.FromString(reader.record()))
    assert events[0].file_version == "brain.Event:2"
    assert [e.step for e in events[1:]] == list(range(100))
    assert [e.summary.value[0].simple_value for e in events[1:]] == [float(s) for s in range(100)]

"""Reading event files (`rnn_monitor.logdir.events`): records framed here by hand with
TensorBoard's own masked CRC, read back whole, up to a torn last record, past a damaged one."""

import os
import struct

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

from rnn_monitor.logdir.events import event_files, read_events, read_records


def _frame(data: bytes) -> bytes:
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data))


def _event(step: int, value: float) -> bytes:
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="x", simple_value=value)])
    return event_pb2.Event(step=step, summary=summary).SerializeToString()


def test_event_files_are_the_tfevents_files_in_name_order(tmp_path):
    for name in ("events.out.tfevents.200.host", "events.out.tfevents.100.host", "notes.txt", "x.tfevents.300"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "events.out.tfevents.50.host").write_bytes(b"")
    assert event_files(str(tmp_path)) == [
        os.path.join(str(tmp_path), name)
        for name in ("events.out.tfevents.100.host", "events.out.tfevents.200.host", "x.tfevents.300")
    ]
    assert event_files(str(tmp_path / "missing")) == []


def test_records_come_back_as_written_and_a_torn_last_one_ends_the_file(tmp_path):
    payloads = [b"", b"a", bytes(range(256)), b"z" * 5000]
    whole = b"".join(_frame(p) for p in payloads)
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(whole)
    assert list(read_records(str(path))) == payloads
    last = len(_frame(payloads[-1]))
    for cut in (1, 4, 5, last - 12, last - 1):  # inside the footer, the data, the header
        path.write_bytes(whole[: len(whole) - cut])
        assert list(read_records(str(path))) == payloads[:-1], cut
    path.write_bytes(whole[:11])  # not even one header
    assert list(read_records(str(path))) == []


def test_events_are_parsed_and_a_damaged_record_is_skipped(tmp_path):
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(_frame(_event(0, 0.5)) + _frame(b"\xff\xff\xff not a proto") + _frame(_event(3, -2.0)))
    events = list(read_events(str(path)))
    assert [(e.step, e.summary.value[0].simple_value) for e in events] == [(0, 0.5), (3, -2.0)]

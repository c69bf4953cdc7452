"""Read TensorBoard event files without TensorFlow: TFRecord framing + Event protos.

A record is ``uint64 length | uint32 crc(length) | data | uint32 crc(data)``. A truncated last
record (a writer still at work, or a run that died mid-write) ends the file quietly: everything
written before it is kept.
"""

from __future__ import annotations

import glob
import os
import struct
from typing import Iterator

from tensorboard.compat.proto import event_pb2


def event_files(run_dir: str) -> list[str]:
    """Event files of one run directory, oldest first (names start with a timestamp)."""
    return sorted(glob.glob(os.path.join(run_dir, "*tfevents*")))


def read_records(path: str) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while True:
            header = handle.read(12)
            if len(header) < 12:
                return
            (length,) = struct.unpack("<Q", header[:8])
            data = handle.read(length)
            footer = handle.read(4)
            if len(data) < length or len(footer) < 4:
                return
            yield data


def read_events(path: str) -> Iterator[event_pb2.Event]:
    for data in read_records(path):
        try:
            yield event_pb2.Event.FromString(data)
        except Exception:  # a damaged record: skip it, keep the rest
            continue

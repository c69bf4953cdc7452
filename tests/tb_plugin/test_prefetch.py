"""tb_plugin/prefetch.py: which series are read ahead, and the one thread that reads them."""

from __future__ import annotations

import threading
import time

import numpy as np

from rnn_monitor.logdir import metadata
from tb_plugin.data_source import LayerIndex, RunIndex
from tb_plugin.prefetch import MAX_TARGETS, ReadAhead, prefetch_targets


def _two_runs(tiny_log):
    """Run a: manifest order [gru (no data), lstm, extra]; lstm and extra have G, F, h, c; tokens.
    Run b: one layer with only activations (f, c), no tokens."""
    tiny_log.manifest([{"name": "gru"}, {"name": "lstm"}, {"name": "extra"}], run="a")
    tiny_log.tokens(metadata.TOKENS, [list("ab")], 0, run="a")
    for layer in ("lstm", "extra"):
        tiny_log.tensor(metadata.TIMESTEP_GRADIENTS, np.ones((2, 3), np.float32), 0, layer=layer, run="a")
        tiny_log.tensor(metadata.TEMPORAL_FLOW, np.ones(2, np.float32), 0, layer=layer, run="a")
        for state in ("c", "h"):
            tiny_log.tensor(metadata.ACTIVATIONS, np.ones((1, 2, 3), np.float16), 0, layer=layer, state=state, run="a")
    tiny_log.manifest([{"name": "bi/forward"}], run="b")
    for state in ("f", "c"):
        tiny_log.tensor(metadata.ACTIVATIONS, np.ones((1, 2, 3), np.float16), 0, layer="bi/forward", state=state,
                        run="b")
    return tiny_log.source()


def _named(targets):
    return [(run.run, tag) for run, tag in targets]


def test_after_runs_each_runs_first_layer_with_data(tiny_log):
    src = _two_runs(tiny_log)
    assert _named(prefetch_targets(src)) == [
        ("a", "lstm/_rnn_monitor/timestep_gradients"), ("a", "lstm/_rnn_monitor/temporal_flow"),
        ("a", "_rnn_monitor/tokens"), ("a", "lstm/_rnn_monitor/activations/h"),
        ("b", "bi/forward/_rnn_monitor/activations/c"),  # no h: the first state by name
    ]


def test_after_gradients_the_named_layer_of_the_named_run(tiny_log):
    src = _two_runs(tiny_log)
    assert _named(prefetch_targets(src, "a", "extra")) == [
        ("a", "extra/_rnn_monitor/timestep_gradients"), ("a", "extra/_rnn_monitor/temporal_flow"),
        ("a", "_rnn_monitor/tokens"), ("a", "extra/_rnn_monitor/activations/h"),
    ]
    assert prefetch_targets(src, "a", "gru") == [] and prefetch_targets(src, "nope", "lstm") == []


class _FakeSource:
    """Many runs of one layer each; `series` records what is read and can be held back."""

    def __init__(self, n_runs: int) -> None:
        layer = LayerIndex("l", kinds={metadata.TIMESTEP_GRADIENTS: "G", metadata.TEMPORAL_FLOW: "F"},
                           states={"h": "H"})
        self.runs = {f"r{i}": RunIndex(f"r{i}", layers={"l": layer}) for i in range(n_runs)}
        self.read: list[tuple[str, str]] = []
        self.hold = threading.Event()
        self.hold.set()

    def index(self):
        return self.runs

    def manifest(self, run):
        return {"layers": [{"name": "l"}]}

    def series(self, run, tag):
        self.hold.wait(10)
        self.read.append((run.run, tag))


def _wait(read_ahead: ReadAhead) -> None:
    deadline = time.time() + 10
    while read_ahead.busy and time.time() < deadline:
        time.sleep(0.01)
    assert not read_ahead.busy


def test_at_most_eight_series_are_read_ahead():
    src = _FakeSource(4)
    read_ahead = ReadAhead()
    read_ahead.request(src)
    _wait(read_ahead)
    assert src.read == [(f"r{i}", tag) for i in range(3) for tag in ("G", "F", "H")][:MAX_TARGETS]


def test_a_layer_asked_for_while_reading_is_read_next_and_a_runs_request_is_dropped():
    src = _FakeSource(2)
    src.hold.clear()
    read_ahead = ReadAhead()
    read_ahead.request(src, "r0", "l")
    read_ahead.request(src)  # dropped: a read is under way
    read_ahead.request(src, "r0", "nope")  # replaced by the next layer request
    read_ahead.request(src, "r1", "l")
    assert read_ahead.busy
    src.hold.set()
    _wait(read_ahead)
    assert src.read == [("r0", "G"), ("r0", "F"), ("r0", "H"), ("r1", "G"), ("r1", "F"), ("r1", "H")]


def test_a_failing_read_only_stops_that_read_ahead():
    src = _FakeSource(1)
    recording = src.series
    src.series = lambda run, tag: 1 / 0
    read_ahead = ReadAhead()
    read_ahead.request(src)
    _wait(read_ahead)
    src.series = recording
    read_ahead.request(src, "r0", "l")  # the thread is free again
    _wait(read_ahead)
    assert src.read == [("r0", "G"), ("r0", "F"), ("r0", "H")]

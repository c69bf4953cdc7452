"""Fixtures of the loop tests in this folder."""

from __future__ import annotations

import functools

import pytest


@pytest.fixture
def probe_settings(monkeypatch):
    """``probe_settings(**options)``: every `Prober` built from then on in this test (the one an
    `RNNMonitor` builds too) runs TensorFlow's loop with these `LoopOptions` (``segment_steps``,
    ``hand_written_reverse``, ``segments_in_flight``); a later call replaces the earlier one's."""
    from rnn_monitor.probe import graph

    real = graph.Prober

    def apply(**options):
        monkeypatch.setattr(graph, "Prober", functools.partial(real, loop=graph.LoopOptions(**options)))

    return apply

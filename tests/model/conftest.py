"""Fixtures of the loop tests in this folder."""

from __future__ import annotations

import functools

import pytest


@pytest.fixture
def probe_settings(monkeypatch):
    """``probe_settings(**settings)``: every `Prober` built from then on in this test (the one an
    `RNNMonitor` builds too) gets these `ProbeSettings` (``segment_steps``,
    ``hand_written_reverse``); a later call replaces the earlier one's."""
    from rnn_monitor.probe import graph

    real = graph.Prober

    def apply(**settings):
        monkeypatch.setattr(graph, "Prober", functools.partial(real, **settings))

    return apply

"""Small logs written by a test, read as the plugin reads them: `tiny_log` writes plugin tensors,
JSON records and scalars with the callback's own `SummaryWriter`, and its `source()` is a
`tb_plugin.data_source.Source` over TensorBoard's data provider (the Python loader, every tensor
kept), the argument every ``*_impl`` function of `tb_plugin.responses` takes."""

from __future__ import annotations

import os
from typing import Any, Optional

import numpy as np
import pytest
from tensorboard import context
from tensorboard.backend.event_processing import data_ingester
from tensorboard.backend.event_processing import data_provider as mux_provider
from tensorboard.backend.event_processing import plugin_event_multiplexer as pem

from rnn_monitor.logdir import metadata
from rnn_monitor.logdir.writer import SummaryWriter
from tb_plugin.cache import SeriesCache
from tb_plugin.data_source import Source

RUN = metadata.RUN_SUBDIR


class TinyLog:
    """A log directory the test writes, one writer per run (``rnn_monitor`` unless named)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._writers: dict[str, SummaryWriter] = {}

    def writer(self, run: str = RUN) -> SummaryWriter:
        if run not in self._writers:
            self._writers[run] = SummaryWriter(os.path.join(self.root, run))
        return self._writers[run]

    def manifest(self, layers: list[dict], run: str = RUN, **fields: Any) -> None:
        self.writer(run).json_tensor(metadata.MANIFEST, {"layers": layers, **fields}, 0)

    def tensor(self, kind: str, data: Any, step: int, layer: Optional[str] = None, state: Optional[str] = None,
               run: str = RUN, **extra: Any) -> None:
        self.writer(run).plugin_tensor(kind, data, step, layer=layer, state=state, **extra)

    def tokens(self, kind: str, tokens: list, step: int, run: str = RUN) -> None:
        """Text tokens (nested lists of str) as the callback writes them: UTF-8 bytes."""
        data = np.vectorize(lambda t: t.encode("utf-8"), otypes=[object])(np.array(tokens, dtype=object))
        self.tensor(kind, data, step, run=run)

    def records(self, kind: str, records: Any, step: int, run: str = RUN) -> None:
        self.writer(run).json_tensor(kind, records, step)

    def scalar(self, layer: str, name: str, value: float, step: int, run: str = RUN) -> None:
        self.writer(run).scalar(metadata.scalar_tag(layer, name), value, step)

    def source(self, samples: int = 0) -> Source:
        """The log as the plugin sees it; `samples` tensors kept per series (0: all)."""
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
        mux = pem.EventMultiplexer(
            size_guidance=data_ingester.DEFAULT_SIZE_GUIDANCE,
            tensor_size_guidance=dict(data_ingester.DEFAULT_TENSOR_SIZE_GUIDANCE, **{metadata.PLUGIN_NAME: samples}),
        )
        mux.AddRunsFromDirectory(self.root)
        mux.Reload()
        provider = mux_provider.MultiplexerDataProvider(mux, self.root)
        return Source(provider, context.RequestContext(), "", SeriesCache(), samples)


@pytest.fixture
def tiny_log(tmp_path) -> TinyLog:
    return TinyLog(str(tmp_path))

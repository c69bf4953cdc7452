"""Reading ahead: which series the page will ask for next (`prefetch_targets`, the policy) and
the one background thread that reads them into the cache (`ReadAhead`)."""

from __future__ import annotations

import logging
import threading
from typing import Optional

from rnn_monitor.logdir import metadata
from tb_plugin.data_source import LayerIndex, RunIndex, Source
from tb_plugin.lookup import default_state, manifest_layer_names

logger = logging.getLogger(__name__)

MAX_TARGETS = 8


def prefetch_targets(src: Source, run_name: Optional[str] = None,
                     layer_name: Optional[str] = None) -> list[tuple[RunIndex, str]]:
    """Series the page will ask for next, to read ahead in the background.

    For one layer (after ``/gradients`` named it), or for the first layer of each run (after
    ``/runs``): G (the per-unit heatmap), F, the first activation state and the tokens.
    """
    out = []
    for name, run in sorted(src.index().items()):
        if run_name is not None and name != run_name:
            continue
        chosen = _layer_to_read(src, run, layer_name)
        if chosen is not None:
            out += [(run, tag) for tag in _layer_targets(run, run.layers[chosen])]
    return out[:MAX_TARGETS]


def _layer_to_read(src: Source, run: RunIndex, layer_name: Optional[str]) -> Optional[str]:
    """`layer_name` when the run has it; without one, the run's first layer with data."""
    if layer_name is not None:
        return layer_name if layer_name in run.layers else None
    order = manifest_layer_names(src.manifest(run) or {})
    return next((n for n in order if n in run.layers), None)


def _layer_targets(run: RunIndex, layer: LayerIndex) -> list[str]:
    """The tags the gradient and text views read first for `layer`."""
    tags = [layer.kinds[kind] for kind in (metadata.TIMESTEP_GRADIENTS, metadata.TEMPORAL_FLOW)
            if kind in layer.kinds]
    if metadata.TOKENS in run.run_kinds:
        tags.append(run.run_kinds[metadata.TOKENS])
    if layer.states:
        tags.append(layer.states[default_state(layer.states)])
    return tags


class ReadAhead:
    """Reads `prefetch_targets` in one background thread, so the page's next requests find
    their series decoded.

    Decoding a long float16 series costs the data provider up to a second or so; reading it
    while the user looks at the first heatmap hides that. A request for a series being read
    waits for that read instead of starting another (`SeriesCache.loading`).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._next: Optional[tuple] = None

    @property
    def busy(self) -> bool:
        """Whether a read-ahead is under way (or queued)."""
        return self._thread is not None

    def request(self, src: Source, run: Optional[str] = None, layer: Optional[str] = None) -> None:
        """Read ahead for `layer` of `run` (for every run's first layer without them). While a
        read is under way a request for a layer runs after it (the latest such request wins); a
        request without one is dropped."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                if layer is not None:
                    self._next = (src, run, layer)
                return
            self._thread = threading.Thread(target=self._work, args=(src, run, layer),
                                            name="rnn_monitor-prefetch", daemon=True)
            self._thread.start()

    def _work(self, src: Source, run: Optional[str], layer: Optional[str]) -> None:
        while True:
            try:
                for run_index, tag in prefetch_targets(src, run, layer):
                    src.series(run_index, tag)
            except Exception:  # a prefetch failure only costs speed
                logger.debug("rnn_monitor plugin: prefetch failed", exc_info=True)
            with self._lock:
                if self._next is None:
                    self._thread = None
                    return
                src, run, layer = self._next
                self._next = None

"""What the plugin keeps between requests: decoded tensor series (bounded by bytes, keyed by the
provider's version of the data) and short-lived listings."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

# Listings (which series exist, the run's scalars) are reused this long; TensorBoard itself
# reloads the logs every 5 s by default.
RECENT_SECONDS = 2.0


class SeriesCache:
    """LRU of decoded tensor series, bounded in bytes, invalidated when a series grows."""

    def __init__(self, max_bytes: int = 256 * 2**20) -> None:
        self.max_bytes = max_bytes
        self._items: "OrderedDict[tuple, tuple[Any, Any, int]]" = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._recent: dict[tuple, tuple[float, Any]] = {}
        self._loading: dict[tuple, threading.Lock] = {}

    def recent(self, key: tuple, fetch: Any, ttl: float = RECENT_SECONDS) -> Any:
        """`fetch()`'s value, reused for `ttl` seconds: one page load asks for the same listing
        several times, and each provider call costs a round trip to the data server."""
        now = time.monotonic()
        with self._lock:
            hit = self._recent.get(key)
            if hit is not None and now - hit[0] < ttl:
                return hit[1]
        value = fetch()
        with self._lock:
            self._recent[key] = (now, value)
            if len(self._recent) > 64:
                oldest = min(self._recent, key=lambda k: self._recent[k][0])
                del self._recent[oldest]
        return value

    def loading(self, key: tuple) -> threading.Lock:
        """A lock per series key, held while it is read from the provider."""
        with self._lock:
            lock = self._loading.get(key)
            if lock is None:
                if len(self._loading) > 1024:
                    self._loading = {k: v for k, v in self._loading.items() if v.locked()}
                lock = self._loading[key] = threading.Lock()
            return lock

    def clear_recent(self) -> None:
        with self._lock:
            self._recent.clear()

    def get(self, key: tuple, version: Any) -> Any:
        with self._lock:
            item = self._items.get(key)
            if item is None or item[0] != version:
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, key: tuple, version: Any, value: Any, nbytes: int) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[2]
            if nbytes > self.max_bytes:
                return
            self._items[key] = (version, value, nbytes)
            self._bytes += nbytes
            while self._bytes > self.max_bytes and self._items:
                _, (_, _, size) = self._items.popitem(last=False)
                self._bytes -= size

"""`SeriesCache`: decoded series kept by version and bounded in bytes (least recently used
dropped first), listings reused for a short time, one load lock per series."""

from tb_plugin.cache import SeriesCache


def test_a_series_is_served_only_for_the_version_it_was_read_at():
    cache = SeriesCache(max_bytes=100)
    cache.put(("run", "G"), version=3, value="three epochs", nbytes=10)
    assert cache.get(("run", "G"), 3) == "three epochs"
    assert cache.get(("run", "G"), 4) is None  # the series grew: read it again


def test_bytes_bound_drops_the_least_recently_used_and_skips_what_cannot_fit():
    cache = SeriesCache(max_bytes=100)
    for name in "abc":
        cache.put((name,), 1, name, 40)  # 120 bytes: "a" goes
    assert cache.get(("a",), 1) is None and cache.get(("b",), 1) == "b"
    cache.put(("d",), 1, "d", 40)  # "c" is now the least recently used ("b" was just read)
    assert cache.get(("c",), 1) is None and cache.get(("b",), 1) == "b" and cache.get(("d",), 1) == "d"
    cache.put(("huge",), 1, "huge", 101)
    assert cache.get(("huge",), 1) is None and cache.get(("b",), 1) == "b"
    cache.put(("b",), 2, "b2", 60)  # replacing an item frees its bytes first
    assert cache.get(("b",), 2) == "b2" and cache.get(("d",), 1) == "d"


def test_listings_are_reused_within_their_time_to_live():
    cache = SeriesCache()
    calls = []

    def fetch():
        calls.append(1)
        return len(calls)

    assert cache.recent(("runs",), fetch, ttl=60) == 1
    assert cache.recent(("runs",), fetch, ttl=60) == 1 and len(calls) == 1
    assert cache.recent(("runs",), fetch, ttl=0) == 2  # expired
    cache.clear_recent()
    assert cache.recent(("runs",), fetch, ttl=60) == 3


def test_one_load_lock_per_series():
    cache = SeriesCache()
    assert cache.loading(("a",)) is cache.loading(("a",))
    assert cache.loading(("a",)) is not cache.loading(("b",))

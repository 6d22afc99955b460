"""bench.memory: the per-key arithmetic, and a small real run (sessions stored in a
real MemoryStore and found through a real SessionCache) in a child interpreter."""

import json

import pytest

from bench import memory


def test_per_key_arithmetic():
    m = memory.Measurement(keys=1000, rss_start=10_000_000, rss_stored=12_000_000,
                           rss_cached=19_500_000, traced_cache=7_000_000)
    assert m.store_per_key == 2000.0
    assert m.cache_per_key == 7500.0
    assert m.traced_per_key == 7000.0
    assert memory.Measurement(1, 0, 0, 0).traced_per_key is None
    data = m.to_json()
    assert data["cache_bytes_per_key"] == 7500.0 and data["keys"] == 1000
    assert memory.per_key(-4096, 2) == -2048.0  # a heap that shrank says so
    with pytest.raises(ValueError):
        memory.per_key(1, 0)
    line = memory.report_lines(m, m)[0]
    assert "store 2,000 B/key" in line and "session cache 7,500 B/key RSS" in line
    assert "tracemalloc 7,000 B/session" in line


def test_session_record_is_what_the_rest_api_stores():
    record = memory.session_record(3)
    assert record["alias"] == "bench-0000003" and record["rate"] == 100_000
    assert record["access_rights"]["bench"]["versions"] == ["Default"]


def test_a_small_run_caches_every_session(tmp_path):
    out = tmp_path / "m.json"
    assert memory.main(["--keys", "400", "--json", str(out)]) == 0
    (result,) = json.loads(out.read_text())
    rss, traced = result["rss"], result["traced"]
    assert rss["keys"] == traced["keys"] == 400 and rss["traced_cache"] is None
    # A cached session costs something, and tracemalloc sees at least the parsed
    # session dict (over a kilobyte of JSON, parsed).
    assert traced["traced_cache_bytes_per_key"] > 1000
    assert rss["rss_cached"] >= rss["rss_stored"] > 0

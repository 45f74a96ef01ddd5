"""The identity store: snapshot and restore mid-capture lose or repeat no event; idle subscribers expire; the
entry budget evicts the least recently seen; unreadable snapshots are named."""

import gzip
from collections import Counter

import pyarrow as pa
import pytest

from decoders.decode import decode_file
from decoders.events import EventConfig, EventDeriver, StoreError
from decoders.records import MESSAGE_SCHEMA, RecordBuilder
from test_events import scenario_config


@pytest.fixture(scope="module")
def messages(city):
    """The city's capture decoded once, as one table (so it can be cut anywhere, mid-connection too)."""
    return pa.concat_tables(list(decode_file(city / "capture.pcap")))


def _rows(tables: list[pa.Table]) -> Counter:
    return Counter(tuple(row.values()) for table in tables for row in table.to_pylist())


def _deriver(city, restore) -> EventDeriver:
    deriver = EventDeriver(scenario_config(city))
    deriver.restore(restore)
    return deriver


@pytest.mark.parametrize("cut", [0.25, 0.5, 0.8])
def test_restart_mid_capture_loses_and_repeats_nothing(city, messages, tmp_path, cut):
    previous = city / "previous_state.json.gz"
    one_pass = _deriver(city, previous)
    whole = [one_pass.feed(batch) for batch in messages.to_batches(max_chunksize=2000)] + [one_pass.finish()]

    at = int(len(messages) * cut)
    first = _deriver(city, previous)
    before = [first.feed(messages.slice(0, at))]
    assert any(first.connections.entries()[:3]), "the cut should fall while connections are open"
    first.snapshot(tmp_path / "store.json.gz")
    del first  # the process is gone; only the file remains
    second = _deriver(city, tmp_path / "store.json.gz")
    after = [second.feed(messages.slice(at)), second.finish()]

    want, got = _rows(whole), _rows(before + after)
    assert sum(want.values()) > 1000
    assert not want - got and not got - want, (list(want - got)[:2], list(got - want)[:2])


def _lu(imsi: str, ts: float, tmsi: int, conn: int) -> list[dict]:
    """A Location Updating (IMSI attach) on its own connection: the IMSI, the cell, then the TMSI allocated."""
    a = {"iface": "A", "conn": conn, "ts": ts}
    return [{**a, "proto": "bssmap", "msg": "complete_layer3_information", "mcc": "460", "mnc": "00", "lac": 1,
             "ci": conn % 7 + 1},
            {**a, "proto": "dtap", "msg": "location_updating_request", "uplink": True, "imsi": imsi,
             "update_type": "imsi_attach"},
            {**a, "proto": "dtap", "msg": "location_updating_accept", "uplink": False, "tmsi": tmsi},
            {**a, "proto": "bssmap", "msg": "clear_complete", "uplink": True}]


def _table(records: list[dict]) -> pa.Table:
    builder = RecordBuilder(MESSAGE_SCHEMA)
    for n, rec in enumerate(records, 1):
        builder.append({"frame": n, **rec})
    return builder.table()


def _imsi(n: int) -> str:
    return f"46000571{n:07d}"


def test_budget_evicts_the_least_recently_seen_with_their_tmsis():
    deriver = EventDeriver(EventConfig(store_budget=10))
    for n in range(30):
        deriver.feed(_table(_lu(_imsi(n), 1000.0 + n, tmsi=500 + n, conn=n)))
        assert len(deriver.patterns.subscribers) <= 10
    kept = set(deriver.patterns.subscribers)
    assert kept == {_imsi(n) for n in range(30 - len(kept), 30)} and len(kept) >= 9
    assert set(deriver.correlator.tmsi_imsi.values()) == kept
    assert set(deriver.correlator.imei_of) <= kept


def test_idle_subscribers_expire():
    deriver = EventDeriver(EventConfig(store_idle_s=3600))
    deriver.feed(_table(_lu(_imsi(1), 1000.0, tmsi=7, conn=1)))
    deriver.feed(_table(_lu(_imsi(2), 1000.0 + 3599, tmsi=8, conn=2)))
    assert set(deriver.patterns.subscribers) == {_imsi(1), _imsi(2)}
    deriver.feed(_table(_lu(_imsi(3), 1000.0 + 3600 + 400, tmsi=9, conn=3)))
    assert set(deriver.patterns.subscribers) == {_imsi(2), _imsi(3)}
    assert deriver.correlator.tmsi_imsi == {8: _imsi(2), 9: _imsi(3)}


def test_restored_tmsi_names_the_subscriber(tmp_path):
    deriver = EventDeriver()
    deriver.feed(_table(_lu(_imsi(1), 1000.0, tmsi=77, conn=1)))
    deriver.snapshot(tmp_path / "s.json.gz")
    later = EventDeriver()
    later.restore(tmp_path / "s.json.gz")
    periodic = [{"iface": "A", "conn": 9, "ts": 5000.0, "proto": "bssmap", "msg": "complete_layer3_information",
                 "mcc": "460", "mnc": "00", "lac": 1, "ci": 3},
                {"iface": "A", "conn": 9, "ts": 5000.0, "proto": "dtap", "msg": "location_updating_request",
                 "uplink": True, "tmsi": 77, "update_type": "periodic"}]
    events = later.feed(_table(periodic)).to_pylist() + later.finish().to_pylist()
    # The last cell came back too: the periodic update in another cell is a cell change.
    assert [(e["event"], e["imsi"], e["prev_cell"]) for e in events] == [
        ("cell_change", _imsi(1), "460-00-1-2"), ("location_update", _imsi(1), None)]


def test_unreadable_snapshots_are_named(tmp_path):
    bad = tmp_path / "bad.json.gz"
    bad.write_text("not gzip")
    with pytest.raises(StoreError, match="bad.json.gz: not a readable snapshot"):
        EventDeriver().restore(bad)
    with gzip.open(bad, "wt") as f:
        f.write('{"version": 99}')
    with pytest.raises(StoreError, match="bad.json.gz: field version: 99, expected 1"):
        EventDeriver().restore(bad)
    with gzip.open(bad, "wt") as f:
        f.write('{"version": 1, "correlator": {"tmsi": [[1]], "m_tmsi": [], "imei": {}}}')
    with pytest.raises(StoreError, match="bad.json.gz: malformed snapshot"):
        EventDeriver().restore(bad)

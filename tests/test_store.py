"""The store: migrations once and in order, cluster DDL, TTLs, dedup of retried batches in every table and
aggregate, pseudonyms, and aggregates equal to pandas counts of the same synthetic input."""

import hashlib
import re
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from analytics.origin import Origins
from analytics.schema import DELIVERY_SCHEMA, DWELL_BUCKETS_S, MIGRATIONS, TABLES, Layout
from analytics.store import Store, StoreError
from decoders.records import EVENT_SCHEMA
from geofence.match import TRIGGER_SCHEMA

T0 = datetime(2026, 5, 1, 0, 0, tzinfo=timezone.utc).timestamp()  # 08:00 in Hangzhou; months ago, yet kept
SEGMENTS = {"46000571": ("Zhejiang", "Hangzhou"), "46000210": ("Shanghai", "Shanghai")}
PREFIXES = np.array(["46000571", "46000210", "46000999", "44010", "45005"])  # Zhejiang, Shanghai, unknown, JP, KR
SCHEMA_DOC = Path(__file__).parent.parent / "docs" / "schema.md"


def _ts(seconds: np.ndarray) -> pa.Array:
    return pa.array(np.round(seconds * 1e6).astype(np.int64), pa.int64()).cast(EVENT_SCHEMA.field("ts").type)


def _imsis(rng: np.random.Generator, subscribers: int) -> np.ndarray:
    """One IMSI per subscriber, 15 digits, home chosen among PREFIXES."""
    prefix = PREFIXES[rng.choice(len(PREFIXES), subscribers, p=[0.4, 0.25, 0.15, 0.12, 0.08])]
    return np.array([p + str(i).zfill(15 - len(p)) for i, p in enumerate(prefix)])


def synthetic_events(n: int, subscribers: int = 500, cells: int = 40, hours: float = 30.0, seed: int = 0,
                     null_share: float = 0.05) -> pa.Table:
    """n behaviour events (EVENT_SCHEMA) over ``hours`` from T0: IMSIs repeat, a share is unresolved.
    The subscriber population depends only on ``subscribers``, so batches of other seeds share it."""
    rng = np.random.default_rng(seed)
    imsi_pool = _imsis(np.random.default_rng(subscribers), subscribers)
    who = rng.integers(0, subscribers, n)
    imsi = pa.array(imsi_pool[who]).to_pandas().where(rng.random(n) >= null_share, None)
    cell_pool = np.array([f"460-00-{4000 + i // 10}-{i}" for i in range(cells)])
    kinds = np.array(["cell_change", "location_update", "sms_mo", "mo_call"])
    imei_pool = np.array([f"{35000000 + i % 50:08d}{i:07d}" for i in range(subscribers)])
    columns = {
        "ts": _ts(np.sort(T0 + rng.uniform(0, hours * 3600, n))),
        "probe": pa.array(np.full(n, "p1")), "iface": pa.array(np.where(rng.random(n) < 0.5, "A", "S1")),
        "event": pa.array(kinds[rng.integers(0, len(kinds), n)]), "imsi": pa.array(imsi, pa.string()),
        "imei": pa.array(imei_pool[who]), "cell": pa.array(cell_pool[rng.integers(0, cells, n)]),
        "cause": pa.array(np.where(rng.random(n) < 0.1, 17, 0).astype(np.int32)).cast(pa.int32()),
        "frame": pa.array(np.arange(n, dtype=np.uint32)),
    }
    return pa.table({f.name: columns.get(f.name, pa.nulls(n, f.type)) for f in EVENT_SCHEMA}, schema=EVENT_SCHEMA)


def synthetic_triggers(subscribers: int = 300, fences: tuple[str, ...] = ("lake", "mall"), hours: float = 30.0,
                       seed: int = 1) -> pa.Table:
    """Alternating enter/exit sequences per subscriber and fence (the last visit sometimes left open), some
    with an ``inside`` detection in between."""
    rng = np.random.default_rng(seed)
    imsi_pool = _imsis(rng, subscribers)
    rows = []
    for fence in fences:
        for imsi in imsi_pool[rng.random(subscribers) < 0.7]:
            t = T0 + rng.uniform(0, hours * 3600)
            for _ in range(rng.integers(1, 4)):
                rows.append((t, imsi, fence, "enter"))
                if rng.random() < 0.3:  # other detection words between enter and exit do not end a visit
                    rows.append((t + 30, imsi, fence, "inside"))
                t += rng.uniform(60, 9000)
                if rng.random() < 0.15:
                    break
                rows.append((t, imsi, fence, "exit"))
                t += rng.uniform(60, 20000)
    df = pd.DataFrame(rows, columns=["ts", "imsi", "fence", "kind"]).sort_values("ts", ignore_index=True)
    n = len(df)
    columns = {"ts": _ts(df["ts"].to_numpy()), "imsi": pa.array(df["imsi"]), "fence": pa.array(df["fence"]),
               "kind": pa.array(df["kind"]), "cell": pa.array(np.full(n, "460-00-4000-1")),
               "event": pa.array(np.full(n, "cell_change")), "frame": pa.array(np.arange(n, dtype=np.uint32))}
    return pa.table({f.name: columns.get(f.name, pa.nulls(n, f.type)) for f in TRIGGER_SCHEMA}, schema=TRIGGER_SCHEMA)


def synthetic_deliveries(n: int = 200, seed: int = 2) -> pa.Table:
    rng = np.random.default_rng(seed)
    imsi = _imsis(rng, n)
    pick = lambda *xs: pa.array(np.array(xs)[rng.integers(0, len(xs), n)])  # noqa: E731
    subscriber = [hashlib.sha256(x.encode()).hexdigest()[:32] for x in imsi]  # stands in for the keyed HMAC
    return pa.table({"ts": _ts(T0 + np.arange(n) * 60.0), "campaign": pick("c1", "c2"),
                     "subscriber": pa.array(subscriber), "fence": pick("lake"), "kind": pick("enter", "dwell"),
                     "event": pick("cell_change"), "decision": pick("allowed", "control", "blocked"),
                     "reason": pick("none", "quiet_hours"), "send_at": _ts(T0 + np.arange(n) * 60.0 + 5),
                     "cell": pick("460-00-4000-1"), "outlet": pick("Hall 1"), "status": pick("delivered", "dead")},
                    schema=DELIVERY_SCHEMA)


def store_counts(store: Store) -> dict[str, int]:
    """Rows per raw table and the row counts the aggregates hold, to compare across retries."""
    q = lambda sql: int(store.query(sql).iloc[0, 0])  # noqa: E731
    return {"events": q("SELECT count() FROM {db}.events"), "triggers": q("SELECT count() FROM {db}.triggers"),
            "deliveries": q("SELECT count() FROM {db}.deliveries"),
            "cell_hourly_events": q("SELECT sum(events) FROM {db}.footfall_cell_hourly"),
            "fence_hourly_enters": q("SELECT sum(enters) FROM {db}.footfall_fence_hourly")}


@pytest.fixture
def store_url(tmp_path):
    return f"chdb://{tmp_path / 'data'}"


def test_migrations_applied_once_in_order(store_url, tmp_path):
    store = Store(store_url)
    assert store.applied_migrations == [v for v, _, _ in MIGRATIONS] == sorted(v for v, _, _ in MIGRATIONS)
    rows = store.query("SELECT version, name FROM {db}.schema_migrations ORDER BY applied_at, version")
    assert rows["version"].tolist() == store.applied_migrations
    store.close()
    again = Store(store_url)
    assert again.applied_migrations == []
    assert len(again.query("SELECT * FROM {db}.schema_migrations")) == len(MIGRATIONS)
    tables = set(again.query("SELECT name FROM system.tables WHERE database = 'sigloc'")["name"])
    assert {t.name for t in TABLES} <= tables
    # a store migrated by a newer sigloc is refused, not half-used
    again.client.insert("sigloc.schema_migrations", [[99, "future"]], column_names=["version", "name"])
    again.close()
    with pytest.raises(StoreError, match="schema version 99, newer"):
        Store(store_url)


def test_older_store_upgraded_and_backfilled(store_url, monkeypatch):
    """A store made by a sigloc that knew only migrations 1-2 gets 3-6 on open, aggregates filled from its rows."""
    import analytics.store
    origins = Origins(SEGMENTS)
    events, triggers = synthetic_events(4000, seed=3), synthetic_triggers(80)
    with monkeypatch.context() as m:
        m.setattr(analytics.store, "MIGRATIONS", MIGRATIONS[:2])
        m.setattr(Store, "_sync_ttl", lambda self: None)  # TTLs came with the later migrations
        send = Store._send  # and that sigloc sent triggers without dwell_s
        m.setattr(Store, "_send", lambda self, name, table, token: send(
            self, name, table.drop_columns([c for c in ["dwell_s"] if c in table.column_names]), token))
        old = Store(store_url)
        assert old.applied_migrations == [1, 2]
        old.insert_events(events, origins, token="old-ev")
        old.insert_triggers(triggers, origins, token="old-tr")
        old.close()
    new = Store(store_url)
    assert new.applied_migrations == [3, 4, 5, 6]
    counts = store_counts(new)
    assert counts["events"] == len(events) and counts["triggers"] == len(triggers)
    assert counts["cell_hourly_events"] == len(events) - events["imsi"].null_count
    assert counts["fence_hourly_enters"] == triggers["kind"].to_pylist().count("enter")
    columns = set(new.query("SELECT name FROM system.columns WHERE database = 'sigloc' AND table = 'triggers'")["name"])
    assert {"dwell_s", "inserted_at"} <= columns
    new.close()


def test_cluster_ddl_is_replicated_and_distributed():
    layout = Layout(cluster="prod")
    ddl = [s for _, _, make in MIGRATIONS for s in make(layout)]
    creates = [s for s in ddl if s.startswith("CREATE TABLE")]
    assert all(" ON CLUSTER `prod`" in s for s in ddl)
    for table in TABLES:
        if table.name == "dwell_daily":  # recomputed per node from the Distributed triggers
            assert "sigloc.dwell_daily ON CLUSTER `prod` (" in "\n".join(creates)
            continue
        local = next(s for s in creates if s.startswith(f"CREATE TABLE IF NOT EXISTS sigloc.{table.name}_local "))
        assert f"ENGINE = Replicated{table.engine}('/clickhouse/tables/{{shard}}/sigloc/{table.name}', " \
               f"'{{replica}}')" in local
        assert f"ORDER BY {table.order_by}" in local and "non_replicated_deduplication_window" not in local
        dist = next(s for s in creates if s.startswith(f"CREATE TABLE IF NOT EXISTS sigloc.{table.name} "))
        assert f"AS sigloc.{table.name}_local ENGINE = Distributed(`prod`, sigloc, {table.name}_local, " \
               f"{table.shard_by})" in dist
    views = [s for s in ddl if s.startswith("CREATE MATERIALIZED VIEW") and "REFRESH" not in s]
    assert len(views) == 4
    assert all(re.search(r"TO sigloc\.\w+_local AS", v) and re.search(r"FROM sigloc\.\w+_local", v) for v in views)
    assert not any(s.startswith("INSERT") for s in ddl)  # no single-node backfill on a cluster
    assert "ALTER TABLE sigloc.triggers ON CLUSTER `prod` ADD COLUMN IF NOT EXISTS dwell_s" in "\n".join(ddl)
    assert layout.ttl_alter(TABLES[0]) == ("ALTER TABLE sigloc.events_local ON CLUSTER `prod` MODIFY TTL "
                                           "greatest(toDateTime(ts), inserted_at) + INTERVAL 30 DAY")
    single = [s for _, _, make in MIGRATIONS for s in make(Layout())]
    assert not any("Replicated" in s or "Distributed" in s or "ON CLUSTER" in s for s in single)


def test_ttl_per_table_configurable(store_url):
    engine = lambda s, t: s.client.command(  # noqa: E731
        f"SELECT engine_full FROM system.tables WHERE database = 'sigloc' AND name = '{t}'")
    store = Store(store_url, ttl_days={"events": 7})
    assert "toIntervalDay(7)" in engine(store, "events") and "toIntervalDay(180)" in engine(store, "triggers")
    store.close()
    store = Store(store_url)  # back to the default 30 days
    assert "toIntervalDay(30)" in engine(store, "events")
    store.close()
    with pytest.raises(StoreError, match="ttl_days: no table evnts"):
        Store(store_url, ttl_days={"evnts": 1})


@pytest.mark.parametrize("pipelined", [False, True], ids=["sync", "pipelined"])
def test_retried_batches_counted_once_in_every_table(store_url, pipelined):
    store = Store(store_url, pipelined=pipelined)
    origins = Origins(SEGMENTS)
    events, triggers, deliveries = synthetic_events(3000), synthetic_triggers(100), synthetic_deliveries(50)
    for _ in range(2):
        store.insert_events(events, origins, token="ev:1")
        store.insert_triggers(triggers, origins, token="tr:1")
        store.insert_deliveries(deliveries, token="de:1")
    resolved = len(events) - events["imsi"].null_count  # the cell aggregate counts resolved subscribers only
    enters = triggers["kind"].to_pylist().count("enter")
    once = {"events": len(events), "triggers": len(triggers), "deliveries": len(deliveries),
            "cell_hourly_events": resolved, "fence_hourly_enters": enters}
    assert store_counts(store) == once
    store.insert_events(events, origins, token="ev:2")  # a new batch with the same rows is new data
    assert store_counts(store)["events"] == 2 * len(events)
    assert store_counts(store)["cell_hourly_events"] == 2 * resolved
    store.close()


def test_subjects_are_per_row_pseudonyms_and_homes(store_url):
    store = Store(store_url)
    origins = Origins(SEGMENTS)
    imsis = pa.chunked_array([["46000571000000001", None, "44010000000002"], ["46000571000000001", "46000999000003"]])
    who = {k: v.cast(pa.string()) for k, v in store._subjects(imsis, origins).items()}
    values = imsis.to_pylist()
    assert who["subscriber"].to_pylist() == [store.pseudonym(x) for x in values]
    assert who["subscriber"][1].as_py() == "" and who["roaming"][1].as_py() == "unknown"
    assert who["home_province"].to_pylist() == [origins.home(x).province for x in values]
    assert who["roaming"].to_pylist() == ["local", "unknown", "international", "local", "unknown"]
    # a later batch reuses the cached lookups and adds only its new IMSI
    later = pa.array(["46000210000000009", "46000571000000001"])
    who = {k: v.cast(pa.string()) for k, v in store._subjects(later, origins).items()}
    assert who["subscriber"].to_pylist() == [store.pseudonym(x) for x in later.to_pylist()]
    assert who["home_city"].to_pylist() == ["Shanghai", "Hangzhou"]
    store.close()


def test_subjects_tell_apart_every_kind_of_value(store_url):
    """IMSIs are numbered through int64 keys, anything else through a dict: "05" is not "5", a value that is not
    a digit string or too long for a key still gets its own pseudonym, across batches in any order."""
    store = Store(store_url)
    origins = Origins(SEGMENTS)
    odd = ["5", "05", "005", None, "tmsi:17", "460005710000000001234", "46000571000000001", "4600a"]
    for batch in (odd, odd[::-1], ["05", "x", "5", "46000571000000001", "05"], odd[3:] + odd[:3]):
        who = {k: v.cast(pa.string()) for k, v in store._subjects(pa.array(batch, pa.string()), origins).items()}
        assert who["subscriber"].to_pylist() == [store.pseudonym(x) for x in batch]
        assert who["home_city"].to_pylist() == [origins.home(x).city for x in batch]
    assert store._subject_cache[id(origins)].size == len(odd) + 1  # each distinct value numbered once
    store.close()


def test_subject_cache_starting_afresh_keeps_every_value(store_url, monkeypatch):
    """Past SUBJECT_CACHE_MAX distinct IMSIs the cache starts afresh: the rows still get their own values."""
    monkeypatch.setattr("analytics.store.SUBJECT_CACHE_MAX", 2)
    store = Store(store_url)
    origins = Origins(SEGMENTS)
    for batch in (["46000571000000001", "44010000000002", None], ["46000999000003", "46000210000000009"],
                  ["46000571000000001", "46000571000000001", "46000210000000009"]):
        who = {k: v.cast(pa.string()) for k, v in store._subjects(pa.array(batch, pa.string()), origins).items()}
        assert who["subscriber"].to_pylist() == [store.pseudonym(x) for x in batch]
        assert who["home_city"].to_pylist() == [origins.home(x).city for x in batch]
        assert store._subject_cache[id(origins)].size <= 2 + len(batch)
    store.close()


def test_aggregates_equal_hand_counts(store_url):
    store = Store(store_url)
    origins = Origins(SEGMENTS)
    events, triggers = synthetic_events(20000, subscribers=300), synthetic_triggers(300)
    for i, batch in enumerate(events.to_batches(max_chunksize=7000)):
        store.insert_events(pa.Table.from_batches([batch]), origins, token=f"ev:{i}")
    store.insert_triggers(triggers, origins, token="tr:0")
    store.refresh_aggregates()

    ev = events.to_pandas()
    ev = ev[ev.imsi.notna()].assign(hour=lambda d: d.ts.dt.floor("h").dt.tz_localize(None))
    hand = ev.groupby(["cell", "hour"]).agg(visitors=("imsi", "nunique"), events=("imsi", "size"))
    got = store.query("SELECT cell, hour, uniqMerge(visitors) AS visitors, sum(events) AS events "
                      "FROM {db}.footfall_cell_hourly GROUP BY cell, hour").set_index(["cell", "hour"])
    got.index = got.index.set_levels(got.index.levels[1].tz_localize(None), level=1)
    assert got.sort_index().astype(int).equals(hand.sort_index().astype(int))

    tr = triggers.to_pandas()
    tr["day"] = tr.ts.dt.tz_convert("Asia/Shanghai").dt.date
    enters = tr[tr.kind == "enter"]
    hand_daily = enters.groupby(["fence", "day"]).imsi.nunique().to_dict()
    daily = store.query("SELECT fence, day, uniqMerge(visitors) AS v FROM {db}.visitors_daily GROUP BY fence, day")
    assert {(r.fence, pd.Timestamp(r.day).date()): r.v for r in daily.itertuples()} == hand_daily

    homes = enters.imsi.map(origins.home)
    enters = enters.assign(country=homes.map(lambda h: h.country), province=homes.map(lambda h: h.province))
    hand_origin = enters.groupby(["fence", "country", "province"]).imsi.nunique().to_dict()
    origin = store.query("SELECT fence, home_country AS c, home_province AS p, uniqMerge(visitors) AS v "
                         "FROM {db}.origin_daily WHERE day = {d:Date} GROUP BY fence, c, p",
                         {"d": min(enters.day)})
    first_day = enters[enters.day == min(enters.day)]
    hand_first = first_day.groupby(["fence", "country", "province"]).imsi.nunique().to_dict()
    assert {(r.fence, r.c, r.p): r.v for r in origin.itertuples()} == hand_first
    assert sum(hand_first.values()) < sum(hand_origin.values())  # the day filter did cut something

    # dwell: pair each enter with the subscriber's next trigger at the fence when that is an exit
    visits = []
    for (fence, _), g in tr[tr.kind.isin(["enter", "exit"])].sort_values("ts").groupby(["fence", "imsi"]):
        rows = g.to_dict("records")
        for a, b in zip(rows, rows[1:]):
            if a["kind"] == "enter" and b["kind"] == "exit":
                dwell = (b["ts"] - a["ts"]).total_seconds()
                visits.append((fence, a["day"], max(lo for lo in DWELL_BUCKETS_S if dwell >= lo)))
    hand_dwell = pd.Series(visits).value_counts().to_dict()
    dwell = store.query("SELECT fence, day, bucket_s, visits FROM {db}.dwell_daily")
    assert {(r.fence, pd.Timestamp(r.day).date(), r.bucket_s): r.visits for r in dwell.itertuples()} == hand_dwell
    store.close()


def test_store_holds_no_imsi(store_url):
    store = Store(store_url)
    events = synthetic_events(500)
    store.insert_events(events, Origins(SEGMENTS), token="e")
    store.insert_deliveries(synthetic_deliveries(20), token="d")
    text = store.query("SELECT * FROM {db}.events").to_csv() + store.query("SELECT * FROM {db}.deliveries").to_csv()
    assert not any(imsi in text for imsi in events["imsi"].drop_null().unique().to_pylist())
    store.close()


def test_every_table_and_column_documented():
    doc = SCHEMA_DOC.read_text()
    for table in TABLES:
        start = doc.index(f"### `{table.name}`")
        end = doc.find("\n### ", start + 1)
        section = doc[start: end if end > 0 else None]
        assert re.findall(r"^\| `(\w+)` \|", section, re.M) == [c[0] for c in table.columns], table.name


def test_events_merge_about_twenty_parts_at_a_time(store_url):
    """Migration 6 reaches the events table (fewer merge rewrites at a million events a second)."""
    store = Store(store_url)
    engine = store.client.command("SELECT engine_full FROM system.tables WHERE database = 'sigloc' AND name = 'events'")
    assert "merge_selector_base = 20" in str(engine)
    store.close()


@pytest.mark.parametrize("distinct", [3, 300, 40_000], ids=["int8", "int16", "int32"])
def test_narrow_dictionary_columns_store_every_value(store_url, distinct):
    """Dictionary columns go out with the smallest index type their dictionary allows; every index width
    stores the same cell per row (cells of the synthetic city, counted by hand per cell)."""
    from analytics.store import _dict
    cells = pa.array([f"460-00-1-{i % distinct}" for i in range(2 * distinct)])
    encoded = _dict(cells)
    assert encoded.type.index_type == {3: pa.int8(), 300: pa.int16(), 40_000: pa.int32()}[distinct]
    assert encoded.cast(pa.string()).to_pylist() == cells.to_pylist()
    events = synthetic_events(2 * distinct, seed=5)
    events = events.set_column(events.schema.get_field_index("cell"), "cell", cells)
    store = Store(store_url)
    store.insert_events(events, Origins(SEGMENTS), token="narrow")
    got = store.query("SELECT cell, count() AS n FROM {db}.events GROUP BY cell")
    assert len(got) == distinct and set(got.n) == {2}
    assert set(got.cell) == {f"460-00-1-{i}" for i in range(distinct)}
    store.close()


def _merge_thread_nices() -> set[int]:
    """Nice values of this process's chDB merge threads right now (/proc: field 19 of each thread's stat)."""
    nices = set()
    for task in Path("/proc/self/task").iterdir():
        try:
            if (task / "comm").read_text().strip() == "MergeMutate":
                nices.add(int((task / "stat").read_text().rsplit(")", 1)[1].split()[16]))
        except OSError:  # the thread ended meanwhile
            pass
    return nices


def test_background_merges_run_niced(store_url):
    """Background merges run at MERGE_NICE (a server setting of the embedded engine), so inserts at a
    traffic peak keep the cores; the merged table still holds every row once. A table with the default
    merge selector stands in for events, whose wider selector waits for about twenty parts."""
    from analytics.store import MERGE_NICE
    store = Store(store_url)
    store.insert_events(synthetic_events(300_000, subscribers=20_000, cells=500, hours=12), Origins(SEGMENTS))
    store.client.command("CREATE TABLE sigloc.merge_probe AS sigloc.events ENGINE = MergeTree ORDER BY (cell, ts)")
    store.client.command("SYSTEM STOP MERGES sigloc.merge_probe")
    parts = 6
    for _ in range(parts):
        store.client.command("INSERT INTO sigloc.merge_probe SELECT * FROM sigloc.events")
    active = "SELECT count() FROM system.parts WHERE active AND database = 'sigloc' AND table = 'merge_probe'"
    assert store.client.command(active) == parts
    store.client.command("SYSTEM START MERGES sigloc.merge_probe")
    seen, deadline = set(), time.monotonic() + 120
    while (store.client.command(active) == parts or store.client.command("SELECT count() FROM system.merges")) \
            and time.monotonic() < deadline:
        seen |= _merge_thread_nices()
    assert MERGE_NICE > 0 and MERGE_NICE in seen
    assert store.client.command(active) < parts
    assert store.client.command("SELECT count() FROM sigloc.merge_probe") == parts * 300_000
    store.close()

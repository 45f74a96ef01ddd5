"""The spool and the fault tests: an unreachable store spools, recovery replays in order, and neither an
outage nor a SIGKILLed ingest loses or duplicates an event (counts equal pandas counts of the input)."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pytest

from analytics.origin import Origins
from analytics.spool import Spool, SpoolError
from analytics.store import Store, StoreError
from test_store import SEGMENTS, store_counts, synthetic_deliveries, synthetic_events, synthetic_triggers

ROOT = Path(__file__).parent.parent


def _closed_port() -> int:
    """A local port nothing listens on: the URL of a stopped server."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _expected(events: pa.Table, triggers: pa.Table, deliveries: pa.Table) -> dict[str, int]:
    """Hand counts (pandas) of what the store must hold after every batch arrived exactly once."""
    ev, tr = events.to_pandas(), triggers.to_pandas()
    return {"events": len(ev), "triggers": len(tr), "deliveries": deliveries.num_rows,
            "cell_hourly_events": int(ev.imsi.notna().sum()), "fence_hourly_enters": int((tr.kind == "enter").sum())}


def test_spool_files_roundtrip_in_order(tmp_path):
    spool = Spool(tmp_path / "s")
    assert spool.files() == [] and len(spool) == 0
    a, b = pa.table({"x": [1, 2]}), pa.table({"y": ["z"]})
    spool.put("events", a, "tok-a")
    spool.put("triggers", b, "tok-b")
    assert [p.name for p in spool.files()] == ["000000000001.events.arrow", "000000000002.triggers.arrow"]
    assert not list((tmp_path / "s").glob("*.tmp"))
    name, token, table = Spool.read(spool.files()[0])
    assert (name, token, table.to_pydict(), table.schema.metadata) == ("events", "tok-a", {"x": [1, 2]}, None)
    (tmp_path / "s" / "000000000003.events.arrow.tmp").write_bytes(b"half a batch")  # a crash mid-put
    seen = []

    def insert(name, table, token):
        if token == "tok-b":
            raise ConnectionError("down again")
        seen.append((name, token))

    with pytest.raises(ConnectionError):
        spool.replay(insert)
    assert seen == [("events", "tok-a")]
    assert [p.name for p in spool.files()] == ["000000000002.triggers.arrow"]  # kept: its insert failed
    spool.put("events", a, "tok-c")  # numbering continues after the kept file
    assert spool.files()[-1].name == "000000000003.events.arrow"
    assert spool.replay(lambda *args: seen.append(args[::2])) == 2
    assert spool.files() == [] and not list((tmp_path / "s").glob("*.tmp"))


def test_unreadable_spool_file_named(tmp_path):
    spool = Spool(tmp_path)
    bad = tmp_path / "000000000001.events.arrow"
    bad.write_bytes(b"not arrow")
    with pytest.raises(SpoolError, match="000000000001.events.arrow: unreadable spool file"):
        spool.replay(lambda *args: None)


@pytest.fixture(params=[False, True], ids=["sync", "pipelined"])
def pipelined(request):
    return request.param


def test_server_down_spools_then_recovery_counts_exactly(tmp_path, pipelined):
    key, spool_dir = tmp_path / "key", tmp_path / "spool"
    origins = Origins(SEGMENTS)
    events, triggers, deliveries = synthetic_events(6000, seed=5), synthetic_triggers(150, seed=6), \
        synthetic_deliveries(40)
    down = Store(f"http://127.0.0.1:{_closed_port()}", key, spool_dir=spool_dir, pipelined=pipelined)
    batches = events.to_batches(max_chunksize=2000)
    for i, batch in enumerate(batches):
        assert down.insert_events(pa.Table.from_batches([batch]), origins, token=f"ev:{i}") == batch.num_rows
    down.insert_triggers(triggers, origins)  # no token: the spool gives it one so replay cannot double it
    down.insert_deliveries(deliveries, token="de:0")
    down.flush()
    assert len(down.spool) == len(batches) + 2
    with pytest.raises(StoreError, match="batch"):
        down.query("SELECT count() FROM {db}.events")
    down.close()
    imsis = set(events["imsi"].drop_null().to_pylist())
    for path in Spool(spool_dir).files():  # pseudonymised before spooling
        _, _, table = Spool.read(path)
        if "subscriber" in table.column_names:
            assert not imsis & set(table["subscriber"].to_pylist())
    kept = [shutil.copy(p, tmp_path / p.name) for p in Spool(spool_dir).files()]

    up = Store(f"chdb://{tmp_path / 'data'}", key, spool_dir=spool_dir, pipelined=pipelined)  # the server is back
    assert up.replay() == len(batches) + 2 and len(up.spool) == 0
    assert store_counts(up) == _expected(events, triggers, deliveries)
    # a crash after the inserts but before the spool files were deleted: the same files replay again
    for p in kept:
        shutil.copy(p, spool_dir / Path(p).name)
    late = synthetic_events(10, seed=9)
    up.insert_events(late, origins, token="late")  # the next insert replays first
    up.flush()
    expected = _expected(pa.concat_tables([events, late]), triggers, deliveries)
    assert store_counts(up) == expected and len(up.spool) == 0
    assert up.pseudonym(events["imsi"].drop_null()[0].as_py()) in set(
        up.query("SELECT DISTINCT subscriber FROM {db}.events")["subscriber"])  # same key on both sides
    up.close()


def test_embedded_store_failing_spools_and_next_insert_recovers(tmp_path, pipelined):
    origins = Origins(SEGMENTS)
    store = Store(f"chdb://{tmp_path / 'data'}", spool_dir=tmp_path / "spool", pipelined=pipelined)
    parts = [synthetic_events(1500, seed=s) for s in range(3)]
    store.insert_events(parts[0], origins, token="p0")
    store.flush()
    store.client.close()  # the engine goes away under the store
    store.insert_events(parts[1], origins, token="p1")
    store.flush()
    assert len(store.spool) == 1 and store.client is None
    store.insert_events(parts[2], origins, token="p2")  # reopens, replays p1, then inserts p2
    store.flush()
    assert len(store.spool) == 0
    rows = store.query("SELECT count() AS n, countIf(subscriber != '') AS resolved FROM {db}.events")
    assert int(rows.n[0]) == sum(len(p) for p in parts)
    assert int(rows.resolved[0]) == sum(len(p) - p["imsi"].null_count for p in parts)
    store.close()


INGEST = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    import pyarrow as pa
    from analytics.origin import Origins
    from analytics.store import Store
    from test_store import SEGMENTS, synthetic_events, synthetic_triggers
    events, triggers = synthetic_events({n}, seed=21), synthetic_triggers(400, seed=22)
    store = Store({url!r}, {key!r}, spool_dir={spool!r}, pipelined={pipelined!r})
    origins = Origins(SEGMENTS)
    for i, batch in enumerate(events.to_batches(max_chunksize={chunk})):
        store.insert_events(pa.Table.from_batches([batch]), origins, token=f"ev:{{i}}")
        store.insert_triggers(triggers.slice(i * 50, 50), origins, token=f"tr:{{i}}")
        print("sent", i, flush=True)
    store.close()
    print("done", flush=True)
""")


def test_killed_and_restarted_ingest_loses_and_duplicates_nothing(tmp_path, pipelined):
    n, chunk = 60000, 3000
    url, key, spool = f"chdb://{tmp_path / 'data'}", str(tmp_path / "key"), str(tmp_path / "spool")
    script = INGEST.format(tests=str(ROOT / "tests"), n=n, chunk=chunk, url=url, key=key, spool=spool,
                           pipelined=pipelined)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    for line in child.stdout:
        if line.startswith("sent 5"):  # batches 0-5 are stored; the kill lands while batch 6 is on its way
            break
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    partial = Store(url, key, spool_dir=spool)
    assert 6 * chunk <= store_counts(partial)["events"] < n  # the kill landed mid-way
    partial.close()
    rerun = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT,
                           timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert rerun.stdout.strip().endswith("done")

    events, triggers = synthetic_events(n, seed=21), synthetic_triggers(400, seed=22)
    sent_triggers = triggers.slice(0, 50 * (n // chunk))
    store = Store(url, key, spool_dir=spool)
    assert len(store.spool) == 0
    counts = store_counts(store)
    assert counts == _expected(events, sent_triggers, pa.table({}))
    per_kind = store.query("SELECT event, count() AS n FROM {db}.events GROUP BY event")
    assert dict(zip(per_kind.event, per_kind.n)) == events.to_pandas().event.value_counts().to_dict()
    store.close()

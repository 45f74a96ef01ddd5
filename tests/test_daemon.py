"""The probe daemon end to end: a watched directory, a simulator capture dropped in, signed webhooks on loopback.

The expected triggers come from the library run in-process on the same capture (decode → events → fences →
campaign → policy); the daemon, a real ``sigloc run --config`` subprocess, must deliver exactly those, each once
by id, with valid signatures — although the receiver only comes up after the daemon has already been retrying.
The simulator's ground truth checks the triggers mean what they say: each subscriber really was in the fence.
"""

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from test_delivery import Receiver, free_port

from analytics.store import Store
from appliance.auth import Accounts
from appliance.config import load_config
from appliance.daemon import Probe
from decoders.decode import DecodeState, decode_file
from geofence.campaigns import Campaign, CampaignStore
from geofence.cells import Catalogue
from geofence.fences import compile_fence, load_fence

SIGLOC = [sys.executable, "-c", "from appliance.cli import main; main()"]
SECRET = b"shared-secret"


def site(root: Path, city: Path, webhook_port: int, web_port: int, campaign: bool = True) -> Path:
    """A probe installation: config, reference data, one fence and (unless told not to) one active campaign."""
    for name in ("cells.csv", "number_segments.csv"):
        shutil.copy(city / name, root / name)
    (root / "fences").mkdir()
    shutil.copy(city / "west_lake.geojson", root / "fences" / "west_lake.json")
    (root / "campaigns").mkdir()
    if campaign:
        CampaignStore(root / "campaigns").save(Campaign(
            id="welcome", name="Welcome to West Lake", fences=["West Lake scenic area"],
            rule={"field": "kind", "equals": "enter"}, cap_per_day=1, state="active"))
    (root / "incoming").mkdir()
    (root / "webhook.secret").write_bytes(SECRET)
    config = root / "sigloc.toml"
    config.write_text(f"""
[probe]
home_plmn = "460-00"
home_province = "Zhejiang"
state_dir = "state"

[[source]]
kind = "directory"
path = "incoming"

[store]
url = "chdb://{root / 'clickhouse'}"
pseudonym_key_file = "pseudonym.key"

[reference]
cells = "cells.csv"
segments = "number_segments.csv"

[campaigns]
quiet_hours = "23:00-23:30"

[delivery]
webhook = "http://127.0.0.1:{webhook_port}/triggers"
secret_file = "webhook.secret"
max_tries = 100
backoff_s = 0.05

[web]
listen = "127.0.0.1:{web_port}"
""")
    (root / "pseudonym.key").write_text("11" * 32)
    return config


def expected_triggers(config_path: Path, capture: Path, scratch: Path) -> dict[str, dict]:
    """The library's answer on the same capture and configuration, with its own store and state."""
    config = load_config(config_path)
    config.store["url"] = f"chdb://{scratch / 'clickhouse'}"
    config.store["spool"] = str(scratch / "spool")
    probe = Probe(config, scratch / "state")
    try:
        for n, messages in enumerate(decode_file(capture, DecodeState())):
            probe.process(messages, f"x:{n}")
        probe.flush("end")
        rows = probe.outbox.since(0, limit=100_000)
    finally:
        probe.close()
    return {json.loads(body)["id"]: json.loads(body) for _, body in rows}


def outbox_counts(state_dir: Path) -> dict[str, int]:
    db = state_dir / "outbox.db"
    if not db.exists():
        return {}
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall())


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def test_daemon_delivers_exactly_the_expected_triggers_through_an_outage(city, tmp_path):
    root = tmp_path / "probe"
    root.mkdir()
    webhook_port, web_port = free_port(), free_port()
    config = site(root, city, webhook_port, web_port)
    expected = expected_triggers(config, city / "capture.pcap", tmp_path / "scratch")
    assert len(expected) >= 5, "the simulated morning should bring visitors to West Lake"

    key_store = Store(f"chdb://{tmp_path / 'keyonly'}", key_file=root / "pseudonym.key")  # the probe's pseudonyms
    imsi_of = {key_store.pseudonym(t["imsi"]): t["imsi"] for t in map(json.loads, open(city / "truth.jsonl"))
               if t.get("imsi")}
    state = root / "state"
    state.mkdir()
    accounts = Accounts(state / "accounts.db")
    token = accounts.new_token("prometheus", "engineer")
    care = accounts.new_token("customer-care", "admin")
    client = accounts.new_token("tourism-bureau", "client", ["West Lake scenic area"])
    daemon = subprocess.Popen([*SIGLOC, "run", "--config", str(config)], cwd=root, stderr=subprocess.PIPE,
                              text=True)
    receiver = None
    try:
        shutil.copy(city / "capture.pcap", root / "incoming" / "capture.pcap")
        # The receiver is down: every trigger is queued, deliveries are tried and fail, none is delivered.
        wait_for(lambda: outbox_counts(state).get("pending") == len(expected), 120, "triggers in the outbox")
        wait_for(lambda: sqlite3.connect(state / "outbox.db").execute(
            "SELECT sum(tries) FROM outbox").fetchone()[0] >= 5, 30, "failed delivery attempts")
        assert outbox_counts(state) == {"pending": len(expected)}
        receiver = Receiver(webhook_port)
        wait_for(lambda: len(receiver.accepted) >= len(expected), 60, "deliveries")
        time.sleep(1.0)  # room for a duplicate to show up
        metrics = urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{web_port}/metrics", headers={"Authorization": f"Bearer {token}"})).read().decode()
        health = urllib.request.urlopen(f"http://127.0.0.1:{web_port}/healthz").read()
        # Complaint handling: why did this subscriber get the welcome message?
        first = expected[sorted(expected)[0]]
        explained = json.loads(urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{web_port}/api/explain?imsi={imsi_of[first['subscriber']]}&campaign=welcome",
            headers={"Authorization": f"Bearer {care}"})).read())
        # The tourism bureau builds and reads the report of its fence.
        ts = [t["ts"] for t in map(json.loads, open(city / "truth.jsonl"))]
        fence_url = f"http://127.0.0.1:{web_port}/api/reports/West%20Lake%20scenic%20area"
        built = json.loads(urllib.request.urlopen(urllib.request.Request(
            fence_url, data=json.dumps({"from": min(ts), "to": max(ts) + 1}).encode(), method="POST",
            headers={"Authorization": f"Bearer {client}", "Content-Type": "application/json"})).read())
        page = urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{web_port}" + urllib.parse.quote(built["report"]),
            headers={"Authorization": f"Bearer {client}"})).read().decode()
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            _, stderr = daemon.communicate(timeout=120)
        finally:
            if receiver:
                receiver.stop()
    assert daemon.returncode == 0, stderr[-3000:]
    assert json.loads(health) == {"status": "ok"}
    assert "sigloc_files_total 1" in metrics and 'sigloc_detections_total{kind="enter"}' in metrics
    assert receiver.bad_signatures == 0
    assert sorted(receiver.accepted) == sorted(expected)  # exactly these, each once
    assert outbox_counts(state) == {"delivered": len(expected)}
    for key, body in receiver.bodies.items():
        assert body["campaign"] == "welcome" and body["kind"] == "enter" and body["fence"] == "West Lake scenic area"
        assert body["subscriber"] == expected[key]["subscriber"] and "imsi" not in body

    assert "footfall" in page and "Unique visitors per hour" in page
    assert not any(imsi in page for imsi in imsi_of.values()) and first["subscriber"] not in page
    assert explained["subscriber"] == first["subscriber"] and imsi_of[first["subscriber"]] not in json.dumps(explained)
    assert [(d["decision"], d["kind"]) for d in explained["decisions"]] == [("allowed", "enter")]
    assert explained["decisions"][0]["ts"].startswith(first["ts"][:19])
    assert any(d["kind"] == "enter" and d["ts"].startswith(first["ts"][:19]) for d in explained["detections"])
    assert any(e["ts"].startswith(first["ts"][:19]) and e["cell"] == first["cell"] for e in explained["events"])
    assert [(d["id"], d["status"]) for d in explained["deliveries"]] == [(first["id"], "delivered")]

    # Ground truth: every triggered subscriber had an event in one of the fence's cells.
    fence_cells = set(compile_fence(load_fence(city / "west_lake.geojson"), Catalogue.load(city / "cells.csv")))
    visited = {key_store.pseudonym(t["imsi"]) for t in map(json.loads, open(city / "truth.jsonl"))
               if t.get("cell") in fence_cells and t.get("imsi")}
    key_store.close()
    assert {b["subscriber"] for b in receiver.bodies.values()} <= visited


def test_api_and_trigger_stream_hold_under_load_while_the_pipeline_runs(city, tmp_path):
    """Bounded loopback load: clients poll the API and follow the SSE feed while a capture is processed;
    every request succeeds and the stream carries every trigger exactly once (latencies: bench/bench_appliance.py)."""
    import threading

    from appliance.config import load_config
    from appliance.daemon import Daemon

    root = tmp_path / "probe"
    root.mkdir()
    receiver, web_port = Receiver(), free_port()
    config = load_config(site(root, city, receiver.port, web_port))
    config.workers["count"] = 1  # decode in the watcher thread (the other test uses a worker process)
    daemon = Daemon(config, root / "state", poll_s=0.1)
    token = daemon.probe.accounts.new_token("engine", "admin")
    daemon.start()
    base, auth = f"http://127.0.0.1:{web_port}", {"Authorization": f"Bearer {token}"}
    errors, done, seen = [], threading.Event(), []

    def poll():
        paths = ["/healthz", "/api/status", "/api/fences", "/api/triggers/counts", "/metrics", "/api/campaigns"]
        n = 0
        while not done.is_set():
            try:
                with urllib.request.urlopen(urllib.request.Request(base + paths[n % len(paths)], headers=auth),
                                            timeout=10) as r:
                    r.read()
            except Exception as err:  # any failure under load is what this test looks for
                errors.append(repr(err))
            n += 1
            time.sleep(0.01)  # bounded: these clients share the daemon's interpreter (and its GIL)

    def follow():
        with urllib.request.urlopen(urllib.request.Request(base + "/api/triggers/stream", headers=auth),
                                    timeout=60) as r:
            for line in r:
                if line.startswith(b"data: "):
                    seen.append(json.loads(line[6:])["id"])
                if done.is_set() and len(seen) >= daemon.probe.outbox.counts()["pending"] + \
                        daemon.probe.outbox.counts()["delivered"]:
                    return

    try:
        wait_for(lambda: daemon.server.started, 30, "the web app")
        clients = [threading.Thread(target=poll) for _ in range(4)] + [threading.Thread(target=follow)]
        for c in clients:
            c.start()
        shutil.copy(city / "capture.pcap", root / "incoming" / "capture.pcap")
        wait_for(lambda: daemon.probe.metrics.total("sigloc_files_total") == 1, 300, "the capture processed")
        wait_for(lambda: len(receiver.accepted) == len(daemon.probe.outbox.since(0, 100_000)), 60, "deliveries")
        done.set()
        for c in clients:
            c.join(60)
    finally:
        done.set()
        daemon.shutdown()
        receiver.stop()
    assert errors == []
    assert len(seen) == len(set(seen)) == len(receiver.accepted) > 0
    assert set(seen) == set(receiver.accepted)


def test_a_garbage_file_is_counted_and_skipped_and_the_next_one_still_processed(city, tmp_path):
    from appliance.config import load_config
    from appliance.daemon import Daemon

    root = tmp_path / "probe"
    root.mkdir()
    receiver = Receiver()
    daemon = Daemon(load_config(site(root, city, receiver.port, free_port())), root / "state", poll_s=0.1,
                    web=False)
    daemon.start()
    try:
        (root / "incoming" / "a_garbage.pcap").write_bytes(b"this is not a capture file" * 100)
        shutil.copy(city / "capture.pcap", root / "incoming" / "b_capture.pcap")
        wait_for(lambda: daemon.probe.metrics.total("sigloc_files_total") >= 1, 120, "the good file processed")
    finally:
        daemon.shutdown()
        receiver.stop()
    assert daemon.probe.metrics.value("sigloc_decode_errors_total", reason="file.unreadable") == 1
    assert daemon.probe.metrics.total("sigloc_messages_total") > 1000

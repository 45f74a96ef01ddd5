"""Campaign lifecycle and persistence, nearest outlet, and the engine from detections + events to trigger
records (geofence/campaigns.py, geofence/outlets.py)."""

import csv
import json
import math
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from analytics.origin import Origins
from analytics.store import Store
from decoders.records import EVENT_SCHEMA, RecordBuilder
from decoders.tables import read_profiles, read_tac
from geofence.campaigns import (DECISION_SCHEMA, TRIGGER_RECORD_SCHEMA, Campaign, CampaignEngine, CampaignError,
                                CampaignStore, State, Subscribers, cell_sites)
from geofence.cells import Catalogue
from geofence.match import TRIGGER_SCHEMA
from geofence.outlets import OutletError, haversine_m, read_outlets
from geofence.policy import ContactPolicy, PolicyConfig, Reason
from geofence.rules import FIELDS

CST = timezone(timedelta(hours=8))


@pytest.fixture(scope="module")
def keyed_hash(tmp_path_factory):
    store = Store(f"chdb://{tmp_path_factory.mktemp('campaigns') / 'data'}")
    yield store.pseudonym
    store.close()


# -- lifecycle ----------------------------------------------------------------------------------------------

def _live(campaign: Campaign, to: str = "active") -> Campaign:
    steps = ["submitted", "approved", "test_send", "active"]
    who = {"submitted": "ana", "approved": "bo", "test_send": "bo", "active": "bo"}
    for step in steps[: steps.index(to) + 1] if to in steps else steps:
        campaign.transition(step, who[step])
    if to in ("paused", "finished"):
        campaign.transition(to, "bo")
    return campaign


def test_lifecycle_records_who_and_when():
    c = Campaign("lake", "Welcome to West Lake", fences=["lake"])
    t0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    path = [("submitted", "ana"), ("approved", "bo"), ("test_send", "bo"), ("active", "bo"), ("paused", "cy"),
            ("active", "cy"), ("finished", "bo")]
    for i, (to, who) in enumerate(path):
        c.transition(to, who, at=t0 + timedelta(hours=i))
    assert c.state == State.FINISHED
    assert [(h["from"], h["to"], h["who"]) for h in c.history] == [
        ("draft", "submitted", "ana"), ("submitted", "approved", "bo"), ("approved", "test_send", "bo"),
        ("test_send", "active", "bo"), ("active", "paused", "cy"), ("paused", "active", "cy"),
        ("active", "finished", "bo")]
    assert c.history[4]["at"] == "2026-12-01T13:00:00+00:00"


@pytest.mark.parametrize("state, to", [
    ("draft", "approved"), ("draft", "active"), ("submitted", "active"), ("approved", "active"),
    ("test_send", "paused"), ("active", "draft"), ("paused", "test_send"), ("finished", "active"),
])
def test_illegal_transitions_rejected_and_change_nothing(state, to):
    c = Campaign("c", "c")
    if state != "draft":
        _live(c, state)
    before = (c.state, list(c.history))
    with pytest.raises(CampaignError, match=f"cannot go from {state} to {to}"):
        c.transition(to, "bo")
    assert (c.state, c.history) == before


def test_back_to_draft_and_four_eyes():
    c = Campaign("c", "c")
    c.transition("submitted", "ana")
    with pytest.raises(CampaignError, match="ana submitted it and cannot also approve it"):
        c.transition("approved", "ana")
    c.transition("draft", "bo")           # sent back for changes
    c.edit(priority=5)
    c.transition("submitted", "bo")
    c.transition("approved", "ana")
    assert c.state == State.APPROVED
    with pytest.raises(CampaignError, match="a transition needs who made it"):
        c.transition("test_send", "")


def test_only_drafts_are_edited():
    c = Campaign("c", "c")
    c.edit(rule={"field": "kind", "equals": "enter"}, fences=["lake"])
    assert c.parsed is not None
    with pytest.raises(CampaignError, match=re.escape("campaign c: field 'rule': $.equals: 'walk'")):
        c.edit(rule={"field": "kind", "equals": "walk"})
    assert c.rule == {"field": "kind", "equals": "enter"}  # a rejected edit leaves the campaign as it was
    with pytest.raises(CampaignError, match="cannot edit state"):
        c.edit(state="active")
    c.transition("submitted", "ana")
    with pytest.raises(CampaignError, match="is submitted; only a draft can be edited"):
        c.edit(priority=9)


@pytest.mark.parametrize("fields, message", [
    ({"id": "bad id"}, "campaign id 'bad id'"),
    ({"control_share": 1.0}, "field 'control_share': expected 0 <= share < 1"),
    ({"cap_per_day": -1}, "field 'cap_per_day'"),
    ({"fences": "lake"}, "field 'fences': expected a list of fence names"),
    ({"priority": "high"}, "field 'priority': expected an integer"),
])
def test_bad_definitions(fields, message):
    with pytest.raises(CampaignError, match=re.escape(message)):
        Campaign(**{"id": "c", "name": "c", **fields})


def test_store_round_trip_and_errors(tmp_path):
    store = CampaignStore(tmp_path / "campaigns")
    c = Campaign("lake", "西湖欢迎", fences=["lake"], rule={"not": {"field": "roaming", "equals": "local"}},
                 priority=3, touchpoint="sms", template="T-88", whitelist=["+86 139 0571 0001"])
    _live(c, "paused")
    store.save(c)
    back = store.load("lake")
    assert back.to_json() == c.to_json() and back.state == State.PAUSED and back.parsed is not None
    assert [x.id for x in store.load_all()] == ["lake"]
    assert back.whitelist == ["8613905710001"]

    (store.directory / "x.json").write_text('{"id": "x", "name": "x",\n "state": "live"}')
    with pytest.raises(CampaignError, match=re.escape("x.json: field 'state': 'live' is not a valid State")):
        store.load("x")
    (store.directory / "x.json").write_text('{"id": "x",\n oops}')
    with pytest.raises(CampaignError, match=re.escape("x.json:2: not JSON")):
        store.load("x")
    (store.directory / "x.json").write_text(json.dumps({"id": "y", "name": "y"}))
    with pytest.raises(CampaignError, match="x.json: field 'id': 'y' does not match the file name"):
        store.load("x")
    (store.directory / "x.json").write_text(json.dumps({"id": "x", "name": "x", "colour": "red"}))
    with pytest.raises(CampaignError, match="x.json: unknown field"):
        store.load("x")


# -- outlets ------------------------------------------------------------------------------------------------

def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


OUTLETS = "name,kind,lat,lon\nHall West,business_hall,30.25,120.16\nHall North,business_hall,30.31,120.20\n"


def test_nearest_outlet_hand_checked(tmp_path):
    outlets = read_outlets(_write(tmp_path, "outlets.csv", OUTLETS))
    metre_per_deg = 6_371_008.8 * math.pi / 180  # 111 195.08 m along a meridian
    index, dist = outlets.nearest(np.array([30.25, 30.30, np.nan, 30.30]), np.array([120.15, 120.20, 120.0, 120.16]))
    assert list(index) == [0, 1, -1, 1]
    # 0.01° of longitude at 30.25° N: 1111.95 m × cos 30.25° = 960.56 m; 0.01° of latitude: 1111.95 m
    assert dist[0] == pytest.approx(0.01 * metre_per_deg * math.cos(math.radians(30.25)), abs=0.5)
    assert dist[1] == pytest.approx(0.01 * metre_per_deg, abs=0.01)
    assert math.isnan(dist[2])
    # (30.30, 120.16): Hall West 5 560 m south, Hall North ≈ sqrt(1112² + 3842²) ≈ 4 000 m away
    assert dist[3] == pytest.approx(math.hypot(0.01 * metre_per_deg, 0.04 * metre_per_deg *
                                               math.cos(math.radians(30.305))), rel=1e-3)


def test_nearest_matches_brute_force_across_blocks():
    rng = np.random.default_rng(3)
    from geofence.outlets import Outlets
    o = Outlets(np.array([f"o{i}" for i in range(50)], object), np.array(["hall"] * 50, object),
                rng.uniform(30, 30.5, 50), rng.uniform(120, 120.5, 50))
    lat, lon = rng.uniform(30, 30.5, 9000), rng.uniform(120, 120.5, 9000)
    index, dist = o.nearest(lat, lon)
    for i in range(0, 9000, 997):
        d = [haversine_m(lat[i], lon[i], o.lat[j], o.lon[j]) for j in range(50)]
        assert index[i] == int(np.argmin(d)) and dist[i] == pytest.approx(min(d))


@pytest.mark.parametrize("body, message", [
    ("name,kind,lat\nA,hall,30\n", "outlets.csv:1: missing column(s): lon"),
    ("name,kind,lat,lon\nA,hall,91,120\n", "outlets.csv:2: field 'lat': 91.0 is outside -90..90"),
    ("name,kind,lat,lon\nA,hall,30,east\n", "outlets.csv:2: field 'lon': 'east' is not a number"),
    ("name,kind,lat,lon\nA,hall,30,120\nA,hall,31,121\n", "outlets.csv:3: field 'name': 'A' already listed"),
    ("name,kind,lat,lon\n,hall,30,120\n", "outlets.csv:2: field 'name': empty"),
    ("name,kind,lat,lon\n", "outlets.csv: no outlets"),
])
def test_outlet_errors(tmp_path, body, message):
    with pytest.raises(OutletError, match=re.escape(message)):
        read_outlets(_write(tmp_path, "outlets.csv", body))


# -- engine -------------------------------------------------------------------------------------------------

A, B, C = "460005710000001", "460002100000002", "460005710000003"  # Hangzhou local, Shanghai visitor, local
APPLE_OLD, APPLE_NEW, OTHER = "35332011" + "0000001", "35332099" + "0000002", "86754303" + "0000003"
CELL1, CELL2 = "460-00-1-1", "460-00-1-2"


def _ts(h, m, s=0):
    return datetime(2026, 12, 2, h, m, s, tzinfo=CST).timestamp()


def _events():
    b = RecordBuilder(EVENT_SCHEMA)
    for ts, event, imsi, imei, cell, frame in [
        (_ts(10, 0), "power_on", A, APPLE_OLD, CELL1, 1),
        (_ts(10, 1), "location_update", B, OTHER, CELL1, 2),
        (_ts(10, 2), "imei_change", A, APPLE_NEW, CELL2, 3),
        (_ts(10, 3), "power_on", C, OTHER, CELL2, 4),
        (_ts(10, 4), "power_on", None, None, CELL2, 5),  # never resolved: no candidate
    ]:
        b.append({"ts": ts, "event": event, "imsi": imsi, "imei": imei, "cell": cell, "frame": frame,
                  "probe": "p", "iface": "A"})
    return b.table()


def _detections():
    b = RecordBuilder(TRIGGER_SCHEMA)
    for ts, imsi, kind, frame in [(_ts(10, 0), A, "enter", 1), (_ts(10, 1), B, "enter", 2)]:
        b.append({"ts": ts, "imsi": imsi, "fence": "lake", "kind": kind, "cell": CELL1, "event": "power_on",
                  "frame": frame})
    return b.table()


@pytest.fixture
def world(tmp_path):
    cells = _write(tmp_path, "cells.csv", "mcc,mnc,lac,ci,lat,lon,azimuth\n460,00,1,1,30.25,120.15,0\n"
                                          "460,00,1,2,30.30,120.20,90\n")
    segments = _write(tmp_path, "seg.csv", "kind,prefix,province,city\nimsi,46000571,Zhejiang,Hangzhou\n"
                                           "imsi,46000210,Shanghai,Shanghai\n")
    tac = _write(tmp_path, "tac.csv", "tac,brand,model\n35332011,Apple,iPhone 14\n35332099,Apple,iPhone 16\n"
                                      "86754303,Huawei,Mate 60\n")
    profiles = _write(tmp_path, "p.csv", "msisdn,plan,arpu\n8613905710001,gold,188\n8613902100002,silver,90\n"
                                         "8613905710003,gold,60\n")
    return {
        "subscribers": Subscribers(origins=Origins.load(segments), tac=read_tac(tac), profiles=read_profiles(profiles),
                                   msisdn={A: "8613905710001", B: "8613902100002", C: "8613905710003"}),
        "cell_sites": cell_sites(Catalogue.load(cells)),
        "outlets": read_outlets(_write(tmp_path, "outlets.csv", OUTLETS)),
        "fence_cells": {"lake": [CELL1]},
    }


def _campaigns():
    return [
        _live(Campaign("welcome", "Visitors to the lake", fences=["lake"], priority=2, template="T1",
                       rule={"and": [{"field": "kind", "equals": "enter"},
                                     {"field": "roaming", "equals": "other_province"}]})),
        _live(Campaign("new_phone", "Handset offer", rule={"and": [{"field": "event", "equals": "imei_change"},
                                                                   {"field": "brand", "equals": "Apple"}]})),
        _live(Campaign("gold", "Gold members at the lake", fences=["lake"],
                       rule={"and": [{"field": "kind", "equals": "inside"}, {"field": "tag.plan", "equals": "gold"},
                                     {"field": "tag.arpu", "range": [100, None]}]})),
        Campaign("draft", "not yet", fences=["lake"]),
        _live(Campaign("paused", "on hold", fences=["lake"]), "paused"),
        _live(Campaign("approved", "approved only", fences=["lake"]), "approved"),
        _live(Campaign("finished", "over"), "finished"),
        _live(Campaign("trial", "test send", fences=["lake"], whitelist=["8613905710001"]), "test_send"),
    ]


def _engine(world, keyed_hash, **kw):
    policy = ContactPolicy(PolicyConfig(global_per_day=None, global_per_week=None), keyed_hash)
    return CampaignEngine(_campaigns(), policy, keyed_hash, world["subscribers"], fence_cells=world["fence_cells"],
                          cell_sites=world["cell_sites"], outlets=world["outlets"], **kw)


def test_engine_candidates_enriched(world, keyed_hash):
    cand = _engine(world, keyed_hash).candidates(_detections(), _events())
    rows = {(r["imsi"], r["kind"], r["event"]): r for r in cand.to_pylist()}
    assert len(cand) == 2 + 4 + 2  # detections, resolved events, events inside the lake (cell 1)
    inside_a = rows[(A, "inside", "power_on")]
    assert (inside_a["fence"], inside_a["brand"], inside_a["model"], inside_a["tag.plan"], inside_a["tag.arpu"]) == (
        "lake", "Apple", "iPhone 14", "gold", 188.0)
    assert rows[(A, None, "imei_change")]["model"] == "iPhone 16"
    visitor = rows[(B, "enter", "power_on")]
    assert (visitor["home_province"], visitor["roaming"], visitor["country"], visitor["brand"]) == (
        "Shanghai", "other_province", "China", "Huawei")


def test_engine_fires_only_active_rules_then_policy(world, keyed_hash):
    result = _engine(world, keyed_hash).run(_detections(), _events())
    d = result.decisions
    got = sorted(zip(d["campaign"].to_pylist(), d["subscriber"].to_pylist(), d["kind"].to_pylist(),
                     d["decision"].to_pylist(), d["reason"].to_pylist()), key=str)
    pa_, pb = keyed_hash(A), keyed_hash(B)
    assert got == sorted([
        ("welcome", pb, "enter", "allowed", "none"),
        ("new_phone", pa_, None, "allowed", "none"),
        ("gold", pa_, "inside", "allowed", "none"),
        # test_send reaches only the whitelisted A (enter and inside rows); the campaign cap of 1 takes the first
        ("trial", pa_, "enter", "allowed", "none"),
        ("trial", pa_, "inside", "blocked", "campaign_day_cap"),
    ], key=str)

    t = {r["campaign"]: r for r in result.triggers.to_pylist()}
    assert set(t) == {"welcome", "new_phone", "gold", "trial"}
    assert (t["welcome"]["outlet"], t["welcome"]["cell"], t["welcome"]["template"]) == ("Hall West", CELL1, "T1")
    assert t["welcome"]["outlet_distance_m"] == pytest.approx(960.56, abs=0.5)
    assert (t["new_phone"]["outlet"], t["new_phone"]["outlet_distance_m"]) == ("Hall North", pytest.approx(1111.95,
                                                                                                          abs=0.01))
    assert t["welcome"]["send_at"] == t["welcome"]["ts"] == datetime(2026, 12, 2, 2, 1, tzinfo=UTC)


def test_records_carry_pseudonyms_not_identifiers(world, keyed_hash):
    result = _engine(world, keyed_hash).run(_detections(), _events())
    values = {str(v) for table in (result.triggers, result.decisions) for col in table.columns for v in col.to_pylist()}
    assert not values & {A, B, C, "8613905710001", "8613902100002"}
    assert result.triggers["msisdn"].null_count == len(result.triggers)
    operator_side = _engine(world, keyed_hash, with_msisdn=True).run(_detections(), _events())
    welcome = [r for r in operator_side.triggers.to_pylist() if r["campaign"] == "welcome"]
    assert welcome[0]["msisdn"] == "8613902100002"


def test_nothing_fires_without_firing_campaigns(world, keyed_hash):
    policy = ContactPolicy(PolicyConfig(), keyed_hash)
    idle = [c for c in _campaigns() if c.state not in (State.ACTIVE, State.TEST_SEND)]
    result = CampaignEngine(idle, policy, keyed_hash, world["subscribers"],
                            fence_cells=world["fence_cells"]).run(_detections(), _events())
    assert len(result.triggers) == 0 and len(result.decisions) == 0
    assert result.triggers.schema.names[:4] == ["ts", "send_at", "campaign", "subscriber"]


def test_policy_applies_to_engine_output(world, keyed_hash, tmp_path):
    opt_out = _write(tmp_path, "opt_out.txt", "8613902100002\n")
    policy = ContactPolicy(PolicyConfig(opt_out=opt_out), keyed_hash)
    result = CampaignEngine(_campaigns()[:1], policy, keyed_hash, world["subscribers"]).run(_detections(), _events())
    assert result.decisions["reason"].to_pylist() == ["opt_out"] and len(result.triggers) == 0
    assert pa.types.is_timestamp(result.decisions.schema.field("send_at").type)


def test_empty_batches(world, keyed_hash):
    engine = _engine(world, keyed_hash)
    result = engine.run(TRIGGER_SCHEMA.empty_table(), EVENT_SCHEMA.empty_table())
    assert len(result.triggers) == len(result.decisions) == 0
    fenced_only = CampaignEngine(_campaigns()[:1], ContactPolicy(PolicyConfig(), keyed_hash), keyed_hash)
    assert len(fenced_only.run(TRIGGER_SCHEMA.empty_table(), _events()).decisions) == 0


DOC = (Path(__file__).parent.parent / "docs" / "campaigns.md").read_text()


def _section(title: str) -> str:
    start = DOC.index(title)
    nxt = DOC.find("\n## ", start + 1)
    return DOC[start: nxt if nxt > 0 else None]


def test_docs_cover_every_field_reason_state_and_rule_field():
    assert re.findall(r"^\| `(\w+)` \|", _section("## Decision log"), re.M) == DECISION_SCHEMA.names
    assert re.findall(r"^\| `(\w+)` \|", _section("## Trigger records"), re.M) == TRIGGER_RECORD_SCHEMA.names
    rule_fields = re.findall(r"^\| `([\w.<>]+)` \|", _section("## Rule JSON grammar"), re.M)
    assert rule_fields == [*FIELDS, "tag.<name>"]
    policy = _section("## Contact policy")
    assert all(f"`{r.value}`" in policy for r in Reason if r != Reason.NONE)
    assert all(s.value in _section("## Lifecycle") for s in State)


def test_simulated_city_welcomes_only_visitors_from_other_provinces(city, keyed_hash):
    """Simulator ground truth: subscribers.csv says each subscriber's home; the welcome campaign must reach
    exactly the other-province subscribers the matcher saw entering the fence, each once that day."""
    from decoders.events import events_from_file
    from decoders.tables import read_msisdn
    from geofence.fences import compile_fence, load_fence
    from geofence.match import FenceMatcher

    catalogue = Catalogue.load(city / "cells.csv")
    fence = load_fence(city / "west_lake.geojson")
    cells = compile_fence(fence, catalogue)
    events = events_from_file(city / "capture.pcap")
    detections = FenceMatcher([c.key for c in catalogue.cells], {fence.name: cells}).match(events)
    welcome = _live(Campaign("welcome", "Welcome", fences=[fence.name],
                             rule={"and": [{"field": "kind", "equals": "enter"},
                                           {"field": "roaming", "equals": "other_province"}]}))
    subscribers = Subscribers(origins=Origins.load(city / "number_segments.csv"),
                              msisdn=read_msisdn(city / "subscribers.csv"))
    policy = ContactPolicy(PolicyConfig(quiet_hours=None), keyed_hash)
    result = CampaignEngine([welcome], policy, keyed_hash, subscribers).run(detections, events)

    with open(city / "subscribers.csv", newline="") as f:
        home = {row["imsi"]: row["home"] for row in csv.DictReader(f)}
    entered = set(detections.filter(pc.equal(detections["kind"], "enter"))["imsi"].to_pylist())
    expected = {keyed_hash(x) for x in entered if home[x] != "Zhejiang" and x.startswith("460")}
    # the rule must have had something to reject: locals and foreigners entered too
    assert expected and len(expected) < len(entered)
    got = result.triggers["subscriber"].to_pylist()
    assert sorted(got) == sorted(expected)  # each once: the campaign cap is 1 a day
    assert set(result.decisions["decision"].to_pylist()) <= {"allowed", "blocked"}

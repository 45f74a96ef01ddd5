"""The report JSON API: numbers equal pandas counts over the stored rows, k is never lowered, fences stay private."""

import csv
from datetime import datetime

import pandas as pd
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from test_report import _table
from test_reports_footfall import END, SEGMENTS, START, TZ, _design, _events, _in_period, _overlap, _triggers, at
from webfixtures import PASSWORD, make_state

from analytics.origin import Origins
from analytics.store import Store
from appliance.web import COOKIE, create_app
from geofence.campaigns import DECISION_SCHEMA, Campaign

RULE = {"field": "kind", "equals": "enter"}


def _decisions(store, rows):
    """Deliveries (campaign, imsi, decision, ts) as the campaign engine logs them."""
    d = pd.DataFrame(rows, columns=["campaign", "imsi", "decision", "ts"])
    n = len(d)
    return pa.table({
        "ts": pa.array((d["ts"] * 1e6).round().astype("int64")).cast(DECISION_SCHEMA.field("ts").type),
        "campaign": d["campaign"].tolist(), "subscriber": [store.pseudonym(x) for x in d["imsi"]],
        "fence": ["mall_a"] * n, "kind": ["enter"] * n, "event": ["cell_change"] * n,
        "decision": d["decision"].tolist(), "reason": ["none"] * n,
        "send_at": pa.nulls(n, DECISION_SCHEMA.field("send_at").type), "cell": ["460-00-100-1"] * n,
    }, schema=DECISION_SCHEMA)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """mall_a holds the footfall design's visits; mall_b one visitor; 'welcome' targets mall_a, 'far' mall_b."""
    root = tmp_path_factory.mktemp("web")
    state = make_state(root)
    state.store = Store(f"chdb://{root / 'data'}")
    origins = Origins(SEGMENTS)
    design, nights = _design()
    triggers = _triggers(design).assign(fence="mall_a")
    other = triggers[triggers["imsi"] == triggers["imsi"].iloc[0]].assign(fence="mall_b")
    state.store.insert_triggers(_table(pd.concat([triggers, other], ignore_index=True)), origins, token="t")
    state.store.insert_events(_events(design, nights), origins, token="e")
    triggered = [f"46000571{i:07d}" for i in range(40)]   # 20 of 40 convert
    control = [f"46000571{i:07d}" for i in range(40, 70)]  # 3 of 30 convert: below k
    state.store.insert_deliveries(_decisions(state.store, [("welcome", x, "allowed", at(0, 10)) for x in triggered]
                                             + [("welcome", x, "control", at(0, 10)) for x in control]
                                             + [("far", x, "allowed", at(0, 10)) for x in triggered]), token="d")
    for cid, fence in (("welcome", "mall_a"), ("far", "mall_b")):
        state.campaigns.save(Campaign.from_json({"id": cid, "name": cid, "fences": [fence], "rule": RULE},
                                                source="test"))
    with open(root / "reports" / "mall_a" / "outcomes.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["imsi", "outcome", "ts"])
        w.writerows([x, "purchase", at(1, 12)] for x in triggered[:20] + control[:3])
    app = create_app(state)

    def client(user):
        c = TestClient(app)
        assert c.post("/login", data={"name": user, "password": PASSWORD}, follow_redirects=False).status_code == 303
        assert COOKIE in c.cookies
        return c
    client.pseudonym = state.store.pseudonym
    yield client, design, origins
    state.store.close()


PERIOD = {"start": "2026-05-01", "end": str(END)}  # an ISO date in the probe's zone, and epoch seconds


def test_footfall_json_equals_hand_count(api):
    client, design, _ = api
    r = client("client_a").get("/api/reports/mall_a/footfall", params={**PERIOD, "k": 1})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["from"], body["to"], body["k"]) == (START, END, 15)  # k is never below the configured 15
    d = _in_period(design)
    assert [row["visitors"] for row in body["tables"]["footfall_daily"]] == \
        [_overlap(d, at(i, 0), at(i + 1, 0)) for i in range(4)]
    summary = {row["metric"]: row["value"] for row in body["tables"]["footfall_summary"]}
    assert summary["visitors"] == d["imsi"].nunique()
    hours = [START + 3600 * h for h in range(96)]
    expected = {datetime.fromtimestamp(h, TZ).strftime("%Y-%m-%d %H:00"): _overlap(d, h, h + 3600) for h in hours}
    hourly = {row["hour"]: row["visitors"] for row in body["tables"]["footfall_hourly"]}
    assert hourly == {h: (n if n >= 15 else None) for h, n in expected.items() if n}
    dwell = [row["visits"] for row in body["tables"]["dwell"]]
    assert None in dwell and all(n is None or n >= 15 for n in dwell)  # small buckets are blanked, not dropped


def test_origin_json_equals_hand_count_and_suppresses(api):
    client, design, origins = api
    body = client("client_a").get("/api/reports/mall_a/origin", params={**PERIOD, "k": 16}).json()
    assert body["k"] == 16  # a higher k is honoured
    people = _in_period(design).drop_duplicates("imsi")
    provinces = people["imsi"].map(lambda x: origins.home(x).province)
    counts = provinces[provinces != ""].value_counts()
    rows = {row["origin"]: row["visitors"] for row in body["tables"]["origin_province"]}
    assert rows == {**{p: n for p, n in counts.items() if n >= 16}, "Other (small groups)": 30}  # Jiangsu, Beijing
    classes = {row["class"]: row["visitors"] for row in body["tables"]["visitor_class"]}
    assert classes == people["label"].value_counts().to_dict()
    countries = {row["origin"] for row in body["tables"]["origin_country"]}
    assert "Japan" not in countries  # 5 visitors


def test_effect_json_counts_the_fences_campaigns(api):
    client, _, _ = api
    body = client("client_a").get("/api/reports/mall_a/effect", params=PERIOD).json()
    rows = {row["group"]: row for row in body["tables"]["conversion"]}
    assert {row["campaign"] for row in body["tables"]["conversion"]} == {"welcome"}  # not mall_b's campaign
    assert (rows["triggered"]["subscribers"], rows["triggered"]["converted"]) == (40, 20)
    assert rows["triggered"]["rate"] == pytest.approx(0.5)
    assert (rows["control"]["subscribers"], rows["control"]["converted"], rows["control"]["rate"]) == (30, None, None)


def test_a_client_reads_only_its_own_fences_and_no_identifiers(api):
    client, design, _ = api
    a = client("client_a")
    for kind in ("footfall", "origin", "effect"):
        # the same answer as for a fence that does not exist: a client must not learn others' fence names
        assert a.get(f"/api/reports/mall_b/{kind}", params=PERIOD).status_code == 404
        assert a.get(f"/api/reports/nowhere/{kind}", params=PERIOD).status_code == 404
        assert client("marketer").get(f"/api/reports/mall_a/{kind}", params=PERIOD).status_code == 403
    text = "".join(a.get(f"/api/reports/mall_a/{kind}", params={**PERIOD, "k": 1}).text
                   for kind in ("footfall", "origin", "effect"))
    assert not any(x in text or client.pseudonym(x) in text for x in design["imsi"])
    b = client("client_b")
    assert b.get("/api/reports/mall_b/footfall", params=PERIOD).status_code == 200
    assert b.get("/api/reports/mall_b/effect", params=PERIOD).status_code == 404  # no outcomes imported


@pytest.mark.parametrize("params,message", [
    ({"start": "yesterday", "end": "2026-05-02"}, "is not ISO 8601"),
    ({"start": "2026-05-02", "end": "2026-05-01"}, "before end"),
])
def test_bad_periods_are_refused_with_the_reason(api, params, message):
    client, _, _ = api
    r = client("client_a").get("/api/reports/mall_a/footfall", params=params)
    assert r.status_code == 422 and message in r.json()["detail"], r.text

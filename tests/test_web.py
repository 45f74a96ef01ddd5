"""The web app's contract: nothing without auth, roles enforced, bad input refused with a reason, fences saved."""

import json

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from webfixtures import LAT0, LON0, PASSWORD, STEP, make_state, square

from appliance.web import COOKIE, MAX_BODY, create_app

PUBLIC = {"/healthz", "/login"}


@pytest.fixture
def web(tmp_path):
    state = make_state(tmp_path)
    changes = []
    state.on_fences_changed = lambda: changes.append(len(state.fences.fences))
    app = create_app(state)
    clients = {}

    def client(user: str | None) -> TestClient:
        if user not in clients:
            c = TestClient(app, follow_redirects=False)
            if user:
                r = c.post("/login", data={"name": user, "password": PASSWORD})
                assert r.status_code == 303 and COOKIE in r.cookies
            clients[user] = c
        return clients[user]

    client.state, client.changes, client.app = state, changes, app
    return client


def _concrete(path: str) -> str:
    return path.replace("{path:path}", "report.html").replace("{lib}", "leaflet").replace("{fence}", "mall_a") \
        .replace("{name}", "mall_a").replace("{campaign_id}", "welcome")


def test_no_endpoint_answers_without_auth(web):
    anonymous = web(None)
    checked = 0
    for route in web.app.routes:
        if not isinstance(route, APIRoute) or route.path in PUBLIC or route.path == "/logout":
            continue
        for method in route.methods:
            r = anonymous.request(method, _concrete(route.path), json={})
            assert r.status_code == 401, (method, route.path, r.status_code)
            checked += 1
    assert checked >= 15
    html = anonymous.get("/", headers={"accept": "text/html"})
    assert html.status_code == 303 and html.headers["location"] == "/login"  # a browser is sent to sign in


def test_forged_or_expired_session_and_unknown_token_are_refused(web):
    state = web.state
    who = state.accounts.login("admin", PASSWORD)
    good = state.accounts.session_cookie(who)
    c = web(None)
    body, mac = good.rsplit(".", 1)
    forged = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1] + "." + mac
    for cookie in (forged, state.accounts.session_cookie(who, now=0)):
        c.cookies.set(COOKIE, cookie)
        assert c.get("/api/status").status_code == 401
    c.cookies.clear()
    assert c.get("/metrics", headers={"authorization": "Bearer sgl_nope"}).status_code == 401


def test_wrong_password_does_not_sign_in(web):
    r = web(None).post("/login", data={"name": "admin", "password": "wrong password"})
    assert r.status_code == 303 and "error" in r.headers["location"] and COOKIE not in r.cookies
    assert web.state.accounts.audit_log(target="admin")[0]["action"] == "login.failed"


@pytest.mark.parametrize("user,method,path,allowed", [
    ("engineer", "GET", "/api/status", True),
    ("engineer", "POST", "/api/fences/preview", False),
    ("marketer", "GET", "/api/status", False),
    ("marketer", "GET", "/api/audit", False),
    ("approver", "POST", "/api/fences", False),
    ("approver", "GET", "/api/triggers/counts", True),
    ("client_a", "GET", "/api/cells", False),
    ("client_a", "GET", "/api/status", False),
    ("client_a", "GET", "/metrics", False),
    ("client_a", "GET", "/api/triggers/stream", False),
    ("client_a", "POST", "/api/users", False),
    ("admin", "GET", "/api/audit", True),
])
def test_roles(web, user, method, path, allowed):
    r = web(user).request(method, path, json={"kind": "cells", "name": "x", "cells": ["460-00-100-5"]})
    assert (r.status_code == 403) != allowed, r.text


def test_a_client_sees_only_its_own_fences_and_reports(web):
    a = web("client_a")
    assert [f["name"] for f in a.get("/api/fences").json()] == ["mall_a"]
    assert a.get("/api/fences/mall_a").status_code == 200
    assert "compiled_cells" not in a.get("/api/fences/mall_a").json()  # no cell-level detail for clients
    assert a.get("/api/fences/mall_b").status_code == 404
    assert a.get("/reports/mall_a/report.html").text == "<html><body>report of mall_a</body></html>"
    assert a.get("/reports/mall_b/report.html").status_code == 404
    assert "mall_b" not in a.get("/reports").text
    assert a.get("/reports/mall_a/../mall_b/report.html").status_code == 404
    assert a.post("/api/reports/mall_b", json={"from": 0, "to": 1}).status_code == 404


def test_draw_untick_and_save_a_fence(web):
    m = web("marketer")
    # A square around the middle row of the grid: cells 4, 5, 6 lie inside, the others outside.
    fence = {"kind": "polygon", "name": "middle_row",
             "geometry": square(LAT0 + STEP * 0.6, LON0 - STEP * 0.6, LAT0 + STEP * 1.4, LON0 + STEP * 2.6)}
    rows = m.post("/api/fences/preview", json=fence).json()
    assert sorted(r["key"] for r in rows if r["selected"]) == ["460-00-100-4", "460-00-100-5", "460-00-100-6"]
    saved = m.post("/api/fences", json={"fence": fence, "cells": ["460-00-100-4", "460-00-100-5"]})
    assert saved.status_code == 201
    assert saved.json() == {"name": "middle_row", "cells": ["460-00-100-4", "460-00-100-5"]}
    on_disk = json.loads((web.state.fences_dir / "middle_row.json").read_text())
    assert on_disk["exclude"] == ["460-00-100-6"]
    assert web.changes == [3]  # the matcher was told once
    assert m.get("/api/fences/middle_row").json()["compiled_cells"] == ["460-00-100-4", "460-00-100-5"]
    audit = web("admin").get("/api/audit", params={"target": "middle_row"}).json()
    assert audit[0]["actor"] == "marketer" and audit[0]["action"] == "fence.save"


@pytest.mark.parametrize("body,status,message", [
    ({"kind": "polygon", "name": "bow", "geometry": {"type": "Polygon", "coordinates": [
        [[120.0, 30.0], [120.1, 30.1], [120.1, 30.0], [120.0, 30.1], [120.0, 30.0]]]}}, 422, "self-intersecting"),
    ({"kind": "polygon", "name": "latlon", "geometry": square(120.1, 30.1, 120.2, 30.2)}, 422, "lon/lat"),
    ({"kind": "radius", "name": "r", "lat": 130, "lon": 120, "radius_m": 500}, 422, "field 'lat'"),
    ({"kind": "blob", "name": "b"}, 422, "field 'kind'"),
    ({"kind": "cells", "name": "c", "cells": ["460-00-999-9"]}, 422, "460-00-999-9"),
])
def test_bad_fences_are_refused_with_the_reason(web, body, status, message):
    r = web("marketer").post("/api/fences", json=body)
    assert r.status_code == status and message in r.json()["detail"], r.text


def test_non_json_and_huge_bodies_are_refused(web):
    m = web("marketer")
    r = m.post("/api/fences", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not JSON" in r.json()["detail"]
    huge = json.dumps({"kind": "cells", "name": "h", "cells": ["x" * 100] * (MAX_BODY // 100)})
    r = m.post("/api/fences", content=huge.encode(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert not (web.state.fences_dir / "h.json").exists()
    bad_name = {"kind": "cells", "name": "../../etc/passwd", "cells": ["460-00-100-5"]}
    assert m.post("/api/fences", json=bad_name).status_code == 422


def test_admin_makes_a_token_for_prometheus(web):
    admin = web("admin")
    token = admin.post("/api/tokens", json={"name": "prometheus", "role": "engineer"}).json()["token"]
    web.state.metrics.inc("sigloc_events_total", 3, kind="power_on")
    r = web(None).get("/metrics", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200 and 'sigloc_events_total{kind="power_on"} 3' in r.text
    assert admin.post("/api/users", json={"name": "x", "role": "king", "password": PASSWORD}).status_code == 422


WELCOME = {"id": "welcome", "name": "Welcome to mall A", "fences": ["mall_a"],
           "rule": {"and": [{"field": "kind", "equals": "enter"}, {"field": "roaming", "equals": "other_province"}]}}


def test_campaign_lifecycle_through_the_api_with_roles_and_audit(web):
    m, a = web("marketer"), web("approver")
    assert a.post("/api/campaigns", json=WELCOME).status_code == 403  # approvers do not write campaigns
    assert m.post("/api/campaigns", json=WELCOME).status_code == 201
    assert m.post("/api/campaigns", json=WELCOME).status_code == 409
    step = lambda who, to: who.post("/api/campaigns/welcome/transition", json={"to": to})  # noqa: E731
    assert step(m, "approved").status_code == 403  # a marketer cannot approve
    assert step(m, "submitted").json()["state"] == "submitted"
    assert m.put("/api/campaigns/welcome", json={"name": "changed"}).status_code == 422  # only drafts change
    assert step(a, "approved").json()["state"] == "approved"
    assert step(m, "active").status_code == 409  # the test send comes first
    assert step(m, "test_send").status_code == 200
    final = step(m, "active").json()
    assert final["state"] == "active"
    assert [(h["to"], h["who"]) for h in final["history"]] == [
        ("submitted", "marketer"), ("approved", "approver"), ("test_send", "marketer"), ("active", "marketer")]
    actions = [e["action"] for e in web("admin").get("/api/audit", params={"target": "welcome"}).json()]
    assert actions == ["campaign.active", "campaign.test_send", "campaign.approved", "campaign.submitted",
                       "campaign.create"]
    assert web("client_a").get("/api/campaigns").status_code == 403


def test_the_submitter_cannot_approve_their_own_campaign(web):
    admin = web("admin")
    admin.post("/api/campaigns", json=WELCOME)
    admin.post("/api/campaigns/welcome/transition", json={"to": "submitted"})
    r = admin.post("/api/campaigns/welcome/transition", json={"to": "approved"})
    assert r.status_code == 409 and "cannot also approve" in r.json()["detail"]


@pytest.mark.parametrize("change,message", [
    ({"fences": ["nowhere"]}, "no fence named 'nowhere'"),
    ({"rule": {"and": [{"field": "kind", "equals": "walk"}]}}, "$.and[0]"),
    ({"control_share": 1.5}, "control_share"),
    ({"colour": "red"}, "unknown field"),
])
def test_bad_campaigns_are_refused_with_the_field(web, change, message):
    r = web("marketer").post("/api/campaigns", json={**WELCOME, **change})
    assert r.status_code == 422 and message in r.json()["detail"], r.text


def test_every_route_and_metric_is_documented(web):
    from pathlib import Path

    from appliance.metrics import METRICS
    doc = (Path(__file__).parent.parent / "docs" / "appliance.md").read_text()
    for route in web.app.routes:
        if isinstance(route, APIRoute) and route.path not in ("/login", "/logout", "/healthz",
                                                              "/static/{lib}/{path:path}"):
            assert route.path.split("{")[0].rstrip("/") in doc, route.path
    for name in METRICS:
        assert f"`{name}" in doc, name

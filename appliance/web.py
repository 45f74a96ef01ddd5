"""The web app: the marketer's fence map, the engineer's status, the client's reports, the trigger feed.

A thin FastAPI layer over the library: every route names the permission it needs (appliance.auth), every change
is audited, every input is validated by the same loaders the CLI uses (so a bad GeoJSON gets the same message in
the browser as on the command line). Nothing but ``/login`` and ``/healthz`` answers without a session cookie or
an API token — static assets included — and a report client can reach only the reports of its own fences.
"""

import html
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import h3
import pandas as pd
from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, \
    StreamingResponse

from analytics.effect import OutcomeError, effect, read_subscribers
from analytics.footfall import footfall, origin, write_footfall_report
from analytics.report import instant
from appliance.auth import Accounts, AuthError, Principal
from appliance.delivery import Outbox, sse_stream
from appliance.metrics import Metrics
from geofence.campaigns import Campaign, CampaignError, CampaignStore, State
from geofence.fences import FenceError, FenceSet, candidates, fence_from_json, fence_to_json, save_fence, select

COOKIE = "sigloc_session"
MAX_BODY = 2 * 1024 * 1024  # a drawn fence is a few kB; a catalogue upload goes through the CLI

_STATIC = {
    "leaflet": resources.files("analytics").joinpath("assets"),
    "draw": resources.files("appliance").joinpath("static/leaflet-draw"),
    "app": resources.files("appliance").joinpath("static"),
}


@dataclass
class WebState:
    """What the pages show and change; the daemon owns these objects and shares them with its threads."""

    accounts: Accounts
    fences: FenceSet
    fences_dir: Path
    metrics: Metrics = field(default_factory=Metrics)
    outbox: Outbox | None = None
    kafka_outbox: Outbox | None = None  # the Kafka feed's own delivery state, when it runs
    reports_dir: Path | None = None
    tiles: str = ""  # tile URL template; empty = no basemap (probe networks are offline)
    k: int = 15  # client-facing counts below k are suppressed
    tz: str = "Asia/Shanghai"
    campaigns: CampaignStore | None = None
    store: object | None = None  # analytics.store.Store the daemon owns (reports, complaint handling)
    on_fences_changed: Callable[[], None] = lambda: None
    on_campaigns_changed: Callable[[], None] = lambda: None
    lock: threading.Lock = field(default_factory=threading.Lock)


class BodyLimit:
    """ASGI middleware: refuse bodies over ``limit`` bytes, declared or streamed, before any handler reads them."""

    def __init__(self, app, limit: int = MAX_BODY):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared and int(declared) > self.limit:
            return await _too_large(send, self.limit)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await _too_large(send, self.limit)


class _TooLarge(Exception):
    pass


async def _too_large(send, limit: int) -> None:
    body = json.dumps({"detail": f"request body over {limit} bytes"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def create_app(state: WebState) -> FastAPI:
    app = FastAPI(title="sigloc", docs_url=None, redoc_url=None, openapi_url=None)

    def principal(request: Request) -> Principal | None:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            return state.accounts.from_token(header[7:].strip())
        cookie = request.cookies.get(COOKIE)
        return state.accounts.from_cookie(cookie) if cookie else None

    def need(permission: str | None = None):
        def check(request: Request) -> Principal:
            who = principal(request)
            if who is None:
                if request.url.path.startswith("/api/") or "text/html" not in request.headers.get("accept", ""):
                    raise HTTPException(401, "sign in or send an API token", {"WWW-Authenticate": "Bearer"})
                raise HTTPException(303, "sign in", {"Location": "/login"})
            if permission and not who.can(permission):
                raise HTTPException(403, f"role {who.role} may not do this ({permission})")
            return who
        return check

    async def json_body(request: Request) -> dict:
        try:
            doc = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise HTTPException(400, f"request body is not JSON: {err}") from None
        if not isinstance(doc, dict):
            raise HTTPException(400, "request body must be a JSON object")
        return doc

    def fence_or_404(name: str, who: Principal):
        if name not in state.fences.fences or not who.may_see_fence(name):
            raise HTTPException(404, f"no fence named {name!r}")  # a client must not learn others' fence names
        return state.fences.fences[name]

    # -- public -------------------------------------------------------------------------------------------

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    @app.get("/login", response_class=HTMLResponse)
    def login_page(error: str = ""):
        message = f'<p class="error">{html.escape(error)}</p>' if error else ""
        return _page("Sign in", f"""{message}
<form method="post" action="/login" class="login">
 <label>User <input name="name" autocomplete="username" required></label>
 <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
 <button type="submit">Sign in</button>
</form>""")

    @app.post("/login")
    def login(name: str = Form(...), password: str = Form(...)):
        who = state.accounts.login(name, password)
        if who is None:
            return RedirectResponse("/login?error=Wrong+user+or+password", status_code=303)
        response = RedirectResponse("/" if who.can("cells") else "/reports", status_code=303)
        response.set_cookie(COOKIE, state.accounts.session_cookie(who), httponly=True, samesite="strict")
        return response

    @app.post("/logout")
    def logout():
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    # -- assets and operations --------------------------------------------------------------------------

    @app.get("/static/{lib}/{path:path}")
    def static(lib: str, path: str, who: Principal = Depends(need())):
        root = _STATIC.get(lib)
        if root is None or ".." in Path(path).parts:
            raise HTTPException(404)
        target = Path(str(root)) / path
        if not target.is_file():
            raise HTTPException(404)
        return FileResponse(target)

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics(who: Principal = Depends(need("metrics"))):
        for sink, outbox in (("webhook", state.outbox), ("kafka", state.kafka_outbox)):
            for status, n in (outbox.counts().items() if outbox is not None else ()):
                state.metrics.set("sigloc_outbox", n, status=status, sink=sink)
        return state.metrics.render()

    @app.get("/api/status")
    def status(who: Principal = Depends(need("status"))):
        m = state.metrics
        return {"packets": m.total("sigloc_packets_total"), "messages": m.total("sigloc_messages_total"),
                "decode_errors": m.total("sigloc_decode_errors_total"), "events": m.total("sigloc_events_total"),
                "triggers": m.total("sigloc_triggers_total"), "cells": len(state.fences.catalogue),
                "fences": len(state.fences.fences),
                "outbox": state.outbox.counts() if state.outbox is not None else {}}

    @app.get("/api/cells")
    def cells(who: Principal = Depends(need("cells"))):
        return {"type": "FeatureCollection", "features": [
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [c.lon, c.lat]},
             "properties": {"key": c.key, "site": c.site_name, "rat": c.rat}}
            for c in state.fences.catalogue.cells]}

    # -- fences -----------------------------------------------------------------------------------------

    @app.get("/api/fences")
    def list_fences(who: Principal = Depends(need())):
        if not (who.can("fences:read") or who.can("reports")):
            raise HTTPException(403, f"role {who.role} may not read fences")
        return [{"name": n, "kind": f.kind.value, "cells": len(state.fences.members[n])}
                for n, f in state.fences.fences.items() if who.may_see_fence(n)]

    @app.get("/api/fences/{name}")
    def get_fence(name: str, who: Principal = Depends(need())):
        fence = fence_or_404(name, who)
        doc = fence_to_json(fence)
        if who.can("fences:read"):
            doc["compiled_cells"] = state.fences.cells_of(name)
        return doc

    @app.post("/api/fences/preview")
    async def preview(doc: dict = Depends(json_body), who: Principal = Depends(need("fences:write"))):
        fence = _fence(doc.get("fence", doc))
        return [{"key": c.key, "site": c.site_name, "share": round(c.share, 4), "selected": c.selected}
                for c in candidates(fence, state.fences.catalogue, state.fences.min_overlap)]

    @app.post("/api/fences", status_code=201)
    async def save(doc: dict = Depends(json_body), who: Principal = Depends(need("fences:write"))):
        fence = _fence(doc.get("fence", doc))
        keys = doc.get("cells")
        if keys is not None:
            if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                raise HTTPException(422, "field 'cells': expected a list of cell keys")
            try:
                fence = select(fence, state.fences.catalogue, keys, state.fences.min_overlap)
            except FenceError as err:
                raise HTTPException(422, str(err)) from None
        if not _safe_name(fence.name):
            raise HTTPException(422, "field 'name': letters, digits, '_' and '-' only (it names a file)")
        with state.lock:
            save_fence(fence, state.fences_dir / f"{fence.name}.json")
            state.fences.put(fence)
            state.on_fences_changed()
        state.accounts.audit(who.name, "fence.save", fence.name, fence_to_json(fence))
        return {"name": fence.name, "cells": state.fences.cells_of(fence.name)}

    @app.delete("/api/fences/{name}")
    def delete_fence(name: str, who: Principal = Depends(need("fences:write"))):
        fence_or_404(name, who)
        with state.lock:
            state.fences.remove(name)
            (state.fences_dir / f"{name}.json").unlink(missing_ok=True)
            state.on_fences_changed()
        state.accounts.audit(who.name, "fence.delete", name, {})
        return {"deleted": name}

    @app.get("/api/h3")
    def h3_cell(lat: float, lon: float, res: int = 8, who: Principal = Depends(need("fences:write"))):
        """The H3 cell under a click, for the pick-H3-cells tool (the browser has no H3 library)."""
        if not (-90 <= lat <= 90 and -180 <= lon <= 180 and 0 <= res <= 15):
            raise HTTPException(422, "lat/lon out of range or res not in 0..15")
        cell = h3.latlng_to_cell(lat, lon, res)
        return {"cell": cell, "boundary": [[la, lo] for la, lo in h3.cell_to_boundary(cell)]}

    # -- campaigns --------------------------------------------------------------------------------------

    def campaign_store() -> CampaignStore:
        if state.campaigns is None:
            raise HTTPException(404, "campaigns are not configured on this probe")
        return state.campaigns

    def campaign_or_404(campaign_id: str) -> Campaign:
        try:
            return campaign_store().load(campaign_id)
        except CampaignError:
            raise HTTPException(404, f"no campaign {campaign_id!r}") from None

    def check_fences(campaign: Campaign) -> None:
        unknown = [f for f in campaign.fences if f not in state.fences.fences]
        if unknown:
            raise HTTPException(422, f"campaign {campaign.id}: field 'fences': no fence named {unknown[0]!r}")

    @app.get("/api/campaigns")
    def list_campaigns(who: Principal = Depends(need("campaigns:read"))):
        return [c.to_json() for c in campaign_store().load_all()]

    @app.post("/api/campaigns", status_code=201)
    async def create_campaign(doc: dict = Depends(json_body), who: Principal = Depends(need("campaigns:write"))):
        if doc.get("state", State.DRAFT) != State.DRAFT or doc.get("history"):
            raise HTTPException(422, "a new campaign starts as a draft with no history")
        try:
            campaign = Campaign.from_json(doc, source="request")
        except CampaignError as err:
            raise HTTPException(422, str(err)) from None
        if (campaign_store().directory / f"{campaign.id}.json").exists():
            raise HTTPException(409, f"campaign {campaign.id!r} already exists")
        check_fences(campaign)
        with state.lock:
            campaign_store().save(campaign)
            state.on_campaigns_changed()
        state.accounts.audit(who.name, "campaign.create", campaign.id, campaign.to_json())
        return campaign.to_json()

    @app.put("/api/campaigns/{campaign_id}")
    async def edit_campaign(campaign_id: str, doc: dict = Depends(json_body),
                            who: Principal = Depends(need("campaigns:write"))):
        campaign = campaign_or_404(campaign_id)
        try:
            campaign.edit(**doc)
        except (CampaignError, TypeError) as err:
            raise HTTPException(422, str(err)) from None
        check_fences(campaign)
        with state.lock:
            campaign_store().save(campaign)
            state.on_campaigns_changed()
        state.accounts.audit(who.name, "campaign.edit", campaign.id, doc)
        return campaign.to_json()

    @app.post("/api/campaigns/{campaign_id}/transition")
    async def transition(campaign_id: str, doc: dict = Depends(json_body), who: Principal = Depends(need())):
        campaign = campaign_or_404(campaign_id)
        to = doc.get("to")
        if to not in State.__members__.values():
            raise HTTPException(422, f"field 'to': {to!r} is not one of {', '.join(State)}")
        # Approving, and sending a submitted campaign back, is the approver's; the rest is the marketer's.
        reviewing = to == State.APPROVED or (campaign.state == State.SUBMITTED and to == State.DRAFT)
        permission = "campaigns:approve" if reviewing else "campaigns:write"
        if not who.can(permission):
            raise HTTPException(403, f"role {who.role} may not move a campaign to {to} ({permission})")
        try:
            campaign.transition(to, who.name)
        except CampaignError as err:
            raise HTTPException(409, str(err)) from None
        with state.lock:
            campaign_store().save(campaign)
            state.on_campaigns_changed()
        state.accounts.audit(who.name, f"campaign.{to}", campaign.id, {"from": campaign.history[-1]["from"]})
        return campaign.to_json()

    @app.get("/campaigns", response_class=HTMLResponse)
    def campaigns_page(who: Principal = Depends(need("campaigns:read"))):
        settings = json.dumps({"canWrite": who.can("campaigns:write"), "canApprove": who.can("campaigns:approve"),
                               "fences": [n for n in state.fences.fences]})
        return _page("Campaigns", f"""
<p class="who">{html.escape(who.name)} ({who.role})</p>
<table id="campaigns"><thead><tr><th>Id</th><th>Name</th><th>Fences</th><th>State</th><th>Triggers</th>
<th></th></tr></thead><tbody></tbody></table>
<form id="new-campaign" hidden>
 <h2>New campaign</h2>
 <label>Id <input name="id" required pattern="[A-Za-z0-9_-]+"></label>
 <label>Name <input name="name" required></label>
 <label>Fence <select name="fence"></select></label>
 <label>When <select name="kind">
  <option value="enter">enters</option><option value="dwell">stays (dwell)</option>
  <option value="exit">leaves</option><option value="pass_through">passes through</option></select></label>
 <label>Roaming <select name="roaming"><option value="">anyone</option><option value="local">local</option>
  <option value="other_province">other province</option><option value="international">international</option>
 </select></label>
 <label>Hours <input name="from" placeholder="08:00"> – <input name="to" placeholder="22:00"></label>
 <label>Per day <input name="cap" type="number" value="1" min="0"></label>
 <label>Control share <input name="control" type="number" value="0" min="0" max="0.9" step="0.05"></label>
 <label>Whitelist (test send) <input name="whitelist" placeholder="IMSI or MSISDN, comma separated"></label>
 <button type="submit">Create draft</button> <span id="campaign-status"></span>
</form>
<script>window.SIGLOC = {settings};</script>
<script src="/static/app/campaigns.js"></script>""")

    # -- trigger feed -----------------------------------------------------------------------------------

    @app.get("/api/triggers/stream")
    def stream(request: Request, who: Principal = Depends(need("triggers"))):
        if state.outbox is None:
            raise HTTPException(404, "no trigger feed on this probe")
        try:
            last = int(request.headers.get("last-event-id") or request.query_params.get("last_id") or 0)
        except ValueError:
            raise HTTPException(422, "Last-Event-ID must be an integer") from None
        return StreamingResponse(sse_stream(state.outbox, last), media_type="text/event-stream")

    @app.get("/api/triggers/counts")
    def trigger_counts(who: Principal = Depends(need("triggers"))):
        if state.outbox is None:
            return {"status": {}, "campaigns": {}}
        return {"status": state.outbox.counts(), "campaigns": state.outbox.per_campaign()}

    # -- complaint handling ---------------------------------------------------------------------------

    @app.get("/api/explain")
    def explain(imsi: str = "", campaign: str | None = None,
                who: Principal = Depends(need("explain"))):
        """Why did this subscriber get (or not get) a message: events → detections → decisions → deliveries.
        The identifier is hashed here and never stored or echoed; the answer carries the pseudonym only."""
        if state.store is None:
            raise HTTPException(404, "no store on this probe")
        if not (imsi.isdigit() and 6 <= len(imsi) <= 15):
            raise HTTPException(422, "field 'imsi': 6-15 digits")
        subscriber = state.store.pseudonym(imsi)
        with state.lock:
            found = state.store.history(subscriber, campaign)
        state.accounts.audit(who.name, "explain", subscriber, {"campaign": campaign})
        out = {"subscriber": subscriber,
               "deliveries": state.outbox.of_subscriber(subscriber) if state.outbox is not None else []}
        for name, df in found.items():
            out[name] = json.loads(df.to_json(orient="records", date_format="iso"))
        if campaign:
            out["deliveries"] = [d for d in out["deliveries"] if d.get("campaign") == campaign]
        return out

    # -- administration ---------------------------------------------------------------------------------

    @app.get("/api/audit")
    def audit(target: str | None = None, who: Principal = Depends(need("admin"))):
        return state.accounts.audit_log(target=target)

    @app.post("/api/users", status_code=201)
    async def add_user(doc: dict = Depends(json_body), who: Principal = Depends(need("admin"))):
        try:
            state.accounts.add_user(str(doc.get("name", "")), str(doc.get("role", "")),
                                    str(doc.get("password", "")), list(doc.get("fences") or []), actor=who.name)
        except AuthError as err:
            raise HTTPException(422, str(err)) from None
        return {"name": doc["name"]}

    @app.post("/api/tokens", status_code=201)
    async def add_token(doc: dict = Depends(json_body), who: Principal = Depends(need("admin"))):
        try:
            token = state.accounts.new_token(str(doc.get("name", "")), str(doc.get("role", "")),
                                             list(doc.get("fences") or []), actor=who.name)
        except AuthError as err:
            raise HTTPException(422, str(err)) from None
        return {"token": token}

    # -- reports ----------------------------------------------------------------------------------------

    @app.get("/reports", response_class=HTMLResponse)
    def reports(who: Principal = Depends(need("reports"))):
        names = [n for n in state.fences.fences if who.may_see_fence(n) and _report_file(state, n, "report.html")]
        items = "".join(f'<li><a href="/reports/{html.escape(n)}/report.html">{html.escape(n)}</a></li>'
                        for n in names) or "<li>No reports yet.</li>"
        return _page("Reports", f"<ul>{items}</ul>")

    @app.post("/api/reports/{fence}", status_code=201)
    async def build_report(fence: str, doc: dict = Depends(json_body), who: Principal = Depends(need("reports"))):
        """(Re)build a fence's footfall report for a period: ``{"from": epoch s, "to": epoch s}``."""
        shape = fence_or_404(fence, who)
        if state.store is None or state.reports_dir is None:
            raise HTTPException(404, "no store on this probe")
        t0, t1 = doc.get("from"), doc.get("to")
        if not all(isinstance(t, int | float) and not isinstance(t, bool) for t in (t0, t1)) or t0 >= t1:
            raise HTTPException(422, "fields 'from' and 'to': epoch seconds with from < to")
        with state.lock:
            path = write_footfall_report(state.store, fence, t0, t1, state.reports_dir / fence, k=state.k,
                                         tz=state.tz, shape=shape, catalogue=state.fences.catalogue)
        state.accounts.audit(who.name, "report.build", fence, {"from": t0, "to": t1})
        return {"report": f"/reports/{fence}/{path.name}"}

    def report_tables(fence: str, who: Principal, start: str, end: str, k: int | None, build) -> dict:
        """One report as JSON records: the period from ISO 8601 or epoch ``start``/``end`` (in the probe's time
        zone unless given an offset), ``k`` raised to the configured k when lower."""
        fence_or_404(fence, who)
        if state.store is None:
            raise HTTPException(404, "no store on this probe")
        try:
            t0, t1 = instant(start, state.tz), instant(end, state.tz)
        except ValueError as err:
            raise HTTPException(422, f"query 'start'/'end': {err}") from None
        if t0 >= t1:
            raise HTTPException(422, "query 'start'/'end': start must be before end")
        k = max(state.k, k or 0)
        with state.lock:
            tables = build(t0, t1, k)
        return {"fence": fence, "from": t0, "to": t1, "k": k,
                "tables": {name: json.loads(df.to_json(orient="records", date_format="iso"))
                           for name, df in tables.items()}}

    @app.get("/api/reports/{fence}/footfall")
    def footfall_json(fence: str, start: str, end: str, k: int | None = None,
                      who: Principal = Depends(need("reports"))):
        return report_tables(fence, who, start, end, k, lambda t0, t1, k: footfall(
            state.store, fence, t0, t1, k=k, tz=state.tz).tables())

    @app.get("/api/reports/{fence}/origin")
    def origin_json(fence: str, start: str, end: str, k: int | None = None,
                    who: Principal = Depends(need("reports"))):
        return report_tables(fence, who, start, end, k, lambda t0, t1, k: origin(
            state.store, fence, t0, t1, k=k, tz=state.tz, cells=state.fences.cells_of(fence)).tables())

    @app.get("/api/reports/{fence}/effect")
    def effect_json(fence: str, start: str, end: str, k: int | None = None,
                    who: Principal = Depends(need("reports"))):
        """Effect of the campaigns that target the fence, against the outcome CSVs the operator imported into
        the fence's report directory (outcomes.csv; mass_send.csv and opt_outs.csv when present)."""
        fence_or_404(fence, who)
        folder = state.reports_dir / fence if state.reports_dir is not None else None
        if folder is None or not (folder / "outcomes.csv").is_file():
            raise HTTPException(404, f"no outcomes imported for fence {fence!r}")
        campaigns = [c.id for c in state.campaigns.load_all() if fence in c.fences] if state.campaigns else []

        def read(name: str, fields: tuple[str, ...] = ()):
            if not (folder / name).is_file():
                return None
            try:
                return read_subscribers(folder / name, state.store.pseudonym, None, fields, state.tz)
            except OutcomeError as err:  # the message names the file by fence, not by its path on the probe
                raise HTTPException(422, str(err).replace(str(folder), fence)) from None

        def build(t0, t1, k):
            inputs = read("outcomes.csv", ("outcome", "ts")), read("mass_send.csv"), read("opt_outs.csv", ("ts",))
            reports = [effect(state.store, t0, t1, *inputs, campaign=c, k=k).tables() for c in campaigns]
            return {name: pd.concat([r[name] for r in reports], ignore_index=True) if reports else pd.DataFrame()
                    for name in ("conversion", "difference", "opt_outs")}
        return report_tables(fence, who, start, end, k, build)

    @app.get("/reports/{fence}/{path:path}")
    def report_file(fence: str, path: str, who: Principal = Depends(need("reports"))):
        fence_or_404(fence, who)
        target = _report_file(state, fence, path)
        if target is None:
            raise HTTPException(404, "no such report file")
        return FileResponse(target)

    # -- pages ------------------------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    def map_page(who: Principal = Depends(need("cells"))):
        settings = json.dumps({"tiles": state.tiles, "canWrite": who.can("fences:write")})
        return _page("Fences", f"""
<div id="layout"><div id="map"></div>
<aside id="panel">
 <p class="who">{html.escape(who.name)} ({who.role})</p>
 <h2>Fences</h2><ul id="fences"></ul>
 <h2>New fence</h2>
 <p>Draw a polygon, rectangle or circle on the map, or use "Pick H3 cells" / "Pick cells" and then Preview.</p>
 <label>Name <input id="fence-name" value="new_fence"></label>
 <div id="editor" hidden>
  <p id="candidate-count"></p>
  <table id="candidates"><thead><tr><th></th><th>Cell</th><th>Site</th><th>Share</th></tr></thead>
  <tbody></tbody></table>
  <button id="save-fence">Save fence</button> <span id="save-status"></span>
 </div>
</aside></div>
<script>window.SIGLOC = {settings};</script>
<script src="/static/leaflet/leaflet.js"></script>
<script src="/static/draw/leaflet.draw.js"></script>
<script src="/static/app/map.js"></script>""", head="""
<link rel="stylesheet" href="/static/leaflet/leaflet.css">
<link rel="stylesheet" href="/static/draw/leaflet.draw.css">""")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException):
        if err.status_code == 303:
            return RedirectResponse(err.headers["Location"], status_code=303)
        return JSONResponse({"detail": err.detail}, status_code=err.status_code, headers=err.headers)

    app.add_middleware(BodyLimit)
    return app


def _fence(doc):
    try:
        return fence_from_json(doc, source="request")
    except FenceError as err:
        raise HTTPException(422, str(err)) from None


def _safe_name(name: str) -> bool:
    return bool(name) and len(name) <= 64 and all(ch.isalnum() or ch in "_-" for ch in name)


def _report_file(state: WebState, fence: str, path: str) -> Path | None:
    if state.reports_dir is None or ".." in Path(path).parts:
        return None
    target = state.reports_dir / fence / path
    return target if target.is_file() else None


_CSS = """
body { font: 14px system-ui, sans-serif; margin: 0; color: #222; }
header { background: #1f3a5f; color: #fff; padding: 8px 16px; } header a { color: #cde; margin-left: 12px; }
main { padding: 8px 16px; } h1 { font-size: 18px; } .error { color: #b00; }
#layout { display: flex; gap: 12px; } #map { flex: 1; height: 640px; background: #eef2f5; }
#panel { width: 360px; max-height: 640px; overflow: auto; } table { border-collapse: collapse; width: 100%; }
td, th { border-bottom: 1px solid #ddd; padding: 2px 4px; text-align: left; } form.login label { display: block; }
"""


def _page(title: str, body: str, head: str = "") -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)} · sigloc</title>{head}
<style>{_CSS}</style></head>
<body><header><b>sigloc</b> <nav><a href="/">Fences</a> <a href="/campaigns">Campaigns</a>
<a href="/reports">Reports</a></nav></header>
<main><h1>{html.escape(title)}</h1>{body}</main></body></html>"""

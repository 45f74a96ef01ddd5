"""Campaigns, their approval lifecycle, and the engine that turns fence detections and behaviour events
into trigger records that passed the contact policy (docs/campaigns.md).

Lifecycle: draft → submitted → approved → test_send → active ⇄ paused → finished (submitted and
test_send can go back to draft). Every transition is recorded with who and when; a campaign's content
changes only in draft, and the approver must not be the submitter. Only active campaigns fire;
test_send fires for whitelisted subscribers only.

Identifiers: trigger and decision records carry ``subscriber``, the store's keyed HMAC of the IMSI
(the same pseudonym as the ClickHouse rows). The raw IMSI never appears in them. The MSISDN — the
address the operator's SMS gateway needs — is filled only when the engine runs with ``with_msisdn``
on the operator side, and must be dropped before a record leaves the operator.
"""

import json
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from decoders.records import TS
from decoders.tables import Profiles, normalise_msisdn, read_json
from geofence.match import Detect
from geofence.outlets import Outlets
from geofence.policy import ContactPolicy, Decision
from geofence.rules import TAG_PREFIX, Rule, RuleError, parse_rule


class State(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    TEST_SEND = "test_send"
    ACTIVE = "active"
    PAUSED = "paused"
    FINISHED = "finished"


TRANSITIONS: dict[State, frozenset[State]] = {
    State.DRAFT: frozenset({State.SUBMITTED}),
    State.SUBMITTED: frozenset({State.APPROVED, State.DRAFT}),      # approve, or send back for changes
    State.APPROVED: frozenset({State.TEST_SEND}),
    State.TEST_SEND: frozenset({State.ACTIVE, State.DRAFT}),        # go live, or back after a bad test
    State.ACTIVE: frozenset({State.PAUSED, State.FINISHED}),
    State.PAUSED: frozenset({State.ACTIVE, State.FINISHED}),
    State.FINISHED: frozenset(),
}
FIRING = (State.ACTIVE, State.TEST_SEND)
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_EDITABLE = ("name", "fences", "rule", "priority", "touchpoint", "template", "cap_per_day", "control_share",
             "whitelist")


class CampaignError(ValueError):
    """A bad campaign definition or an illegal lifecycle step; the message names the campaign and field."""


@dataclass
class Campaign:
    id: str
    name: str
    fences: list[str] = field(default_factory=list)  # empty: behaviour campaign, fires on events anywhere
    rule: dict | None = None                         # rule tree JSON (geofence.rules); None accepts every row
    priority: int = 0                                # higher wins a saturated touchpoint
    touchpoint: str = "sms"
    template: str = ""                               # message template id filed with the operator
    cap_per_day: int | None = 1                      # contacts per subscriber per local day for this campaign
    control_share: float = 0.0                       # share of subscribers held out as the control group
    whitelist: list[str] = field(default_factory=list)  # IMSIs/MSISDNs a test_send may reach
    state: State = State.DRAFT
    history: list[dict] = field(default_factory=list)  # {"from", "to", "who", "at"} per transition

    def __post_init__(self):
        if not isinstance(self.id, str) or not _ID.match(self.id):
            raise CampaignError(f"campaign id {self.id!r}: use 1-64 letters, digits, '_' or '-'")
        self.state = State(self.state)
        self._check()

    def _check(self) -> None:
        where = f"campaign {self.id}"
        if not isinstance(self.fences, list) or not all(isinstance(f, str) and f for f in self.fences):
            raise CampaignError(f"{where}: field 'fences': expected a list of fence names")
        if not isinstance(self.priority, int):
            raise CampaignError(f"{where}: field 'priority': expected an integer")
        if self.cap_per_day is not None and (not isinstance(self.cap_per_day, int) or self.cap_per_day < 0):
            raise CampaignError(f"{where}: field 'cap_per_day': expected a count >= 0 or null")
        if not isinstance(self.control_share, int | float) or not 0 <= self.control_share < 1:
            raise CampaignError(f"{where}: field 'control_share': expected 0 <= share < 1")
        self.whitelist = [normalise_msisdn(str(w)) for w in self.whitelist]
        try:
            self.parsed: Rule | None = parse_rule(self.rule) if self.rule is not None else None
        except RuleError as err:
            raise CampaignError(f"{where}: field 'rule': {err}") from None

    def edit(self, **changes) -> None:
        """Change the definition; only a draft may change, so what was approved is what runs."""
        if self.state != State.DRAFT:
            raise CampaignError(f"campaign {self.id}: is {self.state}; only a draft can be edited")
        unknown = sorted(set(changes) - set(_EDITABLE))
        if unknown:
            raise CampaignError(f"campaign {self.id}: cannot edit {', '.join(unknown)}")
        old = {k: getattr(self, k) for k in changes}
        for k, v in changes.items():
            setattr(self, k, v)
        try:
            self._check()
        except CampaignError:
            for k, v in old.items():
                setattr(self, k, v)
            raise

    def transition(self, to: str, who: str, at: datetime | None = None) -> None:
        """Move to state ``to``, recording who and when; an illegal step raises and changes nothing."""
        to = State(to)
        if not who:
            raise CampaignError(f"campaign {self.id}: a transition needs who made it")
        if to not in TRANSITIONS[self.state]:
            allowed = ", ".join(sorted(TRANSITIONS[self.state])) or "none (finished)"
            raise CampaignError(f"campaign {self.id}: cannot go from {self.state} to {to} (allowed: {allowed})")
        if to == State.APPROVED:
            submitter = next(h["who"] for h in reversed(self.history) if h["to"] == State.SUBMITTED)
            if submitter == who:
                raise CampaignError(f"campaign {self.id}: {who} submitted it and cannot also approve it")
        at = at or datetime.now(UTC)
        self.history.append({"from": self.state.value, "to": to.value, "who": who, "at": at.isoformat()})
        self.state = to

    def to_json(self) -> dict:
        doc = asdict(self)
        doc["state"] = self.state.value
        return doc

    @classmethod
    def from_json(cls, doc: dict, source: str = "campaign") -> "Campaign":
        if not isinstance(doc, dict):
            raise CampaignError(f"{source}: expected a JSON object")
        known = set(_EDITABLE) | {"id", "state", "history"}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise CampaignError(f"{source}: unknown field(s) {', '.join(unknown)}")
        if "id" not in doc or "name" not in doc:
            raise CampaignError(f"{source}: fields 'id' and 'name' are required")
        try:
            return cls(**doc)
        except CampaignError as err:
            raise CampaignError(f"{source}: {err}") from None
        except ValueError as err:  # State(...) of an unknown state name
            raise CampaignError(f"{source}: field 'state': {err}") from None


class CampaignStore:
    """Campaigns as one JSON file each in a directory (``<id>.json``), written atomically."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def save(self, campaign: Campaign) -> Path:
        path = self.directory / f"{campaign.id}.json"
        tmp = path.with_suffix(".json.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(campaign.to_json(), f, indent=1, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return path

    def load(self, campaign_id: str) -> Campaign:
        return self._read(self.directory / f"{campaign_id}.json")

    def load_all(self) -> list[Campaign]:
        return [self._read(p) for p in sorted(self.directory.glob("*.json"))]

    @staticmethod
    def _read(path: Path) -> Campaign:
        doc = read_json(path, CampaignError)
        campaign = Campaign.from_json(doc, str(path))
        if campaign.id != path.stem:
            raise CampaignError(f"{path}: field 'id': {campaign.id!r} does not match the file name")
        return campaign


@dataclass
class Subscribers:
    """Reference data that enriches candidates (decoders.tables, analytics.origin.Origins)."""

    origins: object | None = None  # anything with .home(imsi, msisdn) → country, province, city, roaming
    msisdn: dict[str, str] = field(default_factory=dict)
    tac: dict[str, tuple[str, str]] = field(default_factory=dict)
    profiles: Profiles | None = None


DECISION_SCHEMA = pa.schema([
    ("ts", TS),                   # time of the detection or event
    ("campaign", pa.string()),
    ("subscriber", pa.string()),  # keyed HMAC of the IMSI
    ("fence", pa.string()),       # null for a behaviour campaign's event
    ("kind", pa.string()),        # Detect value; null for a behaviour event
    ("event", pa.string()),       # EventKind value
    ("decision", pa.string()),    # allowed, blocked or control
    ("reason", pa.string()),      # policy.Reason value
    ("send_at", TS),              # when the message goes out; null unless allowed
    ("cell", pa.string()),        # cell key of the detection or event
])

TRIGGER_RECORD_SCHEMA = pa.schema([
    ("ts", TS),
    ("send_at", TS),
    ("campaign", pa.string()),
    ("subscriber", pa.string()),
    ("msisdn", pa.string()),              # delivery address; null unless the engine runs with with_msisdn
    ("fence", pa.string()),
    ("kind", pa.string()),
    ("event", pa.string()),
    ("cell", pa.string()),
    ("outlet", pa.string()),              # nearest outlet to the cell site; null if cell or outlets unknown
    ("outlet_distance_m", pa.float64()),
    ("touchpoint", pa.string()),
    ("template", pa.string()),
])

# The situation part of a candidate row, before enrichment.
_BASE = pa.schema([("ts", TS), ("imsi", pa.string()), ("fence", pa.string()), ("kind", pa.string()),
                   ("cell", pa.string()), ("event", pa.string()), ("frame", pa.uint32()), ("imei", pa.string())])


@dataclass
class EngineResult:
    triggers: pa.Table   # TRIGGER_RECORD_SCHEMA, allowed candidates only
    decisions: pa.Table  # DECISION_SCHEMA, every candidate a firing campaign's rule accepted


class CampaignEngine:
    """Candidates from a detection table (geofence.match TRIGGER_SCHEMA columns) and an event table
    (decoders.records EVENT_SCHEMA), rule masks per firing campaign, then the contact policy.

    Event rows are candidates of behaviour campaigns (no fences) and, when ``fence_cells`` (fence →
    cell keys) is given, ``inside`` candidates of every fence their cell belongs to.
    """

    def __init__(self, campaigns: list[Campaign], policy: ContactPolicy, pseudonym: Callable[[str], str],
                 subscribers: Subscribers | None = None, fence_cells: dict[str, list[str]] | None = None,
                 cell_sites: dict[str, tuple[float, float]] | None = None, outlets: Outlets | None = None,
                 tz: str = "Asia/Shanghai", with_msisdn: bool = False):
        """``pseudonym``: the store's keyed HMAC (analytics.store.Store.pseudonym). ``cell_sites``: cell key →
        (lat, lon), e.g. from ``cell_sites(catalogue)``."""
        self.campaigns, self.policy, self.pseudonym = campaigns, policy, pseudonym
        self.subscribers = subscribers or Subscribers()
        self.tz, self.with_msisdn = tz, with_msisdn
        self.cell_sites, self.outlets = cell_sites or {}, outlets
        pairs = [(c, f) for f, cells in (fence_cells or {}).items() for c in cells]
        self.fence_pairs = pa.table({"cell": pa.array([p[0] for p in pairs], pa.string()),
                                     "fence": pa.array([p[1] for p in pairs], pa.string())})
        self.last_imei: dict[str, str] = {}

    def run(self, detections: pa.Table, events: pa.Table) -> EngineResult:
        firing = [c for c in self.campaigns if c.state in FIRING]
        candidates = self.candidates(detections, events, behaviour=any(not c.fences for c in firing))
        fired = [self._fire(c, candidates) for c in firing]
        fired = [t for t in fired if len(t)]
        if not fired:
            return EngineResult(TRIGGER_RECORD_SCHEMA.empty_table(), DECISION_SCHEMA.empty_table())
        decided = self.policy.decide(pa.concat_tables(fired))
        subscriber = self._per_unique(decided["imsi"], self.pseudonym, pa.string())
        decisions = pa.Table.from_arrays(
            [decided["ts"], decided["campaign"], subscriber, decided["fence"], decided["kind"], decided["event"],
             decided["decision"], decided["reason"], decided["send_at"], decided["cell"]], schema=DECISION_SCHEMA)
        allowed = pc.equal(decided["decision"], Decision.ALLOWED.value)
        return EngineResult(self._triggers(decided.filter(allowed), subscriber.filter(allowed)), decisions)

    def candidates(self, detections: pa.Table, events: pa.Table, behaviour: bool = True) -> pa.Table:
        """Every (subscriber, situation) row the rules can see, enriched with home, device and tags;
        ``behaviour`` False leaves out the fence-less event rows when no behaviour campaign fires."""
        events = events.filter(pc.is_valid(events["imsi"]))
        detections = detections.filter(pc.is_valid(detections["imsi"]))
        self._remember_imei(events)
        n = len(detections)
        parts = [pa.table({
            "ts": detections["ts"], "imsi": detections["imsi"], "fence": detections["fence"],
            "kind": detections["kind"], "cell": detections["cell"], "event": detections["event"],
            "frame": detections["frame"],
            "imei": self._per_unique(detections["imsi"], self.last_imei.get, pa.string()),
        }) if n else None]
        base = events.select(["ts", "imsi", "cell", "event", "frame", "imei"])
        nulls = pa.nulls(len(base), pa.string())
        if behaviour:
            parts.append(base.append_column("fence", nulls).append_column("kind", nulls))
        if len(self.fence_pairs) and len(base):
            inside = base.join(self.fence_pairs, "cell", join_type="inner")
            parts.append(inside.append_column("kind", pa.array([Detect.INSIDE.value] * len(inside), pa.string())))
        tables = [p.select(_BASE.names).cast(_BASE) for p in parts if p is not None]
        table = pa.concat_tables(tables) if tables else _BASE.empty_table()
        return self._enrich(table)

    def _remember_imei(self, events: pa.Table) -> None:
        """Last IMEI per subscriber (events are in time order), so a detection row knows its handset."""
        seen = events.filter(pc.is_valid(events["imei"]))
        last = seen.group_by("imsi", use_threads=False).aggregate([("imei", "last")])
        self.last_imei.update(zip(last["imsi"].to_pylist(), last["imei_last"].to_pylist()))

    def _enrich(self, table: pa.Table) -> pa.Table:
        subs = self.subscribers
        encoded = _encode(table["imsi"])
        imsis, idx = encoded.dictionary.to_pylist(), encoded.indices
        msisdn = [subs.msisdn.get(x) for x in imsis]
        homes = ([subs.origins.home(x, m) for x, m in zip(imsis, msisdn)] if subs.origins is not None
                 else [None] * len(imsis))

        def per_sub(values, type_=pa.string()):
            return pa.array(values, type_).take(idx)

        columns = {
            "msisdn": per_sub(msisdn),
            "mcc": per_sub([x[:3] for x in imsis]),
            "country": per_sub([h.country if h else None for h in homes]),
            "home_province": per_sub([(h.province or None) if h else None for h in homes]),
            "home_city": per_sub([(h.city or None) if h else None for h in homes]),
            "roaming": per_sub([h.roaming if h else None for h in homes]),
        }
        tacs = pc.utf8_slice_codeunits(table["imei"], 0, 8)
        device = _encode(tacs)
        known = [subs.tac.get(t) for t in device.dictionary.to_pylist()]
        columns["tac"] = tacs
        columns["brand"] = pa.array([k[0] if k else None for k in known], pa.string()).take(device.indices)
        columns["model"] = pa.array([k[1] if k else None for k in known], pa.string()).take(device.indices)
        if subs.profiles is not None:
            p = subs.profiles
            keys = imsis if p.key == "imsi" else [normalise_msisdn(m) if m else None for m in msisdn]
            rows = pa.array([p.row_of.get(k) for k in keys], pa.int64()).take(idx)
            for tag in p.tags:
                columns[TAG_PREFIX + tag] = p.table[tag].take(rows)
        for name, column in columns.items():
            table = table.append_column(name, column)
        return table

    def _fire(self, campaign: Campaign, candidates: pa.Table) -> pa.Table:
        if campaign.fences:
            where = pc.is_in(candidates["fence"], value_set=pa.array(campaign.fences, pa.string()))
        else:
            where = pc.is_null(candidates["fence"])
        rows = candidates.filter(where)
        mask = campaign.parsed.mask(rows, self.tz) if campaign.parsed is not None else np.ones(len(rows), bool)
        if campaign.state == State.TEST_SEND:
            allowed = pa.array(campaign.whitelist, pa.string())
            mask &= pc.fill_null(pc.or_(pc.is_in(rows["imsi"], value_set=allowed),
                                        pc.is_in(rows["msisdn"], value_set=allowed)), False).to_numpy(
                zero_copy_only=False)
        rows = rows.filter(pa.array(mask, pa.bool_()))
        n = len(rows)
        return (rows.append_column("campaign", pa.array([campaign.id] * n, pa.string()))
                .append_column("priority", pa.array([campaign.priority] * n, pa.int64()))
                .append_column("touchpoint", pa.array([campaign.touchpoint] * n, pa.string()))
                .append_column("cap_per_day", pa.array([campaign.cap_per_day] * n, pa.int64()))
                .append_column("control_share", pa.array([float(campaign.control_share)] * n, pa.float64()))
                .append_column("template", pa.array([campaign.template] * n, pa.string())))

    def _triggers(self, allowed: pa.Table, subscriber: pa.Array) -> pa.Table:
        n = len(allowed)
        outlet = pa.nulls(n, pa.string())
        distance = pa.nulls(n, pa.float64())
        if self.outlets is not None and n:
            sites = [self.cell_sites.get(c, (np.nan, np.nan)) for c in allowed["cell"].to_pylist()]
            lat = np.array([s[0] for s in sites], np.float64)
            lon = np.array([s[1] for s in sites], np.float64)
            index, metres = self.outlets.nearest(lat, lon)
            names = [self.outlets.name[i] if i >= 0 else None for i in index]
            outlet = pa.array(names, pa.string())
            distance = pa.array(metres, pa.float64(), mask=index < 0)
        msisdn = allowed["msisdn"] if self.with_msisdn else pa.nulls(n, pa.string())
        return pa.Table.from_arrays(
            [allowed["ts"], allowed["send_at"], allowed["campaign"], subscriber, msisdn, allowed["fence"],
             allowed["kind"], allowed["event"], allowed["cell"], outlet, distance, allowed["touchpoint"],
             allowed["template"]], schema=TRIGGER_RECORD_SCHEMA)

    @staticmethod
    def _per_unique(column, fn, type_) -> pa.Array:
        """``fn`` once per distinct value (the same subscriber recurs many times in a batch)."""
        encoded = _encode(column)
        return pa.array([fn(x) for x in encoded.dictionary.to_pylist()], type_).take(encoded.indices)


def _encode(column) -> pa.DictionaryArray:
    """One dictionary for the whole column (chunks of a ChunkedArray would each get their own)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return pc.dictionary_encode(column)


def cell_sites(catalogue) -> dict[str, tuple[float, float]]:
    """Cell key → site (lat, lon) from a geofence.cells.Catalogue."""
    return {c.key: (c.lat, c.lon) for c in catalogue.cells}


"""Behaviour events from attributed messages: power on/off, location update, cell change, calls and how they
ended, SMS, a subscriber's change of phone, a visitor's arrival; and the pattern events (decoders/patterns.py)
derived from them.

The rules here turn protocol facts into the behaviours marketers and reports speak of (docs/events.md).
A fact seen before its subscriber is known waits on its connection's context and is emitted, in
order, once the IMSI is learnt or the connection ends — so a TMSI-only Location Updating Request
followed by an Identity Response still yields an event with the IMSI.

The deriver's state is the identity store: TMSI/M-TMSI → IMSI, IMEI, last cell and last-seen time per
subscriber, and the open connections. ``snapshot``/``restore`` carry it across a restart; idle subscribers
expire and the least recently seen are evicted beyond ``EventConfig.store_budget``.
"""

import gzip
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from decoders.correlate import Cell, Correlator, UeContext, decode_cell, encode_cell
from decoders.decode import DecodeState, decode_file
from decoders.patterns import US, PatternDetector
from decoders.records import EVENT_SCHEMA, EventKind, RecordBuilder

SNAPSHOT_VERSION = 1


class StoreError(ValueError):
    """A snapshot file that cannot be restored; the message names the file and what is wrong."""


@dataclass
class EventConfig:
    """Settings of event derivation (the probe's own identity and the network it watches)."""

    probe: str = "probe-1"
    # The watched network: IMSIs of another MCC are roaming in (roaming_in), and a Cell Identifier without a
    # PLMN (LAC+CI form) is taken to be in it.
    home_mcc: str = "460"
    home_mnc: str = "00"
    # Pattern events (decoders/patterns.py): a vehicle ride, a stay, a return after silence, a weak signal.
    fast_switch_changes: int = 5
    fast_switch_window_s: float = 600.0
    long_stay_s: float = 7200.0
    cell_groups: dict[str, str] = field(default_factory=dict)  # cell key -> group name (airport); else own group
    silent_days: float = 7.0
    on_off_cycles: int = 3
    on_off_window_s: float = 1800.0
    border_cells: frozenset[str] = frozenset()  # home cells at the network's edge: roaming_out when gone from one
    roaming_out_s: float = 7200.0
    # Other-province visitors (roaming_in, detail "domestic"): the home province of an IMSI, e.g.
    # ``lambda imsi: origins.home(imsi).province``; None reports only international visitors.
    province_of: Callable[[str], str | None] | None = None
    home_province: str | None = None
    # The identity store: subscribers unseen this long expire; beyond the budget the least recently seen go.
    store_idle_s: float = 30 * 86400.0
    store_budget: int = 10_000_000

    @classmethod
    def from_scenario(cls, path: str | os.PathLike, **fields) -> "EventConfig":
        """Thresholds and cell sets from a JSON file of EventConfig fields (the simulator's scenario.json)."""
        try:
            values = json.loads(Path(path).read_text())
        except ValueError as exc:
            raise ValueError(f"{path}: not JSON ({exc})") from exc
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{path}: unknown field {sorted(unknown)[0]!r}")
        if "border_cells" in values:
            values["border_cells"] = frozenset(values["border_cells"])
        return cls(**{**values, **fields})


# How a call that was never answered ended, by the CC cause that cleared it (TS 24.008 §10.5.4.11, table 10.5.123);
# any other cause is "failed".
CALL_OUTCOME_OF_CAUSE = {
    1: "vacant_number",   # unassigned (unallocated) number
    17: "busy",           # user busy
    18: "no_answer",      # no user responding
    19: "no_answer",      # no answer from user (user alerted)
    21: "rejected",       # call rejected
}
_CALL_CLEARING = frozenset(("disconnect", "release", "release_complete"))
_UNREAD = ("ts", "iface", "mmec", "ciphered", "error")  # message fields the deriver never looks at (ts: see feed)


@dataclass
class _Call:
    """One CC call on a connection, Setup to Release Complete (TS 24.008 §5.2, §5.4)."""

    answered: bool = False
    cause: int | None = None  # of the first clearing message that carried one
    ts: float = 0.0           # the call's last message so far: where it ends if its clearing is never seen
    frame: int = 0

    def outcome(self) -> str:
        if self.answered:
            return "answered"
        if self.cause is None:  # neither answer nor clearing seen (capture ended, connection lost)
            return "unknown"
        return CALL_OUTCOME_OF_CAUSE.get(self.cause, "failed")


def _rule(rec: dict) -> tuple[EventKind, str | None] | None:
    """The behaviour a single message reveals, with its detail, or None."""
    proto, msg, kind = rec["proto"], rec["msg"], rec.get("update_type") or ""
    if proto == "dtap":
        if msg == "location_updating_request":
            return (EventKind.POWER_ON, kind) if kind == "imsi_attach" else (EventKind.LOCATION_UPDATE, kind)
        if msg == "imsi_detach_indication":
            return EventKind.POWER_OFF, "imsi_detach"
        if msg == "setup":
            if rec.get("uplink"):
                return EventKind.MO_CALL, rec.get("called")
            return EventKind.MT_CALL, rec.get("calling")
        if msg == "cp_data" and rec.get("uplink") and rec.get("called"):
            return EventKind.SMS_MO, rec["called"]
    elif proto == "nas-eps":
        if msg == "attach_request":
            return EventKind.POWER_ON, kind
        if msg == "detach_request" and rec.get("uplink") and "switch_off" in kind:
            return EventKind.POWER_OFF, "switch_off"
        if msg == "tracking_area_update_request":
            return EventKind.LOCATION_UPDATE, kind
    return None


def _powers_on(rec: dict | None) -> bool:
    found = _rule(rec) if rec is not None and rec["msg"] != "malformed" else None
    return found is not None and found[0] == EventKind.POWER_ON


class EventDeriver:
    """Stateful: feed message tables in capture order, get event tables back."""

    def __init__(self, config: EventConfig | None = None):
        self.config = config or EventConfig()
        self.correlator = Correlator(self.config.home_mcc, self.config.home_mnc)
        self._last_cell: dict[str, Cell] = {}  # subscriber key -> last observed cell since power on
        self._calls: dict[UeContext, _Call] = {}  # A connection -> its call in progress
        self._phone: dict[str, str] = {}          # IMSI -> TAC and serial number of the last IMEI seen
        self._located: set[str] = set()           # IMSIs that had an event with a cell this run
        self._out = RecordBuilder(EVENT_SCHEMA)
        self.patterns = PatternDetector(self.config)
        self._expired_at = 0  # clock (µs) of the last idle-expiry sweep

    def feed(self, messages: pa.Table) -> pa.Table:
        # Capture times as float seconds straight from the µs integers (datetime objects cost more than the rest),
        # and only the fields the rules read: a record dict per message is most of the time spent here.
        columns = messages.drop_columns([name for name in _UNREAD if name in messages.column_names]).to_pydict()
        columns["ts"] = pc.divide(pc.cast(messages["ts"], pa.int64()), float(US)).to_pylist()
        names = list(columns)
        recs = [dict(zip(names, values)) for values in zip(*columns.values())]
        released = self.correlator.released
        for n, rec in enumerate(recs):
            if rec["msg"] == "malformed":
                continue
            ctx = self.correlator.observe(rec)
            if ctx is not None:
                ts = rec["ts"]
                # The cell of a power on is no move: it becomes the last cell (_flush). The cell comes with the
                # Initial UE Message / Complete Layer 3 record, the power on with the NAS/DTAP record after it
                # (records of one payload, so of one table).
                if self.correlator.cell_changed and not _powers_on(recs[n + 1] if n + 1 < len(recs) else None):
                    ctx.pending.append(("cell", ts, rec["frame"], ctx.cell))
                if self.correlator.imei_seen:
                    ctx.pending.append(("imei", ts, rec["frame"], ctx.cell, self.correlator.imei_seen))
                found = _rule(rec)
                if found:
                    ctx.pending.append(("event", ts, rec["frame"], ctx.cell, *found, rec.get("cause")))
                if ctx.iface == "A" and (ctx in self._calls or rec["msg"] == "setup"):
                    self._follow_call(ctx, rec, ts)
                if ctx.imsi and ctx.pending:
                    self._flush(ctx)
            if released:
                self._drain_released()
        return self._with_patterns(self._out.table())

    def finish(self) -> pa.Table:
        """End of input: flush what waits on open connections."""
        self.correlator.close_all()
        self._drain_released()
        return self._with_patterns(self._out.table())

    def _with_patterns(self, events: pa.Table) -> pa.Table:
        found = self.patterns.feed(events)
        self._bound_store()
        return pa.concat_tables([events, found]) if len(found) else events

    def _follow_call(self, ctx: UeContext, rec: dict, ts: float) -> None:
        msg = rec["msg"] if rec["proto"] == "dtap" else None  # BSSMAP messages only move the call's last time
        if msg == "setup":
            self._end_call(ctx)  # a second Setup on the connection: the first call's clearing went unseen
            self._calls[ctx] = _Call()
        call = self._calls.get(ctx)
        if call is None:
            return
        call.ts, call.frame = ts, rec["frame"]
        if msg == "connect":
            call.answered = True
        elif msg in _CALL_CLEARING and call.cause is None and rec.get("cause_group") == "cc":
            call.cause = rec["cause"]
        if msg == "release_complete":
            self._end_call(ctx)

    def _end_call(self, ctx: UeContext) -> None:
        call = self._calls.pop(ctx, None)
        if call is not None:
            ctx.pending.append(("event", call.ts, call.frame, ctx.cell, EventKind.CALL_OUTCOME, call.outcome(),
                                call.cause))

    def _drain_released(self) -> None:
        for ctx in self.correlator.released:
            self._end_call(ctx)
            self._flush(ctx)
        self.correlator.released.clear()

    def _flush(self, ctx: UeContext) -> None:
        key = ctx.imsi or (f"tmsi:{ctx.presented_tmsi}" if ctx.presented_tmsi is not None else None)
        for item in ctx.pending:
            if item[0] == "cell":
                _, ts, frame, cell = item
                prev = self._last_cell.get(key) if key else None
                if key:
                    self._last_cell[key] = cell
                if prev is not None and prev.key != cell.key:
                    self._emit(ctx, ts, frame, EventKind.CELL_CHANGE, cell, prev_cell=prev.key)
            elif item[0] == "imei":
                _, ts, frame, cell, imei = item
                prev = self._phone.get(ctx.imsi) if ctx.imsi else None
                if ctx.imsi:
                    self._phone[ctx.imsi] = imei[:14]
                if prev is not None and prev != imei[:14]:
                    self._emit(ctx, ts, frame, EventKind.IMEI_CHANGE, cell, detail=f"{prev[:8]}->{imei[:8]}")
            else:
                _, ts, frame, cell, kind, detail, cause = item
                if kind == EventKind.POWER_OFF and key:
                    self._last_cell.pop(key, None)
                elif kind == EventKind.POWER_ON and key and cell is not None:
                    self._last_cell[key] = cell
                self._emit(ctx, ts, frame, kind, cell, detail=detail, cause=cause)
        ctx.pending.clear()

    def _emit(self, ctx: UeContext, ts: float, frame: int, kind: EventKind, cell: Cell | None,
              prev_cell: str | None = None, detail: str | None = None, cause: int | None = None) -> None:
        tmsi_col = "tmsi" if ctx.iface == "A" else "m_tmsi"
        self._out.append({
            "ts": ts, "probe": self.config.probe, "iface": ctx.iface, "event": str(kind),
            "imsi": ctx.imsi, "imei": self.correlator.imei_of.get(ctx.imsi) if ctx.imsi else ctx.imei,
            tmsi_col: ctx.presented_tmsi if ctx.presented_tmsi is not None else ctx.new_tmsi,
            "cell": cell.key if cell else None, "prev_cell": prev_cell, "detail": detail, "cause": cause,
            "frame": frame,
            **({"mcc": cell.mcc, "mnc": cell.mnc, "lac": cell.lac, "ci": cell.ci, "tac": cell.tac,
                "eci": cell.eci} if cell else {}),
        })
        # After the event that located the visitor, so that a fence it enters names that event.
        if cell and ctx.imsi and ctx.imsi not in self._located:
            self._located.add(ctx.imsi)
            cfg = self.config
            if ctx.imsi[:3] != cfg.home_mcc:  # MCC: the first three IMSI digits (TS 23.003 §2.2)
                self._emit(ctx, ts, frame, EventKind.ROAMING_IN, cell, detail="international")
            elif cfg.province_of and cfg.home_province:
                province = cfg.province_of(ctx.imsi)  # empty or None: a number segment the table does not have
                if province and province != cfg.home_province:
                    self._emit(ctx, ts, frame, EventKind.ROAMING_IN, cell, detail="domestic")

    # -- the identity store --------------------------------------------------------------------------------
    def _bound_store(self) -> None:
        """Expire subscribers idle beyond ``store_idle_s`` (swept once per tenth of it) and keep the budget."""
        cfg, subscribers, clock = self.config, self.patterns.subscribers, self.patterns.clock
        idle = round(cfg.store_idle_s * US)
        gone: set[str] = set()
        if clock - self._expired_at >= idle // 10:
            self._expired_at = clock
            gone = {imsi for imsi, sub in subscribers.items() if sub.last_seen < clock - idle}
            # Phones never resolved have no last-seen time: their last cells go with each sweep.
            gone.update(key for key in self._last_cell if key.startswith("tmsi:"))
        if len(subscribers) - len(gone) > cfg.store_budget:
            keep = int(cfg.store_budget * 0.9)  # evict a tenth at once so eviction is not paid on every batch
            by_age = sorted((sub.last_seen, imsi) for imsi, sub in subscribers.items() if imsi not in gone)
            gone.update(imsi for _, imsi in by_age[:len(by_age) - keep])
        if gone:
            self.forget(gone)

    def forget(self, imsis: set[str]) -> None:
        """Drop every trace of ``imsis`` from the store."""
        self.correlator.forget(imsis)
        self.patterns.forget(imsis)
        for table in (self._last_cell, self._phone):
            for imsi in imsis:
                table.pop(imsi, None)
        self._located -= imsis

    def snapshot(self, path: str | os.PathLike) -> None:
        """Write the whole state (gzip JSON, docs/events.md "Identity store") so a fresh deriver resumes here."""
        contexts = self.correlator.contexts()
        index = {id(c): n for n, c in enumerate(contexts)}
        state = {
            "version": SNAPSHOT_VERSION, "correlator": self.correlator.state(contexts),
            "last_cell": {key: encode_cell(cell) for key, cell in self._last_cell.items()},
            "phone": self._phone, "located": sorted(self._located),
            "calls": [[index[id(ctx)], call.answered, call.cause, call.ts, call.frame]
                      for ctx, call in self._calls.items() if id(ctx) in index],
            "patterns": self.patterns.state(), "expired_at": self._expired_at,
        }
        tmp = f"{os.fspath(path)}.tmp"
        with gzip.open(tmp, "wt", encoding="utf-8") as f:
            json.dump(state, f, separators=(",", ":"))
        os.replace(tmp, path)  # a crash mid-write leaves the previous snapshot intact

    def restore(self, path: str | os.PathLike) -> None:
        """Load a snapshot written by ``snapshot`` (or by an operator tool in the same format) into this deriver."""
        try:
            with gzip.open(path, "rt", encoding="utf-8") as f:
                state = json.load(f)
        except (OSError, EOFError, ValueError) as exc:
            raise StoreError(f"{path}: not a readable snapshot ({exc})") from exc
        version = state.get("version") if isinstance(state, dict) else None
        if version != SNAPSHOT_VERSION:
            raise StoreError(f"{path}: field version: {version!r}, expected {SNAPSHOT_VERSION}")
        try:
            contexts = self.correlator.load(state.get("correlator", {}))
            self._last_cell.update((key, decode_cell(cell)) for key, cell in state.get("last_cell", {}).items())
            self._phone.update(state.get("phone", {}))
            self._located.update(state.get("located", []))
            for n, answered, cause, ts, frame in state.get("calls", []):
                self._calls[contexts[n]] = _Call(answered, cause, ts, frame)
            self.patterns.load(state.get("patterns", {}))
            self._expired_at = state.get("expired_at", 0)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise StoreError(f"{path}: malformed snapshot: {type(exc).__name__} {exc}") from exc


def derive_events(tables: Iterable[pa.Table], config: EventConfig | None = None,
                  restore: str | os.PathLike | None = None) -> Iterator[pa.Table]:
    """Events for a stream of message tables; the last table includes what waited until the end.
    ``restore``: a store snapshot to start from (the previous run's, EventDeriver.snapshot)."""
    deriver = EventDeriver(config)
    if restore:
        deriver.restore(restore)
    for table in tables:
        yield deriver.feed(table)
    yield deriver.finish()


def events_from_file(path: str | os.PathLike, config: EventConfig | None = None,
                     state: DecodeState | None = None, restore: str | os.PathLike | None = None) -> pa.Table:
    """Decode a capture and derive its events, sorted by time."""
    tables = list(derive_events(decode_file(path, state), config, restore))
    return pa.concat_tables(tables).sort_by([("ts", "ascending"), ("frame", "ascending")])

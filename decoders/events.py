"""Behaviour events from attributed messages: power on/off, location update, cell change, calls and how they
ended, SMS, a subscriber's change of phone, a foreign subscriber's arrival.

The rules here turn protocol facts into the behaviours marketers and reports speak of (docs/events.md).
A fact seen before its subscriber is known waits on its connection's context and is emitted, in
order, once the IMSI is learnt or the connection ends — so a TMSI-only Location Updating Request
followed by an Identity Response still yields an event with the IMSI.
"""

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pyarrow as pa

from decoders.correlate import Cell, Correlator, UeContext
from decoders.decode import DecodeState, decode_file
from decoders.records import EVENT_SCHEMA, EventKind, RecordBuilder


@dataclass
class EventConfig:
    """Settings of event derivation (the probe's own identity and the network it watches)."""

    probe: str = "probe-1"
    # The watched network: IMSIs of another MCC are roaming in (roaming_in), and a Cell Identifier without a
    # PLMN (LAC+CI form) is taken to be in it.
    home_mcc: str = "460"
    home_mnc: str = "00"


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

    def feed(self, messages: pa.Table) -> pa.Table:
        columns = messages.to_pydict()
        names = list(columns)
        for values in zip(*columns.values()):
            rec = dict(zip(names, values))
            if rec["msg"] == "malformed":
                continue
            ctx = self.correlator.observe(rec)
            if ctx is not None:
                ts = rec["ts"].timestamp()
                if self.correlator.cell_changed:
                    ctx.pending.append(("cell", ts, rec["frame"], ctx.cell))
                if self.correlator.imei_seen:
                    ctx.pending.append(("imei", ts, rec["frame"], ctx.cell, self.correlator.imei_seen))
                found = _rule(rec)
                if found:
                    ctx.pending.append(("event", ts, rec["frame"], ctx.cell, *found, rec.get("cause")))
                if ctx.iface == "A":
                    self._follow_call(ctx, rec, ts)
                if ctx.imsi:
                    self._flush(ctx)
            self._drain_released()
        return self._out.table()

    def finish(self) -> pa.Table:
        """End of input: flush what waits on open connections."""
        self.correlator.close_all()
        self._drain_released()
        return self._out.table()

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
            if ctx.imsi[:3] != self.config.home_mcc:  # MCC: the first three IMSI digits (TS 23.003 §2.2)
                self._emit(ctx, ts, frame, EventKind.ROAMING_IN, cell, detail="international")


def derive_events(tables: Iterable[pa.Table], config: EventConfig | None = None) -> Iterator[pa.Table]:
    """Events for a stream of message tables; the last table includes what waited until the end."""
    deriver = EventDeriver(config)
    for table in tables:
        yield deriver.feed(table)
    yield deriver.finish()


def events_from_file(path: str | os.PathLike, config: EventConfig | None = None,
                     state: DecodeState | None = None) -> pa.Table:
    """Decode a capture and derive its events, sorted by time."""
    tables = list(derive_events(decode_file(path, state), config))
    return pa.concat_tables(tables).sort_by([("ts", "ascending"), ("frame", "ascending")])

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

import gc
import gzip
import json
import os
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from decoders import connections
from decoders.correlate import (A_PROTOS, LOCATING, TARGET_ENB_ID, Cell, Correlator, UeContext, decode_cell,
                                decode_context, encode_cell, encode_context, imei_of_fields)
from decoders.decode import DecodeState, decode_file
from decoders.patterns import US, PatternDetector
from decoders.records import EVENT_SCHEMA, EventKind, key_codes, timestamps, value_codes

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


# The behaviour a single message reveals, with its detail, or None: one rule per (proto, msg) that has any, called
# with the message's update type ("" when none), uplink flag, called and calling numbers.
_RULES: dict[tuple[str, str], Callable] = {
    ("dtap", "location_updating_request"): lambda kind, uplink, called, calling: (
        (EventKind.POWER_ON, kind) if kind == "imsi_attach" else (EventKind.LOCATION_UPDATE, kind)),
    ("dtap", "imsi_detach_indication"): lambda kind, uplink, called, calling: (EventKind.POWER_OFF, "imsi_detach"),
    ("dtap", "setup"): lambda kind, uplink, called, calling: (
        (EventKind.MO_CALL, called) if uplink else (EventKind.MT_CALL, calling)),
    ("dtap", "cp_data"): lambda kind, uplink, called, calling: (
        (EventKind.SMS_MO, called) if uplink and called else None),
    ("nas-eps", "attach_request"): lambda kind, uplink, called, calling: (EventKind.POWER_ON, kind),
    ("nas-eps", "detach_request"): lambda kind, uplink, called, calling: (
        (EventKind.POWER_OFF, "switch_off") if uplink and "switch_off" in kind else None),
    ("nas-eps", "tracking_area_update_request"): lambda kind, uplink, called, calling: (
        (EventKind.LOCATION_UPDATE, kind)),
}


def _some_rows(messages: pa.Table, rows: np.ndarray, names: tuple[str, ...]) -> Iterator[tuple]:
    """(row number, *the ``names`` fields) of the rows numbered ``rows``, from lists of those rows alone."""
    picked = messages.select(list(names)).take(rows)
    return zip(rows.tolist(), *(column.to_pylist() for column in picked.columns))


class _Kinds:
    """A batch's messages by (proto, msg): masks and codes of the rows whose kind passes a test, each test run once
    per distinct kind rather than once per row (the joined strings cost more than the rest), and both names of
    the rows asked for."""

    def __init__(self, messages: pa.Table):
        proto_codes, self._protos = value_codes(messages["proto"])
        msg_codes, self._msgs = value_codes(messages["msg"])
        self._proto_codes, self._msg_codes = proto_codes, msg_codes
        self._codes = proto_codes * len(self._msgs) + msg_codes
        self._kinds = [(proto, msg) for proto in self._protos for msg in self._msgs]

    def where(self, test: Callable[[tuple], bool], dtype=bool) -> np.ndarray:
        """``test`` of each row's (proto, msg); a test giving other than a truth value names its ``dtype``."""
        return np.array([test(kind) for kind in self._kinds], dtype=dtype)[self._codes]

    def names(self, rows: np.ndarray) -> tuple[list, list]:
        """The proto and msg of the rows numbered ``rows`` (one str object per distinct value)."""
        return (np.array(self._protos, dtype=object)[self._proto_codes[rows]].tolist(),
                np.array(self._msgs, dtype=object)[self._msg_codes[rows]].tolist())


# What the connection pass (decoders/connections.py) does with each kind of message.
_S1AP_KINDS = {"initial_ue_message": connections.S1AP_INITIAL, "ue_context_release_complete": connections.S1AP_RELEASE,
               **dict.fromkeys(TARGET_ENB_ID, connections.S1AP_TARGET)}
_A_KINDS = {("bssmap", "complete_layer3_information"): connections.BSSMAP_CL3,
            ("bssmap", "clear_complete"): connections.BSSMAP_CLEAR,
            ("dtap", "setup"): connections.DTAP_SETUP, ("dtap", "release_complete"): connections.DTAP_CALL_END}


def _pass_kind(kind: tuple) -> int:
    proto, msg = kind
    if msg == "malformed" or proto not in ("s1ap", "nas-eps", *A_PROTOS):
        return connections.SKIP
    if proto == "s1ap":
        return _S1AP_KINDS.get(msg, connections.S1AP)
    if proto == "nas-eps":
        return connections.NAS
    return _A_KINDS.get(kind, connections.BSSMAP if proto == "bssmap" else connections.DTAP)


def _telling(kind: tuple) -> bool:
    """Whether a message of this kind may teach its context something (an identity, a cell, a behaviour) or, on
    none, the store (a Paging): the messages the feed loop must see once the connection pass has found their
    context. The others only name their connection, or release it (EventDeriver._settle), or move a call on."""
    return kind[0] in ("nas-eps", "dtap") or kind in LOCATING or kind == ("bssmap", "paging")


# How the feed loop takes a row it visits: all it may teach, or only the call it moves on.
_FULL, _QUIET = range(2)


def _visits(kinds: _Kinds, walk: connections.Walk, messages: pa.Table) -> tuple[np.ndarray, list[int]]:
    """The rows the feed loop visits — the telling ones on a context (a Paging on none) save DTAP and NAS
    messages with no identity and no behaviour, and those on a connection with a call in progress — and how it
    takes each."""
    named = np.zeros(len(walk.ctx), bool)
    for name in ("imsi", "tmsi", "m_tmsi", "imei", "imeisv"):
        named |= pc.is_valid(messages[name]).to_numpy(zero_copy_only=False)
    telling = kinds.where(_telling) & (named | kinds.where(lambda kind: kind[0] not in ("nas-eps", "dtap")
                                                           or kind in _RULES))
    rows = np.flatnonzero((telling & (walk.ctx >= 0)) | walk.on_call | kinds.where(("bssmap", "paging").__eq__))
    return rows, np.where(telling[rows], _FULL, _QUIET).tolist()


@contextmanager
def _collector_paused():
    """No cyclic garbage collection while a batch is derived: the store's many long-lived objects are walked by
    every full collection (a fifth of the time), and deriving makes no reference cycles to collect."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class EventDeriver:
    """Stateful: feed message tables in capture order, get event tables back."""

    def __init__(self, config: EventConfig | None = None):
        self.config = config or EventConfig()
        self.correlator = Correlator(self.config.home_mcc, self.config.home_mnc)
        self.connections = connections.ConnectionIndex()
        self._contexts: dict[int, UeContext] = {}  # context id (the connection pass's) -> its context, once seen
        self._waiting: set[int] = set()  # ids of the contexts that may hold facts or a call when released
        self._kept = 0  # contexts kept at the last sweep of those no message can name any more
        self._last_cell: dict[str, Cell] = {}  # subscriber key -> last observed cell since power on
        self._phone: dict[str, str] = {}          # IMSI -> TAC and serial number of the last IMEI seen
        # The subscribers with an event, by the row the pattern detector keeps for each (made at the first) and
        # given with the event; whether it had one with a cell this run, by row.
        self.patterns = PatternDetector(self.config)
        self._subscribers = self.patterns.subscribers  # IMSI -> row
        self._located_at = bytearray()
        self._calls: dict[UeContext, _Call] = {}  # A connection -> its call in progress
        self._cell_of_key: dict[int, Cell] = {}   # the cells met, by _cell_keys
        self._plmn_code: dict[tuple, int] = {}
        self._out: list[tuple] = []  # events emitted since the last table, as _emit lays them out
        self._expired_at = 0  # clock (µs) of the last idle-expiry sweep

    def feed(self, messages: pa.Table) -> pa.Table:
        with _collector_paused():
            return self._feed(messages)

    def _feed(self, messages: pa.Table) -> pa.Table:
        # The connection pass finds every row's context; the loop visits only the rows that can change something
        # (_visits), with no record per message (building one dict per row cost most of the time): the fields
        # they need as one Python list per column of those rows, and what only a few need — the serving cell of
        # the LOCATING messages, the behaviour of those with a rule, the IMEI of an IMEISV — worked out in bulk
        # for those rows alone. Capture times as float seconds straight from the µs integers.
        kinds = _Kinds(messages)
        walk = self.connections.walk(kinds.where(_pass_kind, np.int8), messages["assoc"], messages["mme_ue_id"],
                                     messages["enb_ue_id"], messages["conn"])
        rows, how = _visits(kinds, walk, messages)
        picked = messages.select(["frame", "ts", "proto", "imsi", "tmsi", "m_tmsi", "imei", "imeisv", "cause",
                                  "cause_group"]).take(rows)
        proto, msg = kinds.names(rows)
        frame, imsi, cause, cause_group, imei = (picked[name].to_pylist()
                                                 for name in ("frame", "imsi", "cause", "cause_group", "imei"))
        ts = pc.divide(pc.cast(picked["ts"], pa.int64()), float(US)).to_pylist()
        tmsi = pc.if_else(pc.is_in(picked["proto"], pa.array(sorted(A_PROTOS))), picked["tmsi"],
                          picked["m_tmsi"]).to_pylist()  # the TMSI of the message's interface (M-TMSI on S1)
        for j, given, imeisv in _some_rows(picked, np.flatnonzero(pc.is_valid(picked["imeisv"]).to_numpy(
                zero_copy_only=False)), ("imei", "imeisv")):
            imei[j] = imei_of_fields(given, imeisv)
        located = np.flatnonzero(kinds.where(LOCATING.__contains__)[rows])
        cells = np.full(len(rows), None, dtype=object)
        cells[located] = self._cells(messages, rows[located])
        cells = cells.tolist()
        # A behaviour per rule row, and whether the row after each visited one is a power on (its cell is no move).
        rule_rows = np.flatnonzero(kinds.where(_RULES.__contains__))
        found = [rule(update or "", uplink, called, calling) for rule, (_, update, uplink, called, calling) in
                 zip(kinds.where(_RULES.get, object)[rule_rows].tolist(),
                     _some_rows(messages, rule_rows, ("update_type", "uplink", "called", "calling")))]
        power_on, on = EventKind.POWER_ON, np.zeros(len(messages) + 1, bool)
        on[rule_rows] = [f is not None and f[0] == power_on for f in found]
        before_power_on = on[rows + 1].tolist()
        behaviours = np.full(len(messages), None, dtype=object)
        behaviours[rule_rows] = np.fromiter(found, dtype=object, count=len(found))
        behaviours = behaviours[rows].tolist()

        correlator, contexts, calls, waiting = self.correlator, self._contexts, self._calls, self._waiting
        learn_a, learn_s1ap, learn_nas = correlator.learn_a, correlator.learn_s1ap, correlator.learn_nas
        released_row, released_id = self._worth_settling(walk, rows)
        r, next_release = 0, (released_row[0] if released_row else len(messages))  # the next release to settle
        # One tuple per visited row: the fields it may need (a list index each would cost more than the zip).
        for (i, k, cid, p, m, tmsi_i, imsi_i, imei_i, cell, ts_i, frame_i, behaviour, power_on_next, cause_i,
             cause_group_i) in zip(rows.tolist(), how, walk.ctx[rows].tolist(), proto, msg, tmsi, imsi, imei, cells,
                                   ts, frame, behaviours, before_power_on, cause, cause_group):
            if next_release < i:  # the releases since the last row visited, in order, then what waits on them
                stop = bisect_left(released_row, i, r)
                self._settle(released_id[r:stop])
                r = stop
                next_release = released_row[r] if r < len(released_row) else len(messages)
            if cid < 0:  # a message of no connection
                if p in A_PROTOS:
                    correlator.learn_connectionless(m, imsi_i, tmsi_i)
                continue
            ctx = contexts.get(cid)
            if ctx is None:  # the first visited message of the context
                ctx = contexts[cid] = UeContext("A" if p in A_PROTOS else "S1")
            if k:  # _QUIET: what the general path below would do with such a row, in short
                if ctx in calls:
                    self._follow_call(ctx, p, m, frame_i, cause_group_i, cause_i, ts_i)
                    if ctx.imsi and ctx.pending:
                        self._flush(ctx)
            else:
                if p == "s1ap":
                    learn_s1ap(ctx, m, tmsi_i, cell)
                elif p == "nas-eps":
                    learn_nas(ctx, m, imsi_i, tmsi_i, imei_i)
                else:
                    learn_a(ctx, p == "bssmap", m, imsi_i, tmsi_i, imei_i, cell)
                # The cell of a power on is no move: it becomes the last cell (_flush). The cell comes with the
                # Initial UE Message / Complete Layer 3 record, the power on with the NAS/DTAP record after it
                # (records of one payload, so of one table).
                if correlator.cell_changed:
                    correlator.cell_changed = False
                    if not power_on_next:
                        if ctx.imsi and not ctx.pending:  # what _flush would do with it, straight away
                            self._moved(ctx, ctx.imsi, ts_i, frame_i, ctx.cell)
                        else:
                            ctx.pending.append(("cell", ts_i, frame_i, ctx.cell))
                            waiting.add(cid)
                if correlator.imei_seen:
                    ctx.pending.append(("imei", ts_i, frame_i, ctx.cell, correlator.imei_seen))
                    correlator.imei_seen = None
                    waiting.add(cid)
                if behaviour:
                    if ctx.imsi and not ctx.pending:  # what _flush would do with it, straight away
                        self._behaved(ctx, ctx.imsi, ts_i, frame_i, ctx.cell, *behaviour, cause_i)
                    else:
                        ctx.pending.append(("event", ts_i, frame_i, ctx.cell, *behaviour, cause_i))
                        waiting.add(cid)
                if ctx in calls or (m == "setup" and p == "dtap"):  # only A connections have calls
                    self._follow_call(ctx, p, m, frame_i, cause_group_i, cause_i, ts_i)
                    waiting.add(cid)
                if ctx.imsi and ctx.pending:
                    self._flush(ctx)
        self._settle(released_id[r:])
        # Only the contexts a message can still name are kept (in a new dict: one keeps the room of its most
        # entries), once those no message can name outnumber them: a batch costs no sweep of every open connection.
        if len(contexts) > 2 * self._kept + 64:
            live = self.connections.live()
            self._contexts = {cid: contexts[cid] for cid in live if cid in contexts}
            waiting.intersection_update(live)
            self._kept = len(self._contexts)
        return self._with_patterns(*self._table())

    def _worth_settling(self, walk: connections.Walk, rows: np.ndarray) -> tuple[list[int], list[int]]:
        """The releases (rows, ids) that may find their context waiting (``_settle``): a context waiting before
        the batch, or one the loop visits at or before its release (only those it visits can start waiting)."""
        visited, first = np.unique(walk.ctx[rows], return_index=True)
        at = np.minimum(np.searchsorted(visited, walk.released_id), max(len(visited) - 1, 0))
        worth = np.isin(walk.released_id, np.fromiter(self._waiting, np.int64, len(self._waiting)))
        if len(visited):
            worth |= (visited[at] == walk.released_id) & (rows[first][at] <= walk.released_row)
        return walk.released_row[worth].tolist(), walk.released_id[worth].tolist()

    def _settle(self, ids: list[int]) -> None:
        """The releases of the contexts ``ids``, in order: those that hold facts or a call, then what waits on
        them."""
        found = self._waiting.intersection(ids)
        if found:
            contexts, calls, released = self._contexts, self._calls, self.correlator.released
            for cid in ids:
                if cid in found:
                    ctx = contexts.get(cid)
                    if ctx is not None and (ctx.pending or ctx in calls):
                        released.append(ctx)
            self._waiting -= found
            self._drain_released()

    def _context(self, cid: int, iface: str) -> UeContext:
        """The context of id ``cid``; one no visited message named yet is a fresh one."""
        ctx = self._contexts.get(cid)
        if ctx is None:
            ctx = self._contexts[cid] = UeContext(iface)
        return ctx

    def _cells(self, messages: pa.Table, located: np.ndarray) -> np.ndarray:
        """The serving cell each message numbered ``located`` names (LOCATING ones): one ``cell_of`` per cell the
        deriver meets, found again by an integer made of the cell IEs (``_cell_keys``)."""
        if not len(located):
            return np.empty(0, dtype=object)
        ies = messages.select(["mcc", "mnc", "lac", "ci", "tac", "eci"]).take(located)
        keys = self._cell_keys(ies)
        distinct, first, codes = np.unique(keys, return_index=True, return_inverse=True)
        known = self._cell_of_key
        of_code = np.fromiter(map(known.get, distinct.tolist()), dtype=object, count=len(distinct))
        new = [k for k, cell in enumerate(of_code.tolist()) if cell is None]
        if new:
            rows = first[new]
            of_code[new] = [self.correlator.cell_of(*ident) for ident in zip(*ies.take(rows).to_pydict().values())]
            known.update((key, cell) for key, cell in zip(distinct[new].tolist(), of_code[new].tolist())
                         if key >= 0)  # a key of its own row (_cell_keys) is not kept
        return of_code[codes]

    def _cell_keys(self, ies: pa.Table) -> np.ndarray:
        """One int64 per set of cell IEs that tells the cells apart: its PLMN's code (an (MCC, MNC) pair as
        written, numbered as met), then TAC + 1 (0 for none) and ECI, or LAC and CI; one key for no cell (no ECI,
        no LAC+CI). A row with IEs beyond those widths gets a key of its own (-1 - its row), so that its cell is
        worked out alone."""
        mcc_codes, mccs = value_codes(ies["mcc"])
        mnc_codes, mncs = value_codes(ies["mnc"])
        plmn, _ = key_codes(self._plmn_code, [(mcc, mnc) for mcc in mccs for mnc in mncs])
        plmn = plmn[mcc_codes * len(mncs) + mnc_codes]
        lac, ci, tac, eci = (pc.fill_null(ies[name], -1).to_numpy(zero_copy_only=False).astype(np.int64)
                             for name in ("lac", "ci", "tac", "eci"))
        s1 = eci >= 0
        keys = np.where(s1, (1 << 62) | (plmn << 45) | ((tac + 1) << 28) | eci, (plmn << 45) | (lac << 16) | ci)
        no_cell = ~s1 & ((lac < 0) | (ci < 0))
        fits = (plmn < 1 << 16) & np.where(s1, (eci < 1 << 28) & (tac >= -1) & (tac <= 0xFFFF),
                                           (lac <= 0xFFFF) & (ci <= 0xFFFF))
        return np.where(no_cell, 1 << 61, np.where(fits, keys, -1 - np.arange(len(keys))))

    def finish(self) -> pa.Table:
        """End of input: flush what waits on open connections."""
        with _collector_paused():
            opened, current = self.connections.clear()
            self._settle(opened)
            self._contexts = {cid: ctx for cid, ctx in self._contexts.items() if cid == current}
            self._waiting.clear()
            return self._with_patterns(*self._table())

    def _table(self) -> tuple[pa.Table, np.ndarray]:
        """The events emitted since the last table, column by column (a dict per event cost more than the rest),
        and their subscribers' rows."""
        events, self._out = self._out, []
        if not events:
            return EVENT_SCHEMA.empty_table(), np.zeros(0, np.int64)
        ts, iface, kind, imsi, imei, tmsi, cells, prev_cell, detail, cause, frame, rows = zip(*events)
        on_a = pc.equal(pa.array(iface, pa.string()), "A")
        tmsi = pa.array(tmsi, EVENT_SCHEMA.field("tmsi").type)
        # The location fields of each distinct cell (one Cell object per cell, told apart by identity), taken per event.
        _, first, codes = np.unique(np.fromiter(map(id, cells), np.int64, len(cells)), return_index=True,
                                    return_inverse=True)
        distinct, codes = [cells[i] for i in first.tolist()], pa.array(codes.astype(np.int64))
        mcc, mnc, lac, tac, ci, eci, key = (
            pa.array([getattr(cell, name) if cell else None for cell in distinct],
                     EVENT_SCHEMA.field(field).type).take(codes)
            for name, field in (("mcc", "mcc"), ("mnc", "mnc"), ("lac", "lac"), ("tac", "tac"), ("ci", "ci"),
                                ("eci", "eci"), ("key", "cell")))
        columns = {
            "ts": timestamps(np.array(ts)), "probe": pa.repeat(pa.scalar(self.config.probe, pa.string()), len(events)),
            "iface": iface, "event": kind, "imsi": imsi, "imei": imei,
            "tmsi": pc.if_else(on_a, tmsi, None), "m_tmsi": pc.if_else(on_a, None, tmsi),
            "mcc": mcc, "mnc": mnc, "lac": lac, "tac": tac, "ci": ci, "eci": eci, "cell": key,
            "prev_cell": prev_cell, "cause": cause, "detail": detail, "frame": frame,
        }
        return pa.Table.from_arrays([columns[f.name] if isinstance(columns[f.name], pa.Array)
                                     else pa.array(columns[f.name], f.type) for f in EVENT_SCHEMA],
                                    schema=EVENT_SCHEMA), np.array(rows, np.int64)

    def _with_patterns(self, events: pa.Table, rows: np.ndarray) -> pa.Table:
        found = self.patterns.feed(events, rows)
        self._bound_store()
        return pa.concat_tables([events, found]) if len(found) else events

    def _follow_call(self, ctx: UeContext, proto: str, msg: str, frame: int, cause_group: str | None,
                     cause: int | None, ts: float) -> None:
        msg = msg if proto == "dtap" else None  # BSSMAP messages only move the call's last time
        if msg == "setup":
            self._end_call(ctx)  # a second Setup on the connection: the first call's clearing went unseen
            self._calls[ctx] = _Call()
        call = self._calls.get(ctx)
        if call is None:
            return
        call.ts, call.frame = ts, frame
        if msg == "connect":
            call.answered = True
        elif msg in _CALL_CLEARING and call.cause is None and cause_group == "cc":
            call.cause = cause
        if msg == "release_complete":
            self._end_call(ctx)

    def _end_call(self, ctx: UeContext) -> None:
        call = self._calls.pop(ctx, None)
        if call is not None:
            ctx.pending.append(("event", call.ts, call.frame, ctx.cell, EventKind.CALL_OUTCOME, call.outcome(),
                                call.cause))

    def _drain_released(self) -> None:
        calls = self._calls
        for ctx in self.correlator.released:
            if ctx in calls:
                self._end_call(ctx)
            if ctx.pending:
                self._flush(ctx)
        self.correlator.released.clear()

    def _flush(self, ctx: UeContext) -> None:
        key = ctx.imsi or (f"tmsi:{ctx.presented_tmsi}" if ctx.presented_tmsi is not None else None)
        for item in ctx.pending:
            if item[0] == "cell":
                self._moved(ctx, key, *item[1:])
            elif item[0] == "imei":
                _, ts, frame, cell, imei = item
                prev = self._phone.get(ctx.imsi) if ctx.imsi else None
                if ctx.imsi:
                    self._phone[ctx.imsi] = imei[:14]
                if prev is not None and prev != imei[:14]:
                    self._emit(ctx, ts, frame, EventKind.IMEI_CHANGE, cell, detail=f"{prev[:8]}->{imei[:8]}")
            else:
                self._behaved(ctx, key, *item[1:])
        ctx.pending.clear()

    def _behaved(self, ctx: UeContext, key: str | None, ts: float, frame: int, cell: Cell | None, kind: EventKind,
                 detail: str | None, cause: int | None) -> None:
        """A behaviour of the subscriber ``key``; a power on or off starts or ends its last cell."""
        if kind == EventKind.POWER_OFF and key:
            self._last_cell.pop(key, None)
        elif kind == EventKind.POWER_ON and key and cell is not None:
            self._last_cell[key] = cell
        self._emit(ctx, ts, frame, kind, cell, detail=detail, cause=cause)

    def _moved(self, ctx: UeContext, key: str | None, ts: float, frame: int, cell: Cell) -> None:
        """The subscriber ``key`` seen in ``cell``: a cell change if its last cell was another."""
        prev = self._last_cell.get(key) if key else None
        if key:
            self._last_cell[key] = cell
        if prev is not None and prev.key != cell.key:
            self._emit(ctx, ts, frame, EventKind.CELL_CHANGE, cell, prev_cell=prev.key)

    def _sub(self, imsi: str, ts: float) -> int:
        """The row of the subscriber ``imsi``, made (last seen ``ts``) if it has none."""
        row = self._subscribers.get(imsi)
        if row is None:
            row = self.patterns.row(imsi, round(ts * US))
            self._grow()
        return row

    def _grow(self) -> None:
        """Room in the per-subscriber flags for every row the pattern detector has."""
        self._located_at.extend(bytes(self.patterns.capacity - len(self._located_at)))

    def _emit(self, ctx: UeContext, ts: float, frame: int, kind: EventKind, cell: Cell | None,
              prev_cell: str | None = None, detail: str | None = None, cause: int | None = None,
              row: int = -1) -> None:
        """An event of the context's subscriber (``row``: its row, once known)."""
        if row < 0 and ctx.imsi:
            row = self._sub(ctx.imsi, ts)
        self._out.append((ts, ctx.iface, kind, ctx.imsi,
                          self.correlator.imei_of.get(ctx.imsi) if ctx.imsi else ctx.imei,
                          ctx.presented_tmsi if ctx.presented_tmsi is not None else ctx.new_tmsi,
                          cell, prev_cell, detail, cause, frame, row))
        # After the event that located the visitor, so that a fence it enters names that event.
        if cell and row >= 0 and not self._located_at[row]:
            self._located_at[row] = 1
            cfg = self.config
            if ctx.imsi[:3] != cfg.home_mcc:  # MCC: the first three IMSI digits (TS 23.003 §2.2)
                self._emit(ctx, ts, frame, EventKind.ROAMING_IN, cell, detail="international", row=row)
            elif cfg.province_of and cfg.home_province:
                province = cfg.province_of(ctx.imsi)  # empty or None: a number segment the table does not have
                if province and province != cfg.home_province:
                    self._emit(ctx, ts, frame, EventKind.ROAMING_IN, cell, detail="domestic", row=row)

    # -- the identity store --------------------------------------------------------------------------------
    def _bound_store(self) -> None:
        """Expire subscribers idle beyond ``store_idle_s`` (swept once per tenth of it) and keep the budget."""
        cfg, subscribers, clock = self.config, self.patterns.subscribers, self.patterns.clock
        idle = round(cfg.store_idle_s * US)
        gone: set[str] = set()
        if clock - self._expired_at >= idle // 10:
            self._expired_at = clock
            gone = {imsi for imsi, seen in self.patterns.last_seen().items() if seen < clock - idle}
            # Phones never resolved have no last-seen time: their last cells go with each sweep.
            gone.update(key for key in self._last_cell if key.startswith("tmsi:"))
        if len(subscribers) - len(gone) > cfg.store_budget:
            keep = int(cfg.store_budget * 0.9)  # evict a tenth at once so eviction is not paid on every batch
            by_age = sorted((seen, imsi) for imsi, seen in self.patterns.last_seen().items() if imsi not in gone)
            gone.update(imsi for _, imsi in by_age[:len(by_age) - keep])
        if gone:
            self.forget(gone)

    def forget(self, imsis: set[str]) -> None:
        """Drop every trace of ``imsis`` from the store."""
        for imsi in imsis:
            row = self._subscribers.get(imsi)
            if row is not None:
                self._located_at[row] = 0
        self.correlator.forget(imsis)
        self.patterns.forget(imsis)
        for table in (self._last_cell, self._phone):
            for imsi in imsis:
                table.pop(imsi, None)

    def snapshot(self, path: str | os.PathLike) -> None:
        """Write the whole state (gzip JSON, docs/events.md "Identity store") so a fresh deriver resumes here."""
        sccp, by_mme, by_enb, current = self.connections.entries()
        a_side = {cid for _, cid in sccp}
        ids = connections.named(sccp, by_mme, by_enb, [] if current is None else [(current,)])
        number = {cid: n for n, cid in enumerate(ids)}
        contexts = [self._context(cid, "A" if cid in a_side else "S1") for cid in ids]
        index = {id(c): n for n, c in enumerate(contexts)}
        state = {
            "version": SNAPSHOT_VERSION,
            "correlator": {**self.correlator.state(), "contexts": [encode_context(c) for c in contexts],
                           "sccp": [[conn, number[cid]] for conn, cid in sccp],
                           "by_mme": [[mme, number[cid]] for mme, cid in by_mme],
                           "by_enb": [[assoc, enb, number[cid]] for assoc, enb, cid in by_enb],
                           "s1_current": number.get(current)},
            "last_cell": {key: encode_cell(cell) for key, cell in self._last_cell.items()},
            "phone": self._phone,
            "located": sorted(imsi for imsi, row in self._subscribers.items() if self._located_at[row]),
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
            held = state.get("correlator", {})
            self.correlator.load(held)
            contexts = [decode_context(values) for values in held.get("contexts", [])]
            ids = self.connections.load(len(contexts), held.get("sccp", []), held.get("by_mme", []),
                                        held.get("by_enb", []), held.get("s1_current"),
                                        [call[0] for call in state.get("calls", [])])
            self._contexts = dict(zip(ids, contexts))
            self.patterns.load(state.get("patterns", {}))
            self._grow()
            self._last_cell.update((key, decode_cell(cell)) for key, cell in state.get("last_cell", {}).items())
            self._phone.update(state.get("phone", {}))
            for imsi in state.get("located", []):  # one the patterns state lacks: seen as of the snapshot
                self._located_at[self._sub(imsi, self.patterns.clock / US)] = 1
            for n, answered, cause, ts, frame in state.get("calls", []):
                self._calls[contexts[n]] = _Call(answered, cause, ts, frame)
            self._waiting = {cid for cid, ctx in self._contexts.items() if ctx.pending or ctx in self._calls}
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

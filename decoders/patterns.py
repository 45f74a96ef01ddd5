"""Pattern events: behaviours seen only over time in a subscriber's own event stream.

``PatternDetector`` is fed the behaviour events ``EventDeriver`` emits, batch by batch, and keeps a little
state per subscriber (IMSI); all time comparisons are in integer microseconds, the events' own resolution,
so a threshold is met or not the same way whatever the batching (docs/events.md, "Pattern events"):

- fast_cell_switching: ``fast_switch_changes`` cell changes within ``fast_switch_window_s`` (riding a vehicle);
- long_stay: the subscriber's events stay ≥ ``long_stay_s`` in one cell group (airport, concert hall), a cell
  in no configured group being a group of its own; a power on or off ends a stay;
- silent_power_on: power on after ≥ ``silent_days`` unseen (the last-seen time survives restarts in the store);
- frequent_on_off: ``on_off_cycles`` power-off → power-on cycles within ``on_off_window_s`` (weak signal);
- roaming_out: a home subscriber last seen on a border cell, then unseen for ``roaming_out_s``; reported when the
  stream's clock (the latest event time) passes that moment, at that moment, with the last-seen time in detail.
"""

import heapq
import sys
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc

from decoders.records import EVENT_SCHEMA, EventKind, RecordBuilder

US = 1_000_000
# Event names as plain strings: comparing the batch's strings to them skips the enum's attribute lookup.
_POWER_ON, _POWER_OFF, _CELL_CHANGE = str(EventKind.POWER_ON), str(EventKind.POWER_OFF), str(EventKind.CELL_CHANGE)
_LOCATED_FIELDS = ("iface", "imei", "tmsi", "m_tmsi", "mcc", "mnc", "lac", "tac", "ci", "eci", "cell", "frame")


def iso_us(ts_us: int) -> str:
    """An event time as it appears in a pattern event's detail (UTC, millisecond precision)."""
    return datetime.fromtimestamp(ts_us / US, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Subscriber:
    """What the patterns remember of one IMSI; ``last_seen`` (µs) is also the store's recency for eviction."""

    __slots__ = ("last_seen", "changes", "group", "since", "stayed", "off", "cycles")

    def __init__(self, last_seen: int = 0):
        self.last_seen = last_seen
        self.changes: list[int] | None = None  # times of recent cell changes (None: none; saves memory)
        self.group: str | None = None       # cell group the current stay is in
        self.since = 0                      # when that stay began
        self.stayed = False                 # long_stay already reported for this stay
        self.off = False                    # a power_off seen, waiting for the power_on that closes the cycle
        self.cycles: list[int] | None = None   # times of recent completed on/off cycles

    def state(self) -> dict:
        """The fields that differ from a fresh subscriber's (a snapshot stays small; docs/events.md)."""
        return {name: getattr(self, name) for name in self.__slots__ if getattr(self, name) != getattr(_FRESH, name)}

    @classmethod
    def from_state(cls, values: dict) -> "_Subscriber":
        sub = cls()
        for name, value in values.items():
            setattr(sub, name, value)
        return sub


_FRESH = _Subscriber()


def _recent(times: list[int] | None, ts: int, window: int) -> list[int]:
    """``times`` within ``window`` µs before ``ts``, then ``ts``."""
    return [t for t in times if t >= ts - window] + [ts] if times else [ts]


class PatternDetector:
    """Feed event tables in capture order (``feed``); get the pattern events they complete."""

    def __init__(self, config):
        self.config = config
        self.subscribers: dict[str, _Subscriber] = {}
        self.clock = 0  # latest event time seen (µs)
        self._deadlines: list[tuple[int, str, int]] = []  # (roaming_out time, imsi, last_seen that set it)
        # imsi -> its last event, while on a border cell: a row of the batch being fed (its number), else the row
        self._border_row: dict[str, dict | int] = {}
        self._out = RecordBuilder(EVENT_SCHEMA)
        self._batch: pa.Table | None = None  # the batch being fed
        self._found: list[tuple] = []        # its pattern events so far, as _emit gives them
        self._bordering: list[str] = []      # the IMSIs whose border row it set (a row number until taken)
        self._limits = self._thresholds()

    def _thresholds(self) -> tuple[int, ...]:
        """The configured durations in µs (silent, fast switch window, long stay, on/off window, roaming out)."""
        cfg = self.config
        return tuple(round(seconds * US) for seconds in (
            cfg.silent_days * 86400, cfg.fast_switch_window_s, cfg.long_stay_s, cfg.on_off_window_s,
            cfg.roaming_out_s))

    def feed(self, events: pa.Table) -> pa.Table:
        if len(events):
            events = events.sort_by([("ts", "ascending"), ("frame", "ascending")])
            self._batch, self._limits = events, self._thresholds()
            ts_us = pc.cast(events["ts"], pa.int64()).to_pylist()
            # Each distinct cell's group and whether it is a border cell, worked out once.
            cells = events["cell"].combine_chunks().dictionary_encode()
            cfg = self.config
            codes = cells.indices.fill_null(len(cells.dictionary)).to_numpy(zero_copy_only=False)  # a null: None
            known = [(sys.intern(cfg.cell_groups.get(cell, cell)) if cell else None, cell in cfg.border_cells)
                     for cell in [*cells.dictionary.to_pylist(), None]]
            # One event at a time, in order, each updating its subscriber (inline: a call per event cost more).
            silent, fast_window, long_stay, on_off_window, roaming_out = self._limits
            subscribers, border_rows, deadlines, emit = self.subscribers, self._border_row, self._deadlines, self._emit
            for i, (ts, imsi, kind, (group, border)) in enumerate(zip(
                    ts_us, events["imsi"].to_pylist(), events["event"].to_pylist(),
                    [known[code] for code in codes.tolist()])):
                if ts > self.clock:
                    self.clock = ts
                    if deadlines and deadlines[0][0] <= ts:
                        self._fire_deadlines()
                if not imsi:
                    continue
                sub = subscribers.get(imsi)
                if sub is None:
                    sub = subscribers[sys.intern(imsi)] = _Subscriber()  # the correlator's string: stored once
                elif kind == _POWER_ON and ts - sub.last_seen >= silent:
                    emit(ts, i, EventKind.SILENT_POWER_ON, iso_us(sub.last_seen))
                sub.last_seen = ts
                if kind == _CELL_CHANGE:
                    sub.changes = _recent(sub.changes, ts, fast_window)
                    if len(sub.changes) >= cfg.fast_switch_changes:
                        emit(ts, i, EventKind.FAST_CELL_SWITCHING, str(len(sub.changes)))
                        sub.changes = None
                if kind == _POWER_OFF:
                    sub.group, sub.off = None, True
                elif group:  # the cell group of the event's cell
                    if group != sub.group or kind == _POWER_ON:  # a power on begins a stay, whatever came before
                        sub.group, sub.since, sub.stayed = group, ts, False
                    elif not sub.stayed and ts - sub.since >= long_stay:
                        emit(ts, i, EventKind.LONG_STAY, group)
                        sub.stayed = True
                if kind == _POWER_ON and sub.off:
                    sub.off = False
                    sub.cycles = _recent(sub.cycles, ts, on_off_window)
                    if len(sub.cycles) >= cfg.on_off_cycles:
                        emit(ts, i, EventKind.FREQUENT_ON_OFF, str(len(sub.cycles)))
                        sub.cycles = None
                if border and kind != _POWER_OFF and imsi[:3] == cfg.home_mcc:
                    border_rows[imsi] = i
                    self._bordering.append(imsi)
                    heapq.heappush(deadlines, (ts + roaming_out, imsi, ts))
                elif imsi in border_rows:
                    del border_rows[imsi]
            self._rows_taken()
            self._batch = None
        return self._out.table()

    def _rows_taken(self) -> None:
        """The batch's pattern events and border rows, their rows taken from the batch at once."""
        border_rows = self._border_row
        bordering = [imsi for imsi in dict.fromkeys(self._bordering) if isinstance(border_rows.get(imsi), int)]
        numbers = sorted({row for _, row, *_ in self._found if isinstance(row, int)}
                         | {border_rows[imsi] for imsi in bordering})
        rows = dict(zip(numbers, self._batch.select(["imsi", *_LOCATED_FIELDS]).take(pa.array(numbers, pa.int64()))
                        .to_pylist()))
        for imsi in bordering:
            border_rows[imsi] = rows[border_rows[imsi]]
        self._bordering = []
        for ts_us, row, kind, detail, override in self._found:
            row = rows[row] if isinstance(row, int) else row
            self._out.append({**{name: row[name] for name in _LOCATED_FIELDS}, "ts": ts_us / US,
                              "probe": self.config.probe, "event": str(kind), "imsi": row["imsi"], "detail": detail,
                              **override})
        self._found = []

    def _fire_deadlines(self) -> None:
        """roaming_out for every border stay whose silence the clock has now outlasted."""
        while self._deadlines and self._deadlines[0][0] <= self.clock:
            due, imsi, seen = heapq.heappop(self._deadlines)
            sub = self.subscribers.get(imsi)
            row = self._border_row.get(imsi)
            if sub is not None and sub.last_seen == seen and row is not None:
                del self._border_row[imsi]
                self._emit(due, row, EventKind.ROAMING_OUT, iso_us(seen), frame=None)

    def _emit(self, ts_us: int, row: dict | int, kind: EventKind, detail: str, **override) -> None:
        """A pattern event copying ``row`` (the triggering event, or its number in the batch) but for these."""
        self._found.append((ts_us, row, kind, detail, override))

    # -- the store ------------------------------------------------------------------------------------
    def forget(self, imsis: set[str]) -> None:
        for imsi in imsis:
            self.subscribers.pop(imsi, None)
            self._border_row.pop(imsi, None)
        self._deadlines = [d for d in self._deadlines if d[1] not in imsis]
        heapq.heapify(self._deadlines)

    def state(self) -> dict:
        return {"clock": self.clock, "subscribers": {imsi: s.state() for imsi, s in self.subscribers.items()},
                "deadlines": self._deadlines, "border_rows": self._border_row}

    def load(self, state: dict) -> None:
        self.clock = state.get("clock", 0)
        for imsi, values in state.get("subscribers", {}).items():
            self.subscribers[sys.intern(imsi)] = _Subscriber.from_state(values)
        self._deadlines = [tuple(d) for d in state.get("deadlines", [])]
        heapq.heapify(self._deadlines)
        self._border_row = dict(state.get("border_rows", {}))

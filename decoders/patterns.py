"""Pattern events: behaviours seen only over time in a subscriber's own event stream.

``PatternDetector`` is fed the behaviour events ``EventDeriver`` emits, batch by batch, and keeps a little
state per subscriber (IMSI), a row of integers that compiled code walks event by event; all time comparisons are
in integer microseconds, the events' own resolution, so a threshold is met or not the same way whatever the
batching (docs/events.md, "Pattern events"):

- fast_cell_switching: ``fast_switch_changes`` cell changes within ``fast_switch_window_s`` (riding a vehicle);
- long_stay: the subscriber's events stay ≥ ``long_stay_s`` in one cell group (airport, concert hall), a cell
  in no configured group being a group of its own; a power on or off ends a stay;
- silent_power_on: power on after ≥ ``silent_days`` unseen (the last-seen time survives restarts in the store);
- frequent_on_off: ``on_off_cycles`` power-off → power-on cycles within ``on_off_window_s`` (weak signal);
- roaming_out: a home subscriber last seen on a border cell, then unseen for ``roaming_out_s``; reported when the
  stream's clock (the latest event time) passes that moment, at that moment, with the last-seen time in detail.
"""

import heapq
import itertools
import sys
from datetime import datetime, timezone

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from decoders.records import EVENT_SCHEMA, EventKind, RecordBuilder, value_codes

US = 1_000_000
# Event names as plain strings: comparing the batch's strings to them skips the enum's attribute lookup.
_POWER_ON, _POWER_OFF, _CELL_CHANGE = str(EventKind.POWER_ON), str(EventKind.POWER_OFF), str(EventKind.CELL_CHANGE)
_LOCATED_FIELDS = ("iface", "imei", "tmsi", "m_tmsi", "mcc", "mnc", "lac", "tac", "ci", "eci", "cell", "frame")


def iso_us(ts_us: int) -> str:
    """An event time as it appears in a pattern event's detail (UTC, millisecond precision)."""
    return datetime.fromtimestamp(ts_us / US, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# A subscriber's pattern state, one row of PatternDetector._state (times in µs): last seen; the cell group of its
# current stay (a code into PatternDetector._group_names, -1 none); when that stay began; long_stay reported for it;
# a power_off waiting for the power_on that closes a cycle; how many recent cell changes and completed on/off
# cycles it holds (their times in PatternDetector._changes and _cycles, oldest first); no event seen yet (new this
# batch); a home subscriber; its last event on a border cell (PatternDetector._border_row holds it).
_LAST_SEEN, _GROUP, _SINCE, _STAYED, _OFF, _N_CHANGES, _N_CYCLES, _NEW, _HOME, _BORDERED = range(10)
_FIELDS = 10
# The event kinds the core tells apart, and the pattern events it finds (each with an integer detail: the last-seen
# time, a count, a group code).
_OTHER, _ON, _OFF_KIND, _CHANGE = range(4)
_KIND_OF = {_POWER_ON: _ON, _POWER_OFF: _OFF_KIND, _CELL_CHANGE: _CHANGE}
_SILENT, _FAST, _STAY, _ON_OFF = range(4)
_FOUND_KINDS = (EventKind.SILENT_POWER_ON, EventKind.FAST_CELL_SWITCHING, EventKind.LONG_STAY,
                EventKind.FREQUENT_ON_OFF)
# Why the core stopped before the end of a batch: a roaming_out deadline falls due before a row; a row's border part
# (a home subscriber's event on a border cell, or the end of its border stay) is Python's.
_DONE, _DEADLINE, _BORDER = range(3)
_NEVER = np.iinfo(np.int64).max


@numba.njit(cache=True, nogil=True, inline="always")
def _recent(times, n, ts, window):
    """The first ``n`` of ``times`` (oldest first) that are within ``window`` before ``ts``, then ``ts``, kept in
    place; how many."""
    kept = 0
    for k in range(n):
        if times[k] >= ts - window:
            times[kept] = times[k]
            kept += 1
    times[kept] = ts
    return kept + 1


@numba.njit(cache=True, nogil=True, inline="always")
def _counted(times, n, ts, window, enough, i, what, found_row, found_kind, found_detail, n_found):
    """``ts`` added to the ``n`` recent times; with ``enough`` of them within ``window``, ``what`` is found at row
    ``i`` (detail: the count) and the count starts again. Returns the count kept and how many are found."""
    n = _recent(times, n, ts, window)
    if n >= enough:
        found_row[n_found], found_kind[n_found], found_detail[n_found] = i, what, n
        return 0, n_found + 1
    return n, n_found


@numba.njit(cache=True, nogil=True)
def _observe(start, clock, next_due, ts, slot, kind, group, border, state, changes, cycles, limits, found_row,
             found_kind, found_detail, n_found):
    """The rows from ``start``, each event updating its subscriber (the rules of the module docstring) and appending
    the pattern events it completes to ``found_*``. Returns where to resume, why it stopped, the clock and how many
    are found."""
    silent, fast_window, long_stay, on_off_window, fast_changes, on_off_cycles = limits
    for i in range(start, len(ts)):
        t = ts[i]
        if t > clock:
            clock = t
            if t >= next_due:
                return i, _DEADLINE, clock, n_found
        s = slot[i]
        if s < 0:
            continue
        k = kind[i]
        if state[s, _NEW]:
            state[s, _NEW] = 0
        elif k == _ON and t - state[s, _LAST_SEEN] >= silent:
            found_row[n_found], found_kind[n_found], found_detail[n_found] = i, _SILENT, state[s, _LAST_SEEN]
            n_found += 1
        state[s, _LAST_SEEN] = t
        if k == _CHANGE:
            state[s, _N_CHANGES], n_found = _counted(changes[s], state[s, _N_CHANGES], t, fast_window, fast_changes,
                                                     i, _FAST, found_row, found_kind, found_detail, n_found)
        g = group[i]
        if k == _OFF_KIND:
            state[s, _GROUP], state[s, _OFF] = -1, 1
        elif g >= 0:
            if g != state[s, _GROUP] or k == _ON:  # a power on begins a stay, whatever came before
                state[s, _GROUP], state[s, _SINCE], state[s, _STAYED] = g, t, 0
            elif not state[s, _STAYED] and t - state[s, _SINCE] >= long_stay:
                found_row[n_found], found_kind[n_found], found_detail[n_found] = i, _STAY, g
                n_found += 1
                state[s, _STAYED] = 1
        if k == _ON and state[s, _OFF]:
            state[s, _OFF] = 0
            state[s, _N_CYCLES], n_found = _counted(cycles[s], state[s, _N_CYCLES], t, on_off_window, on_off_cycles,
                                                    i, _ON_OFF, found_row, found_kind, found_detail, n_found)
        if (border[i] and k != _OFF_KIND and state[s, _HOME]) or state[s, _BORDERED]:
            return i + 1, _BORDER, clock, n_found
    return len(ts), _DONE, clock, n_found


class PatternDetector:
    """Feed event tables in capture order (``feed``); get the pattern events they complete. The per-event rules
    run compiled over the subscribers' state rows; the roaming_out deadlines and border stays stay in Python."""

    def __init__(self, config):
        self.config = config
        self.subscribers: dict[str, int] = {}  # IMSI -> its row of _state
        self.clock = 0  # latest event time seen (µs)
        self._deadlines: list[tuple[int, str, int]] = []  # (roaming_out time, imsi, last_seen that set it)
        # imsi -> its last event, while on a border cell: a row of the batch being fed (its number), else the row
        self._border_row: dict[str, dict | int] = {}
        self._out = RecordBuilder(EVENT_SCHEMA)
        self._batch: pa.Table | None = None  # the batch being fed
        self._order = np.zeros(0, np.int64)   # its rows in time order: the row numbers below are positions in it
        self._found: list[tuple] = []        # its pattern events so far, as _emit gives them
        self._bordering: list[str] = []      # the IMSIs whose border row it set (a row number until taken)
        self._state = np.zeros((0, _FIELDS), np.int64)
        self._changes = np.zeros((0, max(1, config.fast_switch_changes)), np.int64)
        self._cycles = np.zeros((0, max(1, config.on_off_cycles)), np.int64)
        self._free: list[int] = []  # rows of forgotten subscribers
        self._group_code: dict[str, int] = {}
        self._group_names: list[str] = []

    def _limits(self) -> np.ndarray:
        """The configured durations in µs (silent, fast switch window, long stay, on/off window) and counts."""
        cfg = self.config
        return np.array([*(round(seconds * US) for seconds in (
            cfg.silent_days * 86400, cfg.fast_switch_window_s, cfg.long_stay_s, cfg.on_off_window_s)),
            cfg.fast_switch_changes, cfg.on_off_cycles], np.int64)

    def row(self, imsi: str, seen: int = 0) -> int:
        """The state row of ``imsi``, a fresh one (new: no event seen yet; last seen ``seen`` µs, its first
        sighting, for the store's expiry) if it has none."""
        row = self.subscribers.get(imsi)
        if row is None:
            if not self._free:
                have = len(self._state)
                more = max(1024, have // 4)  # a quarter more at a time: the rows are most of the store's memory
                self._state = np.concatenate([self._state, np.zeros((more, _FIELDS), np.int64)])
                self._changes = np.concatenate([self._changes, np.zeros((more, self._changes.shape[1]), np.int64)])
                self._cycles = np.concatenate([self._cycles, np.zeros((more, self._cycles.shape[1]), np.int64)])
                self._free = list(range(have + more - 1, have - 1, -1))
            row = self.subscribers[sys.intern(imsi)] = self._free.pop()  # the correlator's string: stored once
            self._state[row] = 0
            self._state[row, _LAST_SEEN] = seen
            self._state[row, _GROUP] = -1
            self._state[row, _NEW] = 1
            self._state[row, _HOME] = imsi[:3] == self.config.home_mcc
        return row

    def _rows(self, imsis: list[str | None]) -> np.ndarray:
        """The state rows of the distinct ``imsis`` (-1 for None), one dict probe each for those that have one."""
        rows = np.fromiter(map(self.subscribers.get, imsis, itertools.repeat(-1)), np.int64, len(imsis))
        for k in np.flatnonzero(rows < 0).tolist():
            if imsis[k]:
                rows[k] = self.row(imsis[k])
        return rows

    def _group(self, name: str) -> int:
        code = self._group_code.get(name)
        if code is None:
            code = self._group_code[name] = len(self._group_names)
            self._group_names.append(sys.intern(name))
        return code

    @property
    def capacity(self) -> int:
        """How many state rows there are (the rows ``row`` gives are below it)."""
        return len(self._state)

    def feed(self, events: pa.Table, rows: np.ndarray | None = None) -> pa.Table:
        """The pattern events ``events`` complete; ``rows``: each event's subscriber row (``row``, -1 for none),
        when the caller has them (else they are looked up by IMSI)."""
        if len(events):
            # The events in time order, as the order of their rows (taking the table in that order cost more).
            order = pc.sort_indices(events, sort_keys=[("ts", "ascending"), ("frame", "ascending")]).to_numpy()
            self._batch, self._order, cfg = events, order, self.config
            ts = pc.cast(events["ts"], pa.int64()).to_numpy(zero_copy_only=False)[order]
            # Each distinct IMSI's row, event's kind, cell's group and border flag, worked out once.
            if rows is None:
                imsi_codes, imsis = value_codes(events["imsi"])
                rows = self._rows(imsis)[imsi_codes]
            rows = rows[order]
            kind_codes, names = value_codes(events["event"])
            kind = np.array([_KIND_OF.get(name, _OTHER) for name in names], np.int64)[kind_codes[order]]
            cell_codes, cells = value_codes(events["cell"])
            cell_codes = cell_codes[order]
            group = np.array([self._group(cfg.cell_groups.get(cell, cell)) if cell else -1 for cell in cells],
                             np.int64)[cell_codes]
            border = np.array([cell in cfg.border_cells for cell in cells], np.bool_)[cell_codes]
            found_row, found_kind, found_detail = (np.empty(4 * len(ts), np.int64) for _ in range(3))
            limits, roaming_out, start = self._limits(), round(cfg.roaming_out_s * US), 0
            while start < len(ts):
                due = self._deadlines[0][0] if self._deadlines else _NEVER
                start, why, self.clock, n = _observe(
                    start, self.clock, due, ts, rows, kind, group, border, self._state, self._changes, self._cycles,
                    limits, found_row, found_kind, found_detail, 0)
                self._found_in_core(found_row[:n], found_kind[:n], found_detail[:n], ts)
                if why == _DEADLINE:
                    self._fire_deadlines()
                elif why == _BORDER:  # the border part of the row just done
                    i = start - 1
                    imsi, t = sys.intern(events["imsi"][int(order[i])].as_py()), int(ts[i])
                    if border[i] and kind[i] != _OFF_KIND and self._state[rows[i], _HOME]:
                        self._border_row[imsi] = i
                        self._bordering.append(imsi)
                        self._state[rows[i], _BORDERED] = 1
                        heapq.heappush(self._deadlines, (t + roaming_out, imsi, t))
                    else:
                        del self._border_row[imsi]
                        self._state[rows[i], _BORDERED] = 0
            self._rows_taken()
            self._batch, self._order = None, self._order[:0]
        return self._out.table()

    def _found_in_core(self, rows: np.ndarray, kinds: np.ndarray, details: np.ndarray, ts: np.ndarray) -> None:
        for i, kind, detail in zip(rows.tolist(), kinds.tolist(), details.tolist()):
            text = (iso_us(detail) if kind == _SILENT else self._group_names[detail] if kind == _STAY
                    else str(detail))
            self._emit(int(ts[i]), i, _FOUND_KINDS[kind], text)

    def _rows_taken(self) -> None:
        """The batch's pattern events and border rows, their rows taken from the batch at once."""
        border_rows = self._border_row
        bordering = [imsi for imsi in dict.fromkeys(self._bordering) if isinstance(border_rows.get(imsi), int)]
        numbers = sorted({row for _, row, *_ in self._found if isinstance(row, int)}
                         | {border_rows[imsi] for imsi in bordering})
        taken = self._batch.select(["imsi", *_LOCATED_FIELDS]).take(self._order[np.array(numbers, np.int64)])
        rows = dict(zip(numbers, taken.to_pylist()))
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
            row = self.subscribers.get(imsi)
            border_row = self._border_row.get(imsi)
            if row is not None and self._state[row, _LAST_SEEN] == seen and border_row is not None:
                del self._border_row[imsi]
                self._state[row, _BORDERED] = 0
                self._emit(due, border_row, EventKind.ROAMING_OUT, iso_us(seen), frame=None)

    def _emit(self, ts_us: int, row: dict | int, kind: EventKind, detail: str, **override) -> None:
        """A pattern event copying ``row`` (the triggering event, or its number in the batch) but for these."""
        self._found.append((ts_us, row, kind, detail, override))

    def last_seen(self) -> dict[str, int]:
        """Each subscriber's last-seen time (µs): the store's recency for expiry and eviction."""
        seen = self._state[:, _LAST_SEEN]
        return {imsi: int(seen[row]) for imsi, row in self.subscribers.items()}

    # -- the store ------------------------------------------------------------------------------------
    def forget(self, imsis: set[str]) -> None:
        for imsi in imsis:
            row = self.subscribers.pop(imsi, None)
            if row is not None:
                self._free.append(row)
            self._border_row.pop(imsi, None)
        self._deadlines = [d for d in self._deadlines if d[1] not in imsis]
        heapq.heapify(self._deadlines)

    def state(self) -> dict:
        return {"clock": self.clock, "subscribers": {imsi: self._subscriber_state(row)
                                                     for imsi, row in self.subscribers.items()},
                "deadlines": self._deadlines, "border_rows": self._border_row}

    def _subscriber_state(self, row: int) -> dict:
        """The fields that differ from a fresh subscriber's (a snapshot stays small; docs/events.md)."""
        last_seen, group, since, stayed, off, n_changes, n_cycles, new = self._state[row, :_NEW + 1].tolist()
        out = {"last_seen": last_seen} if last_seen else {}
        if new:  # no event yet (sighted at last_seen)
            out["new"] = True
        if n_changes:
            out["changes"] = self._changes[row, :n_changes].tolist()
        if group >= 0:
            out["group"] = self._group_names[group]
        if since:
            out["since"] = since
        if stayed:
            out["stayed"] = True
        if off:
            out["off"] = True
        if n_cycles:
            out["cycles"] = self._cycles[row, :n_cycles].tolist()
        return out

    def load(self, state: dict) -> None:
        self.clock = state.get("clock", 0)
        for imsi, values in state.get("subscribers", {}).items():
            row = self.row(imsi)
            changes, cycles = _newest(values.get("changes"), self._changes), _newest(values.get("cycles"), self._cycles)
            group = values.get("group")
            self._state[row, :_NEW + 1] = [values.get("last_seen", 0), -1 if group is None else self._group(group),
                                           values.get("since", 0), bool(values.get("stayed")),
                                           bool(values.get("off")), len(changes), len(cycles),
                                           bool(values.get("new"))]
            self._changes[row, :len(changes)] = changes
            self._cycles[row, :len(cycles)] = cycles
        self._deadlines = [tuple(d) for d in state.get("deadlines", [])]
        heapq.heapify(self._deadlines)
        self._border_row = dict(state.get("border_rows", {}))
        for imsi in self._border_row:
            if imsi in self.subscribers:
                self._state[self.subscribers[imsi], _BORDERED] = 1


def _newest(times: list[int] | None, room: np.ndarray) -> list[int]:
    """The newest of ``times`` that a state row keeps between events (one less than the count that reports)."""
    keep = room.shape[1] - 1
    return list(times or [])[len(times or []) - keep:] if keep > 0 else []

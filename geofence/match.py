"""Fence detection over event batches: who entered, stayed in, passed through or left which fence, when.

A cell's fences are fixed once compiled (a CSR: ``offsets[c]..offsets[c+1]`` index the sorted fence ids of
cell c), so an event only has to be compared with the fences its subscriber is *in*. That per-pair state
lives in a pool of 32-byte slots (enter time, first time seen outside, count of outside sightings, dwell
fired) with one singly linked list per subscriber, so memory grows with the pairs actually inside a fence, not with
subscribers × fences; per subscriber only the last cell, the list head and a "nothing can fire before"
time are kept (16 bytes: 10 M subscribers = 160 MB). ``due`` lets the kernel skip the common event —
same cell as before, no pending exit, no dwell due — after two array reads.

Vocabulary (``Detect``), all decided on event time:
- enter: first located event in a cell of the fence while not in it;
- inside: every located event in a cell of the fence (off unless ``DetectConfig.inside``);
- dwell: once per visit, at the first event in the fence at least ``dwell_s`` after the enter;
- exit: a visit ends at the first sighting outside the fence, but is only reported once it is confirmed —
  ``exit_confirm`` located events in a row outside the fence, or ``exit_after_s`` since that first
  sighting; an event back inside first cancels it (no flap on border ping-pong). Power off exits at once;
- pass_through: reported with the exit when the visit (enter to first outside sighting) is shorter
  than ``pass_through_s``.
The kernel is a pure Numba function over arrays; ``detect_reference`` is its plain-Python twin for tests.
"""

import threading
from dataclasses import dataclass
from enum import StrEnum

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from decoders.records import TS, EventKind

NOWHERE = -1   # a located event in a cell the catalogue does not know: outside every fence
OFF = -2       # power off: leaves every fence at once
NEVER = np.iinfo(np.int64).max
US = 1_000_000


class Detect(StrEnum):
    """Fence detection words (Tile38-style), spelled the same in code, store, API and UI."""

    ENTER = "enter"
    EXIT = "exit"
    INSIDE = "inside"
    OUTSIDE = "outside"
    DWELL = "dwell"
    PASS_THROUGH = "pass_through"


KIND_CODES = [Detect.ENTER, Detect.EXIT, Detect.INSIDE, Detect.DWELL, Detect.PASS_THROUGH]
K_ENTER, K_EXIT, K_INSIDE, K_DWELL, K_PASS = range(5)

TRIGGER_SCHEMA = pa.schema([
    ("ts", TS),                  # time of the event that revealed the detection
    ("imsi", pa.string()),       # subscriber
    ("fence", pa.string()),      # fence name
    ("kind", pa.string()),       # a Detect value
    ("cell", pa.string()),       # cell key of the event (null when the subscriber powered off)
    ("event", pa.string()),      # the behaviour event that revealed it
    ("frame", pa.uint32()),      # capture frame of that event
    ("dwell_s", pa.float64()),   # seconds since enter (exit/pass_through: enter to first sighting outside)
])


@dataclass(frozen=True)
class DetectConfig:
    """Thresholds of the detection vocabulary; the defaults reproduce plain enter/exit on cell change."""

    dwell_s: float | None = None          # fire dwell when a visit has lasted this long (None: never)
    pass_through_s: float | None = None   # fire pass_through when a visit ends within this (None: never)
    exit_after_s: float | None = None     # confirm an exit after this long outside (None: count only)
    exit_confirm: int = 1                 # confirm an exit after this many events outside in a row
    inside: bool = False                  # emit inside for every located event in a fence

    def __post_init__(self):
        if self.exit_confirm < 1:
            raise ValueError(f"exit_confirm {self.exit_confirm} must be at least 1")
        for name in ("dwell_s", "pass_through_s", "exit_after_s"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} {value} must not be negative")

    def params(self) -> np.ndarray:
        us = lambda s: -1 if s is None else int(round(s * US))  # noqa: E731
        return np.array([us(self.dwell_s), us(self.pass_through_s), us(self.exit_after_s),
                         self.exit_confirm, int(self.inside)], np.int64)


@dataclass(frozen=True)
class Membership:
    """Compiled fences as the matcher needs them; ``alive[f]`` False retires fence f (its state is dropped)."""

    cell_keys: list[str]
    names: list[str]
    offsets: np.ndarray   # int64, len(cell_keys) + 1
    fence_ids: np.ndarray  # int32, sorted within each cell
    alive: np.ndarray      # bool, len(names)

    @classmethod
    def from_lists(cls, cell_keys: list[str], fences: dict[str, list[str]]) -> "Membership":
        index = {k: i for i, k in enumerate(cell_keys)}
        cells = [index[k] for name in fences for k in fences[name]]
        fids = [f for f, name in enumerate(fences) for _ in fences[name]]
        return cls.from_pairs(cell_keys, list(fences), np.array(cells, np.int64), np.array(fids, np.int64))

    @classmethod
    def from_pairs(cls, cell_keys, names, cells: np.ndarray, fids: np.ndarray, alive=None) -> "Membership":
        order = np.lexsort((fids, cells))
        offsets = np.zeros(len(cell_keys) + 1, np.int64)
        offsets[1:] = np.cumsum(np.bincount(cells, minlength=len(cell_keys)))
        alive = np.ones(len(names), bool) if alive is None else np.asarray(alive, bool)
        return cls(list(cell_keys), list(names), offsets, fids[order].astype(np.int32), alive)


@numba.njit(cache=True)
def _has(fids, a, b, f):
    """Binary search for fence f in the sorted slice fids[a:b]."""
    end = b
    while a < b:
        m = (a + b) >> 1
        if fids[m] < f:
            a = m + 1
        else:
            b = m
    return a < end and fids[a] == f


SLOT = np.dtype([("enter", np.int64), ("out_since", np.int64), ("fid", np.int32), ("next", np.int32),
                 ("out_n", np.int32), ("fired", np.int32)])  # one open visit: 32 bytes, one cache line
SUBSCRIBER = np.dtype([("due", np.int64), ("last_cell", np.int32), ("head", np.int32)])  # 16 bytes


@numba.njit(cache=True)
def detect(sub, cell, ts, start, offsets, fids, alive, params, subs, slots, pool, rows, fence, kinds, dwell,
           count):
    """Run events start.. through the state machine (events in time order per subscriber).

    sub/cell/ts: subscriber index, cell index (NOWHERE, OFF) and time in µs of each event. subs: per-
    subscriber state (SUBSCRIBER); slots: the pool of open visits (SLOT), ``pool[0]`` its free-list head
    and ``pool[1]`` the free count. All updated in place. Detections are written to rows/fence/kinds/dwell
    from ``count`` on. Returns (stop, count): when the pool or the output arrays run short the kernel
    stops before event ``stop`` so the caller can grow them and resume.
    """
    dwell_us, pass_us, after_us, confirm, inside_on = params[0], params[1], params[2], params[3], params[4]
    n = sub.shape[0]
    cap = rows.shape[0]
    i = start
    while i < n:
        me = subs[sub[i]]
        c = cell[i]
        t = ts[i]
        if c == me.last_cell and t < me.due:
            i += 1
            continue
        fa = offsets[c] if c >= 0 else 0
        fb = offsets[c + 1] if c >= 0 else 0
        if pool[1] < fb - fa:
            break
        room = 3 * (fb - fa)
        slot = me.head
        while slot != -1:
            room += 2
            slot = slots[slot].next
        if count + room > cap:
            break
        me.last_cell = c
        new_due = NEVER
        prev = -1
        slot = me.head
        while slot != -1:  # the fences the subscriber is in
            v = slots[slot]
            nxt = v.next
            f = v.fid
            drop = not alive[f]
            if not drop and c >= 0 and _has(fids, fa, fb, f):
                v.out_n = 0
                if inside_on:
                    rows[count], fence[count], kinds[count], dwell[count] = i, f, K_INSIDE, t - v.enter
                    count += 1
                    new_due = 0
                if dwell_us >= 0 and not v.fired:
                    if t - v.enter >= dwell_us:
                        rows[count], fence[count], kinds[count], dwell[count] = i, f, K_DWELL, t - v.enter
                        count += 1
                        v.fired = 1
                    else:
                        new_due = min(new_due, v.enter + dwell_us)
            elif not drop:
                if v.out_n == 0:
                    v.out_since = t
                v.out_n += 1
                if c == OFF or v.out_n >= confirm or (after_us >= 0 and t - v.out_since >= after_us):
                    visit = v.out_since - v.enter
                    rows[count], fence[count], kinds[count], dwell[count] = i, f, K_EXIT, visit
                    count += 1
                    if pass_us >= 0 and visit < pass_us:
                        rows[count], fence[count], kinds[count], dwell[count] = i, f, K_PASS, visit
                        count += 1
                    drop = True
                else:
                    new_due = 0
            if drop:  # unlink and free the slot
                if prev == -1:
                    me.head = nxt
                else:
                    slots[prev].next = nxt
                v.next = pool[0]
                pool[0] = slot
                pool[1] += 1
            else:
                prev = slot
            slot = nxt
        for k in range(fa, fb):  # fences of this cell the subscriber is not yet in
            f = fids[k]
            if not alive[f]:
                continue
            slot = me.head
            while slot != -1 and slots[slot].fid != f:
                slot = slots[slot].next
            if slot != -1:
                continue
            slot = pool[0]
            v = slots[slot]
            pool[0] = v.next
            pool[1] -= 1
            v.fid, v.enter, v.out_n, v.fired, v.next = f, t, 0, 0, me.head
            me.head = slot
            rows[count], fence[count], kinds[count], dwell[count] = i, f, K_ENTER, 0
            count += 1
            if inside_on:
                rows[count], fence[count], kinds[count], dwell[count] = i, f, K_INSIDE, 0
                count += 1
                new_due = 0
            if dwell_us == 0:
                rows[count], fence[count], kinds[count], dwell[count] = i, f, K_DWELL, 0
                count += 1
                v.fired = 1
            elif dwell_us > 0:
                new_due = min(new_due, t + dwell_us)
        me.due = new_due
        i += 1
    return i, count


def detect_reference(sub, cell, ts, cell_fences: list[set[int]], config: DetectConfig,
                     state: dict[int, dict[int, list]]) -> list[tuple[int, int, int, int]]:
    """Plain-Python specification of ``detect`` (sets and dicts, no fast path): sorted (row, fence, kind, dwell µs).

    state[s][f] = [enter µs, first outside µs, outside count, dwell fired] for every fence s is in.
    """
    dwell_us, pass_us, after_us, confirm, inside_on = config.params().tolist()
    out = []
    for i, (s, c, t) in enumerate(zip(sub, cell, ts)):
        mine = state.setdefault(s, {})
        here = cell_fences[c] if c >= 0 else set()
        for f in sorted(mine):
            visit = mine[f]
            if f in here:
                visit[2] = 0
                if inside_on:
                    out.append((i, f, K_INSIDE, t - visit[0]))
                if dwell_us >= 0 and not visit[3] and t - visit[0] >= dwell_us:
                    out.append((i, f, K_DWELL, t - visit[0]))
                    visit[3] = True
                continue
            if visit[2] == 0:
                visit[1] = t
            visit[2] += 1
            if c == OFF or visit[2] >= confirm or (after_us >= 0 and t - visit[1] >= after_us):
                length = visit[1] - visit[0]
                out.append((i, f, K_EXIT, length))
                if pass_us >= 0 and length < pass_us:
                    out.append((i, f, K_PASS, length))
                del mine[f]
        for f in sorted(here - mine.keys()):
            mine[f] = [t, 0, 0, dwell_us == 0]
            out.append((i, f, K_ENTER, 0))
            if inside_on:
                out.append((i, f, K_INSIDE, 0))
            if dwell_us == 0:
                out.append((i, f, K_DWELL, 0))
    return sorted(out)


class FenceMatcher:
    """Compiled fences plus per-subscriber state; ``match`` turns event tables into trigger tables and
    ``swap`` installs recompiled fences between batches without losing anyone's state."""

    def __init__(self, cell_keys: list[str], fences: dict[str, list[str]] | None = None,
                 config: DetectConfig | None = None, membership: Membership | None = None,
                 pool_slots: int = 1024):
        self.config = config or DetectConfig()
        self._params = self.config.params()
        self.membership = membership or Membership.from_lists(cell_keys, fences or {})
        self._cell_values = pa.array(self.membership.cell_keys, pa.string())
        self._lock = threading.Lock()  # a swap from the reload thread never lands mid-batch
        self.sub_index: dict[str, int] = {}
        self.subs = np.zeros(0, SUBSCRIBER)
        self.slots = np.zeros(0, SLOT)
        self.pool = np.array([-1, 0], np.int64)
        self.reserve(1024)
        self._pool_arrays(pool_slots)

    @property
    def fence_names(self) -> list[str]:
        return self.membership.names

    def _pool_arrays(self, cap: int) -> None:
        """Grow the slot pool to ``cap`` slots, chaining the new ones in front of the free list."""
        old = len(self.slots)
        fresh = np.zeros(cap - old, SLOT)
        fresh["next"] = np.arange(old + 1, cap + 1)
        fresh["next"][-1] = self.pool[0]
        self.slots = np.concatenate([self.slots, fresh])
        self.pool = np.array([old, self.pool[1] + cap - old], np.int64)

    def reserve(self, n: int) -> None:
        """Room for n subscribers (grows by doubling; a bench or a restore can size it up front)."""
        if n > len(self.subs):
            fresh = np.zeros(max(n, 2 * len(self.subs)) - len(self.subs), SUBSCRIBER)
            fresh["last_cell"], fresh["head"] = NOWHERE, -1
            self.subs = np.concatenate([self.subs, fresh])

    def swap(self, membership: Membership) -> None:
        """Install recompiled fences: cells are re-keyed by cell key, fences by name; a fence that is gone
        is retired (its visits end silently); everyone is re-evaluated at their next event."""
        with self._lock:
            self._swap(membership)

    def _swap(self, membership: Membership) -> None:
        old = self.membership
        names = list(membership.names)
        alive = list(membership.alive)
        for name in old.names:
            if name not in membership.names:
                names.append(name)
                alive.append(False)
        fence_map = np.array([names.index(x) for x in old.names] or [0], np.int32)
        new_index = {k: i for i, k in enumerate(membership.cell_keys)}
        cell_map = np.array([new_index.get(k, NOWHERE) for k in old.cell_keys] + [OFF, NOWHERE], np.int32)
        members = Membership(membership.cell_keys, names, membership.offsets, membership.fence_ids,
                             np.array(alive, bool))
        self.slots["fid"] = fence_map[self.slots["fid"]]
        self.subs["last_cell"] = cell_map[self.subs["last_cell"]]  # NOWHERE, OFF: the map's last two
        self.subs["due"] = 0
        self._cell_values = pa.array(members.cell_keys, pa.string())
        self.membership = members

    def codes(self, events: pa.Table) -> tuple[pa.Table, np.ndarray, np.ndarray, np.ndarray]:
        """The located events and their subscriber, cell and µs-time arrays for the kernel."""
        off = pc.equal(events["event"], EventKind.POWER_OFF.value)
        located = events.filter(pc.and_(pc.is_valid(events["imsi"]), pc.or_(pc.is_valid(events["cell"]), off)))
        encoded = pc.dictionary_encode(located["imsi"].combine_chunks())
        ids = np.fromiter((self.sub_index.setdefault(x, len(self.sub_index))
                           for x in encoded.dictionary.to_pylist()), np.int64, len(encoded.dictionary))
        sub = ids[encoded.indices.to_numpy(zero_copy_only=False)] if len(ids) else np.zeros(0, np.int64)
        self.reserve(len(self.sub_index))
        cell = pc.fill_null(pc.index_in(located["cell"], value_set=self._cell_values), NOWHERE)
        cell = cell.to_numpy(zero_copy_only=False).astype(np.int32)
        cell[pc.fill_null(pc.equal(located["event"], EventKind.POWER_OFF.value), False).to_numpy(
            zero_copy_only=False)] = OFF
        ts = pc.cast(located["ts"], pa.int64()).to_numpy(zero_copy_only=False)
        return located, sub, cell, ts

    def run(self, sub: np.ndarray, cell: np.ndarray, ts: np.ndarray):
        """The kernel over coded arrays, growing the slot pool and output as needed; (row, fence, kind, dwell µs)."""
        m = self.membership
        widest = int(np.diff(m.offsets).max(initial=0))
        cap = len(sub) + 64
        out = [np.empty(cap, np.int64), np.empty(cap, np.int32), np.empty(cap, np.int8), np.empty(cap, np.int64)]
        start = count = 0
        while True:
            start, count = detect(sub, cell, ts, start, m.offsets, m.fence_ids, m.alive, self._params,
                                  self.subs, self.slots, self.pool, *out, count)
            if start >= len(sub):
                return [a[:count] for a in out]
            if self.pool[1] < widest:
                self._pool_arrays(2 * len(self.slots) + widest)
            else:  # output full (a subscriber in many fences needs 2 rows per fence, 3 per fence entered)
                cap = 2 * cap + 3 * widest + 2 * len(self.slots)
                out = [np.concatenate([a[:count], np.empty(cap - count, a.dtype)]) for a in out]

    def match(self, events: pa.Table) -> pa.Table:
        with self._lock:
            located, sub, cell, ts = self.codes(events)
            rows, fids, kinds, dwell = self.run(sub, cell, ts)
            names = pa.array(self.membership.names, pa.string())
        taken = located.take(pa.array(rows, pa.int64()))
        words = pa.array([k.value for k in KIND_CODES], pa.string())
        return pa.Table.from_arrays([
            taken["ts"], taken["imsi"], names.take(pa.array(fids, pa.int32())),
            words.take(pa.array(kinds, pa.int8())), taken["cell"], taken["event"], taken["frame"],
            pa.array(dwell / US, pa.float64()),
        ], schema=TRIGGER_SCHEMA)

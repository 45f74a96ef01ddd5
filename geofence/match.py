"""Fence detection over event batches: who entered, stayed in, passed through or left which fence, when.

A cell's fences are fixed once compiled (a CSR: ``offsets[c]..offsets[c+1]`` index the sorted fence ids of
cell c), so an event only has to be compared with the fences its subscriber is *in*. That per-pair state
(enter time, first time seen outside, count of outside sightings, dwell fired: a 28-byte slot) lives in one
contiguous block per subscriber, oldest visit first, carved from a pool with a free list per block size, so
memory grows with the pairs actually inside a fence, not with subscribers × fences, and the visits are one or
two cache lines instead of a chain of misses. Per subscriber: the last cell, the block (start, length, size)
and a "nothing can fire before" time (24 bytes). ``due`` lets the kernel skip the common event — same cell
as before, no pending exit, no dwell due — after two array reads; in the same cell with something due, a
visit is in the cell iff it has no outside sighting, so the cell's fence list is not read. The rest is
memory latency (a subscriber, its block, the cell's fences: random reads), so the kernel prefetches them
``FAR``/``MID``/``NEAR`` events ahead.

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
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from decoders.records import TS, EventKind, key_codes

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


@intrinsic
def _prefetch(typingctx, array, index):
    """Start loading array[index] into the cache without waiting for it (LLVM's prefetch; never faults)."""
    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False)
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                            "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])  # read, keep, data cache
        return context.get_dummy_value()
    return types.void(array, index), codegen


# Prefetch distances in events: the subscriber FAR ahead; once it is in cache, for an event that will not
# take the fast path, its visits and the cell's offsets MID ahead, then the cell's fence list NEAR ahead.
FAR, MID, NEAR = 256, 128, 64

SLOT = np.dtype([("enter", np.int64), ("out_since", np.int64), ("fid", np.int32), ("out_n", np.int32),
                 ("fired", np.int32)])  # one open visit: 28 bytes
SUBSCRIBER = np.dtype([("due", np.int64), ("last_cell", np.int32), ("head", np.int32), ("n", np.int32),
                       ("cap", np.int32)])  # 24 bytes: visits at slots[head:head + n], room for cap
SUB_BYTES = SUBSCRIBER.itemsize
UNKNOWN = -3   # last_cell after a swap: the next event must look its cell's fences up again
# Block sizes 1, 2, 3, 4, 6, 8, 12, .. (steps of 1.5 or 4/3: at most a third of a block unused), one free list each
SIZES = np.array(sorted({2 ** p for p in range(31)} | {3 << p for p in range(30)}), np.int64)


@numba.njit(cache=True)
def _holds(slots, base, n, f):
    """Whether fence f is among the n visits at slots[base:] (no early exit: n is small, branches cost more)."""
    found = False
    for j in range(base, base + n):
        found |= slots[j].fid == f
    return found


@numba.njit(cache=True)
def _in_cell(fids, a, b, f):
    """Whether fence f is in fids[a:b]: a scan without branches beats a binary search over a handful, and
    the enters already cost (fences of the cell) × (visits)."""
    found = False
    for k in range(a, b):
        found |= fids[k] == f
    return found


@numba.njit(cache=True)
def _move(slots, dst, src):
    v, w = slots[dst], slots[src]
    v.enter, v.out_since, v.fid, v.out_n, v.fired = w.enter, w.out_since, w.fid, w.out_n, w.fired


@numba.njit(cache=True)
def _size_class(need):
    k = 0
    while SIZES[k] < need:
        k += 1
    return k


@numba.njit(cache=True)
def _alloc(slots, pool, need):
    """A block of at least ``need`` slots: (start, size), start -1 when the pool has no room for it.

    ``pool[0]`` is the first never-used slot, ``pool[1 + k]`` the free list of blocks of SIZES[k] slots,
    linked through their first slot's ``enter``."""
    k = _size_class(need)
    size = SIZES[k]
    head = pool[1 + k]
    if head >= 0:
        pool[1 + k] = slots[head].enter
        return head, size
    if pool[0] + size <= slots.shape[0]:
        pool[0] += size
        return pool[0] - size, size
    return -1, size


@numba.njit(cache=True)
def _free(slots, pool, start, size):
    k = _size_class(size)
    slots[start].enter = pool[1 + k]
    pool[1 + k] = start


@numba.njit(cache=True)
def detect(sub, cell, ts, start, offsets, fids, alive, params, subs, subs_raw, slots, pool, rows, fence, kinds, dwell,
           count):
    """Run events start.. through the state machine (events in time order per subscriber).

    sub/cell/ts: subscriber index, cell index (NOWHERE, OFF) and time in µs of each event. subs: per-
    subscriber state (SUBSCRIBER), subs_raw the same bytes (to prefetch it by cache line); slots: the pool
    of open visits (SLOT) managed through ``pool`` (``_alloc``). All updated in place. Detections are
    written to rows/fence/kinds/dwell from ``count`` on. Returns (stop, count, short): when the output
    arrays run short, or the pool has no block of ``short`` slots, the kernel stops before event ``stop``
    so the caller can grow them and resume.
    """
    dwell_us, pass_us, after_us, confirm, inside_on = params[0], params[1], params[2], params[3], params[4]
    n_events = sub.shape[0]
    cap = rows.shape[0]
    i = start
    while i < n_events:
        if i + FAR < n_events:  # both ends: a 24-byte record straddles two cache lines 3 times in 8
            _prefetch(subs_raw, sub[i + FAR] * SUB_BYTES)
            _prefetch(subs_raw, sub[i + FAR] * SUB_BYTES + SUB_BYTES - 1)
        if i + MID < n_events:
            ahead = subs[sub[i + MID]]
            c = cell[i + MID]
            if c != ahead.last_cell or ts[i + MID] >= ahead.due:
                for j in range(ahead.head, ahead.head + ahead.n + 1, 2):  # every 56 bytes: each line of the visits
                    _prefetch(slots, min(j, ahead.head + ahead.n - 1))
                if c >= 0 and c != ahead.last_cell:
                    _prefetch(offsets, c)
        if i + NEAR < n_events:
            ahead = subs[sub[i + NEAR]]
            c = cell[i + NEAR]
            if c >= 0 and c != ahead.last_cell:
                _prefetch(fids, offsets[c])
        me = subs[sub[i]]
        c = cell[i]
        t = ts[i]
        same = c == me.last_cell
        if same and t < me.due:
            i += 1
            continue
        # Same cell as the last full look: a visit is in the cell iff it has no outside sighting, and
        # every fence of the cell is open already, so the cell's fence list is not needed.
        fa = offsets[c] if c >= 0 and not same else 0
        fb = offsets[c + 1] if c >= 0 and not same else 0
        n = me.n
        if count + 3 * (fb - fa) + 2 * n > cap:
            return i, count, 0
        base = me.head
        if n + fb - fa > me.cap:  # the block may be too small for the enters: count them
            need = n
            for k in range(fa, fb):
                if alive[fids[k]] and not _holds(slots, base, n, fids[k]):
                    need += 1
            if need > me.cap:
                block, size = _alloc(slots, pool, need)
                if block < 0:
                    return i, count, size
                for j in range(n):
                    _move(slots, block + j, base + j)
                if me.cap:
                    _free(slots, pool, base, me.cap)
                base, me.head, me.cap = block, block, size
        me.last_cell = c
        new_due = NEVER
        kept = here = 0
        for j in range(n - 1, -1, -1):  # newest first
            v = slots[base + j]
            f = v.fid
            drop = not alive[f]
            if not drop and (v.out_n == 0 if same else _in_cell(fids, fa, fb, f)):
                here += 1
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
            if drop:
                v.out_n = -1  # a gap for the compaction below
            else:
                kept += 1
        if kept < n:  # close the gaps, keeping the order
            w = 0
            for j in range(n):
                if slots[base + j].out_n >= 0:
                    if w != j:
                        _move(slots, base + w, base + j)
                    w += 1
            n = kept
        # Fences of this cell the subscriber is not yet in: none when each of the cell's fences was found open.
        for k in range(fa, fb if here < fb - fa else fa):
            f = fids[k]
            if not alive[f] or _holds(slots, base, n, f):
                continue
            v = slots[base + n]
            n += 1
            v.fid, v.enter, v.out_n, v.fired = f, t, 0, 0
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
        if n == 0 and me.cap:
            _free(slots, pool, base, me.cap)
            me.head, me.cap = -1, 0
        me.n = n
        me.due = new_due
        i += 1
    return i, count, 0


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
        self.slots = np.zeros(pool_slots, SLOT)
        self.pool = np.full(1 + len(SIZES), -1, np.int64)
        self.pool[0] = 0
        self.reserve(1024)

    @property
    def fence_names(self) -> list[str]:
        return self.membership.names

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
        members = Membership(membership.cell_keys, names, membership.offsets, membership.fence_ids,
                             np.array(alive, bool))
        self.slots["fid"] = fence_map[self.slots["fid"]]
        self.subs["last_cell"] = UNKNOWN  # cell indices and their fences changed: look up again
        self.subs["due"] = 0
        self._cell_values = pa.array(members.cell_keys, pa.string())
        self.membership = members

    def codes(self, events: pa.Table) -> tuple[pa.Table, np.ndarray, np.ndarray, np.ndarray]:
        """The located events and their subscriber, cell and µs-time arrays for the kernel."""
        off = pc.equal(events["event"], EventKind.POWER_OFF.value)
        located = events.filter(pc.and_(pc.is_valid(events["imsi"]), pc.or_(pc.is_valid(events["cell"]), off)))
        encoded = pc.dictionary_encode(located["imsi"].combine_chunks())
        ids, _ = key_codes(self.sub_index, encoded.dictionary.to_pylist())
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
            start, count, short = detect(sub, cell, ts, start, m.offsets, m.fence_ids, m.alive, self._params,
                                         self.subs, self.subs.view(np.uint8), self.slots, self.pool, *out, count)
            if start >= len(sub):
                return [a[:count] for a in out]
            if short:  # blocks point into slots by index: grow at the end, in place (realloc, no copy)
                self.slots.resize(2 * len(self.slots) + short)
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

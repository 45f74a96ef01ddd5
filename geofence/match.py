"""Fence detection over event batches: which subscriber entered or left which fence, and when.

State is one integer per subscriber — the last cell it was seen in — because a cell's fences are
fixed once compiled: moving from cell p to cell c enters the fences of c that p lacks and exits those
of p that c lacks. Power off puts the subscriber nowhere (exits everything). The kernel is a pure
Numba function over arrays; ``transitions_reference`` is its plain-Python twin for tests.
"""

from enum import StrEnum

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from decoders.records import TS, EventKind

NOWHERE = -1


class Detect(StrEnum):
    """Fence detection words (Tile38-style), spelled the same in code, store, API and UI."""

    ENTER = "enter"
    EXIT = "exit"
    INSIDE = "inside"
    OUTSIDE = "outside"
    DWELL = "dwell"
    PASS_THROUGH = "pass_through"


_KIND_CODES = [Detect.ENTER, Detect.EXIT]

TRIGGER_SCHEMA = pa.schema([
    ("ts", TS),                  # time of the event that crossed the fence boundary
    ("imsi", pa.string()),       # subscriber
    ("fence", pa.string()),      # fence name
    ("kind", pa.string()),       # a Detect value: enter or exit
    ("cell", pa.string()),       # cell key of the event (null when the subscriber powered off)
    ("event", pa.string()),      # the behaviour event that revealed the move
    ("frame", pa.uint32()),      # capture frame of that event
])


@numba.njit(cache=True)
def transitions(sub: np.ndarray, cell: np.ndarray, offsets: np.ndarray, fences: np.ndarray,
                last_cell: np.ndarray):
    """Enter/exit transitions for events in time order.

    sub[i], cell[i]: subscriber and cell index of event i (cell NOWHERE = seen nowhere / powered off).
    offsets/fences: CSR of each cell's sorted fence ids. last_cell: per-subscriber state, updated in place.
    Returns (event row, fence id, kind code 0=enter 1=exit) arrays.
    """
    n = sub.shape[0]
    cap = 16
    rows = np.empty(cap, np.int64)
    fids = np.empty(cap, np.int64)
    kinds = np.empty(cap, np.int8)
    count = 0
    for i in range(n):
        s = sub[i]
        c = cell[i]
        p = last_cell[s]
        if p == c:
            continue
        last_cell[s] = c
        a, a_end = (offsets[p], offsets[p + 1]) if p != NOWHERE else (0, 0)
        b, b_end = (offsets[c], offsets[c + 1]) if c != NOWHERE else (0, 0)
        while a < a_end or b < b_end:  # merge two sorted fence lists
            if count + 1 > cap:
                cap *= 2
                rows = _grow(rows, cap)
                fids = _grow(fids, cap)
                kinds = _grow(kinds, cap)
            if b >= b_end or (a < a_end and fences[a] < fences[b]):
                rows[count], fids[count], kinds[count] = i, fences[a], 1
                a += 1
                count += 1
            elif a >= a_end or fences[b] < fences[a]:
                rows[count], fids[count], kinds[count] = i, fences[b], 0
                b += 1
                count += 1
            else:
                a += 1
                b += 1
    return rows[:count], fids[:count], kinds[:count]


@numba.njit(cache=True)
def _grow(a, cap):
    out = np.empty(cap, a.dtype)
    out[:a.shape[0]] = a
    return out


def transitions_reference(sub, cell, cell_fences: list[set[int]], last_cell: dict[int, int]):
    """Plain-Python specification of ``transitions`` (sets instead of CSR), for tests."""
    out = []
    for i, (s, c) in enumerate(zip(sub, cell)):
        p = last_cell.get(s, NOWHERE)
        if p == c:
            continue
        last_cell[s] = c
        before = cell_fences[p] if p != NOWHERE else set()
        after = cell_fences[c] if c != NOWHERE else set()
        out += [(i, f, 1) for f in sorted(before - after)]
        out += [(i, f, 0) for f in sorted(after - before)]
    return sorted(out)


class FenceMatcher:
    """Compiled fences plus per-subscriber state; ``match`` turns event tables into trigger tables."""

    def __init__(self, cell_keys: list[str], fences: dict[str, list[str]]):
        self.fence_names = list(fences)
        self.cell_index = {k: i for i, k in enumerate(cell_keys)}
        members: list[list[int]] = [[] for _ in cell_keys]
        for fid, name in enumerate(self.fence_names):
            for key in fences[name]:
                members[self.cell_index[key]].append(fid)
        self.offsets = np.zeros(len(cell_keys) + 1, np.int64)
        self.offsets[1:] = np.cumsum([len(m) for m in members])
        self.fences = np.array([f for m in members for f in sorted(m)], np.int64)
        self.sub_index: dict[str, int] = {}
        self.last_cell = np.full(1024, NOWHERE, np.int64)

    def match(self, events: pa.Table) -> pa.Table:
        off = pc.equal(events["event"], EventKind.POWER_OFF.value)
        located = events.filter(pc.and_(pc.is_valid(events["imsi"]), pc.or_(pc.is_valid(events["cell"]), off)))
        imsis = located["imsi"].to_pylist()
        sub = np.fromiter((self.sub_index.setdefault(x, len(self.sub_index)) for x in imsis), np.int64, len(imsis))
        if len(self.sub_index) > len(self.last_cell):
            grown = np.full(max(len(self.sub_index), 2 * len(self.last_cell)), NOWHERE, np.int64)
            grown[:len(self.last_cell)] = self.last_cell
            self.last_cell = grown
        off = pc.equal(located["event"], EventKind.POWER_OFF.value).to_numpy(zero_copy_only=False)
        cell = np.fromiter((self.cell_index.get(k, NOWHERE) for k in located["cell"].to_pylist()), np.int64,
                           len(imsis))
        cell[off] = NOWHERE
        rows, fids, kinds = transitions(sub, cell, self.offsets, self.fences, self.last_cell)
        taken = located.take(pa.array(rows))
        return pa.Table.from_arrays([
            taken["ts"], taken["imsi"],
            pa.array([self.fence_names[f] for f in fids], pa.string()),
            pa.array([_KIND_CODES[k].value for k in kinds], pa.string()),
            taken["cell"], taken["event"], taken["frame"],
        ], schema=TRIGGER_SCHEMA)

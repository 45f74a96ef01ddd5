"""Which signaling connection each message belongs to: the connection indexes, walked by one compiled pass a batch.

A message names its connection by an SCCP connection id (A interface) or by its S1AP UE IDs (S1); a NAS record
belongs to the S1AP message it came in. ``ConnectionIndex`` keeps those names -> context ids in compiled hash
tables and walks a batch's ID columns once (``walk``): each row's context id, the contexts each row releases, and
the A interface rows on a connection with a call in progress. The Python feed loop (events.py) then visits only
the rows that carry an identity, a cell, a behaviour or a call, and keeps one ``UeContext`` per context id.

The rules are those of ``Correlator.observe_a`` / ``observe_s1ap`` / ``observe_nas`` (decoders/correlate.py, the
record-at-a-time reference; tests/test_connections.py compares the two): a context that neither S1AP ID names any
more is released, stale index entries stay until overwritten, a Complete Layer 3 opens a new context on its
connection. A context no index entry reaches any more is dropped (its id is never given again).
"""

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

NONE = np.iinfo(np.int64).min  # a null ID (no S1AP ID, SCCP connection or association)

# Row kinds: what the pass does with a row (events.py gives each (proto, msg) one).
(SKIP, S1AP, S1AP_INITIAL, S1AP_TARGET, S1AP_RELEASE, NAS, BSSMAP, BSSMAP_CL3, BSSMAP_CLEAR,
 DTAP, DTAP_SETUP, DTAP_CALL_END) = range(12)

# A context's slot: its id, the MME UE S1AP ID and (association, eNB UE S1AP ID) it thinks it is indexed under
# (Correlator's UeContext.mme_id / enb_key), closed, how many index entries (and the current S1AP message) name it,
# and whether a call is in progress on it (events.py's _calls; a call ends with Release Complete or the connection).
_ID, _MME, _HAS_ENB, _ENB_A, _ENB_B, _CLOSED, _REFS, _CALL = range(8)
_FIELDS = 8
# meta: the next context id, the current S1AP message's slot (-1 none), free slots on the stack, entries per table.
_NEXT_ID, _CURRENT, _FREE, _N_SCCP, _N_MME, _N_ENB = range(6)
_SCCP, _BY_MME, _BY_ENB = 0, 1, 2

# The pass's helpers are inlined into it (a call each cost more than its work).


@numba.njit(cache=True, nogil=True, inline="always")
def _home(keys, key_a, key_b):
    h = (key_a * -7046029254386353131) ^ (key_b * 0x5851F42D4C957F2D)
    return (h ^ (h >> 29)) & (len(keys) - 1)


@numba.njit(cache=True, nogil=True, inline="always")
def _get(keys, vals, key_a, key_b):
    """The slot stored under (key_a, key_b), or -1. Linear probing; an empty bucket holds -1."""
    h = _home(keys, key_a, key_b)
    mask = len(keys) - 1
    while vals[h] >= 0:
        if keys[h, 0] == key_a and keys[h, 1] == key_b:
            return vals[h]
        h = (h + 1) & mask
    return -1


@numba.njit(cache=True, nogil=True, inline="always")
def _put(keys, vals, meta, count, key_a, key_b, slot):
    """Store ``slot`` under the key; the slot it replaces, or -1."""
    h = _home(keys, key_a, key_b)
    mask = len(keys) - 1
    while vals[h] >= 0:
        if keys[h, 0] == key_a and keys[h, 1] == key_b:
            old = vals[h]
            vals[h] = slot
            return old
        h = (h + 1) & mask
    keys[h, 0], keys[h, 1], vals[h] = key_a, key_b, slot
    meta[count] += 1
    return -1


@numba.njit(cache=True, nogil=True, inline="always")
def _pop(keys, vals, meta, count, key_a, key_b):
    """Remove the key; its slot, or -1. Later entries of the probe run shift back (no tombstones)."""
    h = _home(keys, key_a, key_b)
    mask = len(keys) - 1
    while True:
        if vals[h] < 0:
            return -1
        if keys[h, 0] == key_a and keys[h, 1] == key_b:
            break
        h = (h + 1) & mask
    old = vals[h]
    hole, j = h, h
    while True:
        j = (j + 1) & mask
        if vals[j] < 0:
            break
        # The entry at j moves into the hole when the hole lies on its probe path (from its home to j).
        if ((j - _home(keys, keys[j, 0], keys[j, 1])) & mask) >= ((j - hole) & mask):
            keys[hole, 0], keys[hole, 1], vals[hole] = keys[j, 0], keys[j, 1], vals[j]
            hole = j
    vals[hole] = -1
    meta[count] -= 1
    return old


@numba.njit(cache=True, nogil=True, inline="always")
def _unref(slots, free, meta, slot):
    """One index entry less names ``slot``: a slot none names is freed (its context id is never given again)."""
    slots[slot, _REFS] -= 1
    if slots[slot, _REFS] == 0:
        free[meta[_FREE]] = slot
        meta[_FREE] += 1


@numba.njit(cache=True, nogil=True, inline="always")
def _new(slots, free, meta):
    meta[_FREE] -= 1
    slot = free[meta[_FREE]]
    slots[slot, :] = 0
    slots[slot, _ID] = meta[_NEXT_ID]
    slots[slot, _MME] = NONE
    meta[_NEXT_ID] += 1
    return slot


@numba.njit(cache=True, nogil=True, inline="always")
def _release(slots, slot, row, rel_row, rel_id, n_rel):
    if not slots[slot, _CLOSED]:
        slots[slot, _CLOSED] = 1
        slots[slot, _CALL] = 0  # events.py ends the call with the connection
        rel_row[n_rel], rel_id[n_rel] = row, slots[slot, _ID]
        n_rel += 1
    return n_rel


@numba.njit(cache=True, nogil=True, inline="always")
def _named(slots, enb_keys, enb_vals, mme_keys, mme_vals, slot):
    """Whether an index entry still names ``slot`` under the IDs it thinks it has (Correlator._release_if_unnamed)."""
    if slots[slot, _HAS_ENB] and _get(enb_keys, enb_vals, slots[slot, _ENB_A], slots[slot, _ENB_B]) == slot:
        return True
    return slots[slot, _MME] != NONE and _get(mme_keys, mme_vals, slots[slot, _MME], 0) == slot


@numba.njit(cache=True, nogil=True)
def _walk(start, kind, assoc, mme, enb, conn, slots, free, meta, sccp_keys, sccp_vals, mme_keys, mme_vals,
          enb_keys, enb_vals, ctx_of, on_call, rel_row, rel_id, counts):
    """Rows from ``start`` until done or a table or the slots need room (then the row to resume at)."""
    n_rel = counts[0]
    for i in range(start, len(kind)):
        if (meta[_FREE] < 1 or 2 * (meta[_N_SCCP] + 1) > len(sccp_vals) or 2 * (meta[_N_MME] + 1) > len(mme_vals)
                or 2 * (meta[_N_ENB] + 1) > len(enb_vals)):
            counts[0] = n_rel
            return i
        k = kind[i]
        ctx_of[i] = -1
        if k == SKIP:
            continue
        if k == NAS:
            if meta[_CURRENT] >= 0:
                ctx_of[i] = slots[meta[_CURRENT], _ID]
            continue
        if k >= BSSMAP:  # A interface: the SCCP connection's context
            c = conn[i]
            if c == NONE:
                continue
            slot = _get(sccp_keys, sccp_vals, c, 0)
            if slot < 0 or k == BSSMAP_CL3:
                slot = _new(slots, free, meta)
                slots[slot, _REFS] = 1
                old = _put(sccp_keys, sccp_vals, meta, _N_SCCP, c, 0, slot)
                if old >= 0:
                    _unref(slots, free, meta, old)
            ctx_of[i] = slots[slot, _ID]
            on_call[i] = slots[slot, _CALL] != 0
            if k < DTAP:
                if k == BSSMAP_CLEAR:
                    n_rel = _release(slots, slot, i, rel_row, rel_id, n_rel)
                    _pop(sccp_keys, sccp_vals, meta, _N_SCCP, c, 0)
                    _unref(slots, free, meta, slot)
            elif k == DTAP_SETUP:
                slots[slot, _CALL] = 1
            elif k == DTAP_CALL_END:
                slots[slot, _CALL] = 0
            continue
        # S1AP (Correlator.observe_s1ap)
        m, e, a = mme[i], enb[i], assoc[i]
        current = meta[_CURRENT]
        if m == NONE and e == NONE:
            if current >= 0:
                meta[_CURRENT] = -1
                _unref(slots, free, meta, current)
            continue
        on_enb, on_mme = -1, -1
        if k == S1AP_INITIAL:
            slot = _new(slots, free, meta)
        else:
            if e != NONE:
                on_enb = _get(enb_keys, enb_vals, a, e)
            if m != NONE:
                on_mme = _get(mme_keys, mme_vals, m, 0)
            slot = on_enb
            if m != NONE and (slot < 0 or slots[slot, _MME] != NONE or k == S1AP_TARGET):
                if on_mme >= 0:
                    slot = on_mme
            if slot < 0:
                slot = _new(slots, free, meta)
        slots[slot, _REFS] += 1  # held by this row until it is the current S1AP message's
        if e != NONE and (on_enb != slot or not slots[slot, _HAS_ENB] or slots[slot, _ENB_A] != a
                          or slots[slot, _ENB_B] != e):
            old = _put(enb_keys, enb_vals, meta, _N_ENB, a, e, slot)
            slots[slot, _REFS] += 1
            slots[slot, _HAS_ENB], slots[slot, _ENB_A], slots[slot, _ENB_B] = 1, a, e
            if old >= 0:
                if old != slot:
                    if slots[old, _HAS_ENB] and slots[old, _ENB_A] == a and slots[old, _ENB_B] == e:
                        slots[old, _HAS_ENB] = 0
                    if not _named(slots, enb_keys, enb_vals, mme_keys, mme_vals, old):
                        n_rel = _release(slots, old, i, rel_row, rel_id, n_rel)
                _unref(slots, free, meta, old)
        if m != NONE and (on_mme != slot or slots[slot, _MME] != m):
            old = _put(mme_keys, mme_vals, meta, _N_MME, m, 0, slot)
            slots[slot, _REFS] += 1
            slots[slot, _MME] = m
            if old >= 0:
                if old != slot:
                    if slots[old, _MME] == m:
                        slots[old, _MME] = NONE
                    if not _named(slots, enb_keys, enb_vals, mme_keys, mme_vals, old):
                        n_rel = _release(slots, old, i, rel_row, rel_id, n_rel)
                _unref(slots, free, meta, old)
        if k == S1AP_RELEASE:
            for old in (_pop(mme_keys, mme_vals, meta, _N_MME, m, 0) if m != NONE else -1,
                        _pop(enb_keys, enb_vals, meta, _N_ENB, a, e) if e != NONE else -1):
                if old >= 0:
                    _unref(slots, free, meta, old)
            slots[slot, _MME], slots[slot, _HAS_ENB] = NONE, 0
            n_rel = _release(slots, slot, i, rel_row, rel_id, n_rel)
        ctx_of[i] = slots[slot, _ID]
        meta[_CURRENT] = slot  # takes over the row's hold
        if current >= 0:
            _unref(slots, free, meta, current)
    counts[0] = n_rel
    return len(kind)


def named(*entries: list) -> list[int]:
    """The context ids that lists of ``ConnectionIndex.entries`` name (an entry's id is its last item), each once,
    in order."""
    return list(dict.fromkeys(entry[-1] for items in entries for entry in items))


def _ids(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return pc.fill_null(pc.cast(column, pa.int64()), NONE).to_numpy(zero_copy_only=False)


class Walk:
    """What ``ConnectionIndex.walk`` found in a batch: per row its context id (-1 none) and whether it is an A
    interface message on a connection with a call in progress (before it); the releases in order (row, context
    id)."""

    __slots__ = ("ctx", "on_call", "released_row", "released_id")

    def __init__(self, ctx, on_call, released_row, released_id):
        self.ctx, self.on_call, self.released_row, self.released_id = ctx, on_call, released_row, released_id


class ConnectionIndex:
    """The SCCP connection and S1AP UE ID indexes, and the current S1AP message, over context ids."""

    def __init__(self):
        self._slots = np.zeros((0, _FIELDS), np.int64)
        self._free = np.zeros(0, np.int64)
        self._meta = np.array([0, -1, 0, 0, 0, 0], np.int64)
        self._tables = [_empty_table() for _ in range(3)]

    def walk(self, kind: np.ndarray, assoc, mme, enb, conn) -> Walk:
        """Index a batch: ``kind`` per row (this module's row kinds), then its assoc, MME UE S1AP ID, eNB UE S1AP ID
        and SCCP connection columns (Arrow)."""
        rows = len(kind)
        columns = [_ids(column) for column in (assoc, mme, enb, conn)]
        ctx, on_call = np.empty(rows, np.int64), np.zeros(rows, np.bool_)
        # A row releases at most three contexts (two displaced from their IDs, its own).
        rel_row, rel_id = np.empty(3 * rows, np.int64), np.empty(3 * rows, np.int64)
        counts, start = np.zeros(1, np.int64), 0
        while True:
            start = _walk(start, kind, *columns, self._slots, self._free, self._meta, *self._tables[_SCCP],
                          *self._tables[_BY_MME], *self._tables[_BY_ENB], ctx, on_call, rel_row, rel_id, counts)
            if start == rows:
                break
            self._grow()
        return Walk(ctx, on_call, rel_row[:counts[0]], rel_id[:counts[0]])

    def live(self) -> list[int]:
        """The ids of the contexts some index entry (or the current S1AP message) still names."""
        return self._slots[self._slots[:, _REFS] > 0, _ID].tolist()

    def _grow(self) -> None:
        """Room for the next row: twice the slots when none is free, twice the buckets of a half-full table."""
        if self._meta[_FREE] < 1:
            have = len(self._slots)
            more = max(64, have)
            self._slots = np.concatenate([self._slots, np.zeros((more, _FIELDS), np.int64)])
            # The free stack (its top at the end) holds every slot at most: the new ones, lowest on top.
            self._free = np.zeros(have + more, np.int64)
            self._free[:more] = np.arange(have + more - 1, have - 1, -1)
            self._meta[_FREE] = more
        self._grow_tables()

    def _grow_tables(self) -> None:
        for table, count in ((_SCCP, _N_SCCP), (_BY_MME, _N_MME), (_BY_ENB, _N_ENB)):
            keys, vals = self._tables[table]
            if 2 * (self._meta[count] + 1) > len(vals):
                self._tables[table] = _rehashed(keys, vals, 2 * len(vals))

    # -- the store (events.py's snapshot) -----------------------------------------------------------
    def entries(self) -> tuple[list, list, list, int | None]:
        """(conn, id) per SCCP entry, (mme, id) per MME entry, (assoc, enb, id) per eNB entry, the current id."""
        ids = self._slots[:, _ID]
        out = []
        for table, width in ((_SCCP, 1), (_BY_MME, 1), (_BY_ENB, 2)):
            keys, vals = self._tables[table]
            used = np.flatnonzero(vals >= 0)
            out.append([(*key[:width], int(i)) for key, i in zip(keys[used].tolist(), ids[vals[used]].tolist())])
        sccp, by_mme, by_enb = out
        by_enb = [(None if a == NONE else a, e, i) for a, e, i in by_enb]
        current = int(self._meta[_CURRENT])
        return sccp, by_mme, by_enb, (int(ids[current]) if current >= 0 else None)

    def slot_state(self) -> dict[int, tuple]:
        """Context id -> (MME UE S1AP ID, (assoc, eNB UE S1AP ID), closed) as the index holds them, for the
        contexts some entry names."""
        live = np.flatnonzero(self._slots[:, _REFS] > 0)
        return {int(s[_ID]): (None if s[_MME] == NONE else int(s[_MME]),
                              (None if s[_ENB_A] == NONE else int(s[_ENB_A]), int(s[_ENB_B])) if s[_HAS_ENB] else None,
                              bool(s[_CLOSED])) for s in self._slots[live]}

    def load(self, contexts: int, sccp: list, by_mme: list, by_enb: list, current: int | None,
             calls: list[int]) -> list[int]:
        """Entries naming contexts by their number 0..contexts-1 (a snapshot's); the id given to each number."""
        self.__init__()
        slot_of = []
        for _ in range(contexts):  # one slot per context, ids in number order
            if self._meta[_FREE] < 1:
                self._grow()
            slot_of.append(int(_new(self._slots, self._free, self._meta)))
        slots = self._slots
        for table, count, items in ((_SCCP, _N_SCCP, [(conn, 0, n) for conn, n in sccp]),
                                    (_BY_MME, _N_MME, [(mme, 0, n) for mme, n in by_mme]),
                                    (_BY_ENB, _N_ENB, [(NONE if a is None else a, e, n) for a, e, n in by_enb])):
            for key_a, key_b, n in items:
                self._grow_tables()
                slot = slot_of[n]
                old = _put(*self._tables[table], self._meta, count, key_a, key_b, slot)
                slots[slot, _REFS] += 1
                if old >= 0:
                    slots[old, _REFS] -= 1
                if table == _BY_MME:
                    slots[slot, _MME] = key_a
                elif table == _BY_ENB:
                    slots[slot, _HAS_ENB], slots[slot, _ENB_A], slots[slot, _ENB_B] = 1, key_a, key_b
        if current is not None:
            self._meta[_CURRENT] = slot_of[current]
            slots[slot_of[current], _REFS] += 1
        for n in calls:
            slots[slot_of[n], _CALL] = 1
        for slot in slot_of:  # a context no entry names (a snapshot may list one) is not kept
            if slots[slot, _REFS] == 0:
                self._free[self._meta[_FREE]] = slot
                self._meta[_FREE] += 1
        return [int(slots[slot, _ID]) for slot in slot_of]

    def clear(self) -> tuple[list[int], int | None]:
        """End of input: every table emptied (the current S1AP message stays). The ids of the open contexts they
        named, each once, in ``entries`` order (to be released), and the current id."""
        sccp, by_mme, by_enb, current = self.entries()
        slots = self._slots
        closed = {int(s[_ID]) for s in slots[(slots[:, _REFS] > 0) & (slots[:, _CLOSED] != 0)]}
        opened = [cid for cid in named(sccp, by_mme, by_enb) if cid not in closed]
        keep = self._meta[_CURRENT]
        for slot in np.flatnonzero(slots[:, _REFS] > 0).tolist():
            if slot == keep:
                if slots[slot, _REFS] > 1:  # a table named it too: released with the others
                    slots[slot, _CLOSED] = 1
                slots[slot, _REFS] = 1
            else:
                slots[slot, _REFS] = 0
                self._free[self._meta[_FREE]] = slot
                self._meta[_FREE] += 1
        self._meta[_N_SCCP:] = 0
        self._tables = [_empty_table() for _ in range(3)]
        return opened, current


@numba.njit(cache=True, nogil=True)
def _rehash_into(keys, vals, new_keys, new_vals):
    mask = len(new_vals) - 1
    for j in range(len(vals)):
        if vals[j] >= 0:
            h = _home(new_keys, keys[j, 0], keys[j, 1])
            while new_vals[h] >= 0:
                h = (h + 1) & mask
            new_keys[h, 0], new_keys[h, 1], new_vals[h] = keys[j, 0], keys[j, 1], vals[j]


def _empty_table(buckets: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """A hash table's keys (two words each) and values (a slot; -1 in an empty bucket)."""
    return np.zeros((buckets, 2), np.int64), np.full(buckets, -1, np.int64)


def _rehashed(keys: np.ndarray, vals: np.ndarray, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    new_keys, new_vals = _empty_table(buckets)
    _rehash_into(keys, vals, new_keys, new_vals)
    return new_keys, new_vals

"""SCTP (RFC 9260): common header, the chunk walk, DATA (§3.3.1) and I-DATA (RFC 8260 §2.1) user messages.

A packet bundles any number of chunks; each DATA chunk is one user message or, with the B/E flags (§6.9), one
fragment of it. Fragments are reassembled per association direction, stream and SSN (I-DATA: MID), in TSN
(I-DATA: FSN) order, whatever order they arrive in: a probe can see the E fragment before the B fragment. A chunk
that repeats a TSN this direction already delivered, with the same content, is a retransmission (§6.3.3): it is
dropped and counted (``sctp.duplicate_tsn``) so the same message is not decoded twice. Direction state is keyed by
the verification tag as well as the addresses, so an association restarted on the same ports starts afresh.

Only user messages the caller accepts (by PPID and ports) are tracked, so Diameter or NGAP cost nothing.
"""

import struct
import zlib
from collections.abc import Callable

import numba
import numpy as np

from capture.errors import Anomalies, Truncated

# Chunk types (§3.2, RFC 8260 §2.1).
CHUNK_DATA, CHUNK_ABORT, CHUNK_SHUTDOWN_COMPLETE, CHUNK_I_DATA = 0, 6, 14, 64
FLAG_E, FLAG_B, FLAG_U = 0x01, 0x02, 0x04
DATA_HEADER, I_DATA_HEADER = 16, 20  # chunk header + TSN, SID, SSN, PPID / TSN, SID, reserved, MID, PPID|FSN

MAX_CHUNKS = 256             # per packet; more is counted as sctp.too_many_chunks and the rest skipped
RECENT_TSNS = 4096           # per direction: TSNs remembered for duplicate detection
MAX_FRAGMENTS = 256          # per user message
MAX_MESSAGE = 1 << 20        # octets per reassembled user message
REASSEMBLY_TIMEOUT = 30.0    # seconds of capture time for all fragments of a message to arrive
MAX_DIRECTIONS = 65536

_TSN_MASK = 0xFFFFFFFF
_COMMON = struct.Struct("!HHI")
_CHUNK = struct.Struct("!BBH")
_DATA = struct.Struct("!IHHI")
_I_DATA = struct.Struct("!IHHII")

# One delivered user message: (what the acceptor said it is, source port, destination port, stream, payload).
Message = tuple[int, int, int, int, bytes | memoryview]


class _Fragments:
    """The fragments of one user message so far: order number (TSN or FSN) -> (flags, octets)."""

    __slots__ = ("first", "parts", "size", "ppid")

    def __init__(self, first: float):
        self.first, self.parts, self.size, self.ppid = first, {}, 0, None


# What makes a repeated TSN a retransmission, by kind of chunk: a whole user message (DATA or I-DATA) its stream,
# SSN or MID and content; a fragment its message key (stream, SSN or MID, U flag; DATA and I-DATA fragments never
# match each other), its place (TSN or FSN), flags and content.
WHOLE, DATA_FRAGMENT, I_DATA_FRAGMENT = 0, 1, 2
# A row of TsnMemory.rings: oldest position, count, buckets in use, then the TSNs and the two signature words, in
# arrival order. A row of TsnMemory.tables: where each remembered TSN is in its ring (position + 1; 0 empty, -1 a
# forgotten one), an open-addressing hash table on the TSN's low bits with linear probing: consecutive TSNs take
# consecutive buckets, and a TSN forgotten leaves its bucket to the one 8,192 later. Rebuilt from the ring when
# three quarters of the buckets are in use (forgotten ones included).
_HEAD, _COUNT, _USED, _TSNS = 0, 1, 2, 3
_SIG0, _SIG1 = _TSNS + RECENT_TSNS, _TSNS + 2 * RECENT_TSNS
_ROW = _TSNS + 3 * RECENT_TSNS
_BUCKETS = 2 * RECENT_TSNS
_MASK = _BUCKETS - 1


@numba.njit(cache=True, nogil=True)
def _bucket(row, table, tsn):
    """(bucket, found): the bucket holding ``tsn``, or else the bucket it would go in (the first forgotten or the
    empty one on its probe path)."""
    h, free = tsn & _MASK, -1
    while table[h]:
        if table[h] < 0:
            if free < 0:
                free = h
        elif row[_TSNS + table[h] - 1] == tsn:
            return h, True
        h = (h + 1) & _MASK
    return (free if free >= 0 else h), False


@numba.njit(cache=True, nogil=True)
def _rebuild(row, table):
    table[:] = 0
    for i in range(row[_COUNT]):
        at = (row[_HEAD] + i) % RECENT_TSNS
        h = row[_TSNS + at] & _MASK
        while table[h]:
            h = (h + 1) & _MASK
        table[h] = at + 1
    row[_USED] = row[_COUNT]


@numba.njit(cache=True, nogil=True)
def _fresh(rings, tables, slot, tsn, kind, flags, stream, ssn, order, crc):
    """False for a retransmission: a TSN the direction in ``slot`` saw with the same signature. The same TSN with
    another chunk is not one (a restarted sender, or a capture stitched or synthesised with constant TSNs): it is
    kept, in the TSN's place. A new TSN is remembered, the oldest of ``RECENT_TSNS`` forgotten."""
    s0 = (kind << 56) | (flags << 48) | (stream << 32) | ssn
    s1 = (order << 32) | crc
    row, table = rings[slot], tables[slot]
    h, found = _bucket(row, table, tsn)
    if found:
        at = table[h] - 1
        if row[_SIG0 + at] == s0 and row[_SIG1 + at] == s1:
            return False
        row[_SIG0 + at], row[_SIG1 + at] = s0, s1
        return True
    head, count = row[_HEAD], row[_COUNT]
    if count == RECENT_TSNS:
        table[_bucket(row, table, row[_TSNS + head])[0]] = -1
        head = (head + 1) % RECENT_TSNS
        count -= 1
        row[_HEAD] = head
        h = _bucket(row, table, tsn)[0]  # the bucket just forgotten may come first on the TSN's path
    at = (head + count) % RECENT_TSNS
    row[_TSNS + at], row[_SIG0 + at], row[_SIG1 + at] = tsn, s0, s1
    row[_COUNT] = count + 1
    if not table[h]:
        row[_USED] += 1
    table[h] = at + 1
    if row[_USED] > _BUCKETS * 3 // 4:
        _rebuild(row, table)
    return True


@numba.njit(cache=True, nogil=True)
def _fresh_many(rings, tables, slot, tsn, kind, flags, stream, ssn, order, crc):
    out = np.empty(len(slot), np.bool_)
    for i in range(len(slot)):
        out[i] = _fresh(rings, tables, slot[i], tsn[i], kind[i], flags[i], stream[i], ssn[i], order[i], crc[i])
    return out


class TsnMemory:
    """Every direction's recently seen TSNs (RFC 9260 §6.3.3 retransmissions): a row of ``rings`` and one of
    ``tables`` per direction slot, read and written by compiled code one chunk at a time (``fresh``, the per-frame
    path) or for a run's chunks in order (``fresh_many``, capture.stack's fast path)."""

    def __init__(self):
        self.rings = np.empty((16, _ROW), np.int64)
        self.tables = np.empty((16, _BUCKETS), np.int16)
        self._free: list[int] = []
        self._used = 0

    def open(self) -> int:
        """A slot for a new direction, remembering nothing."""
        if self._free:
            slot = self._free.pop()
        else:
            if self._used == len(self.rings):  # doubled; the new rows' pages are touched only once used
                rings = np.empty((2 * len(self.rings), _ROW), np.int64)
                tables = np.empty((2 * len(self.rings), _BUCKETS), np.int16)
                rings[:self._used], tables[:self._used] = self.rings, self.tables
                self.rings, self.tables = rings, tables
            slot, self._used = self._used, self._used + 1
        self.rings[slot, _HEAD] = self.rings[slot, _COUNT] = self.rings[slot, _USED] = 0
        self.tables[slot] = 0
        return slot

    def close(self, slot: int) -> None:
        self._free.append(slot)

    def fresh(self, slot: int, tsn: int, kind: int, flags: int, stream: int, ssn: int, order: int, crc: int) -> bool:
        """Whether a chunk is not a retransmission (remembering it): ``kind`` WHOLE (``flags`` and ``order`` 0),
        DATA_FRAGMENT or I_DATA_FRAGMENT; ``ssn`` the SSN or MID, ``order`` a fragment's TSN or FSN, ``crc`` the
        CRC-32 of its payload."""
        return _fresh(self.rings, self.tables, slot, tsn, kind, flags, stream, ssn, order, crc)

    def fresh_many(self, slot, tsn, kind, flags, stream, ssn, order, crc) -> np.ndarray:
        """``fresh`` for columns of chunks (int64 arrays), in order."""
        return _fresh_many(self.rings, self.tables, slot, tsn, kind, flags, stream, ssn, order, crc)


class _Direction:
    """One direction of one association: its slot of the TSN memory, and the messages being reassembled."""

    __slots__ = ("slot", "partial")

    def __init__(self, slot: int):
        self.slot = slot
        self.partial: dict[tuple, _Fragments] = {}


class SctpLayer:
    """Turns SCTP packets into the user messages ``accept(ppid, src_port, dst_port)`` gives a non-zero kind."""

    def __init__(self, accept: Callable[[int, int, int], int], anomalies: Anomalies):
        self.accept = accept
        self.anomalies = anomalies
        self.seen = TsnMemory()
        self._directions: dict[tuple, _Direction] = {}
        self._reassembling: set[_Direction] = set()  # directions with partial messages, for the timeout sweep
        self._swept = 0.0

    def packet(self, src: bytes, dst: bytes, data: memoryview, ts: float) -> list[Message]:
        if len(data) < 12:
            raise Truncated("sctp.header_too_short")
        if ts - self._swept > 1.0:
            self._sweep(ts)
        sport, dport, vtag = _COMMON.unpack_from(data)
        out: list[Message] = []
        off, count, end_of_packet, direction = 12, 0, len(data), None
        while off + 4 <= end_of_packet:
            kind, flags, length = _CHUNK.unpack_from(data, off)
            if length < 4:
                self.anomalies["sctp.chunk_too_small"] += 1
                break
            end = off + length
            if end > end_of_packet:
                self.anomalies["sctp.chunk_truncated"] += 1
                break
            count += 1
            if count > MAX_CHUNKS:
                self.anomalies["sctp.too_many_chunks"] += 1
                break
            if kind == CHUNK_DATA:
                if length < DATA_HEADER:
                    self.anomalies["sctp.chunk_too_small"] += 1
                else:
                    tsn, stream, ssn, ppid = _DATA.unpack_from(data, off + 4)
                    what = self.accept(ppid, sport, dport)
                    if what:
                        payload = data[off + DATA_HEADER:end]
                        if flags & 0x03 != 0x03:
                            whole = self._fragment((src, sport, dst, dport, vtag), (stream, ssn, flags & FLAG_U),
                                                   DATA_FRAGMENT, tsn, tsn, flags, payload, ppid, ts)
                            if whole is not None:
                                out.append((what, sport, dport, stream, whole[0]))
                        else:
                            direction = direction or self._direction(src, sport, dst, dport, vtag)
                            if self.seen.fresh(direction.slot, tsn, WHOLE, 0, stream, ssn, 0, zlib.crc32(payload)):
                                out.append((what, sport, dport, stream, payload))
                            else:
                                self.anomalies["sctp.duplicate_tsn"] += 1
            elif kind == CHUNK_I_DATA:
                if length < I_DATA_HEADER:
                    self.anomalies["sctp.chunk_too_small"] += 1
                else:
                    self._i_data(data, off, end, flags, src, sport, dst, dport, vtag, ts, out)
            elif kind in (CHUNK_ABORT, CHUNK_SHUTDOWN_COMPLETE):
                ended = self._directions.pop((src, sport, dst, dport, vtag), None)
                if ended is not None:
                    self.seen.close(ended.slot)
                direction = None
            off = end + (-length & 3)
        return out

    def _i_data(self, data, off, end, flags, src, sport, dst, dport, vtag, ts, out) -> None:
        """RFC 8260 §2.1: the B fragment carries the PPID, the others their FSN (the B fragment is FSN 0)."""
        tsn, stream, _, mid, ppid_or_fsn = _I_DATA.unpack_from(data, off + 4)
        payload = data[off + I_DATA_HEADER:end]
        if flags & 0x03 == 0x03:
            what = self.accept(ppid_or_fsn, sport, dport)
            if what:
                if self.seen.fresh(self._direction(src, sport, dst, dport, vtag).slot, tsn, WHOLE, 0, stream, mid, 0,
                                   zlib.crc32(payload)):
                    out.append((what, sport, dport, stream, payload))
                else:
                    self.anomalies["sctp.duplicate_tsn"] += 1
            return
        fsn, ppid = (0, ppid_or_fsn) if flags & FLAG_B else (ppid_or_fsn, None)
        whole = self._fragment((src, sport, dst, dport, vtag), (stream, mid, flags & FLAG_U, CHUNK_I_DATA),
                               I_DATA_FRAGMENT, tsn, fsn, flags, payload, ppid, ts)
        if whole is not None:
            message, ppid = whole
            what = self.accept(ppid, sport, dport)
            if what:
                out.append((what, sport, dport, stream, message))

    def _direction(self, src, sport, dst, dport, vtag) -> _Direction:
        key = (src, sport, dst, dport, vtag)
        d = self._directions.get(key)
        if d is None:
            if len(self._directions) >= MAX_DIRECTIONS:
                self.seen.close(self._directions.pop(next(iter(self._directions))).slot)
            d = self._directions[key] = _Direction(self.seen.open())
        return d

    def _fragment(self, dkey: tuple, mkey: tuple, kind: int, tsn: int, order: int, flags: int, payload: memoryview,
                  ppid: int | None, ts: float) -> tuple[bytes, int] | None:
        """Store one fragment (``kind`` DATA_FRAGMENT or I_DATA_FRAGMENT); once B..E are all present return the
        message and the PPID its B fragment carried."""
        d = self._direction(*dkey)
        if not self.seen.fresh(d.slot, tsn, kind, flags, mkey[0], mkey[1], order, zlib.crc32(payload)):
            self.anomalies["sctp.duplicate_tsn"] += 1
            return None
        return self._store(d, mkey, order, flags, payload, ppid, ts)

    def _store(self, d: _Direction, mkey: tuple, order: int, flags: int, payload: memoryview, ppid: int | None,
               ts: float) -> tuple[bytes, int] | None:
        """``_fragment`` for a fragment already known to be fresh (capture.stack checks a run's TSNs in bulk)."""
        msg = d.partial.get(mkey)
        if msg is None:
            msg = d.partial[mkey] = _Fragments(ts)
            self._reassembling.add(d)
        msg.parts[order] = (flags, bytes(payload))
        msg.size += len(payload)
        if ppid is not None:
            msg.ppid = ppid
        if len(msg.parts) > MAX_FRAGMENTS or msg.size > MAX_MESSAGE:
            del d.partial[mkey]
            self.anomalies["sctp.reassembly_too_large"] += 1
            return None
        whole = _complete(msg.parts)
        if whole is None:
            return None
        del d.partial[mkey]
        return whole, msg.ppid

    def _sweep(self, ts: float) -> None:
        self._swept = ts
        for d in list(self._reassembling):
            for mkey in [k for k, m in d.partial.items() if ts - m.first > REASSEMBLY_TIMEOUT]:
                del d.partial[mkey]
                self.anomalies["sctp.reassembly_timeout"] += 1
            if not d.partial:
                self._reassembling.discard(d)

    def finish(self) -> None:
        """End of capture: messages still missing fragments will never complete."""
        for d in self._reassembling:
            self.anomalies["sctp.reassembly_timeout"] += len(d.partial)
            d.partial.clear()
        self._reassembling.clear()


def _complete(parts: dict[int, tuple[int, bytes]]) -> bytes | None:
    """The message if the parts run without a gap from a B fragment to an E fragment (serial numbers wrap)."""
    first = next((n for n, (flags, _) in parts.items() if flags & FLAG_B), None)
    if first is None:
        return None
    pieces = []
    for i in range(len(parts)):
        part = parts.get((first + i) & _TSN_MASK)
        if part is None:
            return None
        pieces.append(part[1])
        if part[0] & FLAG_E:
            return b"".join(pieces)
    return None

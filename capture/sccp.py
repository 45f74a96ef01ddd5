"""SCCP (ITU-T Q.713): messages, called/calling party addresses, and connection tracking.

A message (§4) is its type, a fixed part, pointers to the mandatory variable parameters (each pointer counts octets
from itself to the parameter's length octet) and, for some types, a pointer to the optional part (§2.3). The
layouts are the ``LAYOUTS`` table; the code walks only the variable and optional parts. Addresses (§3.4): address
indicator, then point code (ITU 14 bits in 2 octets; 24 bits in 3 where the MTP uses 24-bit codes), SSN, global
title. User data is returned from UDT, XUDT, CR, CC, CREF, RLSD, DT1 and DT2; the other types are recognised and
carry nothing a caller needs.

Segmented XUDT (§3.17 Segmentation: F bit for the first segment, the number of segments still to follow, and a
3-octet local reference; Q.714 §4.1.1.2): ``Segments`` joins the segments of one message, keyed by the sending
node, the calling party address and that local reference, in whatever order they arrive; the message is complete
when the segment with "0 remaining" and every one before it back to the F segment are in. Segments of a message
that does not complete within ``REASSEMBLY_TIMEOUT`` seconds of capture time count ``sccp.reassembly_timeout``.

Connections (§2.1, Q.714 §3): every CR opens a connection with a run-unique integer id. A message addressed to a
node carries that node's local reference as destination reference, so a connection is found by (receiving node,
destination local reference); CR, CC and RLSD bind the sender's own reference. RLC (and CREF) end it. A message of
a connection whose CR was not captured opens a connection with unknown SSN. Inactivity test (IT, Q.714 §3.4)
messages keep a connection alive without carrying data; a connection with no message at all for ``idle`` seconds
of capture time (default Q.714's longest receive-inactivity timer T(iar), 21 minutes, after which the nodes
themselves release it) is dropped and counted ``sccp.connection_expired``, so a later message with the same
reference opens a new connection instead of joining a dead one.
"""

from typing import NamedTuple

import numba
import numpy as np

from capture.errors import Anomalies, Malformed, Truncated, Unsupported
from capture.pending import Pending

# Q.713 §2.1 Table 1: message types (a payload's ``sccp_type`` in the batch is one of these).
SCCP_CR, SCCP_CC, SCCP_CREF, SCCP_RLSD, SCCP_RLC, SCCP_DT1, SCCP_DT2, SCCP_AK = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08
SCCP_UDT, SCCP_UDTS, SCCP_ED, SCCP_EA, SCCP_RSR, SCCP_RSC, SCCP_ERR, SCCP_IT = 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10
SCCP_XUDT, SCCP_XUDTS, SCCP_LUDT, SCCP_LUDTS = 0x11, 0x12, 0x13, 0x14
MESSAGE_TYPES = {SCCP_CR: "CR", SCCP_CC: "CC", SCCP_CREF: "CREF", SCCP_RLSD: "RLSD", SCCP_RLC: "RLC",
                 SCCP_DT1: "DT1", SCCP_DT2: "DT2", SCCP_AK: "AK", SCCP_UDT: "UDT", SCCP_UDTS: "UDTS",
                 SCCP_ED: "ED", SCCP_EA: "EA", SCCP_RSR: "RSR", SCCP_RSC: "RSC", SCCP_ERR: "ERR", SCCP_IT: "IT",
                 SCCP_XUDT: "XUDT", SCCP_XUDTS: "XUDTS", SCCP_LUDT: "LUDT", SCCP_LUDTS: "LUDTS"}

# Q.713 §3 Table 2: parameter names used in optional parts.
PARAM_END, PARAM_CALLED, PARAM_CALLING, PARAM_DATA, PARAM_SEGMENTATION = 0x00, 0x03, 0x04, 0x0F, 0x10

# Fixed-part fields and their sizes (§3.2-3.18).
_FIELD_SIZES = {"dst_ref": 3, "src_ref": 3, "protocol_class": 1, "cause": 1, "segmenting": 1, "sequencing": 2,
                "credit": 1, "receive_sequence": 1, "hop_counter": 1}
# Q.713 §4: per message type, the fixed part in wire order, the mandatory variable parameters, and whether an
# optional part follows.
LAYOUTS = {
    SCCP_CR: (("src_ref", "protocol_class"), ("called",), True),
    SCCP_CC: (("dst_ref", "src_ref", "protocol_class"), (), True),
    SCCP_CREF: (("dst_ref", "cause"), (), True),
    SCCP_RLSD: (("dst_ref", "src_ref", "cause"), (), True),
    SCCP_RLC: (("dst_ref", "src_ref"), (), False),
    SCCP_DT1: (("dst_ref", "segmenting"), ("data",), False),
    SCCP_DT2: (("dst_ref", "sequencing"), ("data",), False),
    SCCP_AK: (("dst_ref", "receive_sequence", "credit"), (), False),
    SCCP_UDT: (("protocol_class",), ("called", "calling", "data"), False),
    SCCP_UDTS: (("cause",), ("called", "calling", "data"), False),
    SCCP_ED: (("dst_ref",), ("data",), False),
    SCCP_EA: (("dst_ref",), (), False),
    SCCP_RSR: (("dst_ref", "src_ref", "cause"), (), False),
    SCCP_RSC: (("dst_ref", "src_ref"), (), False),
    SCCP_ERR: (("dst_ref", "cause"), (), False),
    SCCP_IT: (("dst_ref", "src_ref", "protocol_class", "sequencing", "credit"), (), False),
    SCCP_XUDT: (("protocol_class", "hop_counter"), ("called", "calling", "data"), True),
    SCCP_XUDTS: (("cause", "hop_counter"), ("called", "calling", "data"), True),
}
# Types whose user data is the caller's (UDTS/XUDTS return someone's data; ED is never used by BSSAP).
DATA_TYPES = frozenset((SCCP_CR, SCCP_CC, SCCP_CREF, SCCP_RLSD, SCCP_DT1, SCCP_DT2, SCCP_UDT, SCCP_XUDT))

# Address indicator (§3.4.1) and global title indicator values (§3.4.2.3).
AI_PC, AI_SSN, AI_ROUTE_ON_SSN = 0x01, 0x02, 0x40
GTI_NONE, GTI_NAI, GTI_TT, GTI_TT_NP_ES, GTI_TT_NP_ES_NAI = 0, 1, 2, 3, 4
ES_BCD_ODD, ES_BCD_EVEN = 1, 2

# Q.713 §3.4.2.3.1 address signals, two per octet, the first in bits 1-4; with an odd number of signals the last
# octet's bits 5-8 are filler, which the odd/even indicator (or encoding scheme) says to drop.
_BCD_PAIRS = tuple("0123456789abcdef"[b & 0x0F] + "0123456789abcdef"[b >> 4] for b in range(256))

# §3.17 Segmentation parameter, first octet: F (first segment), C (in-sequence delivery class), remaining segments.
SEGMENTATION_FIRST, SEGMENTATION_REMAINING = 0x80, 0x0F

MAX_SEGMENTED = 1 << 16      # octets of one DT1/DT2 M-bit sequence or one segmented XUDT message
MAX_CONNECTIONS = 1 << 18    # local references tracked at once before the least recently used expire
CONNECTION_IDLE = 1260.0     # seconds: Q.714 T(iar) is 11 to 21 minutes
IDLE_SWEEP = 60.0            # seconds of capture time between two looks for idle connections
REASSEMBLY_TIMEOUT = 20.0    # seconds: Q.714 T(reassembly) is 10 to 20 seconds
MAX_REASSEMBLING = 4096      # segmented XUDT messages being reassembled at once


class Address(NamedTuple):
    """Q.713 §3.4 called/calling party address. ``ssn`` 0 means not present (or "not known", §3.4.2.2)."""

    route_on_ssn: bool
    pc: int | None
    ssn: int
    gti: int
    tt: int | None = None
    np: int | None = None
    nai: int | None = None
    digits: str = ""


class Message(NamedTuple):
    """One SCCP message; references are -1 and parts None where the type has none."""

    type: int
    protocol_class: int
    dst_ref: int
    src_ref: int
    called: Address | None
    calling: Address | None
    data: memoryview | None
    more: bool                  # DT1/DT2 M bit (§3.7, §3.8): more data of this NSDU follows
    segmentation: tuple[bool, int, int] | None = None  # XUDT §3.17: (first segment, remaining, local reference)


def parse(msg: memoryview, pc_octets: int = 2) -> Message:
    """Decode an SCCP message; ``pc_octets`` is the point-code size in addresses (2 ITU, 3 for 24-bit MTPs)."""
    if not msg:
        raise Truncated("sccp.empty")
    kind = msg[0]
    layout = LAYOUTS.get(kind)
    if layout is None:
        if kind in (SCCP_LUDT, SCCP_LUDTS):
            raise Unsupported("sccp.ludt_unsupported")
        raise Malformed("sccp.unknown_message_type", f"0x{kind:02x}")
    fixed, variable, optional = layout
    values = {}
    off = 1
    for name in fixed:  # local references go least significant octet first, as every multi-octet field here
        size = _FIELD_SIZES[name]
        if off + size > len(msg):
            raise Truncated("sccp.fixed_part_too_short", MESSAGE_TYPES[kind])
        values[name] = int.from_bytes(msg[off:off + size], "little")
        off += size
    params = {name: _variable(msg, off + i) for i, name in enumerate(variable)}
    segmentation = None
    if optional:
        _optional(msg, off + len(variable), params)
        if kind == SCCP_XUDT and "segmentation" in params:
            value = params["segmentation"]
            if len(value) < 4:
                raise Truncated("sccp.segmentation_too_short")
            segmentation = (bool(value[0] & SEGMENTATION_FIRST), value[0] & SEGMENTATION_REMAINING,
                            int.from_bytes(value[1:4], "little"))
    called = _address(params["called"], pc_octets) if "called" in params else None
    calling = _address(params["calling"], pc_octets) if "calling" in params else None
    if kind == SCCP_DT1:
        more = bool(values["segmenting"] & 0x01)
    else:  # DT2: the M bit is bit 1 of the sequencing/segmenting field's second octet
        more = kind == SCCP_DT2 and bool(values["sequencing"] & 0x0100)
    return Message(kind, values["protocol_class"] & 0x0F if "protocol_class" in values else -1,
                   values.get("dst_ref", -1), values.get("src_ref", -1), called, calling,
                   params.get("data") if kind in DATA_TYPES else None, more, segmentation)


def _variable(msg: memoryview, at: int) -> memoryview:
    """The mandatory variable parameter whose pointer octet is at ``at`` (§2.3: pointer, then length, value)."""
    if at >= len(msg):
        raise Truncated("sccp.pointer_missing")
    start = at + msg[at]
    if start == at:
        raise Malformed("sccp.zero_pointer")
    if start >= len(msg) or start + 1 + msg[start] > len(msg):
        raise Malformed("sccp.pointer_out_of_range")
    return msg[start + 1:start + 1 + msg[start]]


def _optional(msg: memoryview, at: int, params: dict) -> None:
    """Walk the optional part its pointer at ``at`` points to (name, length, value; §2.3), keeping addresses, data
    and segmentation. A zero pointer means no optional part."""
    if at >= len(msg):
        raise Truncated("sccp.pointer_missing")
    if msg[at] == 0:
        return
    off = at + msg[at]
    while off < len(msg):
        name = msg[off]
        if name == PARAM_END:
            return
        if off + 2 > len(msg) or off + 2 + msg[off + 1] > len(msg):
            raise Truncated("sccp.optional_parameter_too_short")
        value = msg[off + 2:off + 2 + msg[off + 1]]
        if name == PARAM_CALLED:
            params["called"] = value
        elif name == PARAM_CALLING:
            params["calling"] = value
        elif name == PARAM_DATA:
            params["data"] = value
        elif name == PARAM_SEGMENTATION:
            params["segmentation"] = value
        off += 2 + len(value)
    raise Truncated("sccp.optional_part_unterminated")


def _address(value: memoryview, pc_octets: int) -> Address:
    """Q.713 §3.4.1 address indicator, §3.4.2 address (ITU order: point code, SSN, global title)."""
    if not value:
        raise Truncated("sccp.address_empty")
    ai = value[0]
    gti = (ai >> 2) & 0x0F
    off, pc, ssn = 1, None, 0
    if ai & AI_PC:
        if len(value) < off + pc_octets:
            raise Truncated("sccp.address_too_short")
        pc = int.from_bytes(value[off:off + pc_octets], "little") & (0x3FFF if pc_octets == 2 else 0xFFFFFF)
        off += pc_octets
    if ai & AI_SSN:
        if len(value) < off + 1:
            raise Truncated("sccp.address_too_short")
        ssn = value[off]
        off += 1
    route_on_ssn = bool(ai & AI_ROUTE_ON_SSN)
    if gti == GTI_NONE:
        if off != len(value):
            raise Malformed("sccp.address_length")
        return Address(route_on_ssn, pc, ssn, gti)
    tt = np = nai = None
    odd = False
    if gti == GTI_NAI:
        if len(value) < off + 1:
            raise Truncated("sccp.address_too_short")
        odd, nai = bool(value[off] & 0x80), value[off] & 0x7F
        off += 1
    elif gti in (GTI_TT, GTI_TT_NP_ES, GTI_TT_NP_ES_NAI):
        size = {GTI_TT: 1, GTI_TT_NP_ES: 2, GTI_TT_NP_ES_NAI: 3}[gti]
        if len(value) < off + size:
            raise Truncated("sccp.address_too_short")
        tt = value[off]
        if gti != GTI_TT:
            np, es = value[off + 1] >> 4, value[off + 1] & 0x0F
            if es not in (ES_BCD_ODD, ES_BCD_EVEN):
                raise Unsupported("sccp.gt_encoding_not_bcd", str(es))
            odd = es == ES_BCD_ODD
        if gti == GTI_TT_NP_ES_NAI:
            nai = value[off + 2] & 0x7F
        off += size
    else:
        raise Malformed("sccp.reserved_gti", str(gti))
    digits = "".join(_BCD_PAIRS[b] for b in value[off:])
    if odd and digits:
        digits = digits[:-1]
    return Address(route_on_ssn, pc, ssn, gti, tt, np, nai, digits)


class Connection(NamedTuple):
    """One SCCP connection as a message found it: run-unique id, the SSN its CR addressed (0 unknown), and the slot
    of ``Connections``' arrays it lives in (a slot is reused once the connection ends; the id never is)."""

    id: int
    ssn: int
    slot: int


# Connections' state, shared by the per-message (``track``) and the batch (``track_many``) path: ``refs`` maps a
# reference (receiving node << 24 | local reference) to id << _SLOT_BITS | slot; an entry whose slot no longer holds
# that id belongs to an ended connection and counts as absent (dropped in bulk by _purge). Per slot (``slots``
# columns): id (-1 free), SSN, how many references name it, whether a DT1/DT2 with the M bit was seen, the next
# free slot; ``last`` its last message time. ``meta``: next id, references naming live connections, slots used so
# far, head of the free list, the reference limit; ``times``: last idle sweep, idle timeout.
_ID, _SSN, _KEYS, _PENDING, _NEXT_FREE = range(5)
_NEXT_ID, _LIVE_REFS, _HIGH, _FREE_HEAD, _LIMIT = range(5)
_SLOT_BITS = 24


@numba.njit(cache=True, nogil=True)
def _find(refs, slots, node, ref):
    """The slot of the live connection ``ref`` at ``node`` names, -1 if none."""
    value = refs.get(node << 24 | ref, -1)
    if value < 0:
        return -1
    slot = value & ((1 << _SLOT_BITS) - 1)
    return slot if slots[slot, _ID] == value >> _SLOT_BITS else -1


@numba.njit(cache=True, nogil=True)
def _close(slots, meta, slot):
    meta[_LIVE_REFS] -= slots[slot, _KEYS]
    slots[slot, _ID] = -1
    slots[slot, _NEXT_FREE] = meta[_FREE_HEAD]
    meta[_FREE_HEAD] = slot


@numba.njit(cache=True, nogil=True)
def _bind(refs, slots, meta, slot, node, ref):
    """``ref`` at ``node`` names the connection in ``slot`` now; a live one it named before (the node reused a
    reference whose release was not seen) ends."""
    old = _find(refs, slots, node, ref)
    if old == slot:
        return
    if old >= 0:
        _close(slots, meta, old)
    refs[node << 24 | ref] = slots[slot, _ID] << _SLOT_BITS | slot
    slots[slot, _KEYS] += 1
    meta[_LIVE_REFS] += 1
    if len(refs) > 2 * meta[_LIVE_REFS] + 1024:
        _purge(refs, slots)


@numba.njit(cache=True, nogil=True)
def _drop_idle(slots, last, meta, ts, idle):
    dropped = 0
    for slot in range(meta[_HIGH]):
        if slots[slot, _ID] >= 0 and ts - last[slot] > idle:
            _close(slots, meta, slot)
            dropped += 1
    return dropped


@numba.njit(cache=True, nogil=True)
def _open(refs, slots, last, meta, times, ssn, ts):
    """A new connection's slot, and how many connections expired to make room: when ``_LIMIT`` references are open,
    the idle ones, else the least recently used half (ties: the older connection first)."""
    expired = 0
    if meta[_LIVE_REFS] >= meta[_LIMIT]:
        expired = _drop_idle(slots, last, meta, ts, times[1])
        if not expired:
            live = np.flatnonzero(slots[:meta[_HIGH], _ID] >= 0)
            live = live[np.argsort(slots[live, _ID])]
            live = live[np.argsort(last[live], kind="mergesort")]
            expired = len(live) // 2
            for slot in live[:expired]:
                _close(slots, meta, slot)
    slot = meta[_FREE_HEAD]
    if slot >= 0:
        meta[_FREE_HEAD] = slots[slot, _NEXT_FREE]
    else:
        slot = meta[_HIGH]
        meta[_HIGH] += 1
    slots[slot, _ID], slots[slot, _SSN], slots[slot, _KEYS], slots[slot, _PENDING] = meta[_NEXT_ID], ssn, 0, 0
    last[slot] = ts
    meta[_NEXT_ID] += 1
    return slot, expired


@numba.njit(cache=True, nogil=True)
def _purge(refs, slots):
    """Drop the entries of ended connections (``_bind`` calls it once they outnumber the live ones)."""
    dead = []
    for key, value in refs.items():
        slot = value & ((1 << _SLOT_BITS) - 1)
        if slots[slot, _ID] != value >> _SLOT_BITS:
            dead.append(key)
    for key in dead:
        del refs[key]


@numba.njit(cache=True, nogil=True)
def _track(refs, slots, last, meta, times, kind, src, dst, src_ref, dst_ref, ssn, called_ssn, ts, more):
    """Connections.track on a message's fields (``ssn`` its subsystem(), ``called_ssn`` -1 without a called party):
    (connection id, its SSN, its slot, whether an M-bit sequence was seen on it; id -1: no connection) and the
    count of connections expired."""
    expired = 0
    if ts - times[0] > IDLE_SWEEP:
        times[0] = ts
        expired = _drop_idle(slots, last, meta, ts, times[1])
    slot = -1
    if kind == SCCP_CR:
        slot, dropped = _open(refs, slots, last, meta, times, ssn, ts)
        expired += dropped
        _bind(refs, slots, meta, slot, src, src_ref)
    elif kind == SCCP_DT1 or kind == SCCP_DT2 or kind == SCCP_CC or kind == SCCP_RLSD or kind == SCCP_CREF:
        slot = _find(refs, slots, dst, dst_ref)
        if slot < 0:
            slot, dropped = _open(refs, slots, last, meta, times, ssn, ts)
            expired += dropped
            _bind(refs, slots, meta, slot, dst, dst_ref)
        elif slots[slot, _SSN] == 0 and called_ssn >= 0:
            slots[slot, _SSN] = called_ssn
        last[slot] = ts
        if kind == SCCP_CC or kind == SCCP_RLSD:
            _bind(refs, slots, meta, slot, src, src_ref)
        elif more:
            slots[slot, _PENDING] = 1
    elif kind == SCCP_RLC or kind == SCCP_IT:
        slot = _find(refs, slots, dst, dst_ref)
        if slot < 0:
            slot = _find(refs, slots, src, src_ref)
        if slot >= 0:
            last[slot] = ts
    if slot < 0:
        return -1, 0, -1, False, expired
    found = (slots[slot, _ID], slots[slot, _SSN], slot, slots[slot, _PENDING] != 0)
    if kind == SCCP_CREF or kind == SCCP_RLC:
        _close(slots, meta, slot)
    return found[0], found[1], found[2], found[3], expired


@numba.njit(cache=True, nogil=True)
def _track_many(refs, slots, last, meta, times, kind, src, dst, src_ref, dst_ref, ssn, called_ssn, ts, more, lo,
                hi, conn, conn_ssn, conn_slot, join):
    """``_track`` for messages ``lo``..``hi`` in order (UDTs skipped): their connection columns, and ``join`` for
    the DT1s that belong to an M-bit sequence (reassembled in Python). Returns the count of connections expired."""
    expired = 0
    for i in range(lo, hi):
        if kind[i] == SCCP_UDT:
            continue
        found, found_ssn, slot, pending, dropped = _track(refs, slots, last, meta, times, kind[i], src[i], dst[i],
                                                          src_ref[i], dst_ref[i], ssn[i], called_ssn[i], ts[i],
                                                          more[i])
        expired += dropped
        if found >= 0:
            conn[i], conn_ssn[i], conn_slot[i] = found, found_ssn, slot
            join[i] = kind[i] == SCCP_DT1 and pending
    return expired


class Connections:
    """Connection-oriented SCCP: local references to connections, per receiving node. The state is NumPy arrays
    and a typed dict that the compiled ``_track`` reads and writes, one message at a time (``track``, the
    per-frame path) or for a run's messages at once (``track_many``, the compiled fast path)."""

    def __init__(self, anomalies: Anomalies, idle: float = CONNECTION_IDLE, limit: int = MAX_CONNECTIONS):
        self.anomalies = anomalies
        # Every live connection has a reference of its own and one opens only below ``limit`` references (the
        # least recently used half having expired), so limit + 2 slots always suffice.
        self._refs = numba.typed.Dict.empty(numba.types.int64, numba.types.int64)
        self._slots = np.empty((limit + 2, 5), np.int64)
        self._last = np.empty(limit + 2)
        self._meta = np.array([0, 0, 0, -1, limit], np.int64)
        self._times = np.array([0.0, idle])
        self._segments: dict[tuple[int, int], tuple[int, bytearray]] = {}  # (id, node) -> (slot, M-bit octets)
        self._prune_at = 1024

    def track(self, msg: Message, src: int, dst: int, ts: float) -> Connection | None:
        """The connection ``msg`` belongs to (``src``/``dst`` identify the sending/receiving node); None for
        connectionless and ignored types."""
        self._prune()
        found, ssn, slot, _, expired = _track(
            self._refs, self._slots, self._last, self._meta, self._times, msg.type, src, dst, msg.src_ref,
            msg.dst_ref, subsystem(msg), -1 if msg.called is None else msg.called.ssn, ts, msg.more)
        if expired:
            self.anomalies["sccp.connection_expired"] += expired
        return None if found < 0 else Connection(found, ssn, slot)

    def track_many(self, fields: tuple, lo: int, hi: int, out: tuple) -> None:
        """``track`` for messages ``lo``..``hi`` given as columns (capture.fastpath.sccp_fields' kind, then source
        and destination node, source and destination reference, subsystem, called SSN, time, M bit); fills the
        columns ``out`` (connection id, SSN, slot, whether the DT1 is part of an M-bit sequence)."""
        self._prune()
        expired = _track_many(self._refs, self._slots, self._last, self._meta, self._times, *fields, lo, hi, *out)
        if expired:
            self.anomalies["sccp.connection_expired"] += expired

    def reassemble(self, conn: Connection, dst: int, more: bool, data) -> memoryview | bytes | None:
        """The complete user data of a DT1/DT2 (its M bit ``more``, its ``data``) once its last segment (M bit
        clear) is in; §3.7 / Q.714 §3.3.2."""
        key = (conn.id, dst)
        pending = self._segments.get(key)
        if not more and pending is None:
            return data
        if pending is None:
            pending = self._segments[key] = (conn.slot, bytearray())
        pending[1].extend(data)
        if len(pending[1]) > MAX_SEGMENTED:
            del self._segments[key]
            raise Malformed("sccp.segmented_too_large")
        if more:
            return None
        del self._segments[key]
        return bytes(pending[1])

    def _prune(self) -> None:
        """Forget the M-bit sequences of ended connections (no message can reach them again). Only between two
        calls of the kernel: within a run's messages a connection ended later in the run may still be joined."""
        if len(self._segments) > self._prune_at:
            ids = self._slots[:, _ID]
            self._segments = {key: value for key, value in self._segments.items() if ids[value[0]] == key[0]}
            self._prune_at = max(1024, 2 * len(self._segments))


class _Segmented:
    """The XUDT segments of one message so far: remaining-segments count -> octets; ``total`` once F is in."""

    __slots__ = ("first", "total", "parts", "size")

    def __init__(self, first: float):
        self.first, self.total, self.parts, self.size = first, None, {}, 0


class Segments:
    """Reassembly of segmented XUDT messages (§3.17, Q.714 §4.1.1.2.3), per sending node."""

    def __init__(self, anomalies: Anomalies):
        self.anomalies = anomalies
        self._pending = Pending(anomalies, "sccp.reassembly_timeout", REASSEMBLY_TIMEOUT, MAX_REASSEMBLING)

    def add(self, msg: Message, src: int, ts: float) -> memoryview | bytes | None:
        """The whole user data once ``msg`` completes its message; a message in one segment is returned as is."""
        first, remaining, reference = msg.segmentation
        if first and not remaining:
            return msg.data
        self._pending.expire(ts)
        key = (src, msg.calling, reference)
        entry = self._pending.get(key)
        if entry is None or (first and entry.total is not None):  # a first segment again: a new message
            entry = self._pending.start(key, _Segmented(ts))
        data = bytes(msg.data or b"")
        entry.size += len(data) - len(entry.parts.get(remaining, b""))
        entry.parts[remaining] = data
        if first:
            entry.total = remaining + 1
        if entry.size > MAX_SEGMENTED:
            del self._pending[key]
            raise Malformed("sccp.segmented_too_large")
        if entry.total is None or any(r not in entry.parts for r in range(entry.total)):
            return None
        del self._pending[key]
        return b"".join(entry.parts[r] for r in range(entry.total - 1, -1, -1))

    def finish(self) -> None:
        """End of capture: messages still missing segments will never complete."""
        self._pending.finish()


def subsystem(msg: Message) -> int:
    """The subsystem a message is for: the called SSN, else the calling one; 0 if neither is known."""
    if msg.called is not None and msg.called.ssn:
        return msg.called.ssn
    return msg.calling.ssn if msg.calling is not None else 0

"""ip.access IPA multiplex over TCP (RFC 793 / 9293 segments), the carrier of SCCPlite on the A interface.

An IPA message is a 2-octet length (big-endian, without the header), a 1-octet stream identifier and the payload.
Stream 0xFD is SCCP (SCCPlite: BSSAP over SCCP with no MTP3); 0xFE is CCM (IPA's own identity and keepalive), 0x00
RSL and 0xFF OML (A-bis, not BSSAP), 0xEE Osmocom extensions. IPA messages straddle TCP segments at will, so each
direction of a connection on an IPA port is reassembled in sequence-number order first: retransmitted and
overlapping octets are dropped by sequence number, out-of-order segments wait (up to ``MAX_OUT_OF_ORDER``) for the
gap to fill. Only SCCP messages are returned.
"""

import struct

from capture.errors import Anomalies, Malformed, Truncated

# Well-known IPA ports: 3002 OML, 3003 RSL (A-bis over IP), 3006 and 4249/4250 (Osmocom control/IPA), 5000
# (SCCPlite between BSC and MSC).
IPA_TCP_PORTS = frozenset((3002, 3003, 3006, 4249, 4250, 5000))
STREAM_RSL, STREAM_OSMO_EXTENSION, STREAM_SCCP, STREAM_CCM, STREAM_OML = 0x00, 0xEE, 0xFD, 0xFE, 0xFF
IPA_HEADER = 3

TCP_FIN, TCP_SYN, TCP_RST = 0x01, 0x02, 0x04
MAX_OUT_OF_ORDER = 64        # segments waiting for a gap before the gap is given up as lost
MAX_STREAMS = 65536          # TCP directions on IPA ports tracked at once

_TCP = struct.Struct("!HHIIBB")
_SEQ_MASK, _SEQ_HALF = 0xFFFFFFFF, 0x80000000

# One SCCP message from IPA: (source port, destination port, SCCP octets).
IpaMessage = tuple[int, int, bytes]


class _Direction:
    """One direction of a TCP connection: the next expected sequence number, waiting segments, unparsed octets."""

    __slots__ = ("next", "waiting", "pending")

    def __init__(self, seq: int):
        self.next = seq
        self.waiting: dict[int, bytes] = {}
        self.pending = bytearray()


def tcp_ports(data: memoryview) -> tuple[int, int]:
    """Source and destination port, enough to tell whether a segment can be IPA at all."""
    if len(data) < 4:
        raise Truncated("tcp.header_too_short")
    return struct.unpack_from("!HH", data)


class IpaLayer:
    """TCP reassembly per direction, then IPA framing."""

    def __init__(self, anomalies: Anomalies):
        self.anomalies = anomalies
        self._directions: dict[tuple, _Direction] = {}

    def segment(self, src: bytes, dst: bytes, data: memoryview) -> list[IpaMessage]:
        """The SCCP messages that the TCP segment ``data`` (header included) completes."""
        if len(data) < 20:
            raise Truncated("tcp.header_too_short")
        sport, dport, seq, _, offset, flags = _TCP.unpack_from(data)
        header = (offset >> 4) * 4
        if header < 20 or header > len(data):
            raise Malformed("tcp.bad_header_length")
        key = (src, sport, dst, dport)
        if flags & TCP_RST:
            self._directions.pop(key, None)
            return []
        d = self._directions.get(key)
        if flags & TCP_SYN or d is None:
            if len(self._directions) >= MAX_STREAMS:
                del self._directions[next(iter(self._directions))]
            # After a SYN the data starts one past its sequence number; joined mid-stream, at this segment.
            d = self._directions[key] = _Direction((seq + 1) & _SEQ_MASK if flags & TCP_SYN else seq)
        payload = data[header:]
        if payload:
            self._in_order(d, seq, payload)
        out = self._frames(d, sport, dport)
        if flags & TCP_FIN:
            del self._directions[key]
        return out

    def _in_order(self, d: _Direction, seq: int, payload: memoryview) -> None:
        ahead = (seq - d.next) & _SEQ_MASK
        if ahead and ahead < _SEQ_HALF:  # a gap before this segment: wait for it to fill
            d.waiting[seq] = bytes(payload)
            if len(d.waiting) > MAX_OUT_OF_ORDER:
                self.anomalies["tcp.gap"] += 1
                d.next = min(d.waiting, key=lambda s: (s - d.next) & _SEQ_MASK)
                d.pending.clear()  # the IPA framing is lost with the missing octets
                self._drain(d)
            return
        self._append(d, seq, payload)
        self._drain(d)

    def _append(self, d: _Direction, seq: int, payload) -> None:
        """Append the part of a segment at or after ``d.next``; a segment wholly before it is a retransmission."""
        behind = (d.next - seq) & _SEQ_MASK
        if behind >= _SEQ_HALF:
            behind = 0
        if behind >= len(payload):
            self.anomalies["tcp.retransmission"] += 1
            return
        d.pending += payload[behind:]
        d.next = (seq + len(payload)) & _SEQ_MASK

    def _drain(self, d: _Direction) -> None:
        while d.waiting:
            ready = [s for s in d.waiting if not ((s - d.next) & _SEQ_MASK) or (s - d.next) & _SEQ_HALF]
            if not ready:
                return
            for seq in ready:
                self._append(d, seq, d.waiting.pop(seq))

    def _frames(self, d: _Direction, sport: int, dport: int) -> list[IpaMessage]:
        buf, off, out = d.pending, 0, []
        while len(buf) - off >= IPA_HEADER:
            length = (buf[off] << 8) | buf[off + 1]
            end = off + IPA_HEADER + length
            if end > len(buf):
                break
            if buf[off + 2] == STREAM_SCCP:
                out.append((sport, dport, bytes(buf[off + IPA_HEADER:end])))
            off = end
        if off:
            del buf[:off]
        return out

"""IPv4 (RFC 791) and IPv6 (RFC 8200) to the transport payload, with fragment reassembly for both.

Only the transport protocols the stack asks for are followed (SCTP and TCP); fragments of anything else (GTP-U
over UDP is most of a probe's traffic) are dropped before they cost memory. A datagram whose fragments do not all
arrive within ``FRAGMENT_TIMEOUT`` seconds of capture time counts ``ip.fragment_timeout``. A total length beyond
the captured bytes is not an error here: the captured part is used, as Wireshark does (some real captures carry a
wrong length in an otherwise complete packet, and a snap length cuts every packet); a layer above that misses
octets counts it.
"""

import struct

from capture.errors import Anomalies, Malformed, Truncated
from capture.pending import Pending

PROTO_TCP, PROTO_UDP, PROTO_SCTP = 6, 17, 132
# RFC 8200 §4 extension headers sized (length + 1) * 8; Authentication Header (RFC 4302) is (length + 2) * 4.
IPV6_HOP_BY_HOP, IPV6_ROUTING, IPV6_FRAGMENT, IPV6_DESTINATION, IPV6_AH = 0, 43, 44, 60, 51
IPV6_MOBILITY, IPV6_HIP, IPV6_SHIM6 = 135, 139, 140
_IPV6_EIGHT_OCTET_UNITS = frozenset((IPV6_HOP_BY_HOP, IPV6_ROUTING, IPV6_DESTINATION, IPV6_MOBILITY, IPV6_HIP,
                                     IPV6_SHIM6))
MAX_EXTENSION_HEADERS = 8

FRAGMENT_TIMEOUT = 30.0     # seconds, as Linux's ipfrag_time
MAX_FRAGMENTS = 64          # per datagram
MAX_PENDING = 4096          # datagrams being reassembled at once
MAX_DATAGRAM = 65535

_V4 = struct.Struct("!BBHHHBBH4s4s")
_V6 = struct.Struct("!IHBB16s16s")

Datagram = tuple[int, bytes, bytes, memoryview]  # protocol, source address, destination address, payload


class IpLayer:
    """Parses IP headers and reassembles fragments of the wanted transport protocols."""

    def __init__(self, protocols: frozenset[int], anomalies: Anomalies):
        self.protocols = protocols
        self.anomalies = anomalies
        self._pending = Pending(anomalies, "ip.fragment_timeout", FRAGMENT_TIMEOUT, MAX_PENDING)

    def packet(self, data: memoryview, at: int, ts: float) -> Datagram | None:
        """The transport payload of the IP packet at ``data[at:]``; None when not wanted or not complete yet."""
        if len(data) - at < 1:
            raise Truncated("ip.header_too_short")
        version = data[at] >> 4
        if version == 4:
            return self._v4(data, at, ts)
        if version == 6:
            return self._v6(data, at, ts)
        raise Malformed("ip.bad_version", str(version))

    def _v4(self, data: memoryview, at: int, ts: float) -> Datagram | None:
        if len(data) - at < 20:
            raise Truncated("ip.header_too_short")
        vihl, _, total, ident, frag, _, proto, _, src, dst = _V4.unpack_from(data, at)
        if proto not in self.protocols:
            return None
        ihl = (vihl & 0x0F) * 4
        if ihl < 20 or total < ihl:
            raise Malformed("ip.bad_header_length")
        end = min(at + total, len(data))
        if at + ihl > end:
            raise Truncated("ip.header_too_short")
        payload = data[at + ihl:end]
        if frag & 0x3FFF:  # more fragments, or a non-zero offset
            whole = self._fragment((4, src, dst, ident, proto), (frag & 0x1FFF) * 8, bool(frag & 0x2000),
                                   payload, ts)
            return None if whole is None else (proto, src, dst, memoryview(whole))
        return proto, src, dst, payload

    def _v6(self, data: memoryview, at: int, ts: float) -> Datagram | None:
        if len(data) - at < 40:
            raise Truncated("ipv6.header_too_short")
        _, length, nxt, _, src, dst = _V6.unpack_from(data, at)
        # 0 is a jumbogram (RFC 2675): the rest of the frame
        end = min(at + 40 + length, len(data)) if length else len(data)
        payload = data[at + 40:end]
        nxt, off, fragment = _extension_headers(payload, nxt)
        if fragment is None:
            return (nxt, src, dst, payload[off:]) if nxt in self.protocols else None
        if nxt not in self.protocols and nxt not in _IPV6_EIGHT_OCTET_UNITS:
            return None
        offset, more, ident = fragment
        whole = self._fragment((6, src, dst, ident), offset, more, payload[off:], ts)
        if whole is None:
            return None
        view = memoryview(whole)
        nxt, off, again = _extension_headers(view, nxt)
        if again is not None:
            raise Malformed("ipv6.nested_fragment")
        return (nxt, src, dst, view[off:]) if nxt in self.protocols else None

    def _fragment(self, key: tuple, offset: int, more: bool, piece: memoryview, ts: float) -> bytes | None:
        """Add one fragment; the whole payload once every octet from 0 to the last fragment's end is present."""
        self._pending.expire(ts)
        entry = self._pending.get(key)
        if entry is None:
            entry = self._pending.start(key, _Datagram(ts))
        if offset + len(piece) > MAX_DATAGRAM or len(entry.pieces) >= MAX_FRAGMENTS:
            del self._pending[key]
            raise Malformed("ip.fragment_overflow")
        entry.pieces.append((offset, bytes(piece)))
        if not more:
            entry.total = offset + len(piece)
        whole = entry.assemble()
        if whole is not None:
            del self._pending[key]
        return whole

    def finish(self) -> None:
        """End of capture: datagrams still missing fragments will never complete."""
        self._pending.finish()


class _Datagram:
    __slots__ = ("first", "total", "pieces")

    def __init__(self, first: float):
        self.first, self.total, self.pieces = first, None, []

    def assemble(self) -> bytes | None:
        if self.total is None:
            return None
        covered = 0
        for offset, piece in sorted(self.pieces):
            if offset > covered:
                return None
            covered = max(covered, offset + len(piece))
        if covered < self.total:
            return None
        out = bytearray(self.total)
        for offset, piece in self.pieces:  # arrival order: a retransmitted overlap wins, as in Linux
            out[offset:offset + len(piece)] = piece[:max(0, self.total - offset)]
        return bytes(out)


def _extension_headers(payload: memoryview, nxt: int) -> tuple[int, int, tuple[int, bool, int] | None]:
    """Walk RFC 8200 extension headers: (upper-layer protocol, its offset, (offset, more, id) of a Fragment header)."""
    off = 0
    for _ in range(MAX_EXTENSION_HEADERS):
        if nxt in _IPV6_EIGHT_OCTET_UNITS or nxt == IPV6_AH:
            if len(payload) < off + 2:
                raise Truncated("ipv6.extension_header_too_short")
            size = (payload[off + 1] + 1) * 8 if nxt != IPV6_AH else (payload[off + 1] + 2) * 4
            nxt, off = payload[off], off + size
        elif nxt == IPV6_FRAGMENT:
            if len(payload) < off + 8:
                raise Truncated("ipv6.extension_header_too_short")
            nxt, _, offset_flags, ident = struct.unpack_from("!BBHI", payload, off)
            return nxt, off + 8, (offset_flags & 0xFFF8, bool(offset_flags & 1), ident)
        else:
            if off > len(payload):
                raise Truncated("ipv6.extension_header_too_short")
            return nxt, off, None
    raise Malformed("ipv6.too_many_extension_headers")

"""Real captures from the simulator: classic pcap over Ethernet II / IPv4 / SCTP, with M3UA and SCCP for the A-interface.

Layers, each encoded here because nothing below the signaling protocols is interesting to simulate:
pcap (libpcap classic format, µs timestamps, LINKTYPE_ETHERNET), IPv4 (RFC 791), SCTP (RFC 9260: one association per
link, opened with a four-way handshake before the first DATA so a dissector sees a proper association; CRC32c checksum,
App. B), M3UA (RFC 4666 §3.3.1 DATA with Protocol Data, after ASP Up / ASP Active so the association looks like a live
one), SCCP (ITU-T Q.713 §4: UDT, CR, CC, DT1, RLSD, RLC).
"""

import socket
import struct

LINKTYPE_ETHERNET = 1
PPID_M3UA, PPID_S1AP = 3, 18      # RFC 9260 / IANA SCTP payload protocol identifiers
SSN_BSSAP = 254                   # Q.713 Annex B: the A-interface BSSAP subsystem


def _crc32c_tables() -> tuple[list[int], list[int], list[int]]:
    """Byte table of the reflected Castagnoli polynomial, and two 16-bit slicing tables built from it.

    Four octets per step (slicing-by-4, folded into two 64K tables) quarters the interpreted loop, which is
    the dominant cost of writing a packet.
    """
    t0 = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t0.append(c)
    t1 = [t0[c & 0xFF] ^ (c >> 8) for c in t0]
    t2 = [t0[c & 0xFF] ^ (c >> 8) for c in t1]
    t3 = [t0[c & 0xFF] ^ (c >> 8) for c in t2]
    return t0, [t3[n & 0xFF] ^ t2[n >> 8] for n in range(65536)], [t1[n & 0xFF] ^ t0[n >> 8] for n in range(65536)]


_CRC_BYTE, _CRC_LOW, _CRC_HIGH = _crc32c_tables()


def crc32c(data: bytes) -> int:
    """CRC32c (Castagnoli) as SCTP uses it, RFC 9260 App. B; the packet carries it little-endian."""
    crc, low, high = 0xFFFFFFFF, _CRC_LOW, _CRC_HIGH
    whole = len(data) >> 2
    for word in struct.unpack_from(f"<{whole}I", data):
        x = crc ^ word
        crc = low[x & 0xFFFF] ^ high[x >> 16]
    for octet in data[whole * 4:]:
        crc = _CRC_BYTE[(crc ^ octet) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


class PcapWriter:
    """Classic libpcap file (magic a1b2c3d4, v2.4, µs resolution, Ethernet link type)."""

    def __init__(self, path):
        self._file = open(path, "wb")
        self._file.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET))

    def write(self, ts: float, frame: bytes) -> None:
        usec = round(ts * 1_000_000)
        self._file.write(struct.pack("<IIII", usec // 1_000_000, usec % 1_000_000, len(frame), len(frame)) + frame)

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _mac_for(ip: str) -> bytes:
    """A locally administered MAC derived from the address, so every host is stable across runs."""
    return b"\x02\x00" + socket.inet_aton(ip)


def _tag_for(ip: str, port: int) -> int:
    """A non-zero verification tag / initial TSN that is stable for one endpoint (RFC 9260 §5.3.1 wants it random)."""
    return crc32c(socket.inet_aton(ip) + port.to_bytes(2, "big")) or 1


class _Direction:
    """One direction of an SCTP association: the Ethernet/IPv4 headers precomputed, and the sender's TSN/SSN state."""

    def __init__(self, src_ip, dst_ip, src_port, dst_port, src_mac, dst_mac):
        self.eth = dst_mac + src_mac + b"\x08\x00"
        self.src, self.dst = socket.inet_aton(src_ip), socket.inet_aton(dst_ip)
        # RFC 791: version 4, IHL 5, DF, TTL 64, protocol 132; only total length, ID and checksum vary.
        fixed = struct.unpack("!10H", struct.pack("!BBHHHBBH4s4s", 0x45, 0, 0, 0, 0x4000, 64, 132, 0,
                                                  self.src, self.dst))
        self.ip_sum = sum(fixed)
        self.ip_id = 0
        self.ports = struct.pack("!HH", src_port, dst_port)
        self.own_tag = _tag_for(src_ip, src_port)
        self.peer_tag = 0          # the tag this side must put in its packets: the peer's Initiate Tag
        self.tsn = self.own_tag
        self.ssn: dict[int, int] = {}

    def next_ssn(self, stream: int) -> int:
        ssn = self.ssn.get(stream, 0)
        self.ssn[stream] = (ssn + 1) & 0xFFFF
        return ssn

    def packet(self, chunks: bytes, vtag: int | None = None) -> bytes:
        sctp = self.ports + struct.pack("!II", self.peer_tag if vtag is None else vtag, 0) + chunks
        sctp = sctp[:8] + struct.pack("<I", crc32c(sctp)) + sctp[12:]
        total = 20 + len(sctp)
        self.ip_id = (self.ip_id + 1) & 0xFFFF
        s = self.ip_sum + total + self.ip_id
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, self.ip_id, 0x4000, 64, 132, ~s & 0xFFFF,
                         self.src, self.dst)
        return self.eth + ip + sctp


def _chunk(kind: int, flags: int, body: bytes) -> bytes:
    """RFC 9260 §3.2: type, flags, length (without padding), value padded to 4 octets."""
    return struct.pack("!BBH", kind, flags, 4 + len(body)) + body + b"\x00" * (-len(body) % 4)


class _Association:
    """An SCTP association between a client (eNodeB, BSC: ``uplink``) and a server (MME, MSC)."""

    A_RWND, STREAMS = 65535, 17

    def __init__(self, writer: PcapWriter, client_ip, server_ip, client_port, server_port, ppid,
                 client_mac=None, server_mac=None):
        cmac, smac = client_mac or _mac_for(client_ip), server_mac or _mac_for(server_ip)
        self.writer, self.ppid = writer, ppid
        self.dirs = {True: _Direction(client_ip, server_ip, client_port, server_port, cmac, smac),
                     False: _Direction(server_ip, client_ip, server_port, client_port, smac, cmac)}
        self.established = False

    def _handshake(self, ts: float) -> None:
        """RFC 9260 §5.1: INIT, INIT ACK (with State Cookie), COOKIE ECHO, COOKIE ACK."""
        up, down = self.dirs[True], self.dirs[False]
        up.peer_tag, down.peer_tag = down.own_tag, up.own_tag
        cookie = struct.pack("!II", up.own_tag, down.own_tag)
        write = self.writer.write
        init = struct.pack("!IIHHI", up.own_tag, self.A_RWND, self.STREAMS, self.STREAMS, up.tsn)
        write(ts, up.packet(_chunk(1, 0, init), vtag=0))
        init_ack = struct.pack("!IIHHI", down.own_tag, self.A_RWND, self.STREAMS, self.STREAMS, down.tsn)
        write(ts, down.packet(_chunk(2, 0, init_ack + struct.pack("!HH", 7, 4 + len(cookie)) + cookie)))
        write(ts, up.packet(_chunk(10, 0, cookie)))
        write(ts, down.packet(_chunk(11, 0, b"")))
        self.established = True

    def data_chunk(self, d: _Direction, payload: bytes, stream: int, ssn: int, flags: int = 3) -> bytes:
        """RFC 9260 §3.3.1 DATA: flags U/B/E (B|E = an unfragmented message), TSN, stream, SSN, PPID."""
        tsn, d.tsn = d.tsn, (d.tsn + 1) & 0xFFFFFFFF
        return _chunk(0, flags, struct.pack("!IHHI", tsn, stream, ssn, self.ppid) + payload)

    def send(self, ts: float, payloads: list[bytes], uplink: bool, stream: int) -> None:
        """One packet carrying one DATA chunk per payload."""
        if not self.established:
            self._handshake(ts)
        d = self.dirs[uplink]
        chunks = b"".join(self.data_chunk(d, p, stream, d.next_ssn(stream)) for p in payloads)
        self.writer.write(ts, d.packet(chunks))

    def send_fragmented(self, ts: float, payload: bytes, uplink: bool, pieces: int, stream: int) -> None:
        """One user message split into ``pieces`` DATA chunks (consecutive TSNs, one SSN), one packet each (§6.9)."""
        if not self.established:
            self._handshake(ts)
        d = self.dirs[uplink]
        ssn, size = d.next_ssn(stream), -(-len(payload) // pieces)
        parts = [payload[i:i + size] for i in range(0, len(payload), size)]
        for i, part in enumerate(parts):
            flags = (2 if i == 0 else 0) | (1 if i == len(parts) - 1 else 0)
            self.writer.write(ts, d.packet(self.data_chunk(d, part, stream, ssn, flags)))


class S1Link:
    """One eNodeB↔MME S1-MME association (TS 36.412: SCTP, PPID 18, MME port 36412); uplink = eNodeB→MME."""

    def __init__(self, writer: PcapWriter, enb_ip: str, mme_ip: str, enb_port: int, mme_port: int = 36412,
                 enb_mac: bytes | None = None, mme_mac: bytes | None = None):
        self._sctp = _Association(writer, enb_ip, mme_ip, enb_port, mme_port, PPID_S1AP, enb_mac, mme_mac)

    def send(self, ts: float, pdu: bytes, uplink: bool, stream: int = 1) -> None:
        self._sctp.send(ts, [pdu], uplink, stream)

    def send_bundle(self, ts: float, pdus: list[bytes], uplink: bool, stream: int = 1) -> None:
        self._sctp.send(ts, pdus, uplink, stream)

    def send_fragmented(self, ts: float, pdu: bytes, uplink: bool, pieces: int = 2, stream: int = 1) -> None:
        self._sctp.send_fragmented(ts, pdu, uplink, pieces, stream)


# -- M3UA (RFC 4666) and SCCP (ITU-T Q.713) for the A-interface ---------------------------------------------------

def _m3ua(msg_class: int, msg_type: int, params: bytes) -> bytes:
    """RFC 4666 §3.1 common header: version 1, class, type, length including the header."""
    return struct.pack("!BBBBI", 1, 0, msg_class, msg_type, 8 + len(params)) + params


def _m3ua_param(tag: int, value: bytes) -> bytes:
    """RFC 4666 §3.2 tag-length-value, padded to 4 octets (the length excludes the padding)."""
    return struct.pack("!HH", tag, 4 + len(value)) + value + b"\x00" * (-len(value) % 4)


def _sccp_address(pc: int, ssn: int) -> bytes:
    """Q.713 §3.4: route on SSN, SSN present, and the 14-bit ITU point code when the value fits one."""
    if pc <= 0x3FFF:
        return struct.pack("<BHB", 0x43, pc, ssn)
    return bytes((0x42, ssn))


def _with_pointers(variable: list[bytes], optional: bytes | None) -> bytes:
    """Q.713 §2.3: one pointer per mandatory variable parameter (+ one to the optional part), then the parameters.

    Each pointer counts octets from itself to its parameter's length octet; a zero optional pointer means none.
    """
    n = len(variable) + (optional is not None)
    pointers, body, at = [], b"", n
    for i, value in enumerate(variable):
        pointers.append(at - i)
        body += bytes((len(value),)) + value
        at += 1 + len(value)
    if optional is not None:
        pointers.append(at - (n - 1) if optional else 0)
        body += optional
    return bytes(pointers) + body


SCCP_CR, SCCP_CC, SCCP_RLSD, SCCP_RLC, SCCP_DT1, SCCP_UDT = 0x01, 0x02, 0x04, 0x05, 0x06, 0x09  # Q.713 §2.1
_SCCP_DATA = 0x0F  # Q.713 §3.16 Data, as an optional parameter of CR


def _ref(local_reference: int) -> bytes:
    """Q.713 §3.2/§3.3: a 3-octet local reference, least significant octet first (as Wireshark reads it)."""
    return local_reference.to_bytes(3, "little")


class M3uaLink:
    """BSC↔MSC over M3UA/SCTP (RFC 4666, PPID 3, port 2905) carrying SCCP with BSSAP; uplink = BSC→MSC.

    Point codes are carried in 32-bit M3UA fields, so 24-bit values work; an SCCP address carries the point code
    only when it fits the 14-bit ITU format (otherwise it is routed on SSN alone).
    """

    def __init__(self, writer: PcapWriter, bsc_ip: str, msc_ip: str, bsc_pc: int, msc_pc: int,
                 bsc_port: int = 2905, msc_port: int = 2905, network_indicator: int = 2,
                 routing_context: int | None = None, bsc_mac: bytes | None = None, msc_mac: bytes | None = None,
                 sls: int = 0):
        self._sctp = _Association(writer, bsc_ip, msc_ip, bsc_port, msc_port, PPID_M3UA, bsc_mac, msc_mac)
        self._rc = b"" if routing_context is None else _m3ua_param(0x0006, struct.pack("!I", routing_context))
        # RFC 4666 §3.3.1 Protocol Data: OPC, DPC, SI=3 (SCCP), NI, MP=0, SLS
        self._mtp3 = {True: struct.pack("!IIBBBB", bsc_pc, msc_pc, 3, network_indicator, 0, sls),
                      False: struct.pack("!IIBBBB", msc_pc, bsc_pc, 3, network_indicator, 0, sls)}
        self._bsc_address, self._msc_address = _sccp_address(bsc_pc, SSN_BSSAP), _sccp_address(msc_pc, SSN_BSSAP)
        self._active = False

    def _asp_activate(self, ts: float) -> None:
        """RFC 4666 §4.3.4: ASP Up / Ack, then ASP Active / Ack (traffic mode loadshare) on stream 0."""
        send = self._sctp.send
        send(ts, [_m3ua(3, 1, b"")], True, 0)
        send(ts, [_m3ua(3, 4, b"")], False, 0)
        mode = _m3ua_param(0x000B, struct.pack("!I", 2))
        send(ts, [_m3ua(4, 1, mode + self._rc)], True, 0)
        send(ts, [_m3ua(4, 3, mode + self._rc)], False, 0)
        self._active = True

    def _send(self, ts: float, sccp: bytes, uplink: bool) -> None:
        if not self._active:
            self._asp_activate(ts)
        self._sctp.send(ts, [_m3ua(1, 1, self._rc + _m3ua_param(0x0210, self._mtp3[uplink] + sccp))], uplink, 1)

    def sccp_udt(self, ts: float, bssap: bytes, uplink: bool) -> None:
        """Q.713 §4.10 Unitdata, protocol class 0: connectionless BSSMAP (Paging, Reset)."""
        own, peer = (self._bsc_address, self._msc_address) if uplink else (self._msc_address, self._bsc_address)
        self._send(ts, bytes((SCCP_UDT, 0x00)) + _with_pointers([peer, own, bssap], None), uplink)

    def sccp_cr(self, ts: float, src_ref: int, bssap: bytes) -> None:
        """Q.713 §4.2 Connection Request from the BSC, protocol class 2, BSSAP in the optional Data parameter."""
        optional = bytes((_SCCP_DATA, len(bssap))) + bssap + b"\x00"
        self._send(ts, bytes((SCCP_CR,)) + _ref(src_ref) + b"\x02" + _with_pointers([self._msc_address], optional),
                   True)

    def sccp_cc(self, ts: float, dst_ref: int, src_ref: int) -> None:
        """Q.713 §4.3 Connection Confirm from the MSC, protocol class 2, no optional part."""
        self._send(ts, bytes((SCCP_CC,)) + _ref(dst_ref) + _ref(src_ref) + b"\x02\x00", False)

    def sccp_dt1(self, ts: float, dst_ref: int, bssap: bytes, uplink: bool) -> None:
        """Q.713 §4.5 Data Form 1: the BSSAP of an established connection, no segmenting."""
        self._send(ts, bytes((SCCP_DT1,)) + _ref(dst_ref) + b"\x00" + _with_pointers([bssap], None), uplink)

    def sccp_rlsd(self, ts: float, dst_ref: int, src_ref: int, uplink: bool, cause: int = 0) -> None:
        """Q.713 §4.7 Released, with release cause (§3.11; 0 = end user originated) and no optional part."""
        self._send(ts, bytes((SCCP_RLSD,)) + _ref(dst_ref) + _ref(src_ref) + bytes((cause, 0)), uplink)

    def sccp_rlc(self, ts: float, dst_ref: int, src_ref: int, uplink: bool) -> None:
        """Q.713 §4.8 Release Complete."""
        self._send(ts, bytes((SCCP_RLC,)) + _ref(dst_ref) + _ref(src_ref), uplink)

"""Hand-built packets for the capture tests and the tests/cases generator: every layer sigloc reads, as bytes.

Each builder encodes one header the way its spec lays it out (the spec is named where it is not obvious), with
fixed addresses (A = 10.0.0.1, B = 10.0.0.2) so the expected outputs stay stable.
"""

import socket
import struct
from pathlib import Path

from simulator.pcap import crc32c

A, B = socket.inet_aton("10.0.0.1"), socket.inet_aton("10.0.0.2")


def ether(payload: bytes, ethertype: int = 0x0800, tags: tuple = ()) -> bytes:
    vlan = b"".join(struct.pack("!HH", tpid, 100 + i) for i, tpid in enumerate(tags))
    return b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + vlan + struct.pack("!H", ethertype) + payload


def sll(payload: bytes, protocol: int = 0x0800) -> bytes:
    return struct.pack("!HHH8sH", 0, 1, 6, b"\x02\0\0\0\0\x01\0\0", protocol) + payload


def sll2(payload: bytes, protocol: int = 0x0800) -> bytes:
    return struct.pack("!HHIHBB8s", protocol, 0, 2, 1, 0, 6, b"\x02\0\0\0\0\x01\0\0") + payload


def ipv4(proto: int, payload: bytes, ident: int = 1, offset: int = 0, more: bool = False) -> bytes:
    flags = (0x2000 if more else 0) | (offset // 8)
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, flags, 64, proto, 0, A, B) + payload


def ipv6(nxt: int, payload: bytes, hop_by_hop: bool = False) -> bytes:
    src, dst = socket.inet_pton(socket.AF_INET6, "2001:db8::1"), socket.inet_pton(socket.AF_INET6, "2001:db8::2")
    if hop_by_hop:  # Hop-by-Hop then Destination Options, each 8 octets of PadN (RFC 8200 §4.2)
        payload = bytes((60, 0, 1, 4, 0, 0, 0, 0)) + bytes((nxt, 0, 1, 4, 0, 0, 0, 0)) + payload
        nxt = 0
    return struct.pack("!IHBB16s16s", 0x60000000, len(payload), nxt, 64, src, dst) + payload


def sctp(sport: int, dport: int, chunks: list[bytes], vtag: int = 0x1234) -> bytes:
    packet = struct.pack("!HHII", sport, dport, vtag, 0) + b"".join(chunks)
    return packet[:8] + struct.pack("<I", crc32c(packet)) + packet[12:]


def _chunk(kind: int, flags: int, body: bytes) -> bytes:
    return struct.pack("!BBH", kind, flags, 4 + len(body)) + body + b"\0" * (-len(body) % 4)


def data_chunk(tsn: int, payload: bytes, ppid: int = 18, stream: int = 1, ssn: int = 0, flags: int = 3) -> bytes:
    return _chunk(0, flags, struct.pack("!IHHI", tsn, stream, ssn, ppid) + payload)


def i_data_chunk(tsn: int, payload: bytes, mid: int, ppid_or_fsn: int, stream: int = 1, flags: int = 3) -> bytes:
    return _chunk(64, flags, struct.pack("!IHHII", tsn, stream, 0, mid, ppid_or_fsn) + payload)


def sack_chunk() -> bytes:
    return _chunk(3, 0, struct.pack("!IIHH", 5, 65535, 0, 0))


def tcp(sport: int, dport: int, seq: int, payload: bytes, flags: int = 0x18) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 0x50, flags, 65535, 0, 0) + payload


def ipa(stream: int, payload: bytes) -> bytes:
    return struct.pack("!HB", len(payload), stream) + payload


def udt(called: bytes, calling: bytes, data: bytes) -> bytes:
    return bytes((0x09, 0, 3, 3 + len(called), 3 + len(called) + len(calling))) + \
        bytes((len(called),)) + called + bytes((len(calling),)) + calling + bytes((len(data),)) + data


def write_pcap(path, frames, linktype: int = 1, endian: str = "<", nanos: bool = False) -> None:
    magic, scale = (0xA1B23C4D, 10 ** 9) if nanos else (0xA1B2C3D4, 10 ** 6)
    out = [struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)]
    for ts, frame in frames:
        units = round(ts * scale)
        out.append(struct.pack(endian + "IIII", units // scale, units % scale, len(frame), len(frame)) + frame)
    Path(path).write_bytes(b"".join(out))


def _block(kind: int, body: bytes, endian: str = "<") -> bytes:
    body += b"\0" * (-len(body) % 4)
    return struct.pack(endian + "II", kind, 12 + len(body)) + body + struct.pack(endian + "I", 12 + len(body))


def shb(endian: str = "<") -> bytes:
    return _block(0x0A0D0D0A, struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1), endian)


def idb(linktype: int, tsresol: int | None = None, endian: str = "<") -> bytes:
    options = b"" if tsresol is None else struct.pack(endian + "HHB3x", 9, 1, tsresol)
    return _block(1, struct.pack(endian + "HHI", linktype, 0, 65535) + options + struct.pack(endian + "HH", 0, 0),
                  endian)


def epb(interface: int, units: int, frame: bytes, endian: str = "<") -> bytes:
    return _block(6, struct.pack(endian + "IIIII", interface, units >> 32, units & 0xFFFFFFFF, len(frame),
                                 len(frame)) + frame, endian)


def spb(frame: bytes) -> bytes:
    return _block(3, struct.pack("<I", len(frame)) + frame)


def pb(interface: int, units: int, frame: bytes) -> bytes:
    return _block(2, struct.pack("<HHIIII", interface, 0, units >> 32, units & 0xFFFFFFFF, len(frame), len(frame))
                  + frame)


def write_pcapng(path, frames, endian: str = "<", tsresol: int | None = None) -> None:
    if tsresol is None:
        per_second = 10 ** 6
    else:
        per_second = 2 ** (tsresol & 0x7F) if tsresol & 0x80 else 10 ** tsresol
    blocks = [shb(endian), idb(1, tsresol, endian)]
    blocks += [epb(0, round(ts * per_second), frame, endian) for ts, frame in frames]
    Path(path).write_bytes(b"".join(blocks))


def m3ua_data(opc: int, dpc: int, user_data: bytes, si: int = 3, ni: int = 2, sls: int = 0) -> bytes:
    """RFC 4666 §3.3.1 Transfer DATA with only Protocol Data (32-bit OPC and DPC fields)."""
    value = struct.pack("!IIBBBB", opc, dpc, si, ni, 0, sls) + user_data
    param = struct.pack("!HH", 0x0210, 4 + len(value)) + value + b"\0" * (-len(value) % 4)
    return struct.pack("!BBBBI", 1, 0, 1, 1, 8 + len(param)) + param


def m2ua_data(msu: bytes, interface: int = 0) -> bytes:
    """RFC 3331 §3.3.1.1 MAUP DATA: integer interface identifier, then Protocol Data 1 (the MSU)."""
    params = struct.pack("!HHI", 0x0001, 8, interface)
    params += struct.pack("!HH", 0x0300, 4 + len(msu)) + msu + b"\0" * (-len(msu) % 4)
    return struct.pack("!BBBBI", 1, 0, 6, 1, 8 + len(params)) + params


def msu_itu(opc: int, dpc: int, user_data: bytes, sls: int = 0, ni: int = 2) -> bytes:
    """Q.704 §14.2 SIO (SI 3 = SCCP) and §2.2 ITU routing label: DPC, OPC (14 bits each), SLS, LSB first."""
    label = dpc | (opc << 14) | (sls << 28)
    return bytes((0x03 | ni << 6,)) + label.to_bytes(4, "little") + user_data


def msu_24bit(opc: int, dpc: int, user_data: bytes, sls: int = 0, ni: int = 2) -> bytes:
    """The 24-bit routing label (ANSI T1.111 / YD/T 1127 layout): DPC, OPC (3 octets each), SLS octet."""
    return bytes((0x03 | ni << 6,)) + dpc.to_bytes(3, "little") + opc.to_bytes(3, "little") + bytes((sls,)) + \
        user_data


def mtp2(msu: bytes, bsn: int = 0, fsn: int = 0) -> bytes:
    """Q.703 §2.2 signal unit: BSN/BIB, FSN/FIB, length indicator (63 for 63 octets or more), SIO + SIF."""
    return bytes((bsn & 0x7F, fsn & 0x7F, min(len(msu), 63))) + msu


def mtp2_phdr(signal_unit: bytes, link: int = 0, sent: int = 0) -> bytes:
    """libpcap's struct mtp2_phdr before a signal unit: sent, annex_a_used (0), link number little-endian."""
    return struct.pack("<BBH", sent, 0, link) + signal_unit


def sccp_address(ssn: int, pc: int | None = None, pc_octets: int = 2) -> bytes:
    """Q.713 §3.4: route on SSN, SSN present, the point code first when given."""
    if pc is None:
        return bytes((0x42, ssn))
    return bytes((0x43,)) + pc.to_bytes(pc_octets, "little") + bytes((ssn,))


def xudt(called: bytes, calling: bytes, data: bytes, segmentation: tuple[bool, int, int] | None = None) -> bytes:
    """Q.713 §4.18 Extended unitdata, class 0, hop counter 15; with §3.17 Segmentation (first, remaining, local
    reference) in the optional part when given."""
    optional = b""
    if segmentation is not None:
        first, remaining, reference = segmentation
        optional = bytes((0x10, 4, (0x80 if first else 0) | remaining)) + reference.to_bytes(3, "little") + b"\0"
    # each pointer counts from itself (§2.3); the four pointers are followed by the called address
    lc, lg, ld = len(called), len(calling), len(data)
    pointers = bytes((4, 4 + lc, 4 + lc + lg, (4 + lc + lg + ld) if optional else 0))
    return bytes((0x11, 0x00, 0x0F)) + pointers + bytes((len(called),)) + called + bytes((len(calling),)) + \
        calling + bytes((len(data),)) + data + optional


def sccp_cr(src_ref: int, called: bytes, data: bytes) -> bytes:
    """Q.713 §4.2 Connection Request, class 2, the user data in the optional Data parameter."""
    return bytes((0x01,)) + src_ref.to_bytes(3, "little") + bytes((0x02, 2, 2 + len(called), len(called))) + \
        called + bytes((0x0F, len(data))) + data + b"\0"


def sccp_cc(dst_ref: int, src_ref: int) -> bytes:
    """Q.713 §4.3 Connection Confirm, class 2, no optional part."""
    return bytes((0x02,)) + dst_ref.to_bytes(3, "little") + src_ref.to_bytes(3, "little") + b"\x02\x00"


def sccp_dt1(dst_ref: int, data: bytes, more: bool = False) -> bytes:
    """Q.713 §4.5 Data Form 1 (M bit in the segmenting/reassembling octet)."""
    return bytes((0x06,)) + dst_ref.to_bytes(3, "little") + bytes((int(more), 1, len(data))) + data


def sccp_it(dst_ref: int, src_ref: int) -> bytes:
    """Q.713 §4.19 Inactivity Test, class 2 (sequencing and credit zero)."""
    return bytes((0x10,)) + dst_ref.to_bytes(3, "little") + src_ref.to_bytes(3, "little") + b"\x02\x00\x00\x00"

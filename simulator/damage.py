"""Malformed packets on the simulated wire: damaged copies of SCTP packets inserted into a finished capture.

A probe's mirror port carries some garbage (a truncated frame, a corrupted chunk header); the transport stack must
count and skip it without losing or inventing a message. Each inserted packet is a copy of an SCTP packet, right
after it and at its time, broken at the SCTP layer so that no receiver can take a message from it:

- ``chunk_cut``: the packet ends inside its first chunk (the IPv4 total length and header checksum are fixed to the
  shorter packet, so the fault is the chunk length overrunning the packet, not a short capture);
- ``chunk_length``: the first chunk's length field says 0-3 octets, less than a chunk header.

The messages, and so the ground truth, stay those of the capture without them; only frame numbers move.
"""

import random
import struct
from collections import Counter
from pathlib import Path

from capture.link import LINKTYPE_ETHERNET

_RECORD = struct.Struct("<IIII")
_ETHERNET, _IPV4, _SCTP_HEADER, _CHUNK_HEADER = 14, 20, 12, 4
KINDS = ("chunk_cut", "chunk_length")


def _ipv4_checksum(header: bytes) -> int:
    s = sum(struct.unpack("!10H", header))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _damaged(frame: bytes, kind: str, rng: random.Random) -> bytes | None:
    """The broken copy of an Ethernet/IPv4/SCTP frame, or None when the frame is not one (TCP, ARP, IPv6...)."""
    ip = _ETHERNET
    if len(frame) < ip + _IPV4 + _SCTP_HEADER + 16 or frame[12:14] != b"\x08\x00" or frame[ip] != 0x45 \
            or frame[ip + 9] != 132:
        return None
    chunk = ip + _IPV4 + _SCTP_HEADER
    if kind == "chunk_length":
        return frame[:chunk + 2] + struct.pack("!H", rng.randrange(4)) + frame[chunk + 4:]
    length = struct.unpack_from("!H", frame, chunk + 2)[0]
    end = chunk + rng.randrange(_CHUNK_HEADER, max(_CHUNK_HEADER + 1, min(length, len(frame) - chunk)))
    header = bytearray(frame[ip:ip + _IPV4])
    struct.pack_into("!H", header, 2, end - ip)
    struct.pack_into("!H", header, 10, 0)
    struct.pack_into("!H", header, 10, _ipv4_checksum(bytes(header)))
    return frame[:ip] + bytes(header) + frame[ip + _IPV4:end]


def add_malformed(capture: str | Path, share: float, seed: int = 0) -> Counter:
    """Insert a damaged copy after ``share`` of the SCTP packets of a classic µs pcap (Ethernet), in place, one
    record at a time (constant memory); return how many of each kind."""
    capture = Path(capture)
    rng = random.Random(seed)
    counts: Counter = Counter()
    tmp = capture.with_suffix(".damaged.tmp")
    with open(capture, "rb") as src, open(tmp, "wb") as out:
        header = src.read(24)
        magic, _, _, _, _, _, linktype = struct.unpack("<IHHiIII", header)
        if magic != 0xA1B2C3D4 or linktype != LINKTYPE_ETHERNET:
            raise ValueError(f"{capture}: not a little-endian µs pcap of Ethernet frames (the simulator's format)")
        out.write(header)
        while record := src.read(_RECORD.size):
            sec, usec, caplen, _ = _RECORD.unpack(record)
            frame = src.read(caplen)
            out.write(record)
            out.write(frame)
            if rng.random() >= share:
                continue
            kind = KINDS[rng.randrange(len(KINDS))]
            broken = _damaged(frame, kind, rng)
            if broken is not None:
                out.write(_RECORD.pack(sec, usec, len(broken), len(broken)))
                out.write(broken)
                counts[kind] += 1
    tmp.replace(capture)
    return counts

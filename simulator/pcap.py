"""Real captures from the simulator: classic pcap over Ethernet II / IPv4 / SCTP, with M3UA and SCCP for the A-interface
(or IPA/SCCPlite over TCP).

Layers, each encoded here because nothing below the signaling protocols is interesting to simulate:
pcap (libpcap classic format, µs timestamps, LINKTYPE_ETHERNET), IPv4 (RFC 791), SCTP (RFC 9260: one association per
link, opened with a four-way handshake before the first DATA so a dissector sees a proper association; CRC32c checksum,
App. B), M3UA (RFC 4666 §3.3.1 DATA with Protocol Data, after ASP Up / ASP Active so the association looks like a live
one), SCCP (ITU-T Q.713 §4: UDT, CR, CC, DT1, RLSD, RLC); for SCCPlite, TCP (RFC 9293: three-way handshake before
the first segment, sequence and acknowledgement numbers per direction, checksum) carrying IPA messages (stream 0xFD).

The simulator hands messages over subscriber by subscriber; ``PcapWriter`` spools them to disk by minute and writes
the frames in time order with a Numba kernel (headers, counters, checksums; some messages bundled, some fragmented,
as ``SctpPacking`` says), so a big city streams in bounded memory.
"""

import math
import shutil
import socket
import struct
import tempfile
from array import array
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

LINKTYPE_ETHERNET = 1
PPID_M3UA, PPID_S1AP = 3, 18      # RFC 9260 / IANA SCTP payload protocol identifiers
SSN_BSSAP = 254                   # Q.713 Annex B: the A-interface BSSAP subsystem


def _crc32c_tables() -> tuple[list[int], list[int], list[int]]:
    """Byte table of the reflected Castagnoli polynomial, and two 16-bit slicing tables built from it.

    Four octets per step (slicing-by-4, folded into two 64K tables) quarters the interpreted loop; captures are
    written by ``_frames`` with the byte table, this is for the odd packet built in Python.
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


# Kinds of wire record: a message that goes into one DATA chunk, or control chunks written as they are (INIT,
# the only one sent with verification tag 0, and the other handshake chunks), or a TCP segment (its flags in the
# record's stream field, its payload the segment's data).
DATA, CHUNKS, CHUNKS_NO_TAG, SEGMENT = 0, 1, 2, 3
TCP_SYN, TCP_PSH, TCP_ACK = 0x02, 0x08, 0x10
PROTO_TCP, PROTO_SCTP = 6, 132
BUCKET_S = 60.0              # the spool keeps the records of each minute of capture apart
SPOOL_RECORDS = 1 << 19      # records held in memory before the spool writes them to its files
_FRAME_OVERHEAD = 16 + 14 + 20 + 12 + 16 + 3  # pcap record, Ethernet, IPv4, SCTP common header, DATA header, pad
MTU = 1500                   # Ethernet payload: an IPv4 packet of SCTP never exceeds it
_MAX_DATA = MTU - 20 - 12 - 16  # user octets of the one DATA chunk of a full packet


@dataclass(frozen=True)
class SctpPacking:
    """How DATA chunks go into packets (RFC 9260 §6.9, §6.10), as a real stack packs them.

    ``bundle_share`` of the messages followed within ``bundle_window_s`` by another from the same sender on the
    same association (nothing from the peer in between) wait for that one and share its packet (by default about
    3 % of a simulated city's messages);
    ``fragment_share`` of the other messages, and every message above ``fragment_above`` octets, are split into
    2–3 fragments (more if one would not fit a packet): consecutive TSNs, one SSN, B on the first, E on the last,
    U clear like every message the simulator sends (ordered delivery). The draws come from the writer's seed, so
    a capture is the same run after run.
    """

    bundle_share: float = 0.25
    bundle_window_s: float = 0.005
    fragment_share: float = 0.01
    fragment_above: int = _MAX_DATA

    @classmethod
    def off(cls) -> "SctpPacking":
        """One message per packet, none fragmented (as long as they fit a packet)."""
        return cls(bundle_share=0.0, fragment_share=0.0, fragment_above=1 << 30)


@numba.njit(cache=True)
def _ipv4(out, at, ts_us, d, total, proto, heads, ip_ids, ip_sums) -> int:
    """pcap record header, Ethernet and IPv4 header (RFC 791, with its checksum) of a ``total``-octet IPv4 packet
    of protocol ``proto``; return where the IPv4 payload starts."""
    frame = 14 + total
    sec, usec = ts_us // 1_000_000, ts_us % 1_000_000
    for k in range(4):  # pcap record header, little-endian: seconds, µs, captured and original length
        out[at + k] = (sec >> (8 * k)) & 0xFF
        out[at + 4 + k] = (usec >> (8 * k)) & 0xFF
        out[at + 8 + k] = (frame >> (8 * k)) & 0xFF
        out[at + 12 + k] = (frame >> (8 * k)) & 0xFF
    e = at + 16
    out[e:e + 14] = heads[d, 0:14]
    ip = e + 14
    ip_ids[d] = (ip_ids[d] + 1) & 0xFFFF
    s = ip_sums[d] + total + ip_ids[d]
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    s = ~s & 0xFFFF
    out[ip] = 0x45
    out[ip + 1] = 0
    out[ip + 2], out[ip + 3] = total >> 8, total & 0xFF
    out[ip + 4], out[ip + 5] = ip_ids[d] >> 8, ip_ids[d] & 0xFF
    out[ip + 6], out[ip + 7], out[ip + 8], out[ip + 9] = 0x40, 0, 64, proto
    out[ip + 10], out[ip + 11] = s >> 8, s & 0xFF
    out[ip + 12:ip + 20] = heads[d, 14:22]
    return ip + 20


@numba.njit(cache=True)
def _packet(out, at, ts_us, d, chunks, tag, heads, ip_ids, ip_sums) -> int:
    """pcap record header, Ethernet, IPv4 and the SCTP common header (checksum 0 for now) of a packet carrying
    ``chunks`` octets of chunks; return where the SCTP header starts."""
    sc = _ipv4(out, at, ts_us, d, 20 + 12 + chunks, PROTO_SCTP, heads, ip_ids, ip_sums)
    out[sc:sc + 4] = heads[d, 22:26]
    for k in range(4):
        out[sc + 4 + k] = (tag >> (24 - 8 * k)) & 0xFF
        out[sc + 8 + k] = 0
    return sc


@numba.njit(cache=True)
def _data(out, c, d, stream, ssn, flags, blob, src, n, tsns, ppid) -> int:
    """RFC 9260 §3.3.1 DATA chunk with the sender's next TSN and ``n`` octets of ``blob``; return its padded end."""
    tsn = tsns[d]
    tsns[d] = (tsn + 1) & 0xFFFFFFFF
    length = 16 + n
    out[c], out[c + 1], out[c + 2], out[c + 3] = 0, flags, length >> 8, length & 0xFF
    for k in range(4):
        out[c + 4 + k] = (tsn >> (24 - 8 * k)) & 0xFF
        out[c + 12 + k] = (ppid >> (24 - 8 * k)) & 0xFF
    out[c + 8], out[c + 9], out[c + 10], out[c + 11] = stream >> 8, stream & 0xFF, ssn >> 8, ssn & 0xFF
    out[c + 16:c + 16 + n] = blob[src:src + n]
    end = c + 16 + n + (-n % 4)
    for k in range(c + 16 + n, end):
        out[k] = 0
    return end


@numba.njit(cache=True)
def _checksum(out, sc, end, crc_table) -> None:
    """RFC 9260 App. B: CRC32c over the SCTP packet, stored little-endian in the common header."""
    crc = np.uint32(0xFFFFFFFF)
    for k in range(sc, end):
        crc = crc_table[(crc ^ out[k]) & 0xFF] ^ (crc >> np.uint32(8))
    crc ^= np.uint32(0xFFFFFFFF)
    for k in range(4):
        out[sc + 8 + k] = (crc >> np.uint32(8 * k)) & 0xFF


@numba.njit(cache=True)
def _segment(out, at, ts_us, d, flags, blob, first, first_n, src, n, heads, seqs, peer, ip_ids, ip_sums) -> int:
    """One TCP segment (RFC 9293 §3.1: 20-octet header, window 65535, checksum over the pseudo-header) from
    direction ``d`` with ``first_n`` octets of ``blob`` at ``first`` (an earlier record sharing the segment; 0:
    none) then ``n`` at ``src``. Its sequence number is the sender's next, its acknowledgement the peer's next
    (with ACK set); the sender's next advances by the data and by one for a SYN. Return where the frame ends."""
    m = first_n + n
    tcp = _ipv4(out, at, ts_us, d, 20 + 20 + m, PROTO_TCP, heads, ip_ids, ip_sums)
    seq = seqs[d]
    ack = seqs[peer] if flags & TCP_ACK else 0
    seqs[d] = (seq + m + (1 if flags & TCP_SYN else 0)) & 0xFFFFFFFF
    out[tcp:tcp + 4] = heads[d, 22:26]
    for k in range(4):
        out[tcp + 4 + k] = (seq >> (24 - 8 * k)) & 0xFF
        out[tcp + 8 + k] = (ack >> (24 - 8 * k)) & 0xFF
    out[tcp + 12], out[tcp + 13], out[tcp + 14], out[tcp + 15] = 0x50, flags, 0xFF, 0xFF
    out[tcp + 16], out[tcp + 17], out[tcp + 18], out[tcp + 19] = 0, 0, 0, 0
    data = tcp + 20
    out[data:data + first_n] = blob[first:first + first_n]
    out[data + first_n:data + m] = blob[src:src + n]
    end = data + m
    s = PROTO_TCP + 20 + m  # pseudo-header: addresses, protocol, TCP length
    for k in range(14, 22, 2):
        s += (np.int64(heads[d, k]) << 8) | heads[d, k + 1]
    for k in range(tcp, end - 1, 2):
        s += (np.int64(out[k]) << 8) | out[k + 1]
    if (end - tcp) & 1:
        s += np.int64(out[end - 1]) << 8
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    s = ~s & 0xFFFF
    out[tcp + 16], out[tcp + 17] = s >> 8, s & 0xFF
    return end


@numba.njit(cache=True)
def _next_ssn(ssns, d, stream) -> int:
    ssn = ssns[d, stream]
    ssns[d, stream] = (ssn + 1) & 0xFFFF
    return ssn


@numba.njit(cache=True)
def _frames(ts_us, dirs, streams, kinds, offsets, lengths, blob, carry, fragments, heads, vtags, ppids, tsns, ssns,
            ip_ids, ip_sums, crc_table, peers, out):
    """Write the pcap records of ``len(ts_us)`` messages (in wire order) into ``out``; return the bytes written.

    Per direction: ``heads`` the Ethernet header (14), source and destination address (8) and ports (4);
    ``tsns``/``ssns``/``ip_ids`` the sender's counters, advanced here. ``carry[i]`` is the earlier message that
    waited to be bundled ahead of message ``i`` in its packet (-1: none; a message that waits has
    ``fragments`` 0 and is written there), ``fragments[i]`` how many DATA chunks message ``i`` is split into.
    Every packet gets its CRC32c (App. B) and IPv4 header checksum (RFC 791). A ``SEGMENT`` record is a TCP
    segment (its flags in ``streams``; ``tsns`` the sender's next sequence number, ``peers`` the other direction
    of its connection), sharing its segment with ``carry``'s record like a bundled DATA chunk.
    """
    at = 0
    for i in range(len(ts_us)):
        d, kind, n, src, parts = dirs[i], kinds[i], lengths[i], offsets[i], fragments[i]
        if kind == SEGMENT:
            if parts:
                j = carry[i]
                at = _segment(out, at, ts_us[i], d, streams[i], blob, offsets[j] if j >= 0 else 0,
                              lengths[j] if j >= 0 else 0, src, n, heads, tsns, peers[d], ip_ids, ip_sums)
        elif kind != DATA:
            sc = _packet(out, at, ts_us[i], d, n, 0 if kind == CHUNKS_NO_TAG else vtags[d], heads, ip_ids, ip_sums)
            out[sc + 12:sc + 12 + n] = blob[src:src + n]
            at = sc + 12 + n
            _checksum(out, sc, at, crc_table)
        elif parts == 1:
            j = carry[i]
            chunks = 16 + n + (-n % 4)
            if j >= 0:
                chunks += 16 + lengths[j] + (-lengths[j] % 4)
            sc = _packet(out, at, ts_us[i], d, chunks, vtags[d], heads, ip_ids, ip_sums)
            at = sc + 12
            if j >= 0:
                at = _data(out, at, d, streams[j], _next_ssn(ssns, d, streams[j]), 3, blob, offsets[j], lengths[j],
                           tsns, ppids[d])
            at = _data(out, at, d, streams[i], _next_ssn(ssns, d, streams[i]), 3, blob, src, n, tsns, ppids[d])
            _checksum(out, sc, at, crc_table)
        elif parts > 1:  # §6.9: one SSN for the message, a TSN per fragment, B on the first and E on the last
            ssn = _next_ssn(ssns, d, streams[i])
            for f in range(parts):
                first, last = n * f // parts, n * (f + 1) // parts
                m = last - first
                sc = _packet(out, at, ts_us[i], d, 16 + m + (-m % 4), vtags[d], heads, ip_ids, ip_sums)
                flags = (2 if f == 0 else 0) | (1 if f == parts - 1 else 0)
                at = _data(out, sc + 12, d, streams[i], ssn, flags, blob, src + first, m, tsns, ppids[d])
                _checksum(out, sc, at, crc_table)
    return at


class PcapWriter:
    """Classic libpcap file (magic a1b2c3d4, v2.4, µs resolution, Ethernet link type) of SCTP associations.

    Messages may be handed over in any order: each goes to the spool with its time, and ``close`` writes them
    in time order (equal times in the order given), a minute of capture at a time, so memory stays bounded
    however long the capture. The SCTP and IPv4 counters are assigned in that wire order; ``packing`` decides
    which messages share a packet or are fragmented, with draws seeded by ``seed`` and the minute. TCP connections
    (``_TcpConnection``) go through the same spool as ``SEGMENT`` records, numbered in the same wire order.
    """

    def __init__(self, path, packing: SctpPacking = SctpPacking(), seed: int = 0):
        self.path = Path(path)
        self.packing, self.seed = packing, seed
        self._spool = Path(tempfile.mkdtemp(prefix="spool-", dir=self.path.parent))
        self._ts, self._what, self._payloads = array("d"), array("q"), []
        self._seq = 0                  # sequence number of the first record held
        self.directions: list[_Direction] = []
        self.associations: list[_Association] = []
        self.messages = 0

    def direction(self, d: "_Direction") -> int:
        self.directions.append(d)
        return len(self.directions) - 1

    def add(self, ts: float, direction: int, stream: int, kind: int, payload: bytes) -> None:
        """Spool one record: its time, what it is (direction, stream, kind packed in one integer), its bytes."""
        self._ts.append(ts)
        self._what.append(direction << 8 | stream << 2 | kind)
        self._payloads.append(payload)
        if len(self._payloads) >= SPOOL_RECORDS:
            self._spill()

    def _spill(self, seq: np.ndarray | None = None) -> None:
        """Append the records held to the spool file of their minute: count, columns, payloads. ``seq`` orders
        records of equal time; by default the order they were added in, after every record spilled before."""
        n = len(self._payloads)
        if not n:
            return
        ts, what = np.frombuffer(self._ts, np.float64), np.frombuffer(self._what, np.int64)
        if seq is None:
            seq = self._seq + np.arange(n, dtype=np.int64)
            self._seq += n
            self.messages += n
        lengths = np.fromiter(map(len, self._payloads), np.int64, n)
        bucket = np.floor(ts / BUCKET_S).astype(np.int64)
        order = np.argsort(bucket, kind="stable")
        cuts = np.flatnonzero(np.diff(bucket[order])) + 1
        payloads = self._payloads
        for part in np.split(order, cuts):
            with open(self._spool / f"{bucket[part[0]]}.bin", "ab") as f:
                blob = b"".join([payloads[i] for i in part.tolist()])
                f.write(struct.pack("<qq", len(part), len(blob)))
                for column in (ts, seq, what, lengths):
                    f.write(column[part].tobytes())
                f.write(blob)
        self._ts, self._what, self._payloads = array("d"), array("q"), []

    def _load(self, key: int) -> tuple:
        """The spooled records of one minute: time, seq, what, length columns and the payloads back to back."""
        columns = [[] for _ in range(5)]
        data = (self._spool / f"{key}.bin").read_bytes()
        at = 0
        while at < len(data):
            n, size = struct.unpack_from("<qq", data, at)
            at += 16
            for c in range(4):
                columns[c].append(np.frombuffer(data, np.float64 if c == 0 else np.int64, n, at))
                at += n * 8
            columns[4].append(np.frombuffer(data, np.uint8, size, at))
            at += size
        return tuple(np.concatenate(c) for c in columns)

    def close(self) -> None:
        self._spill()
        for a in self.associations:  # control records: before every message of the same time
            a.open_at_first_use()
        self._spill(seq=np.arange(len(self._payloads), dtype=np.int64) - len(self._payloads))
        n = len(self.directions)
        heads = np.zeros((n, 26), np.uint8)
        for i, d in enumerate(self.directions):
            heads[i] = np.frombuffer(d.eth + d.src + d.dst + d.ports, np.uint8)
        vtags = np.array([d.peer_tag for d in self.directions], np.uint32)
        ppids = np.array([d.ppid for d in self.directions], np.uint32)
        tsns = np.array([d.tsn for d in self.directions], np.uint32)
        ssns = np.zeros((n, _Association.STREAMS), np.uint16)
        ip_ids = np.zeros(n, np.int64)
        ip_sums = np.array([d.ip_sum for d in self.directions], np.int64)
        crc_table = np.array(_CRC_BYTE, np.uint32)
        peers = np.array([d.peer for d in self.directions], np.int64)
        association = np.zeros(n, np.int64)
        for a, assoc in enumerate(self.associations):
            association[[d.index for d in assoc.dirs.values()]] = a
        with open(self.path, "wb") as f:
            f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET))
            for key in sorted(int(p.stem) for p in self._spool.glob("*.bin")):
                ts, seq, what, lengths, blob = self._load(key)
                offsets = np.zeros(len(lengths), np.int64)
                np.cumsum(lengths[:-1], out=offsets[1:])
                order = np.lexsort((seq, ts))
                what, lengths, ts_us = what[order], lengths[order], np.rint(ts[order] * 1e6).astype(np.int64)
                dirs, kinds = what >> 8, what & 3
                carry, fragments = self._pack(np.random.default_rng((self.seed, key)), ts_us, dirs, kinds, lengths,
                                              association)
                frames = len(order) + int(np.maximum(fragments - 1, 0).sum())
                out = np.empty(int(lengths.sum()) + _FRAME_OVERHEAD * frames, np.uint8)
                size = _frames(ts_us, dirs, (what >> 2) & 0x3F, kinds, offsets[order], lengths, blob, carry,
                               fragments, heads, vtags, ppids, tsns, ssns, ip_ids, ip_sums, crc_table, peers, out)
                f.write(out[:size].data)
                (self._spool / f"{key}.bin").unlink()
        self._spool.rmdir()

    def _pack(self, rng, ts_us, dirs, kinds, lengths, association) -> tuple[np.ndarray, np.ndarray]:
        """Which messages of a minute (in wire order) wait to share the next one's packet, and how many fragments
        each is split into: the ``carry`` and ``fragments`` of ``_frames``, drawn as ``packing`` says.

        A message waits only for the very next record of its association, sent by the same side: nothing of
        either side is held back past a reply, and the TSNs and SSNs stay in sending order. A message that
        waits is not waited for, and neither one is fragmented. TCP data segments pair the same way (two IPA
        messages in one segment) and are never split."""
        p, n = self.packing, len(ts_us)
        carry, fragments = np.full(n, -1, np.int64), np.ones(n, np.int64)
        data = kinds == DATA
        joins = data | ((kinds == SEGMENT) & (lengths > 0))
        padded = lengths + (-lengths % 4)
        by = np.argsort(association[dirs], kind="stable")
        held, then = by[:-1], by[1:]
        pair = ((dirs[held] == dirs[then]) & joins[held] & joins[then]
                & (ts_us[then] - ts_us[held] <= round(p.bundle_window_s * 1e6))
                & (padded[held] + 16 + padded[then] <= _MAX_DATA)
                & (rng.random(len(held)) < p.bundle_share))
        pair[1:] &= ~pair[:-1]
        carry[then[pair]] = held[pair]
        fragments[held[pair]] = 0
        parts = np.maximum(rng.integers(2, 4, n), -(-lengths // _MAX_DATA))
        split = (data & (fragments == 1) & (carry < 0) & (lengths >= parts)
                 & ((lengths > p.fragment_above) | (rng.random(n) < p.fragment_share)))
        fragments[split] = parts[split]
        return carry, fragments

    def __enter__(self):
        return self

    def __exit__(self, kind, *exc):
        if kind is None:
            self.close()
        else:  # the simulation failed: no capture, and no spool left behind
            shutil.rmtree(self._spool)


def _mac_for(ip: str) -> bytes:
    """A locally administered MAC derived from the address, so every host is stable across runs."""
    return b"\x02\x00" + socket.inet_aton(ip)


def _tag_for(ip: str, port: int) -> int:
    """A non-zero verification tag / initial TSN that is stable for one endpoint (RFC 9260 §5.3.1 wants it random)."""
    return crc32c(socket.inet_aton(ip) + port.to_bytes(2, "big")) or 1


class _Direction:
    """One direction of an SCTP association: what its packets' Ethernet/IPv4/SCTP headers hold (the writer keeps
    the counters), and its index in the writer."""

    def __init__(self, writer: PcapWriter, src_ip, dst_ip, src_port, dst_port, src_mac, dst_mac, ppid,
                 proto: int = PROTO_SCTP):
        self.eth = dst_mac + src_mac + b"\x08\x00"
        self.src, self.dst = socket.inet_aton(src_ip), socket.inet_aton(dst_ip)
        # RFC 791: version 4, IHL 5, DF, TTL 64, protocol 132 (6: TCP); only total length, ID and checksum vary.
        fixed = struct.unpack("!10H", struct.pack("!BBHHHBBH4s4s", 0x45, 0, 0, 0, 0x4000, 64, proto, 0,
                                                  self.src, self.dst))
        self.ip_sum = sum(fixed)
        self.ports = struct.pack("!HH", src_port, dst_port)
        self.own_tag = _tag_for(src_ip, src_port)
        self.peer_tag = 0          # the tag this side must put in its packets: the peer's Initiate Tag
        self.tsn = self.own_tag    # the initial TSN (TCP: the initial sequence number)
        self.ppid = ppid
        self.peer = -1             # TCP: the index of the other direction of the connection
        self.index = writer.direction(self)


def _chunk(kind: int, flags: int, body: bytes) -> bytes:
    """RFC 9260 §3.2: type, flags, length (without padding), value padded to 4 octets."""
    return struct.pack("!BBH", kind, flags, 4 + len(body)) + body + b"\x00" * (-len(body) % 4)


class _Association:
    """An SCTP association between a client (eNodeB, BSC: ``uplink``) and a server (MME, MSC), opened with the
    four-way handshake just before its first message on the wire."""

    A_RWND, STREAMS = 65535, 17

    def __init__(self, writer: PcapWriter, client_ip, server_ip, client_port, server_port, ppid,
                 client_mac=None, server_mac=None):
        cmac, smac = client_mac or _mac_for(client_ip), server_mac or _mac_for(server_ip)
        self.writer = writer
        up = _Direction(writer, client_ip, server_ip, client_port, server_port, cmac, smac, ppid)
        down = _Direction(writer, server_ip, client_ip, server_port, client_port, smac, cmac, ppid)
        up.peer_tag, down.peer_tag = down.own_tag, up.own_tag
        self.dirs = {True: up, False: down}
        self._index = {True: up.index, False: down.index}
        self.first_use = math.inf
        self.on_open = []          # (uplink, stream, payload) messages the upper layer sends first (ASP Up …)
        writer.associations.append(self)

    def open_at_first_use(self) -> None:
        """RFC 9260 §5.1: INIT, INIT ACK (with State Cookie), COOKIE ECHO, COOKIE ACK, then ``on_open``."""
        if self.first_use == math.inf:
            return
        ts, up, down, add = self.first_use, self.dirs[True], self.dirs[False], self.writer.add
        cookie = struct.pack("!II", up.own_tag, down.own_tag)
        init = struct.pack("!IIHHI", up.own_tag, self.A_RWND, self.STREAMS, self.STREAMS, up.tsn)
        add(ts, up.index, 0, CHUNKS_NO_TAG, _chunk(1, 0, init))
        init_ack = struct.pack("!IIHHI", down.own_tag, self.A_RWND, self.STREAMS, self.STREAMS, down.tsn)
        add(ts, down.index, 0, CHUNKS, _chunk(2, 0, init_ack + struct.pack("!HH", 7, 4 + len(cookie)) + cookie))
        add(ts, up.index, 0, CHUNKS, _chunk(10, 0, cookie))
        add(ts, down.index, 0, CHUNKS, _chunk(11, 0, b""))
        for uplink, stream, payload in self.on_open:
            add(ts, self.dirs[uplink].index, stream, DATA, payload)

    def send(self, ts: float, payload: bytes, uplink: bool, stream: int = 1) -> None:
        """The message in one DATA chunk of its own packet, unless the writer's packing bundles or fragments it."""
        if ts < self.first_use:
            self.first_use = ts
        self.writer.add(ts, self._index[uplink], stream, DATA, payload)


class _TcpConnection:
    """A TCP connection from a client (BSC: ``uplink``) to a server (MSC), opened with the three-way handshake
    (RFC 9293 §3.5: SYN, SYN-ACK, ACK) just before its first segment on the wire; every data segment is PSH|ACK
    and acknowledges everything the peer has sent. Looks to the writer like an ``_Association``."""

    def __init__(self, writer: PcapWriter, client_ip, server_ip, client_port, server_port,
                 client_mac=None, server_mac=None):
        cmac, smac = client_mac or _mac_for(client_ip), server_mac or _mac_for(server_ip)
        self.writer = writer
        up = _Direction(writer, client_ip, server_ip, client_port, server_port, cmac, smac, 0, PROTO_TCP)
        down = _Direction(writer, server_ip, client_ip, server_port, client_port, smac, cmac, 0, PROTO_TCP)
        up.peer, down.peer = down.index, up.index
        self.dirs = {True: up, False: down}
        self._index = {True: up.index, False: down.index}
        self.first_use = math.inf
        writer.associations.append(self)

    def open_at_first_use(self) -> None:
        if self.first_use == math.inf:
            return
        ts, add = self.first_use, self.writer.add
        add(ts, self._index[True], TCP_SYN, SEGMENT, b"")
        add(ts, self._index[False], TCP_SYN | TCP_ACK, SEGMENT, b"")
        add(ts, self._index[True], TCP_ACK, SEGMENT, b"")

    def send(self, ts: float, payload: bytes, uplink: bool) -> None:
        """The octets in a PSH|ACK segment of their own, unless the writer's packing puts two in one."""
        if ts < self.first_use:
            self.first_use = ts
        self.writer.add(ts, self._index[uplink], TCP_PSH | TCP_ACK, SEGMENT, payload)


class S1Link(_Association):
    """One eNodeB↔MME S1-MME association (TS 36.412: SCTP, PPID 18, MME port 36412); uplink = eNodeB→MME.
    ``send(ts, pdu, uplink)`` puts an S1AP PDU on stream 1."""

    def __init__(self, writer: PcapWriter, enb_ip: str, mme_ip: str, enb_port: int, mme_port: int = 36412,
                 enb_mac: bytes | None = None, mme_mac: bytes | None = None):
        super().__init__(writer, enb_ip, mme_ip, enb_port, mme_port, PPID_S1AP, enb_mac, mme_mac)


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


class _SccpLink:
    """The SCCP messages of the A interface (BSSAP, SSN 254), handed to the carrier's ``_send``; uplink = BSC→MSC.
    An SCCP address carries the point code only when it fits the 14-bit ITU format (otherwise it is routed on SSN
    alone)."""

    _bsc_address: bytes
    _msc_address: bytes

    def _send(self, ts: float, sccp: bytes, uplink: bool) -> None:
        raise NotImplementedError

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
        """Q.713 §4.5 Data Form 1: the BSSAP of an established connection, no segmenting; its one variable
        parameter's pointer is 1 (the next octet), as ``_with_pointers`` would write it."""
        self._send(ts, b"".join((bytes((SCCP_DT1,)), _ref(dst_ref), bytes((0, 1, len(bssap))), bssap)), uplink)

    def sccp_rlsd(self, ts: float, dst_ref: int, src_ref: int, uplink: bool, cause: int = 0) -> None:
        """Q.713 §4.7 Released, with release cause (§3.11; 0 = end user originated) and no optional part."""
        self._send(ts, bytes((SCCP_RLSD,)) + _ref(dst_ref) + _ref(src_ref) + bytes((cause, 0)), uplink)

    def sccp_rlc(self, ts: float, dst_ref: int, src_ref: int, uplink: bool) -> None:
        """Q.713 §4.8 Release Complete."""
        self._send(ts, bytes((SCCP_RLC,)) + _ref(dst_ref) + _ref(src_ref), uplink)


class M3uaLink(_SccpLink):
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
        # RFC 4666 §4.3.4: ASP Up / Ack, then ASP Active / Ack (traffic mode loadshare) on stream 0, once the
        # association is up.
        mode = _m3ua_param(0x000B, struct.pack("!I", 2))
        self._sctp.on_open = [(True, 0, _m3ua(3, 1, b"")), (False, 0, _m3ua(3, 4, b"")),
                              (True, 0, _m3ua(4, 1, mode + self._rc)), (False, 0, _m3ua(4, 3, mode + self._rc))]

    def _send(self, ts: float, sccp: bytes, uplink: bool) -> None:
        """M3UA DATA (class 1, type 1): routing context, Protocol Data (tag 0x0210: the MTP3 fields, then SCCP)."""
        n = 16 + len(sccp)  # Protocol Data TLV without padding
        pad = -n % 4
        self._sctp.send(ts, b"".join((struct.pack("!BBBBI", 1, 0, 1, 1, 8 + len(self._rc) + n + pad), self._rc,
                                      struct.pack("!HH", 0x0210, n), self._mtp3[uplink], sccp, b"\x00" * pad)),
                        uplink, 1)


IPA_SCCP_PORT = 5000   # SCCPlite on the MSC (one of capture.ipa.IPA_TCP_PORTS, and Wireshark's)
IPA_STREAM_SCCP = 0xFD


class IpaLink(_SccpLink):
    """BSC↔MSC over SCCPlite: the same SCCP messages as ``M3uaLink``, with no MTP3 or M3UA, each in an IPA message
    (2-octet big-endian length, stream 0xFD) over one TCP connection from the BSC to the MSC's port 5000."""

    def __init__(self, writer: PcapWriter, bsc_ip: str, msc_ip: str, bsc_pc: int, msc_pc: int,
                 bsc_port: int = 49152, msc_port: int = IPA_SCCP_PORT, bsc_mac: bytes | None = None,
                 msc_mac: bytes | None = None):
        self._tcp = _TcpConnection(writer, bsc_ip, msc_ip, bsc_port, msc_port, bsc_mac, msc_mac)
        self._bsc_address, self._msc_address = _sccp_address(bsc_pc, SSN_BSSAP), _sccp_address(msc_pc, SSN_BSSAP)

    def _send(self, ts: float, sccp: bytes, uplink: bool) -> None:
        self._tcp.send(ts, struct.pack("!HB", len(sccp), IPA_STREAM_SCCP) + sccp, uplink)

"""Capture files: classic libpcap and pcapng, read in large blocks.

libpcap (draft-ietf-opsawg-pcap §4 file header, §5 packet record): magic a1b2c3d4 (µs) or a1b23c4d (ns), written
in either byte order. pcapng (draft-ietf-opsawg-pcapng §4.1 Section Header Block, §4.2 Interface Description Block
with if_tsresol and if_tsoffset, §4.3 Enhanced Packet Block, §4.4 Simple Packet Block, Appendix A obsolete Packet
Block); every section has its own byte order and interfaces, and interfaces may have different link types.

A file yields ``(ts, linktype, data)`` per packet (``read_packets``), ``data`` a memoryview into the block just read
(no copy per packet), or the same packets as ``Frames`` columns over that block (``read_frames``, what the compiled
fast path of capture.stack reads): capture.fastpath indexes the records of a block in one loop. Damage ends the
file instead of raising: a last record cut short (a file still being written, a failed copy) counts
``pcap.truncated_record``; a record or block whose length is impossible counts ``pcap.bad_record`` (classic pcap
cannot resynchronise after it). Only a file that is not a capture at all raises ``Malformed``.

A file that starts with the gzip magic 1f 8b (RFC 1952 §2.3.1: how rotated captures are usually compressed) is
decompressed as it is read, whatever its name; a gzip stream cut short counts ``pcap.truncated_record`` like a
plain file cut short.
"""

import gzip
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from capture.errors import Anomalies, Malformed
from capture.fastpath import index_pcap, index_pcapng, seconds

BLOCK_SIZE = 1 << 22          # read 4 MiB at a time
MAX_RECORD = 1 << 18          # 262144: the largest packet Wireshark accepts in a capture file
MAX_BLOCK = 1 << 24           # a pcapng block larger than this (16 MiB) is taken for a damaged length

PCAP_MAGIC_US, PCAP_MAGIC_NS = 0xA1B2C3D4, 0xA1B23C4D
PCAPNG_SHB, PCAPNG_BYTE_ORDER_MAGIC = 0x0A0D0D0A, 0x1A2B3C4D
GZIP_MAGIC = b"\x1f\x8b"
# pcapng block types (§4, Appendix A); every other block type is skipped by its length.
BLOCK_IDB, BLOCK_PB, BLOCK_SPB, BLOCK_EPB = 1, 2, 3, 6
# Interface Description Block options (§4.2).
OPT_END, IF_TSRESOL, IF_TSOFFSET = 0, 9, 14

Packet = tuple[float, int, memoryview]

# pcapng structures per section byte order: block type and length; trailing length; EPB (interface, timestamp
# high and low, captured length); obsolete PB (interface, drops, timestamp high and low, captured length).
_BLOCK_HEADER = {e: struct.Struct(e + "II") for e in "<>"}
_BLOCK_TRAILER = {e: struct.Struct(e + "I") for e in "<>"}
_EPB = {e: struct.Struct(e + "IIII") for e in "<>"}
_PB = {e: struct.Struct(e + "HHIII") for e in "<>"}


def not_a_capture(path, why: str) -> Malformed:
    return Malformed("pcap.not_a_capture", f"{path}: not a pcap or pcapng capture ({why})")


def read_packets(path: str | Path, anomalies: Anomalies) -> Iterator[Packet]:
    """Every packet of one capture file (plain or gzip'd) in file order; damage is counted in ``anomalies``."""
    for frames in read_frames(path, anomalies):
        view = memoryview(frames.data)
        for start, length, ts, linktype in zip(frames.start.tolist(), frames.length.tolist(), frames.ts.tolist(),
                                               frames.linktype.tolist()):
            yield ts, linktype, view[start:start + length]


@dataclass
class Frames:
    """Consecutive packets of a file as columns: packet i is ``data[start[i]:start[i] + length[i]]``."""

    data: bytes
    start: np.ndarray     # int64
    length: np.ndarray    # int64
    ts: np.ndarray        # float64, epoch seconds
    linktype: np.ndarray  # int32

    def __len__(self) -> int:
        return len(self.start)


def read_frames(path: str | Path, anomalies: Anomalies) -> Iterator[Frames]:
    """The packets of one capture file (plain or gzip'd) as ``Frames`` blocks, in file order. Damage is counted
    in ``anomalies`` when the walk reaches it, after the block of the packets before it was yielded."""
    with open(path, "rb") as raw:
        compressed = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        if not compressed:
            yield from _packets(raw, path, anomalies)
            return
        with gzip.GzipFile(fileobj=raw) as f:
            stream = _Gunzip(f)
            before = anomalies["pcap.truncated_record"]
            yield from _packets(stream, path, anomalies)
            if stream.damaged and anomalies["pcap.truncated_record"] == before:  # cut at a record boundary
                anomalies["pcap.truncated_record"] += 1


class _Gunzip:
    """A gzip stream whose ``read`` returns what could be decompressed before damage instead of raising."""

    __slots__ = ("f", "damaged")

    def __init__(self, f):
        self.f, self.damaged = f, False

    def read(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n and not self.damaged:
            try:
                more = self.f.read1(n - len(out))
            except (EOFError, zlib.error, gzip.BadGzipFile):
                self.damaged = True
                break
            if not more:
                break
            out += more
        return bytes(out)


def _packets(f, path, anomalies: Anomalies) -> Iterator[Frames]:
    """The packets of one open capture stream, its format told by the magic of its first block."""
    head = f.read(24)
    if len(head) < 4:
        raise not_a_capture(path, "file too short")
    le_magic, be_magic = struct.unpack_from("<I", head)[0], struct.unpack_from(">I", head)[0]
    if le_magic == PCAPNG_SHB:
        yield from _pcapng(f, head, path, anomalies)
        return
    for endian, magic in (("<", le_magic), (">", be_magic)):
        if magic in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
            if len(head) < 24:
                raise not_a_capture(path, "file header cut short")
            linktype = struct.unpack_from(endian + "I", head, 20)[0] & 0xFFFF  # upper bits: FCS length
            per_second = 10 ** 6 if magic == PCAP_MAGIC_US else 10 ** 9
            yield from _pcap(f, endian, per_second, linktype, anomalies)
            return
    raise not_a_capture(path, f"magic 0x{be_magic:08x}")


class _Blocks:
    """A read buffer over a file: ``need(n)`` makes at least n bytes available from ``pos``; ``array`` is the
    buffer as NumPy octets for the indexers."""

    __slots__ = ("f", "buf", "view", "array", "pos")

    def __init__(self, f, initial: bytes = b""):
        self.f, self.buf, self.pos = f, initial, 0
        self.view, self.array = memoryview(initial), np.frombuffer(initial, np.uint8)

    def need(self, n: int) -> bool:
        while len(self.buf) - self.pos < n:
            more = self.f.read(max(BLOCK_SIZE, n - len(self.buf) + self.pos))
            if not more:
                return False
            self.buf = self.buf[self.pos:] + more
            self.view, self.array, self.pos = memoryview(self.buf), np.frombuffer(self.buf, np.uint8), 0
        return True

    def left(self) -> int:
        return len(self.buf) - self.pos


def _pcap(f, endian: str, per_second: int, linktype: int, anomalies: Anomalies) -> Iterator[Frames]:
    """Classic pcap records after the 24-octet file header: ts_sec, ts_frac, caplen, origlen, data."""
    record = struct.Struct(endian + "III")
    blocks = _Blocks(f)
    while blocks.need(16):
        start, length, ts, blocks.pos, bad = index_pcap(blocks.array, blocks.pos, endian == ">", per_second)
        if len(start):
            yield Frames(blocks.buf, start, length, ts, np.full(len(start), linktype, np.int32))
        if bad:
            anomalies["pcap.bad_record"] += 1
            return
        if not blocks.need(16):  # the buffer ended inside the record at pos: read on, or the file is cut
            break
        caplen = record.unpack_from(blocks.buf, blocks.pos)[2]
        if caplen <= MAX_RECORD and not blocks.need(16 + caplen):
            break
    if blocks.left():
        anomalies["pcap.truncated_record"] += 1


class _Interface:
    __slots__ = ("linktype", "snaplen", "per_second", "offset")

    def __init__(self, linktype: int, snaplen: int, per_second: int, offset: int):
        self.linktype, self.snaplen, self.per_second, self.offset = linktype, snaplen, per_second, offset


def _interface(body: memoryview, endian: str) -> _Interface:
    """IDB (§4.2): link type, reserved, snaplen, then options; if_tsresol is 10^-n, or 2^-n with bit 7 set."""
    linktype, _, snaplen = struct.unpack_from(endian + "HHI", body)
    per_second, offset, at = 10 ** 6, 0, 8
    while at + 4 <= len(body):
        code, length = struct.unpack_from(endian + "HH", body, at)
        if code == OPT_END or at + 4 + length > len(body):
            break
        value = body[at + 4:at + 4 + length]
        if code == IF_TSRESOL and length >= 1:
            # Units per second; beyond 64 bits (no real capture) held at the finest a signed 64-bit count has.
            per_second = min(2 ** (value[0] & 0x7F) if value[0] & 0x80 else 10 ** value[0], 10 ** 18)
        elif code == IF_TSOFFSET and length >= 8:
            offset = struct.unpack_from(endian + "q", value)[0]
        at += 4 + length + (-length % 4)
    return _Interface(linktype, snaplen, per_second, offset)


def _interface_columns(interfaces: list[_Interface]) -> tuple[np.ndarray, ...]:
    """A section's interfaces as the columns ``index_pcapng`` takes."""
    return (np.array([i.linktype for i in interfaces], np.int32), np.array([i.snaplen for i in interfaces], np.int64),
            np.array([i.per_second for i in interfaces], np.int64), np.array([i.offset for i in interfaces], np.int64))


def _byte_order(blocks: _Blocks) -> str | None:
    """The struct byte order an SHB's byte-order magic announces for its section (§4.1), None if neither."""
    return {PCAPNG_BYTE_ORDER_MAGIC: "<", 0x4D3C2B1A: ">"}.get(struct.unpack_from("<I", blocks.buf, blocks.pos + 8)[0])


def _one(blocks: _Blocks, start: int, length: int, ts: float, linktype: int) -> Frames:
    return Frames(blocks.buf, np.array([start], np.int64), np.array([length], np.int64), np.array([ts]),
                  np.array([linktype], np.int32))


def _pcapng(f, head: bytes, path, anomalies: Anomalies) -> Iterator[Frames]:
    """pcapng blocks: type, total length, body, total length again; the SHB sets the byte order of its section.

    ``index_pcapng`` takes the runs of packet blocks; the loop body reads the block it stopped at."""
    blocks = _Blocks(f, head)
    if not blocks.need(12) or _byte_order(blocks) is None:
        raise not_a_capture(path, "pcapng section header missing or cut short")
    endian, interfaces, last_ts = "<", [], 0.0
    columns = _interface_columns(interfaces)
    while blocks.need(12):
        start, length, ts, linktype, blocks.pos, last_ts = index_pcapng(blocks.array, blocks.pos, endian == ">",
                                                                        *columns, last_ts)
        if len(start):
            yield Frames(blocks.buf, start, length, ts, linktype)
        if not blocks.need(12):
            break
        buf, pos = blocks.buf, blocks.pos
        if struct.unpack_from("<I", buf, pos)[0] == PCAPNG_SHB:
            endian = _byte_order(blocks)
            if endian is None:
                anomalies["pcap.bad_record"] += 1
                return
            interfaces = []
            columns = _interface_columns(interfaces)
        kind, length = _BLOCK_HEADER[endian].unpack_from(buf, pos)
        if length < 12 or length % 4 or length > MAX_BLOCK:
            anomalies["pcap.bad_record"] += 1
            return
        if not blocks.need(length):
            break
        buf, pos = blocks.buf, blocks.pos
        blocks.pos = pos + length
        if _BLOCK_TRAILER[endian].unpack_from(buf, pos + length - 4)[0] != length:
            anomalies["pcap.bad_record"] += 1
            return
        body = blocks.view[pos + 8:pos + length - 4]
        if kind == BLOCK_EPB or kind == BLOCK_PB:
            if len(body) < 20:
                anomalies["pcap.bad_record"] += 1
                continue
            if kind == BLOCK_EPB:
                iface, high, low, caplen = _EPB[endian].unpack_from(body)
            else:
                iface, _, high, low, caplen = _PB[endian].unpack_from(body)
            if iface >= len(interfaces) or caplen > len(body) - 20:
                anomalies["pcap.bad_record"] += 1
                continue
            i = interfaces[iface]
            last_ts = seconds(np.uint64(high << 32 | low).astype(np.int64), i.per_second, i.offset)
            yield _one(blocks, pos + 28, caplen, last_ts, i.linktype)
        elif kind == BLOCK_SPB:
            if not interfaces or len(body) < 4:
                anomalies["pcap.bad_record"] += 1
                continue
            i = interfaces[0]
            caplen = min(struct.unpack_from(endian + "I", body)[0], len(body) - 4, i.snaplen or MAX_RECORD)
            # An SPB has no timestamp (§4.4): it inherits the previous packet's, so time stays monotonic.
            yield _one(blocks, pos + 12, caplen, last_ts, i.linktype)
        elif kind == BLOCK_IDB:
            if len(body) < 8:
                anomalies["pcap.bad_record"] += 1
                return
            interfaces.append(_interface(body, endian))
            columns = _interface_columns(interfaces)
    if blocks.left():
        anomalies["pcap.truncated_record"] += 1

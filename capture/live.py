"""Live capture: signaling payloads from a network interface, as the same ``PayloadBatch`` stream files give.

Two sources, both feeding one ``Stack`` for the whole run (so SCTP reassembly and SCCP connections span files and
batches), both stopped by a ``Stop`` (wall-clock duration, frame count, or a ``threading.Event``), both reporting
``CaptureStats`` with the kernel's drop counters:

- ``DumpcapSource``: runs ``dumpcap -i IFACE -f BPF -b filesize:KB -b files:N -w DIR/sigloc.pcapng`` (Wireshark's
  capture engine, with its own ring buffer in the kernel and on disk) and reads each ring file once dumpcap has
  moved on to the next (the newest one is still being written), and every remaining file after it stops, in
  blocks through the compiled fast path as ``read_payloads`` reads a file. The
  counters are the ones dumpcap prints on exit ("Packets captured", "Packets received/dropped on interface ...").
  The ring keeps ``files`` files: a file deleted before it was read counts ``live.ring_file_lost``.
- ``PacketSocketSource``: an AF_PACKET / SOCK_RAW / ETH_P_ALL socket with a TPACKET_V3 receive ring: the kernel
  writes frames into blocks of a memory-mapped ring and hands a block over when it is full or ``RETIRE_MS`` old;
  each block is copied out, given back, and read as one block of frames through the compiled fast path (no BPF
  filter: the compiled walk drops what is not SCTP or TCP). The counters are PACKET_STATISTICS (packets the
  kernel queued to the ring, and dropped because no block was free). As libpcap does, a loopback interface's
  outgoing copy of each packet is skipped, so every packet is seen once. VLAN tags the kernel strips on receive
  are not put back (nothing sigloc reads is in them).

docs/capture.md says how to run either as an unprivileged service user, and how to size the ring.
"""

import mmap
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from capture.fastpath import index_tpacket3
from capture.link import LINKTYPE_ETHERNET, LINKTYPE_RAW
from capture.payloads import PayloadBatch
from capture.pcap import Frames, read_frames
from capture.sccp import CONNECTION_IDLE
from capture.stack import Stack

DUMPCAP = shutil.which("dumpcap") or "/usr/bin/dumpcap"
# Every transport sigloc reads. libpcap's "sctp" tests the protocol field of the fixed IP header, so it matches IPv4
# fragments but not SCTP behind IPv6 extension headers (add "or ip6" where those occur).
DEFAULT_BPF = "sctp or tcp"
RING_FILE_KB, RING_FILES = 16384, 64  # dumpcap -b filesize (kB, 1000 octets) and -b files
POLL = 0.05                          # seconds between looks at the ring directory / socket timeouts
FLUSH = 1.0                          # seconds: a live source hands over what it has at least this often
STOP_GRACE = 5.0                     # seconds dumpcap gets to exit after SIGTERM before it is killed

# linux/if_packet.h and linux/if_ether.h
ETH_P_ALL, SOL_PACKET, PACKET_OUTGOING = 0x0003, 263, 4
PACKET_RX_RING, PACKET_STATISTICS, PACKET_VERSION, TPACKET_V3 = 5, 6, 10, 2
TP_STATUS_KERNEL, TP_STATUS_USER = 0, 1
# struct tpacket_req3: block size and count, frame size and count, block retire timeout (ms), private size, features.
_REQ3 = struct.Struct("=7I")
# struct tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1: block_status, num_pkts,
# offset_to_first_pkt, blk_len.
_BLOCK_STATUS, _BLOCK_HEADER = struct.Struct("=I"), struct.Struct("=III")
# struct tpacket_stats_v3: packets, drops, times the ring froze for want of a free block.
_STATS_V3 = struct.Struct("=III")
# linux/if_arp.h device types to link types: Ethernet and loopback carry an Ethernet header; tun/wireguard none.
ARPHRD_LINKTYPES = {1: LINKTYPE_ETHERNET, 772: LINKTYPE_ETHERNET, 65534: LINKTYPE_RAW}
ARPHRD_LOOPBACK = 772
RING_BLOCK, RING_BYTES = 1 << 20, 64 << 20  # a block is handed over whole: 64 of 1 MiB hold a burst while we decode
RING_FRAME = 2048                           # tp_frame_size: for TPACKET_V3 only a size the kernel checks
RETIRE_MS = 50                              # a block that is not full is handed over after this long

_DUMPCAP_CAPTURED = re.compile(r"^Packets captured: (\d+)")
_DUMPCAP_RECEIVED = re.compile(r"^Packets received/dropped on interface '.*': (\d+)/(\d+) \(([^)]*)\)")
_RING_NUMBER = re.compile(r"_(\d+)_\d+\.pcapng$")


@dataclass
class Stop:
    """When a live source stops: after ``duration`` seconds, ``packets`` frames, or once ``event`` is set."""

    duration: float | None = None
    packets: int | None = None
    event: threading.Event | None = None

    def reached(self, started: float, frames: int) -> bool:
        return ((self.duration is not None and time.monotonic() - started >= self.duration)
                or (self.packets is not None and frames >= self.packets)
                or (self.event is not None and self.event.is_set()))


@dataclass
class CaptureStats:
    """What a live source saw; the kernel counters are documented in docs/capture.md."""

    frames: int = 0       # frames handed to the stack
    received: int = 0     # packets the capture engine got from the kernel (dumpcap) / the kernel queued (socket)
    dropped: int = 0      # packets the kernel dropped because the capture could not keep up
    detail: dict[str, int] = field(default_factory=dict)  # dumpcap's pcap/dumpcap/flushed/ps_ifdrop split


class _Live:
    """What both sources share: the stack, the stop condition, batching by frames and by time."""

    def __init__(self, stop: Stop, mtp3_standard: str, connection_idle: float, batch_frames: int):
        self.stop = stop
        self.stack = Stack(mtp3_standard, connection_idle)
        self.batch_frames = batch_frames
        self.stats = CaptureStats()
        self.ready = threading.Event()  # set once the capture is running: traffic from now on is seen
        self._flushed = time.monotonic()

    def _feed(self, blocks: Iterable[Frames]) -> Iterator[PayloadBatch]:
        """Feed blocks of frames through the compiled fast path, numbering on; a batch every ``batch_frames``."""
        for fed in self.stack.blocks(blocks, self.stats.frames, self.batch_frames):
            self.stats.frames = fed
            if fed % self.batch_frames == 0:
                yield self._batch()

    def _due(self) -> PayloadBatch | None:
        if time.monotonic() - self._flushed >= FLUSH:
            return self._batch()
        return None

    def _batch(self) -> PayloadBatch:
        self._flushed = time.monotonic()
        return self.stack.batch()

    def _last(self) -> PayloadBatch:
        self.stack.finish()
        return self._batch()


class DumpcapSource(_Live):
    """Payloads from dumpcap's ring buffer in ``directory`` (created if missing; its old ring files are removed)."""

    def __init__(self, interface: str, directory, bpf: str = DEFAULT_BPF, filesize_kb: int = RING_FILE_KB,
                 files: int = RING_FILES, stop: Stop | None = None, mtp3_standard: str = "auto",
                 connection_idle: float = CONNECTION_IDLE, batch_frames: int = 65536, dumpcap: str = DUMPCAP):
        super().__init__(stop or Stop(), mtp3_standard, connection_idle, batch_frames)
        self.directory = Path(directory)
        self.command = [dumpcap, "-i", interface, "-f", bpf, "-b", f"filesize:{filesize_kb}", "-b", f"files:{files}",
                        "-w", str(self.directory / "sigloc.pcapng")]
        if self.stop.packets is not None:
            self.command += ["-c", str(self.stop.packets)]
        self.stderr: list[str] = []

    def __iter__(self) -> Iterator[PayloadBatch]:
        self.directory.mkdir(parents=True, exist_ok=True)
        for old in self.directory.glob("sigloc_*.pcapng"):
            old.unlink()
        proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        reader = threading.Thread(target=self._read_stderr, args=(proc,), daemon=True)
        reader.start()
        started, done, last_number = time.monotonic(), set(), 0
        try:
            while proc.poll() is None and not self.stop.reached(started, self.stats.frames):
                ring = self._ring()
                for path in ring[:-1]:  # dumpcap has moved past every file but the newest
                    if path not in done:
                        done.add(path)
                        last_number = yield from self._file(path, last_number)
                batch = self._due()
                if batch is not None:
                    yield batch
                time.sleep(POLL)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(STOP_GRACE)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            reader.join(STOP_GRACE)
        for path in self._ring():
            if path not in done:
                last_number = yield from self._file(path, last_number)
        self._parse_stats()
        if proc.returncode not in (0, -signal.SIGTERM) and not self.stats.frames:
            raise RuntimeError(f"dumpcap failed ({proc.returncode}): {' '.join(self.stderr).strip()}")
        yield self._last()

    def _ring(self) -> list[Path]:
        """The ring files present, oldest first (by dumpcap's file number, which never wraps)."""
        numbered = ((_RING_NUMBER.search(p.name), p) for p in self.directory.glob("sigloc_*.pcapng"))
        return [p for _, p in sorted((int(m.group(1)), p) for m, p in numbered if m)]

    def _file(self, path: Path, last_number: int):
        """Feed one ring file; returns its ring number, counting the files dumpcap deleted before they were read."""
        number = int(_RING_NUMBER.search(path.name).group(1))
        if number > last_number + 1:
            self.stack.anomalies["live.ring_file_lost"] += number - last_number - 1
        try:  # a finished ring file is read like any capture file: in blocks, through the compiled fast path
            yield from self._feed(read_frames(path, self.stack.anomalies))
        except FileNotFoundError:
            self.stack.anomalies["live.ring_file_lost"] += 1
        return number

    def _read_stderr(self, proc: subprocess.Popen) -> None:
        for line in proc.stderr:
            self.stderr.append(line)
            if line.startswith(("Capturing on", "File:")):
                self.ready.set()
        self.ready.set()

    def _parse_stats(self) -> None:
        for line in self.stderr:
            if m := _DUMPCAP_CAPTURED.match(line):
                self.stats.detail["captured"] = int(m.group(1))
            elif m := _DUMPCAP_RECEIVED.match(line):
                self.stats.received += int(m.group(1))
                self.stats.dropped += int(m.group(2))
                for part in m.group(3).split("/"):
                    name, _, value = part.partition(":")
                    if value.isdigit():
                        self.stats.detail[name] = self.stats.detail.get(name, 0) + int(value)


class PacketSocketSource(_Live):
    """Payloads from an AF_PACKET TPACKET_V3 ring on ``interface`` (needs CAP_NET_RAW), ``ring_bytes`` in blocks
    of ``block_bytes`` (a multiple of the page size)."""

    def __init__(self, interface: str, stop: Stop | None = None, mtp3_standard: str = "auto",
                 connection_idle: float = CONNECTION_IDLE, batch_frames: int = 65536, ring_bytes: int = RING_BYTES,
                 block_bytes: int = RING_BLOCK):
        super().__init__(stop or Stop(), mtp3_standard, connection_idle, batch_frames)
        self.interface, self.block_bytes = interface, block_bytes
        self.blocks = max(1, ring_bytes // block_bytes)

    def __iter__(self) -> Iterator[PayloadBatch]:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        ring = None
        try:
            sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
            frames = self.block_bytes // RING_FRAME * self.blocks
            sock.setsockopt(SOL_PACKET, PACKET_RX_RING, _REQ3.pack(self.block_bytes, self.blocks, RING_FRAME, frames,
                                                                   RETIRE_MS, 0, 0))
            ring = mmap.mmap(sock.fileno(), self.block_bytes * self.blocks)
            sock.bind((self.interface, 0))
            self._statistics(sock)  # reading resets the counters: start from the bind
            self.ready.set()
            poller = select.poll()
            poller.register(sock, select.POLLIN | select.POLLERR)
            started, block = time.monotonic(), 0
            while not self.stop.reached(started, self.stats.frames):
                at = block * self.block_bytes
                if _BLOCK_STATUS.unpack_from(ring, at + 8)[0] & TP_STATUS_USER:
                    yield from self._feed([self._frames(ring, at)])
                    block = (block + 1) % self.blocks
                else:
                    poller.poll(POLL * 1000)
                batch = self._due()
                if batch is not None:
                    yield batch
            self._statistics(sock)
        finally:
            if ring is not None:
                ring.close()
            sock.close()
        yield self._last()

    def _frames(self, ring: mmap.mmap, at: int) -> Frames:
        """The frames of the ring block at ``at``, copied out; the block goes back to the kernel at once."""
        count, first, used = _BLOCK_HEADER.unpack_from(ring, at + 12)
        data = ring[at:at + min(used or self.block_bytes, self.block_bytes)]
        _BLOCK_STATUS.pack_into(ring, at + 8, TP_STATUS_KERNEL)
        start, length, ts, hatype, pkttype = index_tpacket3(np.frombuffer(data, np.uint8), first, count)
        linktype = np.full(len(start), -1, np.int32)
        for device, link in ARPHRD_LINKTYPES.items():
            linktype[hatype == device] = link
        keep = ~((pkttype == PACKET_OUTGOING) & (hatype == ARPHRD_LOOPBACK))
        if unsupported := int(np.count_nonzero(keep & (linktype < 0))):
            self.stack.anomalies["live.unsupported_device_type"] += unsupported
        keep &= linktype >= 0
        if self.stop.packets is not None:  # the count stops within a block, at the packet it names
            keep &= np.cumsum(keep) <= self.stop.packets - self.stats.frames
        return Frames(data, start[keep], length[keep], ts[keep], linktype[keep])

    def _statistics(self, sock: socket.socket) -> None:
        """struct tpacket_stats_v3: packets queued to the ring, drops and ring freezes, all since the last read."""
        packets, drops, freezes = _STATS_V3.unpack(sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS_V3.size))
        if self.ready.is_set():
            self.stats.received += packets
            self.stats.dropped += drops
            self.stats.detail["ring_frozen"] = self.stats.detail.get("ring_frozen", 0) + freezes

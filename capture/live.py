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
- ``PacketSocketSource``: an AF_PACKET / SOCK_RAW / ETH_P_ALL socket read with plain ``recvfrom`` (no TPACKET_V3
  mmap ring, no BPF filter: the stack drops what is not SCTP or TCP after one header look). The counters are
  PACKET_STATISTICS (packets the kernel queued to the socket, and dropped because its buffer was full). As
  libpcap does, a loopback interface's outgoing copy of each packet is skipped, so every packet is seen once.

docs/capture.md says how to run either as an unprivileged service user, and how to size the ring.
"""

import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from capture.link import LINKTYPE_ETHERNET, LINKTYPE_RAW
from capture.payloads import PayloadBatch
from capture.pcap import read_frames
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
ETH_P_ALL, SOL_PACKET, PACKET_STATISTICS, PACKET_OUTGOING = 0x0003, 263, 6, 4
SO_RCVBUFFORCE = 33                  # asm-generic/socket.h: SO_RCVBUF beyond rmem_max, with CAP_NET_ADMIN
# linux/if_arp.h device types to link types: Ethernet and loopback carry an Ethernet header; tun/wireguard none.
ARPHRD_LINKTYPES = {1: LINKTYPE_ETHERNET, 772: LINKTYPE_ETHERNET, 65534: LINKTYPE_RAW}
ARPHRD_LOOPBACK = 772
SOCKET_BUFFER = 64 << 20
MAX_FRAME = 65536 + 64

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

    def _frame(self, ts: float, linktype: int, data: memoryview) -> PayloadBatch | None:
        """Feed one frame; a batch when one is due (every ``batch_frames`` frames or ``FLUSH`` seconds)."""
        self.stats.frames += 1
        self.stack.frame(self.stats.frames, ts, linktype, data)
        if self.stats.frames % self.batch_frames == 0:
            return self._batch()
        return None

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
            for fed in self.stack.blocks(read_frames(path, self.stack.anomalies), self.stats.frames,
                                         self.batch_frames):
                self.stats.frames = fed
                if fed % self.batch_frames == 0:
                    yield self._batch()
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
    """Payloads from an AF_PACKET socket on ``interface`` (needs CAP_NET_RAW)."""

    def __init__(self, interface: str, stop: Stop | None = None, mtp3_standard: str = "auto",
                 connection_idle: float = CONNECTION_IDLE, batch_frames: int = 65536,
                 buffer_bytes: int = SOCKET_BUFFER):
        super().__init__(stop or Stop(), mtp3_standard, connection_idle, batch_frames)
        self.interface, self.buffer_bytes = interface, buffer_bytes

    def __iter__(self) -> Iterator[PayloadBatch]:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            try:  # past net.core.rmem_max where allowed: a burst must not overflow the socket while we decode
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, self.buffer_bytes)
            except PermissionError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.buffer_bytes)
            sock.bind((self.interface, 0))
            sock.settimeout(POLL)
            self._statistics(sock)  # reading resets the counters: start from the bind
            self.ready.set()
            started = time.monotonic()
            while not self.stop.reached(started, self.stats.frames):
                try:
                    data, address = sock.recvfrom(MAX_FRAME)
                except TimeoutError:
                    data = None
                if data is not None:
                    _, _, pkttype, hatype, _ = address
                    if pkttype == PACKET_OUTGOING and hatype == ARPHRD_LOOPBACK:
                        continue
                    linktype = ARPHRD_LINKTYPES.get(hatype)
                    if linktype is None:
                        self.stack.anomalies["live.unsupported_device_type"] += 1
                        continue
                    batch = self._frame(time.time(), linktype, memoryview(data))
                    if batch is not None:
                        yield batch
                batch = self._due()
                if batch is not None:
                    yield batch
            self._statistics(sock)
        finally:
            sock.close()
        yield self._last()

    def _statistics(self, sock: socket.socket) -> None:
        """struct tpacket_stats: packets queued to the socket and drops, both since the last read."""
        packets, drops = struct.unpack("II", sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
        if self.ready.is_set():
            self.stats.received += packets
            self.stats.dropped += drops

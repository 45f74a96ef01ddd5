"""Live capture (capture/live.py) on the loopback interface, against read_payloads on the same frames from a file.

A small simulated capture is replayed onto ``lo`` through an AF_PACKET socket (Ethernet frames, addresses of the
simulated network: the kernel loops them back to the capture and then drops them, nothing leaves the host) while a
live source captures; every payload must arrive, in order, with the same SCCP connections. Each test stops by
itself: the sources stop on an event set after the replay, and the consumer is joined with a timeout.
"""

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

import pytest

from capture.errors import Anomalies
from capture.live import DUMPCAP, DumpcapSource, PacketSocketSource, Stop
from capture.pcap import read_packets
from capture.stack import read_payloads
from decoders.decode import decode_file
from packets import write_pcapng

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="capturing on lo needs root (CAP_NET_RAW)")

DEADLINE = 20.0  # seconds a capture may take in all before the test fails


@pytest.fixture(scope="module")
def replay(tmp_path_factory):
    """(capture file, its frames): 20 subscribers for an hour, about 460 S1AP and M3UA frames."""
    from simulator.scenario import simulate
    out = tmp_path_factory.mktemp("live")
    info = simulate(out, subscribers=20, hours=1.0, seed=3)
    path = f"{info['dir']}/capture.pcap"
    packets = list(read_packets(path, Anomalies()))
    # Ring files are pcapng read by the compiled path, S1AP decoded by the compiled pass: compile both here (Numba
    # caches them on disk), so that the deadlines below time the capture, not a first compilation in the
    # `sigloc capture` subprocess.
    write_pcapng(out / "warm.pcapng", [(ts, data) for ts, _, data in packets[:50]])
    list(decode_file(out / "warm.pcapng"))
    return path, [bytes(data) for _, _, data in packets]


def _rows(batches) -> list[tuple]:
    return [(int(b.proto[i]), int(b.sccp_type[i]), int(b.conn[i]), b.payload(i)) for b in batches
            for i in range(len(b))]


def _send(frames: list[bytes]) -> None:
    """Put the frames on lo, a burst of 50 at a time so the capture keeps up."""
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as out:
        out.bind(("lo", 0))
        for i, frame in enumerate(frames):
            out.send(frame)
            if i % 50 == 49:
                time.sleep(0.005)


def _capture_while_replaying(source, frames, stop: threading.Event) -> list:
    batches, failed = [], []

    def consume():
        try:
            batches.extend(source)
        except Exception as err:  # surfaced in the test thread below
            failed.append(err)

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    assert source.ready.wait(DEADLINE / 2), "the capture did not start"
    time.sleep(0.3)  # dumpcap announces the interface just before its filter is attached
    _send(frames)
    time.sleep(0.5)
    stop.set()
    consumer.join(DEADLINE)
    assert not consumer.is_alive(), "the source did not stop"
    assert not failed, failed
    return batches


def test_packet_socket_source_sees_every_payload(replay):
    path, frames = replay
    stop = threading.Event()
    source = PacketSocketSource("lo", stop=Stop(event=stop, duration=DEADLINE), batch_frames=100)
    batches = _capture_while_replaying(source, frames, stop)
    expected = _rows(read_payloads(path))
    assert len(expected) > 200
    assert _rows(batches) == expected
    assert len(batches) > 2  # batched by frame count while running, not only at the end
    assert source.stats.frames >= len(frames) and source.stats.dropped == 0
    assert source.stats.received >= len(frames)  # the kernel counts lo's outgoing copies too


def test_packet_ring_stops_at_the_packet_count_within_a_block(replay):
    path, frames = replay
    stop = threading.Event()
    source = PacketSocketSource("lo", stop=Stop(packets=100, event=stop, duration=DEADLINE))
    batches = _capture_while_replaying(source, frames, stop)
    assert source.stats.frames == 100
    assert _rows(batches) == _rows([next(iter(read_payloads(path, batch_frames=100)))])  # frames 1-100


def test_packet_ring_counts_what_it_had_no_room_for(replay):
    """A ring of two 8 KiB blocks that nobody drains while the replay runs: every frame is either read or counted
    as dropped by the kernel."""
    _, frames = replay
    stop = threading.Event()
    source = PacketSocketSource("lo", stop=Stop(event=stop, duration=DEADLINE), batch_frames=10 ** 6,
                                ring_bytes=2 * 8192, block_bytes=8192)
    batches = iter(source)
    first = next(batches)  # the ring is up; the time-due batch, and then nobody reads the ring
    assert source.ready.is_set() and not len(first)
    _send(frames)
    time.sleep(0.3)
    stop.set()
    list(batches)
    assert source.stats.dropped > 0 and source.stats.detail["ring_frozen"] > 0
    assert source.stats.frames + source.stats.dropped >= len(frames)
    assert source.stats.frames < len(frames)


@pytest.mark.skipif(DUMPCAP is None or not os.path.exists(DUMPCAP), reason="dumpcap (wireshark-common) missing")
def test_dumpcap_ring_source_reads_every_file_and_the_drop_counters(replay, tmp_path):
    path, frames = replay
    stop = threading.Event()
    ring = tmp_path / "ring"
    source = DumpcapSource("lo", ring, filesize_kb=20, files=1000, stop=Stop(event=stop, duration=DEADLINE))
    batches = _capture_while_replaying(source, frames, stop)
    assert len(list(ring.glob("sigloc_*.pcapng"))) > 3  # the ring rotated, and every file was read
    assert _rows(batches) == _rows(read_payloads(path))
    assert source.stats.detail["captured"] == source.stats.frames == len(frames)
    assert source.stats.received == len(frames) and source.stats.dropped == 0
    assert not sum((b.anomalies for b in batches), Anomalies())


def test_stop_by_packet_count_and_duration(replay, tmp_path):
    path, frames = replay
    started = time.monotonic()
    assert list(PacketSocketSource("lo", stop=Stop(duration=0.3)))[-1] is not None
    assert 0.3 <= time.monotonic() - started < 3.0
    stop = threading.Event()
    source = DumpcapSource("lo", tmp_path / "ring", stop=Stop(packets=100, event=stop, duration=DEADLINE))
    batches = _capture_while_replaying(source, frames, stop)
    assert source.stats.frames == 100 == source.stats.detail["captured"]
    first = [b for b in read_payloads(path, batch_frames=100)][0]  # frames 1-100
    assert _rows(batches) == _rows([first])


@pytest.mark.skipif(DUMPCAP is None or not os.path.exists(DUMPCAP), reason="dumpcap (wireshark-common) missing")
def test_sigloc_capture_command_decodes_live_traffic(replay, tmp_path):
    """`sigloc capture lo` as an engineer runs it: the records equal `sigloc decode` of the replayed file."""
    path, frames = replay
    out = tmp_path / "live.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", "from appliance.cli import main; main()", "capture", "lo",
                             "--ring", str(tmp_path / "ring"), "--duration", "6", "-o", str(out)],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + DEADLINE / 2
    while not list((tmp_path / "ring").glob("sigloc_*.pcapng")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the file exists just before dumpcap attaches its filter
    _send(frames)
    _, stderr = proc.communicate(timeout=DEADLINE)
    assert proc.returncode == 0, stderr
    got = [(r["proto"], r["msg"], r.get("imsi")) for r in map(json.loads, out.read_text().splitlines())]
    want = [(r["proto"], r["msg"], r["imsi"]) for t in decode_file(path) for r in t.to_pylist()]
    assert got == want and len(want) > 200
    captured = re.search(r"captured (\d+) frames on lo \(kernel: \d+ received, (\d+) dropped\)", stderr)
    assert captured and int(captured.group(1)) >= len(frames) and captured.group(2) == "0", stderr

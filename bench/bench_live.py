"""Live capture on the loopback interface: the AF_PACKET ring source and the dumpcap ring source, same replay.

    sudo .venv/bin/python bench/bench_live.py [CAPTURE] [--pps N]   # default: the reference city, at full speed

A sender process puts the capture's frames on ``lo`` (AF_PACKET, as fast as it can or at ``--pps``) while a
source captures; the kernel loops each frame back to the capture. Printed per source: frames sent, captured and
dropped (the kernel's counters), the send rate, how long after the last frame the last payload was out (the
dumpcap source reads its newest ring file when dumpcap starts the next one or stops, so its figure includes the
``IDLE_S`` wait before the stop), and whether the payloads equal ``read_payloads`` of the file. Needs root
(CAP_NET_RAW).
"""

import multiprocessing
import os
import socket
import threading
import time

from common import captures, parser  # puts the project on sys.path

from capture.errors import Anomalies  # noqa: E402
from capture.live import DUMPCAP, DumpcapSource, PacketSocketSource, Stop  # noqa: E402
from capture.pcap import read_packets  # noqa: E402
from capture.stack import read_payloads  # noqa: E402

IDLE_S = 2.0  # a source that takes no frame for this long has all it will get before it stops


def _send(path: str, pps: float, started) -> None:
    frames = [bytes(data) for _, _, data in read_packets(path, Anomalies())]
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as out:
        out.bind(("lo", 0))
        started.set()
        t0 = time.perf_counter()
        for i, frame in enumerate(frames):
            out.send(frame)
            if pps and i % 100 == 99:
                ahead = t0 + (i + 1) / pps - time.perf_counter()
                if ahead > 0:
                    time.sleep(ahead)


def _rows(batches) -> list[tuple]:
    return [(int(b.proto[i]), int(b.conn[i]), b.payload(i)) for b in batches for i in range(len(b))]


def run(source, path: str, pps: float, frames: int) -> dict:
    stop, batches, done = threading.Event(), [], []
    source.stop = Stop(event=stop, duration=600)

    def consume():
        for batch in source:
            batches.append(batch)
            done.append(time.perf_counter())

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    source.ready.wait(30)
    time.sleep(0.5)  # dumpcap attaches its filter just after it announces the interface
    started = multiprocessing.Event()
    sender = multiprocessing.Process(target=_send, args=(path, pps, started))
    sender.start()
    started.wait(60)
    t0 = time.perf_counter()
    sender.join()
    sent_s = time.perf_counter() - t0
    seen, idle_since = -1, time.perf_counter()
    while source.stats.frames < frames and time.perf_counter() - idle_since < IDLE_S:
        if source.stats.frames != seen:
            seen, idle_since = source.stats.frames, time.perf_counter()
        time.sleep(0.05)
    stop.set()
    consumer.join(60)
    last = max((t for t, b in zip(done, batches) if len(b)), default=t0)
    return {"sent_s": sent_s, "after_s": max(0.0, last - t0 - sent_s), "rows": _rows(batches),
            "frames": source.stats.frames, "dropped": source.stats.dropped}


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--pps", type=float, default=0.0, help="send rate, frames/s (0: as fast as the sender goes)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_live.py captures on lo: run it as root (CAP_NET_RAW)")
    path = str(captures(args)[0])
    frames = sum(1 for _ in read_packets(path, Anomalies()))
    want = _rows(read_payloads(path))
    sources = {"AF_PACKET ring (PacketSocketSource)": lambda: PacketSocketSource("lo")}
    if DUMPCAP and os.path.exists(DUMPCAP):
        ring = f"/tmp/sigloc-bench-live-{os.getpid()}"
        sources["dumpcap ring (DumpcapSource)"] = lambda: DumpcapSource("lo", ring, filesize_kb=4096, files=1000)
    print(f"{frames:,} frames of {path}, {len(want):,} payloads\n")
    print("| source | sent frames/s | captured | dropped | last payload after the last frame | payloads equal |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, make in sources.items():
        r = run(make(), path, args.pps, frames)
        print(f"| {name} | {frames / r['sent_s']:,.0f} | {r['frames']:,} | {r['dropped']:,} | {r['after_s']:.2f} s | "
              f"{'yes' if r['rows'] == want else 'NO'} |")


if __name__ == "__main__":
    main()

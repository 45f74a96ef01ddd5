"""Fuzzing the transport stack: ≥ 100 k mutated and truncated packets through ``read_payloads``, both paths.

    .venv/bin/python bench/bench_fuzz.py [CAPTURE ...] [--packets N]   # default: ../shared/pcaps + a simulated city

Every packet of the sources (the shared captures, and a window of the city per round) is mutated once per round:
bit flips, byte overwrites, truncation, or a length field set to an edge value (IPv4 total / IPv6 payload length,
SCTP chunk length, M3UA message and Protocol Data lengths, SCCP pointers; found with capture.link and the compiled
pre-pass). The mutants keep their order and timestamps, so SCTP, IP and SCCP state builds up as on a real link, and
are written as classic pcap, one file per link type. Each file goes through ``read_payloads`` (the compiled fast
path) and ``read_payloads(fast=False)`` (per frame).

Fails (exit status 1) on any exception or where the two paths' batches differ; prints the packets rejected, counted
by reason (capture.errors counters of the batches), and packets/s of each path. tests/test_capture.py keeps a smaller
hypothesis run in CI.
"""

import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from common import ROOT, captures, parser  # puts the project on sys.path

sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402
from packets import write_pcap  # noqa: E402

from capture.errors import Anomalies, DecodeError  # noqa: E402
from capture.fastpath import Scan  # noqa: E402
from capture.link import ip_start  # noqa: E402
from capture.pcap import read_frames  # noqa: E402
from capture.stack import read_payloads  # noqa: E402

SHARED = ROOT.parent / "shared" / "pcaps"
CITY_WINDOW = 40000  # city frames mutated per round
COLUMNS = ("frame", "ts", "proto", "assoc", "src", "dst", "conn", "sccp_type", "offset", "length")
EDGES = (0, 1, 3, 4, 7, 8, 0xFF, 0xFFFF)


def packets(path: Path) -> list[tuple[float, int, bytes, list[tuple[int, int]]]]:
    """(ts, link type, frame, length fields as (offset, size)) of every record of a capture."""
    out = []
    for frames in read_frames(path, Anomalies()):
        scan = Scan(frames)
        fields = defaultdict(list)
        for f, start, user in zip(scan.c_frame.tolist(), scan.c_start.tolist(),
                                  np.where(scan.c_opc >= 0, scan.c_user, -1).tolist()):
            at = start - int(frames.start[f])
            fields[f] += [(at - 14, 2), (at + 4, 4)]  # the DATA chunk's length; the M3UA message length
            if user >= 0:
                user -= int(frames.start[f])
                fields[f] += [(user - 14, 2), (user + 1, 1), (user + 2, 1), (user + 3, 1)]  # PD length, pointers
        for f in range(len(frames)):
            start, n = int(frames.start[f]), int(frames.length[f])
            data = bytes(frames.data[start:start + n])
            own = fields.get(f, [])
            try:
                ip = ip_start(int(frames.linktype[f]), memoryview(data))
            except DecodeError:
                ip = None
            if ip is not None and ip < n:
                own = [(ip + 2, 2) if data[ip] >> 4 == 4 else (ip + 4, 2)] + own
            out.append((float(frames.ts[f]), int(frames.linktype[f]), data, own))
    return out


def mutate(rng: random.Random, data: bytes, fields: list[tuple[int, int]]) -> bytes:
    """One mutant: bit flips, byte overwrites, a cut, or a length field set to an edge value."""
    out = bytearray(data)
    if not out:
        return bytes(out)
    kind = rng.randrange(4)
    if kind == 0:
        for _ in range(rng.randint(1, 4)):
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    elif kind == 1:
        for _ in range(rng.randint(1, 4)):
            out[rng.randrange(len(out))] = rng.randrange(256)
    elif kind == 2:
        del out[rng.randrange(len(out)):]
    else:
        fields = [(at, size) for at, size in fields if 0 <= at and at + size <= len(out)]
        at, size = rng.choice(fields) if fields else (rng.randrange(len(out)), 1)
        old = int.from_bytes(out[at:at + size], "big")
        value = rng.choice(EDGES + (old + 1, old - 1, old + 4, old - 4, rng.randrange(1 << 8 * size)))
        out[at:at + size] = (value % (1 << 8 * size)).to_bytes(size, "big")
    return bytes(out)


def run(path: Path, fast: bool) -> tuple[list, float, str | None]:
    """The batches of one path, its time, and the exception it raised (None: no crash)."""
    start = time.perf_counter()
    try:
        batches = list(read_payloads(path, batch_frames=8192, fast=fast))
    except Exception as err:  # noqa: BLE001 - a crash is what this bench looks for
        return [], time.perf_counter() - start, f"{type(err).__name__}: {err}"
    return batches, time.perf_counter() - start, None


def same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        all(np.array_equal(getattr(x, name), getattr(y, name)) for name in COLUMNS)
        and (x.data, x.endpoints, x.associations, x.anomalies) == (y.data, y.endpoints, y.associations, y.anomalies)
        for x, y in zip(a, b))


def main() -> None:
    args = parser(__doc__)
    args.add_argument("--packets", type=int, default=100_000, help="mutated packets, at least")
    args.add_argument("--seed", type=int, default=1)
    args = args.parse_args()
    shared = sorted(p for p in SHARED.glob("*") if p.suffix in (".pcap", ".pcapng", ".cap"))
    sources = [packets(p) for p in shared] + [packets(p) for p in captures(args)]
    rng = random.Random(args.seed)
    mutants: dict[int, list] = defaultdict(list)
    total, round_ = 0, 0
    while total < args.packets:
        for source in sources:
            lo = (round_ * CITY_WINDOW) % max(1, len(source) - CITY_WINDOW) if len(source) > CITY_WINDOW else 0
            for ts, linktype, data, fields in source[lo:lo + CITY_WINDOW]:
                mutants[linktype].append((ts, mutate(rng, data, fields)))
            total += len(source[lo:lo + CITY_WINDOW])
        round_ += 1
    out = Path(tempfile.mkdtemp(prefix="sigloc-fuzz-"))
    rejected, crashes, differ = Anomalies(), [], []
    times = {True: 0.0, False: 0.0}
    for linktype, frames in sorted(mutants.items()):
        path = out / f"mutants_{linktype}.pcap"
        write_pcap(path, frames, linktype=linktype)
        results = {}
        for fast in (True, False):
            batches, seconds, crash = results[fast] = run(path, fast)
            times[fast] += seconds
            if crash:
                crashes.append(f"{path.name} ({'fast' if fast else 'per-frame'}): {crash}")
        if not crashes and not same(results[True][0], results[False][0]):
            differ.append(path.name)
        for batch in results[True][0]:
            rejected.update(batch.anomalies)
    print(f"{total:,} mutated packets ({round_} rounds over {len(sources)} captures), link types "
          f"{sorted(mutants)}, in {out}")
    print(f"fast path {total / times[True]:,.0f} packets/s, per-frame {total / times[False]:,.0f} packets/s")
    print(f"rejected, by reason ({sum(rejected.values()):,} in all):")
    for reason, count in rejected.most_common():
        print(f"  {reason:<40} {count:>9,}")
    print(f"crashes: {len(crashes)}; paths differ: {len(differ)}")
    for line in crashes + [f"{name}: fast and per-frame batches differ" for name in differ]:
        print("  " + line)
    if crashes or differ:
        sys.exit(1)


if __name__ == "__main__":
    main()

"""Framing throughput: sigloc's transport stack (read_payloads) against tshark's framing on the same capture.

    .venv/bin/python bench/bench_capture.py [CAPTURE ...]   # default: a simulated city of 2000 subscribers

sigloc: ``read_payloads`` to PayloadBatches (pcap, Ethernet, IP, SCTP with reassembly, M3UA, SCCP connections).
tshark: ``tshark -r FILE -T fields -e frame.number -e sctp.data_tsn -e data.data``, with every dissector above
SCTP disabled (``--disable-protocol`` for S1AP, M3UA, M2UA and SCCP, so the DATA chunk payloads come out as
``data.data``), output discarded: framing-only work (tshark still reassembles SCTP fragments).
Prints frames/s and payloads/s for both and the ratio; ``--markdown`` prints table rows instead.
"""

import subprocess
from pathlib import Path

from common import best_of, captures, parser  # puts the project on sys.path

from capture.errors import Anomalies  # noqa: E402
from capture.pcap import read_packets  # noqa: E402
from capture.stack import read_payloads  # noqa: E402

ABOVE_SCTP = ("s1ap", "m3ua", "m2ua", "sccp")


def sigloc_framing(path: Path) -> int:
    return sum(len(batch) for batch in read_payloads(path))


def tshark_framing(path: Path) -> None:
    cmd = ["tshark", "-n", "-r", str(path), "-T", "fields", "-e", "frame.number", "-e", "sctp.data_tsn",
           "-e", "data.data"]
    for proto in ABOVE_SCTP:
        cmd += ["--disable-protocol", proto]
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)


def main() -> None:
    args = parser(__doc__).parse_args()
    rows = []
    for path in captures(args):
        frames = sum(1 for _ in read_packets(path, Anomalies()))
        ours, payloads = best_of(args.runs, lambda: sigloc_framing(path))
        theirs, _ = best_of(args.runs, lambda: tshark_framing(path))
        rows.append((path.name, frames, payloads, frames / ours, frames / theirs, theirs / ours))
    header = ("capture", "frames", "payloads", "sigloc frames/s", "tshark frames/s", "sigloc / tshark")
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + " --- |" * len(header))
        for name, n, p, a, b, r in rows:
            print(f"| {name} | {n} | {p} | {a:,.0f} | {b:,.0f} | {r:.1f}× |")
    else:
        print(f"{header[0]:<30} {header[1]:>9} {header[2]:>9} {header[3]:>16} {header[4]:>16} {header[5]:>16}")
        for name, n, p, a, b, r in rows:
            print(f"{name:<30} {n:>9} {p:>9} {a:>16,.0f} {b:>16,.0f} {r:>15.1f}×")


if __name__ == "__main__":
    main()

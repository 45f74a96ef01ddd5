"""Framing throughput: sigloc's transport stack (read_payloads) against tshark's framing on the same capture.

    .venv/bin/python bench/bench_capture.py [CAPTURE ...]   # default: a simulated city of 2000 subscribers

Three sigloc figures, timed in the same run as tshark:

- pre-pass: the compiled framing alone (capture.fastpath: pcap records, link, IP, SCTP chunks, M3UA Protocol
  Data into columns; ``read_frames`` + ``Scan``), no state;
- framing to SCCP: the pre-pass, then ``sccp_fields`` over every SCCP message it found in M3UA (ITU point-code
  layout, as the simulator writes by default): every header of Eth/IP/SCTP/M3UA/SCCP read, no state;
- fast: the whole ``read_payloads`` to PayloadBatches (the pre-pass, then SCTP duplicate detection, flows, SCCP
  read by the compiled pass with its connections tracked, the payload columns, and the frames the pre-pass hands
  back through the per-frame stack): the figure the capture issue's target (≥ 1 M frames/s, ≥ 50× tshark) is for;
- per-frame: ``read_payloads(fast=False)``, ``Stack.frame`` once per packet (the path before the pre-pass).

tshark: ``tshark -r FILE -T fields -e frame.number -e sctp.data_tsn -e data.data``, with every dissector above
SCTP disabled (``--disable-protocol`` for S1AP, M3UA, M2UA and SCCP, so the DATA chunk payloads come out as
``data.data``), output discarded: framing-only work (tshark still reassembles SCTP fragments).
Prints frames/s of each and the ratios against tshark; ``--markdown`` prints table rows instead.
"""

import subprocess
from pathlib import Path

import numpy as np

from common import best_of, captures, parser  # puts the project on sys.path

from capture.errors import Anomalies  # noqa: E402
from capture.fastpath import Scan, sccp_fields  # noqa: E402
from capture.mtp3 import POINT_CODE_OCTETS, STANDARD_ITU  # noqa: E402
from capture.pcap import read_frames  # noqa: E402
from capture.stack import read_payloads  # noqa: E402

ABOVE_SCTP = ("s1ap", "m3ua", "m2ua", "sccp")


def pre_pass(path: Path) -> int:
    return sum(len(Scan(frames).cls) for frames in read_frames(path, Anomalies()))


def framing_to_sccp(path: Path) -> int:
    frames = 0
    for block in read_frames(path, Anomalies()):
        scan = Scan(block)
        m3ua = np.flatnonzero(scan.c_opc >= 0)
        sccp_fields(scan.buf, scan.c_user[m3ua], scan.c_user_len[m3ua],
                    np.full(len(m3ua), POINT_CODE_OCTETS[STANDARD_ITU], np.int64))
        frames += len(scan.cls)
    return frames


def sigloc_framing(path: Path, fast: bool) -> int:
    return sum(len(batch) for batch in read_payloads(path, fast=fast))


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
        scanned, frames = best_of(args.runs, lambda: pre_pass(path))
        to_sccp, _ = best_of(args.runs, lambda: framing_to_sccp(path))
        fast, payloads = best_of(args.runs, lambda: sigloc_framing(path, True))
        slow, _ = best_of(args.runs, lambda: sigloc_framing(path, False))
        theirs, _ = best_of(args.runs, lambda: tshark_framing(path))
        rows.append((path.name, frames, payloads, frames / scanned, frames / to_sccp, frames / fast, frames / slow,
                     frames / theirs, theirs / scanned, theirs / to_sccp, theirs / fast, slow / fast))
    header = ("capture", "frames", "payloads", "pre-pass frames/s", "to SCCP frames/s", "fast frames/s",
              "per-frame frames/s", "tshark frames/s", "pre-pass / tshark", "to SCCP / tshark", "fast / tshark",
              "fast / per-frame")
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + " --- |" * len(header))
        for name, n, p, *rates, r1, r2, r3, r4 in rows:
            print(f"| {name} | {n} | {p} | " + " | ".join(f"{r:,.0f}" for r in rates)
                  + f" | {r1:.1f}× | {r2:.1f}× | {r3:.1f}× | {r4:.1f}× |")
    else:
        print("  ".join(f"{h:>18}" for h in header))
        for name, n, p, *rates, r1, r2, r3, r4 in rows:
            print(f"{name:>18}  {n:>18}  {p:>18}  " + "  ".join(f"{r:>18,.0f}" for r in rates)
                  + f"  {r1:>17.1f}×  {r2:>17.1f}×  {r3:>17.1f}×  {r4:>17.1f}×")


if __name__ == "__main__":
    main()

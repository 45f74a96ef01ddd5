"""Decode throughput: sigloc's decode path against tshark on the same capture, in the same run.

    .venv/bin/python bench/bench_decode.py [CAPTURE ...]   # default: a simulated city of 2000 subscribers

sigloc: capture stack + decoders to message tables (what `sigloc decode` does before writing), and apart
from it the decoders + record building alone (``decode_batch`` over payload batches extracted beforehand,
so the transport stack does not blur that part), with the compiled S1AP and BSSAP passes (the default) and
without them (``DecodeState(fast=False)``, every payload through the Python decoders): CPU time of this thread, best of
``--runs``, the two alternating so that a busy other core slows both alike (tshark: wall time of its process).
tshark: `tshark -T fields` with the fields sigloc extracts (identity, location, UE IDs), output discarded.
Prints messages/s for each and the ratios to tshark; `--markdown` prints the docs/benchmarks.md table rows.
Then the same per protocol, on a copy of the capture with that protocol's frames alone (``tshark -Y bssap -w``, or
``s1ap``): the decoders + records on its payloads against tshark with the same fields on that copy.
"""

import subprocess
import tempfile
import time
from pathlib import Path

from common import best_of, captures, parser  # puts the project on sys.path

from capture.stack import read_payloads  # noqa: E402
from decoders.decode import DecodeState, decode_batch, decode_file  # noqa: E402

TSHARK_FIELDS = ["frame.number", "s1ap.procedureCode", "nas_eps.nas_msg_emm_type", "gsm_a.bssmap.msgtype",
                 "gsm_a.dtap.msg_mm_type", "e212.imsi", "gsm_a.tmsi", "nas_eps.emm.m_tmsi", "s1ap.tAC",
                 "s1ap.CellIdentity", "gsm_a.lac", "gsm_a.bssmap.cell_ci", "s1ap.ENB_UE_S1AP_ID",
                 "s1ap.MME_UE_S1AP_ID"]


def sigloc_decode(path: Path) -> int:
    state = DecodeState()
    for _ in decode_file(path, state):
        pass
    return state.messages


def sigloc_decode_batches(batches, fast: bool = True) -> int:
    state = DecodeState(fast=fast)
    for batch in batches:
        decode_batch(batch, state)
    return state.messages


def cpu_alternating(runs: int, *fns) -> list[float]:
    """Best CPU time (``time.thread_time``) of each function over ``runs`` rounds that call them in turn."""
    for fn in fns:  # start-up (Numba compilation, caches) is not throughput
        fn()
    best = [float("inf")] * len(fns)
    for _ in range(runs):
        for i, fn in enumerate(fns):
            start = time.thread_time()
            fn()
            best[i] = min(best[i], time.thread_time() - start)
    return best


PROTOCOLS = [("BSSAP (BSSMAP + DTAP)", "bssap"), ("S1AP + NAS-EPS", "s1ap")]  # with tshark's display filter


def tshark_decode(path: Path, display_filter: str = "s1ap or bssap") -> None:
    cmd = ["tshark", "-n", "-r", str(path), "-Y", display_filter, "-T", "fields"]
    for name in TSHARK_FIELDS:
        cmd += ["-e", name]
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)


def main() -> None:
    args = parser(__doc__).parse_args()
    rows, per_protocol = [], []
    for path in captures(args):
        ours, messages = best_of(args.runs, lambda: sigloc_decode(path))
        batches = list(read_payloads(path))
        fast, python = cpu_alternating(args.runs, lambda: sigloc_decode_batches(batches),
                                       lambda: sigloc_decode_batches(batches, fast=False))
        theirs, _ = best_of(args.runs, lambda: tshark_decode(path))
        rows.append((path.name, messages, messages / ours, messages / fast, messages / python, messages / theirs,
                     theirs / ours, theirs / fast, python / fast))
        with tempfile.TemporaryDirectory() as tmp:
            for name, display_filter in PROTOCOLS:
                alone = Path(tmp) / f"{display_filter}.pcap"
                subprocess.run(["tshark", "-n", "-r", str(path), "-Y", display_filter, "-F", "pcap", "-w", str(alone)],
                               stderr=subprocess.DEVNULL, check=True)
                subset = list(read_payloads(alone))
                count = sigloc_decode_batches(subset)
                if not count:
                    continue
                (seconds,) = cpu_alternating(args.runs, lambda: sigloc_decode_batches(subset))
                theirs, _ = best_of(args.runs, lambda: tshark_decode(alone, display_filter))
                per_protocol.append((path.name, name, count, count / seconds, count / theirs, theirs / seconds))
    header = ("capture", "messages", "sigloc msg/s", "decoders+records msg/s", "Python path msg/s", "tshark msg/s",
              "sigloc / tshark", "decoders+records / tshark", "compiled / Python path")
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + " --- |" * len(header))
        for name, n, a, d, p, b, r, rd, rp in rows:
            print(f"| {name} | {n} | {a:,.0f} | {d:,.0f} | {p:,.0f} | {b:,.0f} | {r:.1f}× | {rd:.1f}× | {rp:.2f}× |")
    else:
        print(f"{header[0]:<32} {header[1]:>9} {header[2]:>13} {header[3]:>23} {header[4]:>18} {header[5]:>13} "
              f"{header[6]:>16} {header[7]:>26} {header[8]:>23}")
        for name, n, a, d, p, b, r, rd, rp in rows:
            print(f"{name:<32} {n:>9} {a:>13,.0f} {d:>23,.0f} {p:>18,.0f} {b:>13,.0f} {r:>15.1f}× {rd:>25.1f}× "
                  f"{rp:>22.2f}×")
    header = ("capture", "protocol", "messages", "decoders+records msg/s", "tshark msg/s", "ratio")
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + " --- |" * len(header))
        for name, proto, n, ours, theirs, ratio in per_protocol:
            print(f"| {name} | {proto} | {n} | {ours:,.0f} | {theirs:,.0f} | {ratio:.1f}× |")
    else:
        print(f"{header[0]:<32} {header[1]:<22} {header[2]:>9} {header[3]:>23} {header[4]:>13} {header[5]:>7}")
        for name, proto, n, ours, theirs, ratio in per_protocol:
            print(f"{name:<32} {proto:<22} {n:>9} {ours:>23,.0f} {theirs:>13,.0f} {ratio:>6.1f}×")


if __name__ == "__main__":
    main()

"""Decode throughput: sigloc's decode path against tshark on the same capture, in the same run.

    .venv/bin/python bench/bench_decode.py [CAPTURE ...]   # default: a simulated city of 2000 subscribers

sigloc: capture stack + decoders to message tables (what `sigloc decode` does before writing).
tshark: `tshark -T fields` with the fields sigloc extracts (identity, location, UE IDs), output discarded.
Prints messages/s for both and the ratio; `--markdown` prints the docs/benchmarks.md table rows.
"""

import subprocess
from pathlib import Path

from common import best_of, captures, parser  # puts the project on sys.path

from decoders.decode import DecodeState, decode_file  # noqa: E402

TSHARK_FIELDS = ["frame.number", "s1ap.procedureCode", "nas_eps.nas_msg_emm_type", "gsm_a.bssmap.msgtype",
                 "gsm_a.dtap.msg_mm_type", "e212.imsi", "gsm_a.tmsi", "nas_eps.emm.m_tmsi", "s1ap.tAC",
                 "s1ap.CellIdentity", "gsm_a.lac", "gsm_a.bssmap.cell_ci", "s1ap.ENB_UE_S1AP_ID",
                 "s1ap.MME_UE_S1AP_ID"]


def sigloc_decode(path: Path) -> int:
    state = DecodeState()
    for _ in decode_file(path, state):
        pass
    return state.messages


def tshark_decode(path: Path) -> None:
    cmd = ["tshark", "-n", "-r", str(path), "-Y", "s1ap or bssap", "-T", "fields"]
    for name in TSHARK_FIELDS:
        cmd += ["-e", name]
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)


def main() -> None:
    args = parser(__doc__).parse_args()
    rows = []
    for path in captures(args):
        ours, messages = best_of(args.runs, lambda: sigloc_decode(path))
        theirs, _ = best_of(args.runs, lambda: tshark_decode(path))
        rows.append((path.name, messages, messages / ours, messages / theirs, theirs / ours))
    header = ("capture", "messages", "sigloc msg/s", "tshark msg/s", "sigloc / tshark")
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + " --- |" * len(header))
        for name, n, a, b, r in rows:
            print(f"| {name} | {n} | {a:,.0f} | {b:,.0f} | {r:.1f}× |")
    else:
        print(f"{header[0]:<40} {header[1]:>9} {header[2]:>14} {header[3]:>14} {header[4]:>16}")
        for name, n, a, b, r in rows:
            print(f"{name:<40} {n:>9} {a:>14,.0f} {b:>14,.0f} {r:>15.1f}×")


if __name__ == "__main__":
    main()

"""Simulator throughput: messages/s and peak memory for cities of growing size over one hour.

Each size runs in its own process (its peak RSS is its own). ``--baseline TREE`` runs another checkout's
simulator (e.g. ``git archive <rev> | tar -x -C /tmp/old``) on the same sizes in the same run, for the ratio;
``--baseline-max`` keeps the slow one to the small sizes. The time of a 1 M-subscriber hour is extrapolated
from the largest size measured (the cost per subscriber is flat: sampling is per block, messages per subscriber
do not grow with the city), unless 1000000 is among ``--sizes``.

    .venv/bin/python bench/bench_simulator.py [--sizes 2000 10000 100000] [--baseline /tmp/old]
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, parser

CHILD = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from simulator.scenario import simulate
start = time.perf_counter()
info = simulate(sys.argv[2], subscribers=int(sys.argv[3]), hours=float(sys.argv[4]), seed=1)
seconds = time.perf_counter() - start
print(json.dumps({"messages": info["messages"], "seconds": seconds,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(tree: Path, subscribers: int, hours: float) -> dict:
    """One simulation in a fresh process with ``tree`` first on the path; its capture is deleted afterwards."""
    with tempfile.TemporaryDirectory(prefix="sigloc-sim-") as out:
        done = subprocess.run([sys.executable, "-c", CHILD, str(tree), out, str(subscribers), str(hours)],
                              capture_output=True, text=True, check=True, cwd=tree)
        result = json.loads(done.stdout.splitlines()[-1])
        result["pcap_mb"] = (Path(out) / "capture.pcap").stat().st_size / 1e6
    return result


def main() -> None:
    p = parser(__doc__)
    p.set_defaults(hours=1.0)
    p.add_argument("--sizes", type=int, nargs="+", default=[2000, 10000, 100000], help="subscribers per city")
    p.add_argument("--baseline", type=Path, help="another source tree whose simulator to compare with")
    p.add_argument("--baseline-max", type=int, default=2000, help="largest city the baseline simulates")
    args = p.parse_args()
    run(ROOT, 100, args.hours)  # compiles and caches the Numba kernels: start-up, not throughput
    print(f"| subscribers × {args.hours:g} h | messages | seconds | messages/s | peak RSS MB | pcap MB "
          "| vs baseline |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    last = None
    for size in args.sizes:
        r = run(ROOT, size, args.hours)
        rate = r["messages"] / r["seconds"]
        ratio = "—"
        if args.baseline and size <= args.baseline_max:
            b = run(args.baseline, size, args.hours)
            ratio = f"{rate / (b['messages'] / b['seconds']):.1f}× ({b['messages'] / b['seconds']:,.0f} msg/s)"
        print(f"| {size:,} | {r['messages']:,} | {r['seconds']:.1f} | {rate:,.0f} | {r['rss_mb']:,.0f} | "
              f"{r['pcap_mb']:,.0f} | {ratio} |", flush=True)
        last = size, r
    size, r = last
    if size != 1_000_000:
        scale = 1_000_000 / size
        print(f"\n1,000,000 subscribers × {args.hours:g} h, extrapolated from {size:,}: "
              f"{r['messages'] * scale / 1e6:.1f} M messages in {r['seconds'] * scale / 60:.1f} min")


if __name__ == "__main__":
    main()

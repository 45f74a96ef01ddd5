"""What every benchmark script shares: the command line, the default input, and timing.

A script is run as ``.venv/bin/python bench/NAME.py [CAPTURE ...]``; with no capture it simulates the
reference city (2000 subscribers, 4 hours, seed 1: the figures in docs/benchmarks.md).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parser(doc: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("captures", nargs="*", type=Path)
    parser.add_argument("--subscribers", type=int, default=2000, help="size of the simulated city")
    parser.add_argument("--hours", type=float, default=4.0, help="length of the simulated period")
    parser.add_argument("--runs", type=int, default=3, help="timed runs; the best one counts")
    parser.add_argument("--markdown", action="store_true", help="print docs/benchmarks.md table rows")
    return parser


def captures(args: argparse.Namespace) -> list[Path]:
    """The captures named on the command line, or a freshly simulated reference city."""
    if args.captures:
        return list(args.captures)
    from simulator.scenario import simulate
    out = Path(tempfile.mkdtemp(prefix="sigloc-bench-"))
    return [Path(simulate(out, subscribers=args.subscribers, hours=args.hours, seed=1)["capture"])]


def best_of(runs: int, fn):
    """Smallest wall time of ``runs`` calls (the least disturbed one) and the last result.

    One untimed call first: imports, caches and Numba compilation are start-up, not throughput.
    """
    best, result = float("inf"), fn()
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result

"""Every benchmark in one command: cities of increasing size through each stage and end to end, peers alongside.

    .venv/bin/python bench/suite.py                                  # 10 k, 100 k and 1 M messages
    .venv/bin/python bench/suite.py --sizes 10000 100000 1000000 10000000 --out docs/benchmarks.md
    sigloc bench [the same options]

For each size (wire messages) a city is simulated for one hour with size / 45 subscribers (the simulator writes
about 45 messages per subscriber-hour) and timed. Then each stage runs as its own process on that city, so that
its wall time and peak memory (``wait4``) are its own:

- ``bench_capture.py`` (tshark framing), ``bench_decode.py`` (tshark fields), ``bench_decoders.py`` (pycrate),
  ``bench_events.py``: the capture, with the peers in the same run; ``--runs 1`` above 1 M messages, and
  ``bench_decoders.py`` only up to ``--peers-max`` messages (pycrate decodes ~7 k messages/s);
- ``sigloc run``: end to end (decode in a worker process, events, the West Lake fence, chdb, the report), once
  untimed before the first size's stages (compiling the Numba kernels a fresh tree has not cached yet is
  start-up, not any stage's time);
- ``bench_geofence.py`` with as many subscribers and events as the city, ``bench_store.py`` with as many events.

Prints, and writes between the ``suite`` markers of ``--out`` (default: docs/benchmarks.md), a growth table (size,
simulator and end-to-end messages/s, wall time and peak memory of every stage) and each stage's own table, and
draws ``benchmarks-scaling.svg`` beside it: messages/s of the simulator and end to end against size.
"""

import argparse
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
MESSAGES_PER_SUBSCRIBER_HOUR = 45
BEGIN, END = "<!-- suite:begin -->", "<!-- suite:end -->"
SIGLOC = [sys.executable, "-c", "from appliance.cli import main; main()"]


def run(command: list) -> tuple[str, float, float]:
    """Stdout, wall seconds and peak resident memory (GiB) of a child process; a failure stops the suite."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen([str(c) for c in command], stdout=out, stderr=err, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)  # reaped here, not by Popen: its own rusage, not the largest child's
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if proc.returncode:
            sys.exit(f"{' '.join(map(str, command))} failed ({proc.returncode}):\n{err.read()[-3000:]}")
        return out.read(), seconds, usage.ru_maxrss / 2**20


def end_to_end(city: Path, name: str) -> list:
    """`sigloc run` on a simulated city, with its own store and report folder."""
    return [*SIGLOC, "run", city / "capture.pcap", "--cells", city / "cells.csv", "--fence", city / "west_lake.geojson",
            "--segments", city / "number_segments.csv", "--clickhouse", f"chdb://{city / name / 'store'}", "--out",
            city / name / "report"]


def svg(points: dict[str, list[tuple[int, float]]], title: str) -> str:
    """A log-log line chart of messages/s against size, one line per series, no plotting library needed."""
    width, height, left, bottom, top, right = 640, 360, 70, 40, 30, 150
    xs = [x for series in points.values() for x, _ in series]
    ys = [y for series in points.values() for _, y in series if y > 0]
    if not xs or not ys:
        return ""
    lx = lambda v: math.log10(v)  # noqa: E731
    x0, x1 = math.floor(lx(min(xs))), math.ceil(lx(max(xs))) or 1
    y0, y1 = math.floor(lx(min(ys))), math.ceil(lx(max(ys)))
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
    px = lambda v: left + (lx(v) - x0) / (x1 - x0) * (width - left - right)  # noqa: E731
    py = lambda v: height - bottom - (lx(v) - y0) / (y1 - y0) * (height - top - bottom)  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             f'font-size="11"><rect width="100%" height="100%" fill="white"/>',
             f'<text x="{left}" y="18" font-size="13">{title}</text>']
    for e in range(x0, x1 + 1):
        x = px(10 ** e)
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{height - bottom}" stroke="#ddd"/>'
                     f'<text x="{x:.1f}" y="{height - bottom + 15}" text-anchor="middle">1e{e}</text>')
    for e in range(y0, y1 + 1):
        y = py(10 ** e)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">1e{e}</text>')
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 6}" text-anchor="middle">messages in the '
                 f'capture</text>')
    colours = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
    for n, (name, series) in enumerate(points.items()):
        colour = colours[n % len(colours)]
        line = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in series if y > 0)
        parts.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>' for x, y in series if y > 0]
        parts.append(f'<text x="{width - right + 10}" y="{top + 16 * n + 10}" fill="{colour}">{name}</text>')
    return "\n".join(parts + ["</svg>\n"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000],
                    help="wire messages per city")
    ap.add_argument("--peers-max", type=int, default=1_000_000, help="largest city pycrate decodes")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md",
                    help="markdown file with the suite markers to fill (created if missing)")
    ap.add_argument("--work", type=Path, help="where the cities go (default: a temporary folder)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="sigloc-suite-"))
    growth, sections, points = [], [], {"simulator": [], "end to end (sigloc run)": []}
    for size in sorted(args.sizes):
        subscribers = max(10, size // MESSAGES_PER_SUBSCRIBER_HOUR)
        city = work / f"city-{size}"
        out, sim_s, sim_gb = run([*SIGLOC, "simulate", city, "--subscribers", subscribers, "--hours", 1,
                                  "--seed", 1])
        wire = int(re.search(r"(\d+) messages for", out).group(1))
        capture = city / "capture.pcap"
        runs = ["--runs", "1" if size > 1_000_000 else "3"]
        stages = [("capture", [sys.executable, BENCH / "bench_capture.py", capture, *runs]),
                  ("decode", [sys.executable, BENCH / "bench_decode.py", capture, *runs])]
        if size <= args.peers_max:
            stages.append(("decoders", [sys.executable, BENCH / "bench_decoders.py", capture, *runs]))
        stages += [("events", [sys.executable, BENCH / "bench_events.py", capture, *runs]),
                   ("end to end", end_to_end(city, "run")),
                   ("fences", [sys.executable, BENCH / "bench_geofence.py", "--subscribers", subscribers,
                               "--events", size, "--fences", 100_000, "--move", "0.1"]),
                   ("store", [sys.executable, BENCH / "bench_store.py", "--events", size, "--runs", 1,
                              "--batch", min(size, 1_000_000)])]
        row = {"size": size, "wire": wire, "subscribers": subscribers, "simulate": (sim_s, sim_gb)}
        if size == min(args.sizes):
            run(end_to_end(city, "warm-up"))  # Numba compiles once, then caches on disk: not any stage's time
        for name, command in stages:
            out, seconds, gb = run(command)
            row[name] = (seconds, gb)
            if name == "end to end":
                decoded = int(re.search(r"messages: (\d+)", out).group(1))
                row["decoded"] = decoded
                points["end to end (sigloc run)"].append((wire, decoded / seconds))
            else:
                sections.append(f"#### {name}, {wire:,} messages ({subscribers:,} subscribers, 1 h)\n\n```\n"
                                f"{out.strip()}\n```\n")
            print(f"{size:>10,} {name:<12} {seconds:8.1f} s {gb:6.2f} GiB", flush=True)
        points["simulator"].append((wire, wire / sim_s))
        growth.append(row)
    names = ["simulate", "capture", "decode", "decoders", "events", "end to end", "fences", "store"]
    table = ["| wire messages | subscribers | simulator msg/s | end to end msg/s (decoded) | "
             + " | ".join(f"{n} s / GiB" for n in names) + " |",
             "| " + " | ".join(["---"] * (4 + len(names))) + " |"]
    for row in growth:
        cells = [f"{row[n][0]:.1f} / {row[n][1]:.2f}" if n in row else "—" for n in names]
        table.append(f"| {row['wire']:,} | {row['subscribers']:,} | {row['wire'] / row['simulate'][0]:,.0f} | "
                     f"{row['decoded'] / row['end to end'][0]:,.0f} ({row['decoded']:,}) | " + " | ".join(cells)
                     + " |")
    chart = args.out.parent / "benchmarks-scaling.svg"
    chart.write_text(svg({k: v for k, v in points.items() if v}, "messages/s against size (log-log)"))
    body = "\n".join([BEGIN, "", f"`bench/suite.py --sizes {' '.join(map(str, args.sizes))}` on "
                      f"{time.strftime('%Y-%m-%d')}; wall seconds / peak resident GiB of the largest process of "
                      "each stage ([chart](benchmarks-scaling.svg)).", "", *table, "", *sections, END])
    print("\n" + "\n".join(table))
    text = args.out.read_text() if args.out.exists() else ""
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + body + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n## All stages by size (`bench/suite.py`)\n\n" + body + "\n"
    args.out.write_text(text)
    print(f"wrote {args.out} and {chart}")


if __name__ == "__main__":
    main()

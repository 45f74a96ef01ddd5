"""Correlation + event derivation throughput, against decoding in the same run, and the store's memory.

    .venv/bin/python bench/bench_events.py [CAPTURE ...] [--subscribers N --hours H]   # default: 2000 subscribers

The capture is decoded once (that pass is timed too: the peer the events stage must keep up with); then the
message tables are fed to a fresh ``EventDeriver`` (correlation, behaviour and pattern events), to the compiled
connection pass alone (``ConnectionIndex.walk``, the part of correlation that finds each message's connection)
and to the record-at-a-time reference ``Correlator``, each timed alone; the reference on the first million
messages at most (as dicts, more would not fit in memory). Memory per subscriber: Python heap held by the deriver's state after the
run (tracemalloc, after a collection) over the subscribers it holds, and the snapshot file's size.
"""

import gc
import tempfile
import tracemalloc
from pathlib import Path

from common import best_of, captures, parser  # puts the project on sys.path

from decoders.connections import ConnectionIndex  # noqa: E402
from decoders.correlate import Correlator  # noqa: E402
from decoders.decode import decode_file  # noqa: E402
from decoders.events import EventDeriver, _Kinds, _pass_kind  # noqa: E402


def derive(tables) -> EventDeriver:
    deriver = EventDeriver()
    for table in tables:
        deriver.feed(table)
    return deriver


# A dict per message costs ~3 KB: the reference is timed on the first million messages at most, so that
# a 10 M-message capture fits in memory.
RECORDS_MAX = 1_000_000


def _prefix(tables: list, rows: int) -> list:
    """The first tables up to ``rows`` messages in all (the last one cut)."""
    out = []
    for table in tables:
        if rows <= 0:
            break
        out.append(table.slice(0, rows))
        rows -= len(out[-1])
    return out


def walk(tables) -> int:
    index = ConnectionIndex()
    for table in tables:
        index.walk(_Kinds(table).where(_pass_kind, "int8"), table["assoc"], table["mme_ue_id"], table["enb_ue_id"],
                   table["conn"])
    return len(index.live())


def correlate(records) -> int:
    correlator = Correlator()
    return sum(correlator.observe(rec) is not None for rec in records)


def main() -> None:
    args = parser(__doc__).parse_args()
    paths = captures(args)
    decode_s, tables = best_of(1, lambda: [table for path in paths for table in decode_file(path)])
    messages = sum(len(t) for t in tables)
    records = [rec for t in _prefix(tables, RECORDS_MAX) for rec in t.to_pylist()]

    derive_s, deriver = best_of(args.runs, lambda: derive(tables))
    walk_s, _ = best_of(args.runs, lambda: walk(tables))
    correlate_s, _ = best_of(args.runs, lambda: correlate(records))
    subscribers = len(deriver.patterns.subscribers)

    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    held = derive(tables)
    gc.collect()  # what the state holds, not what the allocator's free lists keep from the run
    heap = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    with tempfile.TemporaryDirectory() as tmp:
        held.snapshot(Path(tmp) / "store.json.gz")
        snapshot_bytes = (Path(tmp) / "store.json.gz").stat().st_size

    rows = [("decode (peer: the stage before)", messages / decode_s, 1.0),
            ("correlation + events + patterns", messages / derive_s, decode_s / derive_s),
            ("connection pass alone", messages / walk_s, decode_s / walk_s),
            ("reference correlator (records given)", len(records) / correlate_s,
             decode_s / messages * len(records) / correlate_s)]
    print(f"{messages} messages, {subscribers} subscribers in the store")
    for name, rate, ratio in rows:
        print(f"{name:38s} {rate:12,.0f} messages/s  {ratio:5.2f}x decode")
    print(f"store: {heap / max(1, subscribers):,.0f} bytes/subscriber on the heap (incl. open connections), "
          f"snapshot {snapshot_bytes / max(1, subscribers):,.0f} bytes/subscriber")
    if args.markdown:
        for name, rate, ratio in rows:
            print(f"| events | {name} | {rate:,.0f} msg/s | {ratio:.2f}x decode |")


if __name__ == "__main__":
    main()

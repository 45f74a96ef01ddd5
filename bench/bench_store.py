"""Store ingest rate and footfall / origin query times over N synthetic events, against pandas.

``.venv/bin/python bench/bench_store.py`` ingests 10 M events (``--events``; the issue's 100 M with
``--events 100000000``) into a fresh embedded store (chdb) in ``--batch``-row Arrow batches through
``Store.insert_events`` — pseudonyms, homes, dedup tokens and the materialised aggregates included;
pipelined store unless ``--sync`` — then times, best of ``--runs``:

- footfall: distinct visitors per hour in a fence's cells over the whole period, from the hourly
  aggregate and from the raw events, and the same count with pandas over the input frame;
- origin: distinct visitors by home country and province in those cells, from raw events and pandas.

pandas is the naive baseline: an in-memory frame already loaded, so its time excludes any I/O.
Background merges still running when the last batch is stored are waited for and timed ("merges
settle"): the store runs them at low CPU priority, so that is the work the ingest left for later.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from common import ROOT, best_of

sys.path.insert(0, str(ROOT / "tests"))  # the synthetic data generator the store tests use

from analytics.origin import Origins  # noqa: E402
from analytics.store import Store  # noqa: E402
from test_store import SEGMENTS, synthetic_events  # noqa: E402

FOOTFALL_AGG = """SELECT hour, uniqMerge(visitors) AS visitors FROM {db}.footfall_cell_hourly
WHERE cell IN {cells:Array(String)} GROUP BY hour ORDER BY hour"""
FOOTFALL_RAW = """SELECT toStartOfHour(ts) AS hour, uniqExact(subscriber) AS visitors FROM {db}.events
WHERE cell IN {cells:Array(String)} AND subscriber != '' GROUP BY hour ORDER BY hour"""
QUIET_S = 10.0  # merges done once none has run for this long (the merge selector backs off when idle)


def settle(store: Store) -> tuple[float, int]:
    """Seconds until the last background merge of the store ends, and the events parts left then."""
    start = last_busy = time.perf_counter()
    while time.perf_counter() - last_busy < QUIET_S:
        if int(store.query("SELECT count() FROM system.merges WHERE database = '{db}'").iloc[0, 0]):
            last_busy = time.perf_counter()
        time.sleep(0.5)
    parts = store.query("SELECT count() FROM system.parts WHERE active AND database = '{db}' AND table = 'events'")
    return last_busy - start, int(parts.iloc[0, 0])


ORIGIN_RAW = """SELECT home_country, home_province, uniqExact(subscriber) AS visitors FROM {db}.events
WHERE cell IN {cells:Array(String)} AND subscriber != '' GROUP BY home_country, home_province"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="timed query runs after a warm-up; the best one counts")
    ap.add_argument("--events", type=int, default=10_000_000, help="synthetic events to ingest")
    ap.add_argument("--batch", type=int, default=1_000_000, help="events per insert batch")
    ap.add_argument("--subscribers", type=int, default=200_000, help="distinct IMSIs")
    ap.add_argument("--cells", type=int, default=2000, help="distinct cells")
    ap.add_argument("--hours", type=float, default=24.0, help="period the events spread over")
    ap.add_argument("--distinct", type=int, default=10, help="distinct generated batches (then repeated)")
    ap.add_argument("--sync", action="store_true", help="insert synchronously (the default store mode)")
    ap.add_argument("--fence-cells", type=int, default=40, help="cells of the queried fence")
    args = ap.parse_args()

    origins = Origins(SEGMENTS)
    work = Path(tempfile.mkdtemp(prefix="sigloc-bench-store-"))
    store = Store(f"chdb://{work / 'data'}", work / "key", spool_dir=work / "spool", pipelined=not args.sync)
    # Batches are generated before the clock starts (a pipelined store would overlap generation with its
    # sends); beyond --distinct batches they repeat under new tokens, so 100 M events fit in memory.
    sizes = [min(args.batch, args.events - lo) for lo in range(0, args.events, args.batch)]
    distinct = [synthetic_events(n, subscribers=args.subscribers, cells=args.cells, hours=args.hours, seed=i)
                for i, n in enumerate(sizes[: args.distinct])]
    batches = [distinct[i % len(distinct)] if sizes[i] == args.batch else
               synthetic_events(sizes[i], subscribers=args.subscribers, cells=args.cells, hours=args.hours, seed=i)
               for i in range(len(sizes))]
    start, start_cpu = time.perf_counter(), time.process_time()
    for i, batch in enumerate(batches):
        store.insert_events(batch, origins, token=f"bench:{i}")
    store.flush()
    ingest_s, cpu = time.perf_counter() - start, time.process_time() - start_cpu  # cpu: all threads, chDB's too
    load = os.getloadavg()[0]
    settle_s, parts = settle(store)
    assert len(store.spool) == 0
    stored = int(store.query("SELECT count() FROM {db}.events").iloc[0, 0])
    assert stored == args.events, (stored, args.events)

    kept = [pa.table({"ts": b["ts"], "imsi": pc.dictionary_encode(b["imsi"].combine_chunks()),
                      "cell": pc.dictionary_encode(b["cell"].combine_chunks())}) for b in batches]
    cells = sorted(kept[0]["cell"].combine_chunks().dictionary.to_pylist())[: args.fence_cells]
    params = {"cells": cells}
    frame = pa.concat_tables(kept).unify_dictionaries().to_pandas()  # categoricals: the baseline fits in memory
    frame = frame[frame.imsi.notna()]
    homes = {imsi: origins.home(imsi) for imsi in frame.imsi.cat.categories}

    def pandas_footfall():
        sel = frame[frame.cell.isin(cells)]
        return sel.groupby(sel.ts.dt.floor("h")).imsi.nunique()

    def pandas_origin():
        sel = frame[frame.cell.isin(cells)].drop_duplicates("imsi")
        home = sel.imsi.astype(str).map(homes)
        return sel.groupby([home.map(lambda h: h.country), home.map(lambda h: h.province)]).size()

    rows = []
    t_pf, pf = best_of(args.runs, pandas_footfall)
    for label, sql in (("footfall (hourly aggregate)", FOOTFALL_AGG), ("footfall (raw events)", FOOTFALL_RAW)):
        t, got = best_of(args.runs, lambda: store.query(sql, params))
        error = np.abs(got.visitors.to_numpy() - pf.to_numpy()) / pf.to_numpy()
        rows.append((label, t, t_pf, "yes" if not error.any() else f"max error {error.max():.2%} (uniq)"))
    t_po, po = best_of(args.runs, pandas_origin)
    t, got = best_of(args.runs, lambda: store.query(ORIGIN_RAW, params))
    same = dict(zip(zip(got.home_country, got.home_province), got.visitors)) == po.to_dict()
    rows.append(("origin (raw events)", t, t_po, "yes" if same else "NO"))
    store.close()
    shutil.rmtree(work)

    print(f"\nload average {load:.1f} at the end of ingest on {os.cpu_count()} cores (shared machine); "
          f"{'sync' if args.sync else 'pipelined'} store; {args.events / cpu:,.0f} events per CPU-second "
          f"of the ingesting process")
    print(f"{args.events:,} events over {args.hours:g} h, {args.subscribers:,} subscribers, {args.cells} cells, "
          f"fence of {len(cells)} cells, batches of {args.batch:,}\n")
    print("| step | sigloc | pandas | pandas / sigloc | equal to pandas |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| ingest (insert_events, aggregates included) | {args.events / ingest_s:,.0f} events/s "
          f"({ingest_s:.1f} s) | — | — | row count yes |")
    print(f"| merges settle after the last batch | {settle_s:.1f} s ({parts} events parts left; ingest + settle "
          f"{args.events / (ingest_s + settle_s):,.0f} events/s) | — | — | — |")
    for label, t, tp, exact in rows:
        print(f"| {label} | {t:.3f} s | {tp:.3f} s | {tp / t:.1f}× | {exact} |")


if __name__ == "__main__":
    main()

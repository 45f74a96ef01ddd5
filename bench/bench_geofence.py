"""Geofence throughput: sigloc's cell membership + Numba state machine against shapely and h3, same events.

    .venv/bin/python bench/bench_geofence.py              # ~2 min here: 100 k fences, 1 M subscribers
    .venv/bin/python bench/bench_geofence.py --full       # the issue's size: 100 k fences, 10 M subscribers

A synthetic city: a grid of 3-sector sites 500 m apart, fences are discs of 100–800 m radius dropped at
random, each subscriber has a home cell and a share (``--move``, default 10 % and 1 %) of its events is in
a cell up to two sites away. Every event has a cell and the coordinates of a point in that cell's sector,
so the three contenders answer the same question on the same events:
- sigloc: ``FenceMatcher.run`` — cell → fences CSR + per-subscriber enter/exit/dwell state (the full path);
- shapely: ``STRtree(fences).query(points, predicate="intersects")`` — which fences each point is in;
- h3: ``h3.latlng_to_cell`` at resolution 9 + a dict lookup hexagon → fences (covers of all fences compiled
  beforehand, unless ``--h3-fences`` limits them; the table says how many).
sigloc's own point-in-polygon path for events with coordinates (``fences_at``) is timed on the same points.
The peers only answer "which fences is this point in" — no state — so the comparison favours them.
sigloc runs in steady state (everyone seen at home 60 and 30 min earlier, untimed) with dwell 600 s and exit
hysteresis (2 sightings or 60 s); the triggers/event figure says how much of the stream crossed a fence.
Also timed: compiling the fences to cells (``compile_fences``) and to H3 cells. Prints a markdown table.
"""

import argparse
import math
import time

import numpy as np
import shapely

from common import best_of  # puts the project on sys.path

import h3  # noqa: E402

from geofence.cells import M_PER_DEG_LAT, M_PER_DEG_LON_EQUATOR, Catalogue, CellRecord  # noqa: E402
from geofence.fences import Fence, compile_fences, fences_at, h3_cover  # noqa: E402
from geofence.match import US, DetectConfig, FenceMatcher, Membership  # noqa: E402

LAT0, LON0 = 30.25, 120.15
SITE_SPACING_M = 500.0
H3_RES = 9


def city(sites_per_side: int) -> Catalogue:
    m_lon = M_PER_DEG_LON_EQUATOR * math.cos(math.radians(LAT0))
    cells = []
    for gx in range(sites_per_side):
        for gy in range(sites_per_side):
            lat = LAT0 + gy * SITE_SPACING_M / M_PER_DEG_LAT
            lon = LON0 + gx * SITE_SPACING_M / m_lon
            for sector, az in enumerate((0, 120, 240)):
                eci = (gx * sites_per_side + gy) * 4 + sector
                cells.append(CellRecord(f"460-00-{eci}", "4G", lat, lon, az, 65, 600, f"S{gx}-{gy}"))
    return Catalogue(cells)


def fences(rng, n: int, catalogue: Catalogue) -> list[Fence]:
    lats = np.array([c.lat for c in catalogue.cells])
    lons = np.array([c.lon for c in catalogue.cells])
    lat = rng.uniform(lats.min(), lats.max(), n)
    lon = rng.uniform(lons.min(), lons.max(), n)
    radius_deg = rng.uniform(100, 800, n) / M_PER_DEG_LAT
    geoms = shapely.buffer(shapely.points(lon, lat), radius_deg, quad_segs=8)
    return [Fence(f"f{i}", g) for i, g in enumerate(geoms)]


def events(rng, n: int, subscribers: int, catalogue: Catalogue, move_share: float):
    """Time-ordered events: subscriber, cell (home cell or a neighbour), µs time, and a point in the cell."""
    n_cells = len(catalogue)
    home = rng.integers(0, n_cells, subscribers)
    sub = rng.integers(0, subscribers, n)
    move = rng.random(n) < move_share
    cell = np.clip(home[sub] + move * rng.integers(-6, 7, n), 0, n_cells - 1).astype(np.int32)
    ts = np.sort(rng.integers(0, 4 * 3600 * US, n)).astype(np.int64)
    az = np.radians(np.array([c.azimuth for c in catalogue.cells]))[cell] + rng.uniform(-0.5, 0.5, n)
    dist = rng.uniform(0, 550, n)
    lat0 = np.array([c.lat for c in catalogue.cells])[cell]
    lon0 = np.array([c.lon for c in catalogue.cells])[cell]
    m_lon = M_PER_DEG_LON_EQUATOR * math.cos(math.radians(LAT0))
    return home, sub, cell, ts, lon0 + dist * np.sin(az) / m_lon, lat0 + dist * np.cos(az) / M_PER_DEG_LAT


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="10 M subscribers, 40 M events (the issue's size)")
    ap.add_argument("--fences", type=int, default=100_000)
    ap.add_argument("--subscribers", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--sites", type=int, default=300, help="sites per side of the square grid (3 cells each)")
    ap.add_argument("--peer-events", type=int, default=200_000, help="events given to the shapely/h3 peers")
    ap.add_argument("--h3-fences", type=int, default=0, help="fences whose H3 cover is built (0: all)")
    ap.add_argument("--move", default="0.1,0.01", help="shares of events away from the home cell (one run each)")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if args.full:
        args.subscribers, args.events = 10_000_000, 40_000_000
    rng = np.random.default_rng(1)
    t = time.perf_counter()
    catalogue = city(args.sites)
    t_cat = time.perf_counter() - t
    fs = fences(rng, args.fences, catalogue)
    t = time.perf_counter()
    members = compile_fences(fs, catalogue)
    t_compile = time.perf_counter() - t
    cells = np.concatenate(members)
    fids = np.repeat(np.arange(len(fs)), [len(m) for m in members])
    membership = Membership.from_pairs(catalogue.keys, [f.name for f in fs], cells, fids)
    config = DetectConfig(dwell_s=600, exit_confirm=2, exit_after_s=60)
    mixes = []
    for share in map(float, args.move.split(",")):
        home, sub, cell, ts, lon, lat = events(rng, args.events, args.subscribers, catalogue, share)
        everyone = np.arange(args.subscribers)
        best = float("inf")
        for _ in range(args.runs + 1):  # the first run also compiles the kernel
            # The pool sized for the steady state (~7 slots per subscriber here: visits live in blocks of
            # 1, 2, 3, 4, 6, 8, .. slots), so the timed stream measures matching, not the pool's one-off growth.
            matcher = FenceMatcher([], membership=membership, config=config, pool_slots=8 * args.subscribers)
            matcher.reserve(args.subscribers)
            # Steady state, not a cold start: everyone was seen at home an hour and half an hour before
            # the timed stream (so their home fences are entered and dwelt in already).
            for before in (3600, 1800):
                matcher.run(everyone, home.astype(np.int32), np.full(args.subscribers, -before * US, np.int64))
            start = time.perf_counter()
            n_trig = len(matcher.run(sub, cell, ts)[0])
            best = min(best, time.perf_counter() - start)
        mixes.append((share, args.events / best, n_trig))

    k = min(args.peer_events, args.events)
    geoms = np.array([f.geometry for f in fs], dtype=object)
    tree = shapely.STRtree(geoms)
    points = shapely.points(lon[:k], lat[:k])
    t_shapely, pairs = best_of(args.runs, lambda: tree.query(points, predicate="intersects"))
    t_pip, hits = best_of(args.runs, lambda: fences_at(lon[:k], lat[:k], geoms))
    assert len(hits[0]) == len(pairs[0])  # same answer (no event point lies exactly on a fence's edge)

    n_h3 = min(args.h3_fences or len(fs), len(fs))
    t = time.perf_counter()
    covers = [h3_cover(f, H3_RES) for f in fs[:n_h3]]
    t_h3_cover = (time.perf_counter() - t) * len(fs) / n_h3
    hex_fences: dict[str, list[int]] = {}
    for i, cover in enumerate(covers):
        for hx in cover:
            hex_fences.setdefault(hx, []).append(i)
    lat_k, lon_k = lat[:k].tolist(), lon[:k].tolist()

    def h3_peer():
        hits = 0
        for y, x in zip(lat_k, lon_k):
            hits += len(hex_fences.get(h3.latlng_to_cell(y, x, H3_RES), ()))
        return hits
    t_h3, _ = best_of(args.runs, h3_peer)

    rate = mixes[0][1]  # the peers ran on the last mix's points; their cost does not depend on the mix
    rate_shapely, rate_h3 = k / t_shapely, k / t_h3
    per_cell = np.diff(membership.offsets)
    print(f"catalogue {len(catalogue)} cells (built in {t_cat:.1f} s), {len(fs)} fences, "
          f"{per_cell.mean():.1f} fences per cell (max {per_cell.max()}), {args.subscribers:,} subscribers, "
          f"{args.events:,} events; peers timed on {k:,} events "
          f"({len(pairs[0]):,} point-in-fence hits); 1 core\n")
    print("| what | figure | vs sigloc |")
    print("|---|---|---|")
    for share, r, n_trig in mixes:
        print(f"| sigloc membership + state machine, {share:.0%} of events away from home "
              f"({n_trig / args.events:.2f} triggers/event) | {r / 1e6:.1f} M events/s | {r / rate:.2f}× |")
    print(f"| shapely STRtree point-in-polygon | {rate_shapely / 1e6:.2f} M events/s | "
          f"{rate / rate_shapely:.0f}× slower |")
    print(f"| sigloc fences_at (coordinates: STRtree bbox + contains_xy, incl. tree build) | "
          f"{k / t_pip / 1e6:.2f} M events/s | {rate * t_pip / k:.0f}× slower |")
    print(f"| h3 latlng_to_cell + set lookup (covers of {n_h3:,} of {len(fs):,} fences, {len(hex_fences):,} "
          f"hexagons) | {rate_h3 / 1e6:.2f} M events/s | {rate / rate_h3:.0f}× slower |")
    print(f"| compile {len(fs):,} fences to cells | {t_compile:.1f} s | target < 60 s |")
    scaled = f" (extrapolated from {n_h3:,})" if n_h3 < len(fs) else ""
    print(f"| compile {len(fs):,} fences to H3 res {H3_RES}{scaled} | {t_h3_cover:.1f} s | |")


if __name__ == "__main__":
    main()

"""Detection semantics with exact times: a hand-checked walk, ping-pong hysteresis, dwell, pass-through,
power off, live recompilation (also against the reference on random streams), and a simulator run checked
against its ground truth."""

import json
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decoders.records import EVENT_SCHEMA
from geofence.cells import Catalogue, CellRecord
from geofence.fences import Fence, FenceError, FenceSet, compile_fence, fence_from_json
from geofence.match import OFF, US, DetectConfig, FenceMatcher, Membership, detect_reference
from shapely.geometry import box

DLON = 1 / (111.320 * np.cos(np.radians(30)))  # degrees of longitude per km at latitude 30


def line_of_cells(n=5) -> Catalogue:
    """Omni 1 km cells c0..c{n-1} every 2 km east of lon 120 on latitude 30 (so discs just touch)."""
    return Catalogue([CellRecord(f"c{i}", "2G", 30.0, 120 + 2 * i * DLON, None, 360, 1000, f"S{i}")
                      for i in range(n)])


def _events(rows):
    """An event table from (seconds, imsi, event, cell) tuples; frame = row number + 1."""
    schema = pa.schema([EVENT_SCHEMA.field(n) for n in ("ts", "imsi", "event", "cell", "frame")])
    return pa.Table.from_pylist([{"ts": datetime.fromtimestamp(t, timezone.utc), "imsi": i, "event": e,
                                  "cell": c, "frame": n + 1} for n, (t, i, e, c) in enumerate(rows)],
                                schema=schema)


def _got(table):
    return [(r["ts"].timestamp(), r["imsi"], r["fence"], r["kind"], r["dwell_s"]) for r in table.to_pylist()]


def test_hand_checked_fence_and_walk():
    cat = line_of_cells()
    # x from 1.5 km to 6.5 km: c1 (x 1..3) and c3 (x 5..7) lose a 0.5 km cap (share 0.804, by the segment
    # formula in test_geofence), c2 (x 3..5) is wholly inside, c0 (x -1..1) and c4 (x 7..9) are outside.
    fence = Fence("park", box(120 + 1.5 * DLON, 29.9, 120 + 6.5 * DLON, 30.1))
    assert compile_fence(fence, cat, 0.5) == ["c1", "c2", "c3"]
    assert compile_fence(fence, cat, 0.81) == ["c2"]
    matcher = FenceMatcher(cat.keys, {"park": compile_fence(fence, cat, 0.5)}, DetectConfig(dwell_s=60))
    walk = [(0, "A", "power_on", "c0"), (10, "A", "cell_change", "c1"), (20, "A", "cell_change", "c2"),
            (75, "A", "location_update", "c2"), (80, "A", "cell_change", "c3"), (90, "A", "cell_change", "c4"),
            (100, "A", "cell_change", "c3"), (110, "A", "power_off", None)]
    assert _got(matcher.match(_events(walk))) == [
        (10, "A", "park", "enter", 0), (75, "A", "park", "dwell", 65), (90, "A", "park", "exit", 80),
        (100, "A", "park", "enter", 0), (110, "A", "park", "exit", 10)]


def test_ping_pong_between_border_cells_does_not_flap():
    config = DetectConfig(exit_confirm=3, exit_after_s=60)
    matcher = FenceMatcher(["in", "out", "far"], {"mall": ["in"]}, config)
    bounce = [(t, "A", "cell_change", "in" if (t // 5) % 2 == 0 else "out") for t in range(0, 95, 5)]
    assert _got(matcher.match(_events(bounce))) == [(0, "A", "mall", "enter", 0)]
    # Leaving for good: first outside sighting at 100; the third one in a row (110) confirms the exit.
    away = [(100, "A", "cell_change", "out"), (105, "A", "cell_change", "far"), (110, "A", "periodic_lu", "far")]
    assert _got(matcher.match(_events(away))) == [(110, "A", "mall", "exit", 100)]
    # Absent long enough confirms too: outside at 200, silent, seen outside again 60 s later.
    back = [(150, "A", "cell_change", "in"), (200, "A", "cell_change", "out"), (260, "A", "periodic_lu", "out")]
    assert _got(matcher.match(_events(back))) == [(150, "A", "mall", "enter", 0), (260, "A", "mall", "exit", 50)]
    # Power off leaves at once, hysteresis or not.
    off = [(300, "A", "cell_change", "in"), (310, "A", "power_off", None)]
    assert _got(matcher.match(_events(off))) == [(300, "A", "mall", "enter", 0), (310, "A", "mall", "exit", 10)]


def test_without_hysteresis_the_same_bounce_flaps():
    """The control for the test above: the default (exit on the first outside event) does flap."""
    matcher = FenceMatcher(["in", "out"], {"mall": ["in"]})
    bounce = [(t, "A", "cell_change", "in" if (t // 5) % 2 == 0 else "out") for t in range(0, 20, 5)]
    assert [k for _, _, _, k, _ in _got(matcher.match(_events(bounce)))] == ["enter", "exit", "enter", "exit"]


def test_dwell_fires_once_per_visit_at_the_first_event_past_t():
    matcher = FenceMatcher(["in", "out"], {"mall": ["in"]}, DetectConfig(dwell_s=300))
    rows = [(100, "A", "power_on", "in"), (200, "A", "call", "in"), (399, "A", "sms", "in"),
            (400, "A", "sms", "in"), (500, "A", "call", "in"), (600, "A", "cell_change", "out"),
            (700, "A", "cell_change", "in"), (1000, "A", "call", "in")]
    assert _got(matcher.match(_events(rows))) == [
        (100, "A", "mall", "enter", 0), (400, "A", "mall", "dwell", 300), (600, "A", "mall", "exit", 500),
        (700, "A", "mall", "enter", 0), (1000, "A", "mall", "dwell", 300)]


def test_pass_through_is_a_visit_shorter_than_t():
    matcher = FenceMatcher(["in", "out"], {"station": ["in"]}, DetectConfig(pass_through_s=120))
    rows = [(0, "A", "cell_change", "in"), (100, "A", "cell_change", "out"),
            (200, "A", "cell_change", "in"), (320, "A", "cell_change", "out")]
    assert _got(matcher.match(_events(rows))) == [
        (0, "A", "station", "enter", 0), (100, "A", "station", "exit", 100),
        (100, "A", "station", "pass_through", 100), (200, "A", "station", "enter", 0),
        (320, "A", "station", "exit", 120)]


def test_inside_reports_every_located_event_in_overlapping_fences():
    matcher = FenceMatcher(["a", "b"], {"big": ["a", "b"], "small": ["b"]}, DetectConfig(inside=True))
    rows = [(0, "A", "power_on", "a"), (5, "A", "call", "b"), (9, "A", "call", "b")]
    got = sorted((t, f, k) for t, _, f, k, _ in _got(matcher.match(_events(rows))))
    assert got == [(0, "big", "enter"), (0, "big", "inside"), (5, "big", "inside"), (5, "small", "enter"),
                   (5, "small", "inside"), (9, "big", "inside"), (9, "small", "inside")]


def test_recompile_swaps_fences_without_losing_state():
    cat = line_of_cells()
    lake = Fence("lake", box(120 - 1.2 * DLON, 29.9, 120 + 3.2 * DLON, 30.1))  # c0, c1
    fences = FenceSet(cat, [lake], min_overlap=0.5)
    assert fences.cells_of("lake") == ["c0", "c1"]
    matcher = FenceMatcher([], membership=fences.membership(), config=DetectConfig(dwell_s=100))
    assert _got(matcher.match(_events([(0, "A", "power_on", "c1")]))) == [(0, "A", "lake", "enter", 0)]
    # A new fence over c1..c2 arrives while A sits in c1: only it is entered; lake's visit goes on.
    fences.put(fence_from_json({"kind": "cells", "name": "mall", "cells": ["c1", "c2"]}))
    assert fences.recompiled == 1
    matcher.swap(fences.membership(matcher.membership))
    assert _got(matcher.match(_events([(50, "A", "call", "c1")]))) == [(50, "A", "mall", "enter", 0)]
    # The catalogue gains a far cell: lake and mall are not near it, so nothing is recompiled, and the
    # cell indices move under A without a spurious enter.
    far = CellRecord("c9", "2G", 31.0, 121.0, None, 360, 1000, "far")
    grown = Catalogue([far] + cat.cells)
    fences.set_catalogue(grown)
    assert fences.recompiled == 0 and fences.cells_of("lake") == ["c0", "c1"]
    matcher.swap(fences.membership(matcher.membership))
    assert _got(matcher.match(_events([(100, "A", "call", "c1")]))) == [(100, "A", "lake", "dwell", 100)]
    # Removing a fence ends its visit silently; the other keeps its enter time.
    fences.remove("mall")
    matcher.swap(fences.membership(matcher.membership))
    assert _got(matcher.match(_events([(150, "A", "cell_change", "c2")]))) == [(150, "A", "lake", "exit", 150)]


@pytest.fixture(scope="module")
def configs():
    """The kernel tests' config strategy (imported outside @given: defining tests inside one is refused)."""
    from test_geofence import CONFIGS
    return CONFIGS


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_swap_to_renumbered_fences_and_cells_changes_nothing(configs, data):
    """A swap that only renumbers fences and cells must leave the triggers as the reference has them:
    open visits follow their fence by name, everyone's cell is looked up again, and the triggers come out
    in event order. Up to 12 of 20 fences per cell, so visit blocks move through several sizes."""
    config = data.draw(configs)
    n_cells = data.draw(st.integers(1, 6))
    cell_fences = [set(data.draw(st.lists(st.integers(0, 19), max_size=12))) for _ in range(n_cells)]
    n = data.draw(st.integers(0, 80))
    sub = data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    cell = data.draw(st.lists(st.integers(OFF, n_cells - 1), min_size=n, max_size=n))
    ts = (np.cumsum(data.draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))) * US).tolist()
    split = data.draw(st.integers(0, n))
    keys, names = [f"c{i}" for i in range(n_cells)], [f"f{i}" for i in range(20)]
    fences = {f"f{f}": [keys[c] for c in range(n_cells) if f in cell_fences[c]] for f in range(20)}
    matcher = FenceMatcher(keys, fences, config, pool_slots=1)
    got = []

    def batch(lo, hi, cell_index, fence_index):
        codes = [c if c < 0 else cell_index[keys[c]] for c in cell[lo:hi]]
        rows, fids, kinds, dwell = matcher.run(np.array(sub[lo:hi], np.int64), np.array(codes, np.int32),
                                               np.array(ts[lo:hi], np.int64))
        assert (np.diff(rows) >= 0).all()
        got.extend((r + lo, fence_index[f], k, d) for r, f, k, d in zip(rows.tolist(), fids.tolist(),
                                                                        kinds.tolist(), dwell.tolist()))

    batch(0, split, {k: i for i, k in enumerate(keys)}, list(range(20)))
    new_keys = data.draw(st.permutations(keys))
    new_names = data.draw(st.permutations(names))
    matcher.swap(Membership.from_lists(new_keys, {name: fences[name] for name in new_names}))
    batch(split, n, {k: i for i, k in enumerate(new_keys)}, [names.index(x) for x in new_names])
    assert sorted(got) == detect_reference(sub, cell, ts, cell_fences, config, {})


def test_catalogue_change_near_a_fence_recompiles_only_that_fence():
    cat = line_of_cells()
    west = Fence("west", box(120 - 1.2 * DLON, 29.9, 120 + 1.2 * DLON, 30.1))   # c0
    east = Fence("east", box(120 + 6.8 * DLON, 29.9, 120 + 9.2 * DLON, 30.1))   # c4
    fences = FenceSet(cat, [west, east], min_overlap=0.5)
    assert fences.cells_of("west") == ["c0"] and fences.cells_of("east") == ["c4"]
    moved = [c if c.key != "c4" else CellRecord("c4", "2G", 30.0, 120 + 6 * DLON, None, 360, 1000, "S4")
             for c in cat.cells]  # c4 moves 2 km west, out of "east"
    fences.set_catalogue(Catalogue(moved))
    assert fences.recompiled == 1 and fences.cells_of("east") == [] and fences.cells_of("west") == ["c0"]
    # A catalogue that drops a cell a fence names is refused, and the set stays as it was.
    fences.put(fence_from_json({"kind": "cells", "name": "hall", "cells": ["c2"]}))
    with pytest.raises(FenceError, match="fence 'hall': cell c2 is not in the catalogue"):
        fences.set_catalogue(Catalogue([c for c in moved if c.key != "c2"]))
    assert fences.catalogue.index["c2"] == 2 and fences.cells_of("hall") == ["c2"]


def _truth_triggers(truth, fence_cells):
    """Enter/exit from the truth alone: a subscriber is in the fence while its last located truth event
    was in one of the fence's cells (power off: nowhere)."""
    inside, out = {}, []
    for e in truth:
        if e["event"] != "power_off" and not e.get("cell"):
            continue
        now = e["event"] != "power_off" and e["cell"] in fence_cells
        if now != inside.get(e["imsi"], False):
            out.append((round(e["ts"], 3), e["imsi"], "enter" if now else "exit"))
        inside[e["imsi"]] = now
    return sorted(out)


def test_simulated_city_triggers_match_truth(city):
    from test_geofence_truth import city_fence_and_events
    cat, fence, cells, events = city_fence_and_events(city)
    triggers = FenceMatcher(cat.keys, {fence.name: cells}).match(events)
    got = sorted((round(r["ts"].timestamp(), 3), r["imsi"], r["kind"]) for r in triggers.to_pylist())
    truth = sorted((json.loads(line) for line in open(city / "truth.jsonl")), key=lambda e: e["ts"])
    want = _truth_triggers(truth, set(cells))
    assert len([w for w in want if w[2] == "enter"]) >= 5  # the city does send people to the lake
    assert got == want

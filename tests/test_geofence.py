"""Fence compilation on hand-checked geometry, catalogue validation, and the Numba kernel vs its reference."""

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decoders.records import EVENT_SCHEMA
from geofence.cells import Catalogue, CatalogueError, CellRecord, footprint
from geofence.fences import Fence, FenceError, compile_fence, load_fence
from geofence.match import NOWHERE, FenceMatcher, transitions, transitions_reference
from shapely.geometry import Polygon

HEADER = "rat,mcc,mnc,lac,ci,tac,eci,site_name,lat,lon,azimuth,beamwidth,radius_m,band,indoor\n"


def _write(tmp_path, rows, name="cells.csv"):
    path = tmp_path / name
    path.write_text(HEADER + "".join(rows))
    return path


def test_footprint_is_a_wedge_facing_its_azimuth():
    cell = CellRecord("k", "4G", 30.0, 120.0, azimuth=90, beamwidth=60, radius_m=1000, site_name="s")
    fp = footprint(cell)
    minx, miny, maxx, maxy = fp.bounds
    assert minx == pytest.approx(120.0)  # the site is the wedge's west tip
    assert maxx == pytest.approx(120.0 + 1000 / (111320 * np.cos(np.radians(30))), rel=1e-3)
    assert maxy - 30.0 == pytest.approx(30.0 - miny, rel=1e-6)  # symmetric about due east


def test_compile_hand_checked(tmp_path):
    # Three omni cells 1 km radius on a line of latitude 30, sites 0, 2 and 4 km east of lon 120.
    dlon = 1 / (111.320 * np.cos(np.radians(30)))
    rows = [f"2G,460,00,1,{ci},,,S{ci},30.0,{120 + km * dlon:.6f},,360,1000,GSM900,0\n"
            for ci, km in ((1, 0), (2, 2), (3, 4))]
    cat = Catalogue.load(_write(tmp_path, rows))
    # Fence: a box covering x in [-0.5, 2.8] km. Cell 1 (x -1..1) has 75 % of its area... we compute below;
    # cell 2 (x 1..3) overlaps x in [1, 2.8]: 90 % of the disc's width, cell 3 (3..5): nothing.
    box = Polygon([(120 - 0.5 * dlon, 29.9), (120 + 2.8 * dlon, 29.9), (120 + 2.8 * dlon, 30.1), (120 - 0.5 * dlon, 30.1)])
    fence = Fence("box", box)
    # Share of a unit disc right of x=-0.5 is 1 - segment(0.5); segment area = acos(d) - d*sqrt(1-d^2) over pi.
    seg = lambda d: (np.arccos(d) - d * np.sqrt(1 - d * d)) / np.pi
    share1, share2 = 1 - seg(0.5), 1 - seg(0.8)  # cell 1 loses x<-0.5; cell 2 loses x>2.8 (0.8 from its centre)
    assert share1 == pytest.approx(0.804, abs=1e-3) and share2 == pytest.approx(0.948, abs=1e-3)
    assert compile_fence(fence, cat, min_overlap=0.5) == ["460-00-1-1", "460-00-1-2"]
    assert compile_fence(fence, cat, min_overlap=0.9) == ["460-00-1-2"]
    assert compile_fence(fence, cat, min_overlap=0.99) == []


@pytest.mark.parametrize("row, message", [
    ("2G,460,00,1,2,,,S,3x.1,120,,,,,\n", "cells.csv:2: field 'lat': '3x.1' is not a number"),
    ("2G,460,00,1,2,,,S,95,120,,,,,\n", "cells.csv:2: field 'lat': 95.0 is outside -90..90"),
    ("2G,46,00,1,2,,,S,30,120,,,,,\n", "cells.csv:2: field 'mcc'"),
    ("2G,460,00,,,,,S,30,120,,,,,\n", "cells.csv:2: field 'lac'/'ci' or 'eci'"),
    ("4G,460,00,,,1,999999999,S,30,120,,,,,\n", "cells.csv:2: field 'eci'"),
])
def test_catalogue_errors_name_file_line_field(tmp_path, row, message):
    with pytest.raises(CatalogueError) as err:
        Catalogue.load(_write(tmp_path, [row]))
    assert message in str(err.value)


def test_catalogue_duplicate_and_missing_column(tmp_path):
    with pytest.raises(CatalogueError, match=r"cells.csv:3: cell 460-00-1-2 already defined on line 2"):
        Catalogue.load(_write(tmp_path, ["2G,460,00,1,2,,,S,30,120,,,,,\n"] * 2))
    bad = tmp_path / "bad.csv"
    bad.write_text("mcc,mnc,lac,ci\n460,00,1,2\n")
    with pytest.raises(CatalogueError, match=r"bad.csv:1: missing column\(s\): lat, lon"):
        Catalogue.load(bad)


@pytest.mark.parametrize("text, message", [
    ("{not json", "not JSON"),
    ('{"type": "Point", "coordinates": [120, 30]}', "is not Polygon"),
    ('{"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}', "self-intersecting"),
    ('{"type": "Polygon", "coordinates": [[[30, 120], [30.1, 120], [30.1, 120.1], [30, 120]]]}', "[lon, lat]"),
])
def test_fence_errors(tmp_path, text, message):
    path = tmp_path / "f.geojson"
    path.write_text(text)
    with pytest.raises(FenceError) as err:
        load_fence(path)
    assert str(path) in str(err.value) and message in str(err.value)


def _csr(cell_fences):
    offsets = np.zeros(len(cell_fences) + 1, np.int64)
    offsets[1:] = np.cumsum([len(f) for f in cell_fences])
    return offsets, np.array([f for fs in cell_fences for f in sorted(fs)], np.int64)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_kernel_equals_reference(data):
    n_cells = data.draw(st.integers(1, 6))
    cell_fences = [set(data.draw(st.lists(st.integers(0, 4), max_size=3))) for _ in range(n_cells)]
    n = data.draw(st.integers(0, 60))
    sub = np.array(data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), np.int64)
    cell = np.array(data.draw(st.lists(st.integers(NOWHERE, n_cells - 1), min_size=n, max_size=n)), np.int64)
    offsets, fences = _csr(cell_fences)
    last = np.full(4, NOWHERE, np.int64)
    rows, fids, kinds = transitions(sub, cell, offsets, fences, last)
    got = sorted(zip(rows.tolist(), fids.tolist(), kinds.tolist()))
    ref_state: dict[int, int] = {}
    assert got == transitions_reference(sub.tolist(), cell.tolist(), cell_fences, ref_state)
    assert all(last[s] == c for s, c in ref_state.items())


def test_matcher_walk_through_fence():
    keys = ["c0", "c1", "c2"]
    matcher = FenceMatcher(keys, {"lake": ["c1", "c2"], "mall": ["c2"]})
    events = pa.Table.from_pylist([
        {"ts": 1.0, "imsi": "A", "event": "power_on", "cell": "c0", "frame": 1},
        {"ts": 2.0, "imsi": "A", "event": "cell_change", "cell": "c1", "frame": 2},   # enter lake
        {"ts": 3.0, "imsi": "B", "event": "power_on", "cell": "c2", "frame": 3},      # B enters lake and mall
        {"ts": 4.0, "imsi": "A", "event": "cell_change", "cell": "c2", "frame": 4},   # A enters mall
        {"ts": 5.0, "imsi": "A", "event": "location_update", "cell": "c2", "frame": 5},  # no change
        {"ts": 6.0, "imsi": "B", "event": "power_off", "cell": "c2", "frame": 6},     # B exits both
        {"ts": 7.0, "imsi": None, "event": "cell_change", "cell": "c1", "frame": 7},  # unresolved: ignored
    ], schema=pa.schema([(f.name, f.type) for f in EVENT_SCHEMA if f.name in ("imsi", "event", "cell", "frame")]
                        + [("ts", pa.float64())]))
    events = events.set_column(events.schema.get_field_index("ts"), "ts",
                               pa.array([int(x * 1e6) for x in events["ts"].to_pylist()]).cast(EVENT_SCHEMA.field("ts").type))
    got = [(r["frame"], r["imsi"], r["fence"], r["kind"]) for r in matcher.match(events).to_pylist()]
    assert got == [(2, "A", "lake", "enter"), (3, "B", "lake", "enter"), (3, "B", "mall", "enter"),
                   (4, "A", "mall", "enter"), (6, "B", "lake", "exit"), (6, "B", "mall", "exit")]

"""Fence compilation on hand-checked geometry, catalogue validation, and the Numba kernel vs its reference."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geofence.cells import Catalogue, CatalogueError, CellRecord, footprint
from geofence.fences import Fence, FenceError, compile_fence, load_fence
from geofence.match import OFF, US, DetectConfig, FenceMatcher, Membership, detect_reference
from shapely.geometry import Polygon
from test_geofence_detect import _events

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
    return offsets, np.array([f for fs in cell_fences for f in sorted(fs)], np.int32)


CONFIGS = st.builds(DetectConfig, dwell_s=st.sampled_from([None, 0, 3, 10]),
                    pass_through_s=st.sampled_from([None, 5, 20]), exit_after_s=st.sampled_from([None, 0, 4]),
                    exit_confirm=st.integers(1, 3), inside=st.booleans())


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_kernel_equals_reference(data):
    """The Numba kernel (fast path, slot pool, resumption when the pool is short) equals the spec."""
    config = data.draw(CONFIGS)
    n_cells = data.draw(st.integers(1, 6))
    cell_fences = [set(data.draw(st.lists(st.integers(0, 4), max_size=3))) for _ in range(n_cells)]
    n = data.draw(st.integers(0, 80))
    sub = data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    cell = data.draw(st.lists(st.integers(OFF, n_cells - 1), min_size=n, max_size=n))
    steps = data.draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))
    ts = (np.cumsum(steps) * US).tolist()
    offsets, fences = _csr(cell_fences)
    matcher = FenceMatcher([f"c{i}" for i in range(n_cells)], {}, config=config,
                           membership=Membership([f"c{i}" for i in range(n_cells)], [f"f{i}" for i in range(5)],
                                                 offsets, fences, np.ones(5, bool)),
                           pool_slots=1)  # tiny: the kernel must stop, the pool grow, the run resume
    split = data.draw(st.integers(0, n))  # two batches: state carries over
    got = []
    for lo, hi in ((0, split), (split, n)):
        rows, fids, kinds, dwell = matcher.run(np.array(sub[lo:hi], np.int64), np.array(cell[lo:hi], np.int32),
                                               np.array(ts[lo:hi], np.int64))
        got += [(r + lo, f, k, d) for r, f, k, d in zip(rows.tolist(), fids.tolist(), kinds.tolist(), dwell.tolist())]
    assert sorted(got) == detect_reference(sub, cell, ts, cell_fences, config, {})


def test_matcher_walk_through_fence():
    keys = ["c0", "c1", "c2"]
    matcher = FenceMatcher(keys, {"lake": ["c1", "c2"], "mall": ["c2"]})
    events = _events([
        (1, "A", "power_on", "c0"),
        (2, "A", "cell_change", "c1"),       # enter lake
        (3, "B", "power_on", "c2"),          # B enters lake and mall
        (4, "A", "cell_change", "c2"),       # A enters mall
        (5, "A", "location_update", "c2"),   # no change
        (6, "B", "power_off", "c2"),         # B exits both
        (7, None, "cell_change", "c1"),      # unresolved: ignored
    ])
    got = sorted((r["frame"], r["imsi"], r["fence"], r["kind"]) for r in matcher.match(events).to_pylist())
    assert got == [(2, "A", "lake", "enter"), (3, "B", "lake", "enter"), (3, "B", "mall", "enter"),
                   (4, "A", "mall", "enter"), (6, "B", "lake", "exit"), (6, "B", "mall", "exit")]


def test_kernel_grows_its_output_and_pool_mid_batch():
    """Two cells with five fences each, alternating: 15 rows per event, far beyond the first output size."""
    cell_fences = [set(range(5)), set(range(5, 10))]
    offsets, fences = _csr(cell_fences)
    config = DetectConfig(inside=True, pass_through_s=10)
    matcher = FenceMatcher([], config=config, pool_slots=1,
                           membership=Membership(["a", "b"], [f"f{i}" for i in range(10)], offsets, fences,
                                                 np.ones(10, bool)))
    n = 40
    sub, cell, ts = [0] * n, [i % 2 for i in range(n)], [i * US for i in range(n)]
    rows, fids, kinds, dwell = matcher.run(np.array(sub, np.int64), np.array(cell, np.int32), np.array(ts, np.int64))
    got = sorted(zip(rows.tolist(), fids.tolist(), kinds.tolist(), dwell.tolist()))
    assert len(got) == 5 * 2 + 39 * 20  # first event: enter + inside; then exit, pass_through, enter, inside
    assert got == detect_reference(sub, cell, ts, cell_fences, config, {})

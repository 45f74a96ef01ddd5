"""Fence kinds and their JSON loaders (each error message), the GIS-window select-and-save workflow,
H3 covers, point-in-polygon, Excel and aliased catalogues, and Voronoi footprints of omni sites."""

import json

import h3
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import box

from geofence.cells import Catalogue, CatalogueError, CellRecord, footprint
from geofence.fences import (Fence, FenceError, FenceKind, FenceSet, candidates, compile_fence, fence_from_json, fences_at,
                             h3_cover, load_fence, overlap_shares, save_fence, select)

DLON = 1 / (111.320 * np.cos(np.radians(30)))


def line_of_cells(n=4) -> Catalogue:
    """Omni 1 km cells c0.. every 2 km east of lon 120 on latitude 30."""
    return Catalogue([CellRecord(f"c{i}", "2G", 30.0, 120 + 2 * i * DLON, None, 360, 1000, f"S{i}")
                      for i in range(n)])


def test_radius_fence_compiles_to_the_cell_it_covers():
    cat = line_of_cells()
    fence = fence_from_json({"kind": "radius", "name": "poi", "lat": 30.0, "lon": 120 + 2 * DLON, "radius_m": 1000})
    assert fence.kind == FenceKind.RADIUS and fence.center == (30.0, 120 + 2 * DLON)
    # The disc is c1's own footprint (same 72 bearings), so c1's share is 1; c0 and c2 only touch it.
    assert compile_fence(fence, cat, 0.99) == ["c1"]
    assert compile_fence(fence, cat, 0.01) == ["c1"]


def test_h3_fence_any_resolution_and_cover():
    cat = line_of_cells()
    site = cat.cells[1]
    hexes = h3.grid_disk(h3.latlng_to_cell(site.lat, site.lon, 7), 1)
    fence = fence_from_json({"kind": "h3", "name": "hex", "cells": hexes})
    # Independent check that c1's footprint lies in the hexagons: every vertex falls in one of them.
    assert all(h3.latlng_to_cell(y, x, 7) in hexes for x, y in cat.footprints[1].exterior.coords)
    assert "c1" in compile_fence(fence, cat, 0.99)
    assert h3_cover(fence, 7) == sorted(hexes)
    assert len(h3_cover(fence, 8)) == 7 * 7
    assert h3_cover(fence, 6) == sorted({h3.cell_to_parent(x, 6) for x in hexes})
    mixed = fence_from_json({"kind": "h3", "name": "m", "cells": [hexes[0], h3.cell_to_children(hexes[1], 9)[0]]})
    assert mixed.geometry.area > 0


def test_cells_fence_is_validated_against_the_catalogue():
    cat = line_of_cells()
    fence = fence_from_json({"kind": "cells", "name": "mine", "cells": ["c3", "c1"]})
    assert compile_fence(fence, cat) == ["c1", "c3"]
    # Its H3 cover is the hexagons whose centres lie in the two footprints (checked point by point).
    cover = FenceSet(cat, [fence]).h3_of("mine", 9)
    centres = shapely.points([h3.cell_to_latlng(x)[::-1] for x in cover])
    assert cover and all(shapely.intersects(cat.footprints[1].union(cat.footprints[3]), centres))
    assert fence.geometry.area == pytest.approx(cat.footprints[1].area + cat.footprints[3].area, rel=1e-6)
    with pytest.raises(FenceError, match=r"fence 'bad': cell c7 is not in the catalogue"):
        compile_fence(fence_from_json({"kind": "cells", "name": "bad", "cells": ["c1", "c7"]}), cat)


@pytest.mark.parametrize("doc, message", [
    ([], "doc.json: expected a JSON object"),
    ({"kind": "square"}, "doc.json: field 'kind': 'square' is not one of polygon, h3, radius, cells"),
    ({"kind": "cells", "name": "", "cells": ["c1"]}, "doc.json: field 'name': must be a non-empty string"),
    ({"kind": "cells", "name": "x", "cells": []}, "doc.json: field 'cells': expected a non-empty list of strings"),
    ({"kind": "cells", "name": "x", "cells": [1]}, "doc.json: field 'cells': expected a non-empty list of strings"),
    ({"kind": "h3", "name": "x", "cells": ["8a2a1072b59ffff", "zz"]},
     "doc.json: field 'cells': 'zz' is not a valid H3"),
    ({"kind": "radius", "name": "x", "lon": 120, "radius_m": 5}, "doc.json: field 'lat': None is not a number"),
    ({"kind": "radius", "name": "x", "lat": 30, "lon": 200, "radius_m": 5}, "doc.json: field 'lon': 200 is outside"),
    ({"kind": "radius", "name": "x", "lat": 30, "lon": 120, "radius_m": 0}, "doc.json: field 'radius_m': 0 is outside"),
    ({"kind": "polygon", "name": "x", "geometry": {"type": "Point"}}, "doc.json: geometry type 'Point'"),
    ({"kind": "cells", "name": "x", "cells": ["c1"], "exclude": "c1"},
     "doc.json: field 'exclude': expected a list of strings"),
])
def test_loader_errors_name_source_and_field(doc, message):
    with pytest.raises(FenceError) as err:
        fence_from_json(doc, source="doc.json")
    assert message in str(err.value)


def test_list_untick_save_reload(tmp_path):
    cat = line_of_cells()
    area = Fence("box", box(120 - 0.5 * DLON, 29.9, 120 + 2.8 * DLON, 30.1))
    listed = candidates(area, cat, min_overlap=0.5)
    # Shares from the circle-segment formula (see test_compile_hand_checked): c1 0.948, c0 0.804 (the
    # 72-gon footprint differs from the true disc in the third decimal).
    assert [(c.key, c.selected) for c in listed] == [("c1", True), ("c0", True)]
    assert [c.share for c in listed] == pytest.approx([0.948, 0.804], abs=2e-3)
    kept = select(area, cat, ["c0", "c3"], min_overlap=0.5)  # untick c1, tick c3 by hand
    assert kept.include == ("c3",) and kept.exclude == ("c1",)
    save_fence(kept, tmp_path / "box.json")
    assert compile_fence(load_fence(tmp_path / "box.json"), cat, 0.5) == ["c0", "c3"]
    with pytest.raises(FenceError, match="cell c9 is not in the catalogue"):
        select(area, cat, ["c9"])


@pytest.mark.parametrize("fence", [
    Fence("box", box(120, 29.9, 120.1, 30.1), include=("c3",), exclude=("c0",)),
    fence_from_json({"kind": "radius", "name": "r", "lat": 30.0, "lon": 120.01, "radius_m": 2500}),
    fence_from_json({"kind": "h3", "name": "h", "cells": [h3.latlng_to_cell(30.0, 120.02, 7)]}),
    fence_from_json({"kind": "cells", "name": "c", "cells": ["c2"], "include": ["c0"]}),
])
def test_every_kind_round_trips_through_its_file(tmp_path, fence):
    cat = line_of_cells()
    path = tmp_path / "fence.json"
    save_fence(fence, path)
    back = load_fence(path)
    assert (back.kind, back.name, back.include, back.exclude) == (fence.kind, fence.name, fence.include,
                                                                   fence.exclude)
    assert compile_fence(back, cat) == compile_fence(fence, cat)


def test_geojson_feature_carries_hand_edits(tmp_path):
    path = tmp_path / "lake.geojson"
    path.write_text(json.dumps({"type": "Feature", "properties": {"name": "lake", "exclude": ["c0"]},
                                "geometry": shapely.geometry.mapping(box(120, 29.9, 120.001, 30.1))}))
    fence = load_fence(path)
    assert (fence.name, fence.kind, fence.exclude) == ("lake", FenceKind.POLYGON, ("c0",))


def test_points_in_fences():
    squares = [box(0, 0, 2, 2), box(1, 1, 3, 3)]
    lon = np.array([0.5, 1.5, 2.5, 5.0, 2.0])
    lat = np.array([0.5, 1.5, 2.5, 5.0, 0.5])
    pi, gi = fences_at(lon, lat, squares)
    # (2.0, 0.5) lies on the first square's edge: contains_xy says no (boundary is not interior).
    assert list(zip(pi.tolist(), gi.tolist())) == [(0, 0), (1, 0), (1, 1), (2, 1)]


HEADER_ALIASES = ["Cell Name", "MCC", "MNC", "LAC", "CI", "Latitude", "Longitude", "Azimuth", "Beam Width",
                  "Coverage Radius", "Band", "Indoor"]


def test_excel_catalogue_with_aliased_columns(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(HEADER_ALIASES)
    sheet.append(["HZ1", 460, 0, 4352, 11, 30.19, 120.06, 90, 65, 1500, "GSM900", "no"])
    sheet.append(["HZ2", 460, 0, 4352, 12, 30.2, 120.07, None, None, 300, "GSM900", "yes"])
    path = tmp_path / "cells.xlsx"
    book.save(path)
    cat = Catalogue.load(path)
    a, b = cat.cells
    assert (a.key, a.site_name, a.lat, a.lon, a.azimuth, a.radius_m, a.band, a.indoor) == \
        ("460-00-4352-11", "HZ1", 30.19, 120.06, 90.0, 1500.0, "GSM900", False)
    assert (b.key, b.azimuth, b.beamwidth, b.radius_m, b.indoor) == ("460-00-4352-12", None, 65.0, 300.0, True)
    sheet.append(["HZ3", 460, 0, 4352, 13, "north", 120.07, None, None, None, "", ""])
    book.save(path)
    with pytest.raises(CatalogueError, match=r"cells.xlsx:4: field 'lat': 'north' is not a number"):
        Catalogue.load(path)


def test_csv_aliases_and_indoor_flag_errors(tmp_path):
    path = tmp_path / "cells.csv"
    path.write_text(",".join(HEADER_ALIASES) + "\nHZ1,460,00,1,2,30,120,,,500,B3,maybe\n")
    with pytest.raises(CatalogueError, match=r"cells.csv:2: field 'indoor': 'maybe' is not a yes/no flag"):
        Catalogue.load(path)
    path.write_text(",".join(HEADER_ALIASES) + "\nHZ1,460,00,1,2,30,120,,,500,B3,indoor\n")
    assert Catalogue.load(path).cells[0].indoor


def test_omni_footprints_are_voronoi_cells_clipped_to_the_radius():
    # Two omni sites 1 km apart, 1 km radius: the discs overlap, the Voronoi bisector splits them at 0.5 km.
    a = CellRecord("a", "2G", 30.0, 120.0, None, 360, 1000, "A")
    b = CellRecord("b", "2G", 30.0, 120 + DLON, None, 360, 1000, "B")
    sector = CellRecord("s", "4G", 30.0, 120.0, 90, 60, 1000, "A")
    fa, fb, fs = Catalogue([a, b, sector]).footprints
    assert fa.bounds[2] == pytest.approx(120 + 0.5 * DLON, rel=1e-9)
    assert fb.bounds[0] == pytest.approx(120 + 0.5 * DLON, rel=1e-9)
    assert fa.intersection(fb).area == pytest.approx(0, abs=1e-12)
    assert fa.area == pytest.approx(fb.area, rel=1e-6)
    assert fa.area < footprint(a).area
    assert fs.equals(footprint(sector))  # sectors keep their wedge
    alone = Catalogue([a]).footprints[0]
    assert alone.equals(footprint(a))  # a lone site keeps its disc


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_clipped_overlap_areas_equal_shapely(data):
    """The Numba clipping path equals shapely's overlay on concave fences, holes and multipolygons."""
    rnd = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    cells = [CellRecord(f"k{i}", "4G", 30 + rnd.uniform(0, 0.02), 120 + rnd.uniform(0, 0.02),
                        data.draw(st.sampled_from([None, 0.0, 45.0, 200.0, 359.0])),
                        data.draw(st.sampled_from([30.0, 65.0, 120.0, 180.0, 250.0])), rnd.uniform(200, 2000), "s")
             for i in range(data.draw(st.integers(1, 8)))]
    cat = Catalogue(cells)

    def star(x, y, r):  # concave: 7 points, alternate vertices at 40 % of the radius
        a = np.linspace(0, 2 * np.pi, 14, endpoint=False)
        rr = r * np.where(np.arange(14) % 2, 1.0, 0.4)
        return shapely.Polygon(np.column_stack([x + rr * np.cos(a), y + rr * np.sin(a)]))
    x, y = 120.01 + rnd.uniform(-0.01, 0.01), 30.01 + rnd.uniform(-0.01, 0.01)
    fences = [star(x, y, 0.01), star(x, y, 0.012).difference(star(x, y, 0.004)),
              shapely.MultiPolygon([star(x, y, 0.003), star(x + 0.01, y, 0.004)]), box(x, y, x + 0.008, y + 0.003)]
    gi, ci, shares = overlap_shares(fences, cat)
    want = shapely.area(shapely.intersection(np.array(cat.footprints)[ci], np.array(fences)[gi])) / \
        shapely.area(np.array(cat.footprints))[ci]
    assert shares == pytest.approx(want, abs=1e-9)

"""Fences a marketer draws and their compilation to the cells (and H3 hexagons) that serve them.

Four kinds of fence, one ``Fence`` type: a GeoJSON polygon/multipolygon, a set of H3 cells (any
resolution, mixed allowed), a radius around a point of interest, and an explicit list of catalogue
cells. A phone is located by its serving cell, so a fence is, for matching, the set of cells whose
footprint lies mostly inside it: a cell belongs when at least ``min_overlap`` of its footprint area
overlaps the fence. The ratio of two areas is unchanged by the local projection (longitude shrunk by
cos(latitude) is a linear map), so shares are computed on lon/lat directly for every (fence, cell) pair
one STRtree query finds: by clipping the fence's rings to the (convex) footprint in Numba, or by
shapely's overlay for the rare footprint that is not convex (a wedge wider than 180°). An operator's
ticks and unticks in the GIS window are kept as the fence's ``include``/``exclude`` lists and applied
after the threshold.
"""

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

import h3
import numba
import numpy as np
import shapely
from shapely import STRtree
from shapely.geometry import Polygon, mapping, shape
from shapely.geometry.base import BaseGeometry

from decoders.tables import read_json
from geofence.cells import M_PER_DEG_LAT, M_PER_DEG_LON_EQUATOR, Catalogue
from geofence.match import Membership

DEFAULT_MIN_OVERLAP = 0.3
MAX_RADIUS_M = 100_000.0
DISC_SEGMENTS = 72


class FenceError(ValueError):
    """A fence document that cannot be used; the message names its source, the field and the problem."""


class FenceKind(StrEnum):
    POLYGON = "polygon"
    H3 = "h3"
    RADIUS = "radius"
    CELLS = "cells"


@dataclass
class Fence:
    """One fence of any kind; ``geometry`` is what compilation overlaps with footprints and maps draw."""

    name: str
    geometry: BaseGeometry | None  # lon/lat; for a cells fence, the union of its footprints once compiled
    kind: FenceKind = FenceKind.POLYGON
    cells: tuple[str, ...] = ()      # kind cells: catalogue keys; kind h3: H3 cell ids
    center: tuple[float, float] | None = None  # kind radius: (lat, lon)
    radius_m: float | None = None
    include: tuple[str, ...] = ()  # cell keys added by hand after the threshold
    exclude: tuple[str, ...] = ()  # cell keys removed by hand


@dataclass(frozen=True)
class Candidate:
    """A cell touching a fence, as the GIS window lists it: its overlap share and whether it is in."""

    key: str
    site_name: str
    share: float
    selected: bool


# -- loading -------------------------------------------------------------------------------------------

def load_fence(path: str | Path) -> Fence:
    """A fence document from a file: GeoJSON (Feature, FeatureCollection's first feature, bare geometry)
    or a sigloc fence object ``{"kind": ..., "name": ...}`` (see docs/geofence.md)."""
    path = Path(path)
    return fence_from_json(read_json(path, FenceError), source=str(path), default_name=path.stem)


def fence_from_json(doc, source: str = "<fence>", default_name: str = "fence") -> Fence:
    """Build a Fence from a parsed JSON document (what the web app posts); FenceError names the field."""
    if not isinstance(doc, dict):
        raise FenceError(f"{source}: expected a JSON object")
    kind = doc.get("kind")
    if kind is None:
        return _from_geojson(doc, source, default_name)
    if kind not in FenceKind.__members__.values():
        raise FenceError(f"{source}: field 'kind': {kind!r} is not one of {', '.join(FenceKind)}")
    name = doc.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise FenceError(f"{source}: field 'name': must be a non-empty string")
    hand = {k: _strings(doc, k, source, required=False) for k in ("include", "exclude")}
    if kind == FenceKind.POLYGON:
        fence = _from_geojson(doc.get("geometry") or {}, source, name)
        return replace(fence, name=name, **hand)
    if kind == FenceKind.RADIUS:
        lat = _float(doc, "lat", source, -90, 90)
        lon = _float(doc, "lon", source, -180, 180)
        radius = _float(doc, "radius_m", source, 1, MAX_RADIUS_M)
        return Fence(name, disc(lat, lon, radius), FenceKind.RADIUS, center=(lat, lon), radius_m=radius, **hand)
    cells = _strings(doc, "cells", source, required=True)
    if kind == FenceKind.H3:
        bad = [c for c in cells if not h3.is_valid_cell(c)]
        if bad:
            raise FenceError(f"{source}: field 'cells': {bad[0]!r} is not a valid H3 cell")
        return Fence(name, h3_geometry(cells), FenceKind.H3, cells=tuple(dict.fromkeys(cells)), **hand)
    return Fence(name, None, FenceKind.CELLS, cells=tuple(dict.fromkeys(cells)), **hand)


def _strings(doc: dict, key: str, source: str, required: bool) -> tuple[str, ...]:
    value = doc.get(key)
    if value is None and not required:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or (required and not value):
        raise FenceError(f"{source}: field '{key}': expected a {'non-empty ' if required else ''}list of strings")
    return tuple(value)


def _float(doc: dict, key: str, source: str, lo: float, hi: float) -> float:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FenceError(f"{source}: field '{key}': {value!r} is not a number")
    if not lo <= value <= hi:
        raise FenceError(f"{source}: field '{key}': {value} is outside {lo:g}..{hi:g}")
    return float(value)


def _from_geojson(doc: dict, source: str, name: str) -> Fence:
    if doc.get("type") == "FeatureCollection":
        features = doc.get("features") or []
        if not features:
            raise FenceError(f"{source}: FeatureCollection has no features")
        doc = features[0]
    hand = {}
    if doc.get("type") == "Feature":
        props = doc.get("properties") or {}
        name = props.get("name") or name
        hand = {k: _strings(props, k, source, required=False) for k in ("include", "exclude")}
        doc = doc.get("geometry") or {}
    if doc.get("type") not in ("Polygon", "MultiPolygon"):
        raise FenceError(f"{source}: geometry type {doc.get('type')!r} is not Polygon or MultiPolygon")
    try:
        geometry = shape(doc)
    except (ValueError, TypeError, IndexError, AttributeError) as err:
        raise FenceError(f"{source}: bad coordinates: {err}") from None
    if geometry.is_empty or not geometry.is_valid or geometry.area == 0:
        raise FenceError(f"{source}: polygon is empty, self-intersecting or has no area")
    minx, miny, maxx, maxy = geometry.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise FenceError(f"{source}: coordinates are not lon/lat degrees (GeoJSON order is [lon, lat])")
    return Fence(name, geometry, FenceKind.POLYGON, **hand)


def fence_to_json(fence: Fence) -> dict:
    """The document ``fence_from_json`` reads back (round trip), with the hand-made include/exclude lists."""
    doc: dict = {"kind": fence.kind.value, "name": fence.name}
    if fence.kind == FenceKind.POLYGON:
        doc["geometry"] = mapping(fence.geometry)
    elif fence.kind == FenceKind.RADIUS:
        doc["lat"], doc["lon"] = fence.center
        doc["radius_m"] = fence.radius_m
    else:
        doc["cells"] = list(fence.cells)
    if fence.include:
        doc["include"] = list(fence.include)
    if fence.exclude:
        doc["exclude"] = list(fence.exclude)
    return doc


def save_fence(fence: Fence, path: str | Path) -> None:
    Path(path).write_text(json.dumps(fence_to_json(fence), indent=1), encoding="utf-8")


# -- geometry of the kinds -----------------------------------------------------------------------------

def disc(lat: float, lon: float, radius_m: float, segments: int = DISC_SEGMENTS) -> Polygon:
    """A circle of ``radius_m`` around (lat, lon) in lon/lat, via the local equirectangular projection."""
    b = np.radians(np.arange(segments) * 360.0 / segments)
    m_per_deg_lon = M_PER_DEG_LON_EQUATOR * math.cos(math.radians(lat))
    return Polygon(np.column_stack([lon + radius_m * np.sin(b) / m_per_deg_lon,
                                    lat + radius_m * np.cos(b) / M_PER_DEG_LAT]))


def h3_geometry(cells: Iterable[str]) -> BaseGeometry:
    """Union of the hexagons (lon/lat); cells of mixed resolutions are allowed."""
    return shapely.union_all([Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(c)]) for c in cells])


def h3_cover(fence: Fence, resolution: int, catalogue: Catalogue | None = None) -> list[str]:
    """The fence as H3 cells of one resolution (hexagon centres inside the fence; an H3 fence's own cells
    are re-expressed at that resolution: children of coarser cells, parents of finer ones)."""
    if not 0 <= resolution <= 15:
        raise FenceError(f"fence {fence.name!r}: H3 resolution {resolution} is outside 0..15")
    if fence.kind == FenceKind.H3:
        out: set[str] = set()
        for c in fence.cells:
            r = h3.get_resolution(c)
            out.update(h3.cell_to_children(c, resolution) if r < resolution
                       else [h3.cell_to_parent(c, resolution)] if r > resolution else [c])
        return sorted(out)
    geometry = fence.geometry
    if geometry is None:
        if catalogue is None:
            raise FenceError(f"fence {fence.name!r}: a cells fence needs the catalogue for its H3 cover")
        geometry = _cells_geometry(fence, catalogue)
    return sorted(h3.geo_to_cells(mapping(geometry), resolution))


def _cells_geometry(fence: Fence, catalogue: Catalogue) -> BaseGeometry:
    return shapely.union_all([catalogue.footprints[i] for i in _catalogue_indices(fence, fence.cells, catalogue)])


# -- compilation ---------------------------------------------------------------------------------------

def _catalogue_indices(fence: Fence, keys: Iterable[str], catalogue: Catalogue) -> list[int]:
    unknown = [k for k in keys if k not in catalogue.index]
    if unknown:
        raise FenceError(f"fence {fence.name!r}: cell {unknown[0]} is not in the catalogue")
    return [catalogue.index[k] for k in keys]


@numba.njit(cache=True)
def _clipped_area(xs, ys, a, b, cx, cy, c0, c1, orient, bx, by, ox, oy):
    """Area of ring xs/ys[a:b] clipped to the convex polygon cx/cy[c0:c1] (Sutherland–Hodgman; the subject
    may be concave — the extra zero-width edges it leaves add no area). bx/by, ox/oy: scratch buffers."""
    n = b - a
    x0, y0 = cx[c0], cy[c0]  # work relative to the clip polygon: small numbers, no cancellation
    for k in range(n):
        bx[k] = xs[a + k] - x0
        by[k] = ys[a + k] - y0
    m = c1 - c0
    for e in range(m):
        px, py = cx[c0 + e] - x0, cy[c0 + e] - y0
        qx, qy = cx[c0 + (e + 1) % m] - x0, cy[c0 + (e + 1) % m] - y0
        ex, ey = qx - px, qy - py
        k_out = 0
        for k in range(n):
            sx, sy = bx[k], by[k]
            tx, ty = bx[(k + 1) % n], by[(k + 1) % n]
            ds = orient * (ex * (sy - py) - ey * (sx - px))
            dt = orient * (ex * (ty - py) - ey * (tx - px))
            if ds >= 0:
                ox[k_out], oy[k_out] = sx, sy
                k_out += 1
            if (ds >= 0) != (dt >= 0):
                r = ds / (ds - dt)
                ox[k_out], oy[k_out] = sx + r * (tx - sx), sy + r * (ty - sy)
                k_out += 1
        n = k_out
        if n == 0:
            return 0.0
        for k in range(n):
            bx[k], by[k] = ox[k], oy[k]
    area = 0.0
    for k in range(n):
        area += bx[k] * by[(k + 1) % n] - bx[(k + 1) % n] * by[k]
    return abs(area) / 2


@numba.njit(cache=True)
def _pair_areas(gi, ci, ring_of, ring_sign, xs, ys, roff, cx, cy, coff, orient):
    """Intersection area of geometry gi[p] (rings ring_of[g]..ring_of[g+1], +exterior/−hole) with convex
    footprint ci[p], for every pair p."""
    longest = 0
    for r in range(roff.shape[0] - 1):
        longest = max(longest, roff[r + 1] - roff[r])
    widest = 0
    for c in range(coff.shape[0] - 1):
        widest = max(widest, coff[c + 1] - coff[c])
    size = 2 * (longest + widest) + 4
    bx, by, ox, oy = np.empty(size), np.empty(size), np.empty(size), np.empty(size)
    out = np.zeros(gi.shape[0])
    for p in range(gi.shape[0]):
        g, c = gi[p], ci[p]
        for r in range(ring_of[g], ring_of[g + 1]):
            out[p] += ring_sign[r] * _clipped_area(xs, ys, roff[r], roff[r + 1], cx, cy, coff[c], coff[c + 1],
                                                   orient[c], bx, by, ox, oy)
    return out


def _rings(geoms: np.ndarray):
    """Ring coordinates (open rings, CSR) of polygons/multipolygons, each geometry's ring range, ±1 per ring."""
    parts, owner = shapely.get_parts(geoms, return_index=True)
    rings, part = shapely.get_rings(parts, return_index=True)
    sign = np.where(np.r_[True, part[1:] != part[:-1]], 1.0, -1.0)  # a part's first ring is its exterior
    ring_of = np.searchsorted(owner[part], np.arange(len(geoms) + 1)).astype(np.int64)
    coords, ring = shapely.get_coordinates(rings, return_index=True)
    keep = np.r_[ring[1:] == ring[:-1], False]  # drop each ring's closing vertex
    coords, ring = coords[keep], ring[keep]
    roff = np.searchsorted(ring, np.arange(len(rings) + 1)).astype(np.int64)
    return ring_of, sign, np.ascontiguousarray(coords[:, 0]), np.ascontiguousarray(coords[:, 1]), roff


def overlap_shares(geometries, catalogue: Catalogue) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every (geometry, cell footprint) pair that intersects: (geometry index, cell index, share of the
    footprint's area inside the geometry). One STRtree query, then the areas: convex footprints (wedges up to
    180°, Voronoi cells ∩ discs) by polygon clipping in Numba, any other by shapely's overlay."""
    geoms = np.asarray(geometries, dtype=object)
    fps = np.asarray(catalogue.footprints, dtype=object)
    if not len(geoms) or not len(fps):
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0)
    gi, ci = STRtree(fps).query(geoms, predicate="intersects")
    gi, ci = gi.astype(np.int64), ci.astype(np.int64)
    fp_area = shapely.area(fps)
    convex = np.isclose(shapely.area(shapely.convex_hull(fps)), fp_area, rtol=1e-9, atol=0)
    areas = np.empty(len(gi))
    fast = convex[ci]
    if fast.any():
        ring_of, sign, xs, ys, roff = _rings(geoms)
        _, _, cx, cy, coff = _rings(fps)  # footprints are single-ring polygons: ring c is footprint c
        orient = np.where(shapely.is_ccw(shapely.get_exterior_ring(fps)), 1.0, -1.0)
        areas[fast] = _pair_areas(gi[fast], ci[fast], ring_of, sign, xs, ys, roff, cx, cy, coff, orient)
    slow = ~fast
    areas[slow] = shapely.area(shapely.intersection(fps[ci[slow]], geoms[gi[slow]]))
    return gi, ci, areas / fp_area[ci]


def compile_fences(fences: list[Fence], catalogue: Catalogue,
                   min_overlap: float = DEFAULT_MIN_OVERLAP) -> list[np.ndarray]:
    """Each fence's member cells (sorted catalogue indices): threshold rule, then include/exclude."""
    if not 0 < min_overlap <= 1:
        raise FenceError(f"min_overlap {min_overlap} is outside (0, 1]")
    drawn = [i for i, f in enumerate(fences) if f.kind != FenceKind.CELLS]
    gi, ci, shares = overlap_shares([fences[i].geometry for i in drawn], catalogue)
    keep = shares >= min_overlap - 1e-12
    gi, ci = gi[keep], ci[keep]
    order = np.lexsort((ci, gi))
    gi, ci = gi[order], ci[order]
    bounds = np.searchsorted(gi, np.arange(len(drawn) + 1))
    out: list[np.ndarray] = [np.zeros(0, np.int64)] * len(fences)
    for j, i in enumerate(drawn):
        out[i] = ci[bounds[j]:bounds[j + 1]]
    for i, fence in enumerate(fences):
        if fence.kind == FenceKind.CELLS:
            out[i] = np.array(sorted(_catalogue_indices(fence, fence.cells, catalogue)), np.int64)
            fence.geometry = _cells_geometry(fence, catalogue)  # what maps and reports draw
        if fence.include or fence.exclude:
            add = _catalogue_indices(fence, fence.include, catalogue)
            drop = _catalogue_indices(fence, fence.exclude, catalogue)
            out[i] = np.setdiff1d(np.union1d(out[i], add), drop).astype(np.int64)
    return out


def compile_fence(fence: Fence, catalogue: Catalogue, min_overlap: float = DEFAULT_MIN_OVERLAP) -> list[str]:
    """Keys of the fence's member cells, in catalogue order."""
    return [catalogue.cells[i].key for i in compile_fences([fence], catalogue, min_overlap)[0]]


def candidates(fence: Fence, catalogue: Catalogue, min_overlap: float = DEFAULT_MIN_OVERLAP) -> list[Candidate]:
    """Cells touching the fence, largest share first, each marked as selected by the current rule —
    the list the GIS window shows so the operator can untick some and ``select`` the rest."""
    members = set(compile_fences([fence], catalogue, min_overlap)[0].tolist())
    if fence.kind == FenceKind.CELLS:
        touching = {i: 1.0 for i in members}
    else:
        _, ci, shares = overlap_shares([fence.geometry], catalogue)
        touching = dict(zip(ci.tolist(), shares.tolist()))
    for i in members:
        touching.setdefault(i, 0.0)
    rows = [Candidate(catalogue.cells[i].key, catalogue.cells[i].site_name, s, i in members)
            for i, s in touching.items()]
    return sorted(rows, key=lambda c: (-c.share, c.key))


def select(fence: Fence, catalogue: Catalogue, keys: Iterable[str],
           min_overlap: float = DEFAULT_MIN_OVERLAP) -> Fence:
    """The fence with include/exclude lists set so that it compiles to exactly ``keys`` (save it with
    ``save_fence``); the drawn shape is kept, so the rule still applies to cells added to the catalogue later."""
    wanted = set(_catalogue_indices(fence, keys, catalogue))
    bare = replace(fence, include=(), exclude=())
    by_rule = set(compile_fences([bare], catalogue, min_overlap)[0].tolist())
    key = lambda i: catalogue.cells[i].key  # noqa: E731
    return replace(bare, include=tuple(sorted(map(key, wanted - by_rule))),
                   exclude=tuple(sorted(map(key, by_rule - wanted))))


def fences_at(lon: np.ndarray, lat: np.ndarray, geometries) -> tuple[np.ndarray, np.ndarray]:
    """Point-in-polygon for events that carry coordinates: (point index, geometry index) of every point
    inside a fence. An STRtree bounding-box query prefilters, ``shapely.contains_xy`` decides, both on arrays."""
    geoms = np.asarray(geometries, dtype=object)
    lon, lat = np.asarray(lon, float), np.asarray(lat, float)
    if not len(geoms) or not len(lon):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pi, gi = STRtree(geoms).query(shapely.points(lon, lat))
    inside = shapely.contains_xy(geoms[gi], lon[pi], lat[pi])
    order = np.lexsort((gi[inside], pi[inside]))
    return pi[inside][order].astype(np.int64), gi[inside][order].astype(np.int64)


# -- a live set of fences ------------------------------------------------------------------------------

class FenceSet:
    """Named fences compiled against one catalogue. Each change recompiles only the fences it touches and
    ``membership()`` yields fresh CSR arrays for ``FenceMatcher.swap``; fence ids stay stable by name."""

    def __init__(self, catalogue: Catalogue, fences: Iterable[Fence] = (),
                 min_overlap: float = DEFAULT_MIN_OVERLAP):
        self.catalogue = catalogue
        self.min_overlap = min_overlap
        self.fences: dict[str, Fence] = {}
        self.members: dict[str, np.ndarray] = {}  # sorted catalogue indices
        self.recompiled = 0  # fences compiled by the last change (what the incremental path saved shows here)
        self.put(*fences)

    def put(self, *fences: Fence) -> None:
        """Add or replace fences (one vectorised compile for all of them)."""
        compiled = compile_fences(list(fences), self.catalogue, self.min_overlap)
        for fence, cells in zip(fences, compiled):
            self.fences[fence.name] = fence
            self.members[fence.name] = cells
        self.recompiled = len(fences)

    def remove(self, name: str) -> None:
        if name not in self.fences:
            raise FenceError(f"no fence named {name!r}")
        del self.fences[name], self.members[name]
        self.recompiled = 0

    def cells_of(self, name: str) -> list[str]:
        return [self.catalogue.cells[i].key for i in self.members[name]]

    def h3_of(self, name: str, resolution: int) -> list[str]:
        """The fence as H3 cells of one resolution (for H3-keyed stores and positioning events)."""
        return h3_cover(self.fences[name], resolution, self.catalogue)

    def set_catalogue(self, catalogue: Catalogue) -> None:
        """Switch to a new catalogue, recompiling only fences near a cell that was added, removed, moved or
        reshaped (a moved omni site also reshapes its Voronoi neighbours, which the footprint compare catches)."""
        old = self.catalogue
        new_fp = {c.key: (c, fp.wkb) for c, fp in zip(catalogue.cells, catalogue.footprints)}
        changed_old = [i for i, c in enumerate(old.cells)
                       if new_fp.get(c.key) != (c, old.footprints[i].wkb)]
        changed_keys = {old.cells[i].key for i in changed_old}
        changed_new = [i for i, c in enumerate(catalogue.cells)
                       if c.key not in old.index or c.key in changed_keys]
        changed_keys |= {catalogue.cells[i].key for i in changed_new}
        areas = [old.footprints[i] for i in changed_old] + [catalogue.footprints[i] for i in changed_new]
        names = list(self.fences)
        hit: set[str] = set()
        if areas:
            drawn = [n for n in names if self.fences[n].kind != FenceKind.CELLS]
            tree = STRtree([self.fences[n].geometry for n in drawn])
            hit = {drawn[j] for j in tree.query(np.asarray(areas, dtype=object), predicate="intersects")[1]}
        for n in names:
            f = self.fences[n]
            if changed_keys.intersection(f.include + f.exclude + (f.cells if f.kind == FenceKind.CELLS else ())):
                hit.add(n)
        redo = [self.fences[n] for n in names if n in hit]
        compiled = compile_fences(redo, catalogue, self.min_overlap)  # raises before anything changes
        remap = np.array([catalogue.index.get(c.key, -1) for c in old.cells] or [0], np.int64)
        self.catalogue = catalogue
        for n in names:
            if n not in hit:
                self.members[n] = np.sort(remap[self.members[n]])
        for fence, cells in zip(redo, compiled):
            self.members[fence.name] = cells
        self.recompiled = len(redo)

    def membership(self, previous: Membership | None = None) -> Membership:
        """CSR arrays for the matcher; pass the matcher's current membership to keep its fence ids."""
        names = list(previous.names) if previous else []
        for n in self.fences:
            if n not in names:
                names.append(n)
        ids = {n: i for i, n in enumerate(names)}
        cells = np.concatenate([self.members[n] for n in self.fences] or [np.zeros(0, np.int64)])
        fids = np.concatenate([np.full(len(self.members[n]), ids[n], np.int64) for n in self.fences]
                              or [np.zeros(0, np.int64)])
        alive = np.array([n in self.fences for n in names], bool)
        return Membership.from_pairs(self.catalogue.keys, names, cells, fids, alive)
